//! Structural validation against the CRD's OpenAPI schema, as the apiserver
//! does on `kubectl apply`: types, unknown and required fields, bounds,
//! enums, formats, list keys, and the CEL rules ([`super::cel`]).
//!
//! The schema is the one generated from the Rust types (`crate::api::crds`),
//! so the command refuses what the apiserver would with no second copy of
//! the rules. Every violation is reported, each with its field path.

use std::fmt;

use serde_json::{Map, Value};

use super::cel::{self, RuleCheck};

/// One thing wrong with an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field, e.g. `spec.targets[0].name`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every violation of `value` (at `path`) against the OpenAPI `schema`.
pub fn validate(value: &Value, schema: &Value, path: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(value, schema, path, &mut out);
    out
}

fn push(out: &mut Vec<Violation>, path: &str, message: impl Into<String>) {
    out.push(Violation {
        path: path.to_string(),
        message: message.into(),
    });
}

fn walk(value: &Value, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, expected)
    {
        push(
            out,
            path,
            format!("must be {}, not {}", article(expected), kind(value)),
        );
        return;
    }
    match value {
        Value::Object(map) => object(map, schema, path, out),
        Value::Array(items) => array(items, schema, path, out),
        Value::String(text) => string(text, schema, path, out),
        Value::Number(number) => bounds(number.as_f64(), schema, path, out),
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        push(
            out,
            path,
            format!(
                "unsupported value {value}: supported values: {}",
                list.join(", ")
            ),
        );
    }
    rules(value, schema, path, out);
}

fn object(map: &Map<String, Value>, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        let child_path = format!("{path}.{key}");
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(child_schema), _) | (None, Some(child_schema)) => {
                walk(child, child_schema, &child_path, out)
            }
            (None, None) if preserve => {}
            (None, None) => {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                push(
                    out,
                    &child_path,
                    format!("unknown field {key:?} (known fields: {})", known.join(", ")),
                );
            }
        }
    }
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if !map.contains_key(name) {
            push(out, &format!("{path}.{name}"), "required field is missing");
        }
    }
}

fn array(items: &[Value], schema: &Value, path: &str, out: &mut Vec<Violation>) {
    let count = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        push(out, path, format!("must have at least {min} item(s)"));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        push(
            out,
            path,
            format!("must have at most {max} items, has {count}"),
        );
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            walk(item, item_schema, &format!("{path}[{i}]"), out);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => duplicates(items, path, out, |item| Some(item.clone())),
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            duplicates(items, path, out, |item| {
                let key: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| Some((k.to_string(), item.get(*k)?.clone())))
                    .collect();
                (!key.is_empty()).then_some(Value::Object(key))
            })
        }
        _ => {}
    }
}

/// Reports each item whose `key` an earlier item already had.
fn duplicates(
    items: &[Value],
    path: &str,
    out: &mut Vec<Violation>,
    key: impl Fn(&Value) -> Option<Value>,
) {
    let mut seen = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(key) = key(item) else { continue };
        if seen.contains(&key) {
            push(
                out,
                &format!("{path}[{i}]"),
                format!("duplicate value {key}"),
            );
        } else {
            seen.push(key);
        }
    }
}

fn string(text: &str, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    let length = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        push(
            out,
            path,
            format!("must be at least {min} character(s) long"),
        );
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        push(
            out,
            path,
            format!("must be at most {max} characters long, is {length}"),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match cel::check_pattern(pattern, text) {
            Some(true) => {}
            Some(false) => push(out, path, format!("{text:?} must match {pattern}")),
            None => tracing::warn!(%path, pattern, "no Rust check for this schema pattern"),
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("date") && !is_date(text) {
        push(out, path, format!("{text:?} must be a date: YYYY-MM-DD"));
    }
}

fn bounds(number: Option<f64>, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(number) = number else { return };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && number < min
    {
        push(out, path, format!("must be at least {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && number > max
    {
        push(out, path, format!("must be at most {max}"));
    }
}

fn rules(value: &Value, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    for rule in rules.into_iter().flatten() {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        match cel::check(text, value) {
            RuleCheck::Holds | RuleCheck::NotApplicable => {}
            RuleCheck::Fails => {
                let field = rule.get("fieldPath").and_then(Value::as_str).unwrap_or("");
                let message = rule.get("message").and_then(Value::as_str);
                push(
                    out,
                    &format!("{path}{field}"),
                    message.map_or_else(|| format!("fails the rule {text}"), str::to_string),
                );
            }
            RuleCheck::Unknown => tracing::warn!(%path, rule = text, "no Rust check for this rule"),
        }
    }
}

/// `YYYY-MM-DD`, a real calendar date.
fn is_date(text: &str) -> bool {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped && text.parse::<k8s_openapi::jiff::civil::Date>().is_ok()
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn article(expected: &str) -> String {
    match expected {
        "object" => "a map".into(),
        "array" => "a list".into(),
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5,
                         "x-kubernetes-validations": [{"rule": crate::api::rules::dns_label().rule,
                                                        "message": "must be a DNS label"}]},
                "tags": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set",
                         "items": {"type": "string"}},
                "ignore": {"type": "array", "x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["id"],
                           "items": {"type": "object", "properties": {
                               "id": {"type": "string"},
                               "expires": {"type": "string", "format": "date"}}}},
                "severity": {"type": "string", "enum": ["HIGH", "LOW"]},
                "id": {"type": "string", "pattern": "^[0-9]{12}$"},
                "count": {"type": "integer", "minimum": 1},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        })
    }

    fn messages(value: Value) -> Vec<String> {
        validate(&value, &schema(), "spec")
            .iter()
            .map(Violation::to_string)
            .collect()
    }

    #[test]
    fn a_valid_object_has_no_violation() {
        let ok = json!({"name": "quay", "tags": ["a", "b"], "severity": "HIGH",
                        "ignore": [{"id": "CVE-1", "expires": "2027-01-31"}, {"id": "CVE-2"}],
                        "id": "123456789012", "count": 3, "free": {"anything": 1}});
        assert_eq!(messages(ok), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_violation_names_its_field() {
        let cases = [
            (json!({}), "spec.name: required field is missing"),
            (
                json!({"name": "quay", "nmae": 1}),
                "spec.nmae: unknown field \"nmae\"",
            ),
            (
                json!({"name": 7}),
                "spec.name: must be a string, not a number",
            ),
            (
                json!({"name": "toolong"}),
                "spec.name: must be at most 5 characters long, is 7",
            ),
            (json!({"name": "Quay"}), "spec.name: must be a DNS label"),
            (
                json!({"name": "q", "tags": ["a", "a"]}),
                "spec.tags[1]: duplicate value \"a\"",
            ),
            (
                json!({"name": "q", "tags": ["a", "b", "c"]}),
                "spec.tags: must have at most 2 items",
            ),
            (
                json!({"name": "q", "ignore": [{"id": "X"}, {"id": "X"}]}),
                "spec.ignore[1]: duplicate value {\"id\":\"X\"}",
            ),
            (
                json!({"name": "q", "ignore": [{"id": "X", "expires": "2027-02-30"}]}),
                "spec.ignore[0].expires: \"2027-02-30\" must be a date",
            ),
            (
                json!({"name": "q", "severity": "high"}),
                "spec.severity: unsupported value \"high\": supported values: \"HIGH\", \"LOW\"",
            ),
            (
                json!({"name": "q", "id": "12"}),
                "spec.id: \"12\" must match ^[0-9]{12}$",
            ),
            (
                json!({"name": "q", "count": 0}),
                "spec.count: must be at least 1",
            ),
            (
                json!({"name": "q", "count": 1.5}),
                "spec.count: must be an integer, not a number",
            ),
        ];
        for (value, expected) in cases {
            let found = messages(value.clone());
            assert!(
                found.iter().any(|m| m.starts_with(expected)),
                "{value}: {found:?} lacks {expected}"
            );
        }
    }
}
