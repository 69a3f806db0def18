//! The CEL rules of the ImagePromotion schema, checked in Rust.
//!
//! On `kubectl apply` the apiserver runs the `x-kubernetes-validations` rules
//! of the CRD. `promote` reads the same YAML without an apiserver, so it runs
//! the same rules here: each rule of the generated CRD maps, by its exact
//! text, to a Rust predicate, and the message shown is the rule's own, so the
//! command and the apiserver refuse an object with the same words.
//!
//! Tests keep the two in step: one fails when the CRD gains a rule or a
//! `pattern` this table lacks, another checks every grammar predicate against
//! the regular expression of [`crate::api::rules`] it stands for.

use kube::core::Rule;
use serde_json::Value;

use crate::api::rules as api;
use crate::registry::reference::is_valid_tag;

/// The keyless issuer rule, written inline in `crate::api::verify`.
const HTTPS_URL_RULE: &str = "self.startsWith('https://') && isURL(self)";
/// The registry id pattern of `credentials.ecr.registryId`.
const ACCOUNT_ID_PATTERN: &str = "^[0-9]{12}$";

/// What one rule says about a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleCheck {
    /// The value satisfies the rule.
    Holds,
    /// The value breaks the rule.
    Fails,
    /// A transition rule (`oldSelf`): it applies to updates, never to a new object.
    NotApplicable,
    /// This table has no predicate for the rule.
    Unknown,
}

impl From<bool> for RuleCheck {
    fn from(holds: bool) -> Self {
        if holds { Self::Holds } else { Self::Fails }
    }
}

type Predicate = fn(&Value) -> bool;

/// Every rule with a fixed text, with its predicate.
fn rules() -> Vec<(Rule, Predicate)> {
    fn rule(rule: Rule, predicate: Predicate) -> (Rule, Predicate) {
        (rule, predicate)
    }
    vec![
        rule(api::image_reference(), |v| string(v, is_image)),
        rule(api::repository_reference(), |v| string(v, is_repository)),
        rule(api::digest(), |v| string(v, is_digest)),
        rule(api::tags(), |v| each_string(v, is_valid_tag)),
        rule(api::dns_label(), |v| string(v, is_dns_label)),
        rule(api::platforms(), |v| each_string(v, is_platform)),
        rule(
            api::unique_target_repositories(),
            unique_target_repositories,
        ),
        rule(api::promotion_target_is_not_source(), target_is_not_source),
        rule(
            api::mirror_target_is_not_source(),
            mirror_target_is_not_source,
        ),
        rule(
            api::untagged_source_needs_target_tags(),
            untagged_source_needs_target_tags,
        ),
        rule(api::source_digest_agrees(), source_digest_agrees),
        rule(api::floating_tags_are_tags(), floating_tags_are_tags),
        rule(
            api::create_repository_needs_ecr_public(),
            create_repository_needs_ecr_public,
        ),
        rule(Rule::new(HTTPS_URL_RULE), |v| string(v, is_https_url)),
        rule(api::mirror_interval(), |v| string(v, is_mirror_interval)),
        rule(api::compliance_interval(), |v| {
            string(v, is_compliance_interval)
        }),
        rule(api::tier(), |v| string(v, is_label_value)),
        rule(api::non_empty_patterns(), |v| {
            each_string(v, |p| !p.is_empty())
        }),
    ]
}

/// Checks `value` against the CEL `rule` of its schema node.
pub fn check(rule: &str, value: &Value) -> RuleCheck {
    if rule.contains("oldSelf") {
        return RuleCheck::NotApplicable;
    }
    if let Some(fields) = exactly_one_of_fields(rule) {
        let set = fields.iter().filter(|f| has(value, f)).count();
        return (set == 1).into();
    }
    match rules().into_iter().find(|(known, _)| known.rule == rule) {
        Some((_, predicate)) => predicate(value).into(),
        None => RuleCheck::Unknown,
    }
}

/// Checks a string against an OpenAPI `pattern`; `None` for a pattern this table lacks.
pub fn check_pattern(pattern: &str, text: &str) -> Option<bool> {
    (pattern == ACCOUNT_ID_PATTERN).then(|| text.len() == 12 && all_digits(text))
}

/// The fields of an [`api::exactly_one_of`] rule: `(has(self.a) ? 1 : 0) + … == 1`.
fn exactly_one_of_fields(rule: &str) -> Option<Vec<&str>> {
    let terms = rule.strip_suffix(" == 1")?;
    terms
        .split(" + ")
        .map(|term| {
            term.strip_prefix("(has(self.")?
                .strip_suffix(") ? 1 : 0)")
                .filter(|field| field.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
        .collect()
}

fn is_mirror_interval(text: &str) -> bool {
    crate::api::duration::parse_duration(text).is_ok_and(|d| d.as_secs() >= 60)
}

fn is_compliance_interval(text: &str) -> bool {
    crate::api::duration::parse_duration(text).is_ok_and(|d| d.as_secs() >= 1)
}

fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// CEL `has(self.field)`: present (the reader drops explicit nulls beforehand).
fn has(value: &Value, field: &str) -> bool {
    value.get(field).is_some_and(|v| !v.is_null())
}

/// A string satisfies `predicate`; any other type is the schema's to refuse.
fn string(value: &Value, predicate: fn(&str) -> bool) -> bool {
    value.as_str().is_none_or(predicate)
}

/// Every string of a list satisfies `predicate`.
fn each_string(value: &Value, predicate: fn(&str) -> bool) -> bool {
    value
        .as_array()
        .is_none_or(|items| items.iter().all(|item| string(item, predicate)))
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn targets(spec: &Value) -> &[Value] {
    spec.get("targets")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn source_image(spec: &Value) -> &str {
    spec.get("source").map_or("", |s| field(s, "image"))
}

fn unique_target_repositories(spec: &Value) -> bool {
    let repositories: Vec<&str> = targets(spec)
        .iter()
        .map(|t| field(t, "repository"))
        .collect();
    repositories
        .iter()
        .all(|r| repositories.iter().filter(|other| *other == r).count() == 1)
}

fn target_is_not_source(spec: &Value) -> bool {
    let image = source_image(spec);
    targets(spec).iter().all(|t| {
        let repository = field(t, "repository");
        !image.starts_with(&format!("{repository}:"))
            && !image.starts_with(&format!("{repository}@"))
    })
}

fn mirror_target_is_not_source(spec: &Value) -> bool {
    let source = spec.get("source").map_or("", |s| field(s, "repository"));
    targets(spec)
        .iter()
        .all(|t| field(t, "repository") != source)
}

fn untagged_source_needs_target_tags(spec: &Value) -> bool {
    has_tag(source_image(spec)) || targets(spec).iter().all(|t| has(t, "tags"))
}

fn source_digest_agrees(source: &Value) -> bool {
    let image = field(source, "image");
    !has(source, "digest")
        || !image.contains('@')
        || image.ends_with(&format!("@{}", field(source, "digest")))
}

fn floating_tags_are_tags(target: &Value) -> bool {
    if !has(target, "floatingTags") {
        return true;
    }
    let tags = strings(target.get("tags"));
    has(target, "tags")
        && strings(target.get("floatingTags"))
            .iter()
            .all(|f| tags.contains(f))
}

fn create_repository_needs_ecr_public(target: &Value) -> bool {
    if !has(target, "createRepository") {
        return true;
    }
    match target.get("credentials").filter(|c| !c.is_null()) {
        Some(credentials) => has(credentials, "ecrPublic"),
        None => field(target, "repository").starts_with("public.ecr.aws/"),
    }
}

fn is_https_url(text: &str) -> bool {
    text.starts_with("https://") && reqwest::Url::parse(text).is_ok()
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
fn is_domain_component(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// A registry host: dotted name with optional port, `name:port`, or `localhost`.
pub(crate) fn is_registry_host(text: &str) -> bool {
    if text == "localhost" {
        return true;
    }
    match text.split_once(':') {
        Some((name, port)) => {
            (1..=5).contains(&port.len())
                && all_digits(port)
                && name.split('.').all(is_domain_component)
        }
        None => text.contains('.') && text.split('.').all(is_domain_component),
    }
}

/// `[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if lower_alnum(*first) && lower_alnum(*last) => {}
        _ => return false,
    }
    text.split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
        })
}

fn is_path(text: &str) -> bool {
    text.split('/').all(is_path_component)
}

/// A repository with its registry host and no tag or digest.
pub(crate) fn is_repository(text: &str) -> bool {
    text.split_once('/')
        .is_some_and(|(host, path)| is_registry_host(host) && is_path(path))
}

/// A repository with `:tag`, `@digest` or both.
pub(crate) fn is_image(text: &str) -> bool {
    let Some((host, rest)) = text.split_once('/') else {
        return false;
    };
    let (named, digest) = match rest.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (rest, None),
    };
    let (path, tag) = match named.split_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (named, None),
    };
    is_registry_host(host)
        && is_path(path)
        && tag.is_none_or(is_valid_tag)
        && digest.is_none_or(is_digest)
        && (tag.is_some() || digest.is_some())
}

/// `sha256:` and 64 lowercase hex digits, or `sha512:` and 128.
pub(crate) fn is_digest(text: &str) -> bool {
    let lower_hex = |hex: &str, len: usize| {
        hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match text.split_once(':') {
        Some(("sha256", hex)) => lower_hex(hex, 64),
        Some(("sha512", hex)) => lower_hex(hex, 128),
        _ => false,
    }
}

/// Whether the last path component of a reference carries a `:tag`.
pub(crate) fn has_tag(text: &str) -> bool {
    let named = text.split_once('@').map_or(text, |(named, _)| named);
    named.rsplit_once('/').is_some_and(|(_, last)| {
        last.split_once(':')
            .is_some_and(|(name, tag)| !name.is_empty() && !tag.is_empty() && !tag.contains(':'))
    })
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
pub(crate) fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            lower_alnum(*first)
                && lower_alnum(*last)
                && bytes.iter().all(|b| lower_alnum(*b) || *b == b'-')
        }
        _ => false,
    }
}

/// `os/arch` or `os/arch/variant`.
pub(crate) fn is_platform(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    let word = |part: &str, underscore: bool| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| lower_alnum(b) || (underscore && b == b'_'))
    };
    match parts.as_slice() {
        [os, arch] => word(os, false) && word(arch, true),
        [os, arch, variant] => word(os, false) && word(arch, true) && word(variant, false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! The predicates against the regular expressions the apiserver runs
    //! (RE2 and the `regex` crate agree on this subset), on hand-picked
    //! strings and on many generated ones.

    use super::*;
    use crate::api::rules::{
        DIGEST_PATTERN, DNS_LABEL_PATTERN, HAS_TAG_PATTERN, IMAGE_PATTERN, PLATFORM_PATTERN,
        REPOSITORY_PATTERN, TAG_PATTERN,
    };
    use regex::Regex;
    use serde_json::json;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    type Grammar = fn(&str) -> bool;

    fn predicates() -> [(&'static str, Grammar); 8] {
        [
            (IMAGE_PATTERN, is_image),
            (REPOSITORY_PATTERN, is_repository),
            (DIGEST_PATTERN, is_digest),
            (TAG_PATTERN, is_valid_tag),
            (HAS_TAG_PATTERN, has_tag),
            (DNS_LABEL_PATTERN, is_dns_label),
            (PLATFORM_PATTERN, is_platform),
            (ACCOUNT_ID_PATTERN, |s| {
                check_pattern(ACCOUNT_ID_PATTERN, s).unwrap()
            }),
        ]
    }

    fn generated(count: usize) -> Vec<String> {
        let sha = format!("sha256:{SHA}");
        let sha512 = format!("sha512:{SHA}{SHA}");
        let tokens = [
            "a",
            "z9",
            "0",
            ".",
            "-",
            "--",
            "_",
            "__",
            ":",
            "/",
            "@",
            "A",
            "localhost",
            sha.as_str(),
            sha512.as_str(),
            "sha256:",
            "5000",
            "123456",
            "x.io",
            "Ab",
            "v1.0",
            "linux",
            "amd64",
            "123456789012",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        (0..count)
            .map(|_| {
                (0..rng.usize(1..9))
                    .map(|_| tokens[rng.usize(..tokens.len())])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn predicates_agree_with_the_apiserver_patterns() {
        let by_digest = format!("quay.io/acme/app@sha256:{SHA}");
        let both = format!("127.0.0.1:5000/app:1@sha256:{SHA}");
        let mut corpus: Vec<String> = [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2.3",
            "127.0.0.1:5000/app:latest",
            "localhost/app:1",
            "localhost:5000/a/b",
            "registry:5000/app",
            "quay.io/acme/my_app__x-y.z",
            "quay.io/Acme/app:1",
            "acme/app:1.0",
            "quay.io/acme/app:",
            "quay.io/acme/app:-bad",
            "quay.io/acme//app",
            "quay.io/acme/app/",
            "-quay.io/acme/app",
            "quay.io/acme/app:1.0@",
            "quay.io:123456/app",
            "linux/arm64/v8",
            "linux/arm_64",
            "ecr-public",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        corpus.extend([by_digest, both, format!("sha256:{SHA}"), "a".repeat(129)]);
        corpus.extend(generated(40_000));
        for (pattern, predicate) in predicates() {
            let re = Regex::new(pattern).unwrap();
            let mut accepted = 0;
            for text in &corpus {
                assert_eq!(predicate(text), re.is_match(text), "{pattern} on {text:?}");
                accepted += usize::from(re.is_match(text));
            }
            assert!(accepted > 0, "{pattern} accepted nothing: a weak corpus");
        }
    }

    /// Every rule and pattern of both CRDs has a predicate here.
    #[test]
    fn every_rule_of_the_crd_is_known() {
        fn walk(node: &Value, rules: &mut Vec<String>, patterns: &mut Vec<String>) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::Array(list)) = map.get("x-kubernetes-validations") {
                        rules.extend(list.iter().map(|r| r["rule"].as_str().unwrap().to_string()));
                    }
                    if let Some(Value::String(pattern)) = map.get("pattern") {
                        patterns.push(pattern.clone());
                    }
                    map.values().for_each(|v| walk(v, rules, patterns));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, rules, patterns)),
                _ => {}
            }
        }
        let (mut rules, mut patterns) = (Vec::new(), Vec::new());
        for crd in crate::api::crds() {
            let crd = serde_json::to_value(&crd).unwrap();
            walk(
                &crd["spec"]["versions"][0]["schema"],
                &mut rules,
                &mut patterns,
            );
        }
        assert!(rules.len() > 10, "{rules:?}");
        for rule in rules {
            assert_ne!(
                check(&rule, &json!({})),
                RuleCheck::Unknown,
                "add a Rust predicate for the CEL rule {rule}"
            );
        }
        for pattern in patterns {
            assert!(
                check_pattern(&pattern, "").is_some(),
                "add a Rust predicate for the pattern {pattern}"
            );
        }
    }

    #[test]
    fn cross_field_rules() {
        let source = |image: &str| json!({"image": image});
        let spec =
            |image: &str, targets: Value| json!({"source": source(image), "targets": targets});
        let digest = format!("sha256:{SHA}");
        let cases: Vec<(Rule, Value, bool)> = vec![
            (
                api::unique_target_repositories(),
                spec(
                    "q.io/a:1",
                    json!([{"repository": "r.io/x"}, {"repository": "r.io/y"}]),
                ),
                true,
            ),
            (
                api::unique_target_repositories(),
                spec(
                    "q.io/a:1",
                    json!([{"repository": "r.io/x"}, {"repository": "r.io/x"}]),
                ),
                false,
            ),
            (
                api::promotion_target_is_not_source(),
                spec("q.io/a:1", json!([{"repository": "q.io/a"}])),
                false,
            ),
            (
                api::promotion_target_is_not_source(),
                spec("q.io/ab:1", json!([{"repository": "q.io/a"}])),
                true,
            ),
            (
                api::mirror_target_is_not_source(),
                json!({"source": {"repository": "q.io/a"}, "targets": [{"repository": "r.io/a"}, {"repository": "q.io/a"}]}),
                false,
            ),
            (
                api::mirror_target_is_not_source(),
                json!({"source": {"repository": "q.io/a"}, "targets": [{"repository": "q.io/ab"}]}),
                true,
            ),
            (api::mirror_interval(), json!("1h30m"), true),
            (api::mirror_interval(), json!("1.5m"), true),
            (api::mirror_interval(), json!("59s"), false),
            (api::compliance_interval(), json!("1s"), true),
            (api::compliance_interval(), json!("6h"), true),
            (api::compliance_interval(), json!("999ms"), false),
            (api::compliance_interval(), json!("1d"), false),
            (api::mirror_interval(), json!("10"), false),
            (api::mirror_interval(), json!("5ms"), false),
            (api::tier(), json!("Gold"), true),
            (api::tier(), json!("-Gold"), false),
            (api::non_empty_patterns(), json!(["^a$", ""]), false),
            (
                api::untagged_source_needs_target_tags(),
                spec(
                    &format!("q.io/a@{digest}"),
                    json!([{"repository": "r.io/x"}]),
                ),
                false,
            ),
            (
                api::untagged_source_needs_target_tags(),
                spec(&format!("q.io/a@{digest}"), json!([{"tags": ["1"]}])),
                true,
            ),
            (
                api::source_digest_agrees(),
                json!({"image": format!("q.io/a@{digest}"), "digest": "sha256:00"}),
                false,
            ),
            (
                api::source_digest_agrees(),
                json!({"image": "q.io/a:1", "digest": digest}),
                true,
            ),
            (
                api::floating_tags_are_tags(),
                json!({"tags": ["1", "latest"], "floatingTags": ["latest"]}),
                true,
            ),
            (
                api::floating_tags_are_tags(),
                json!({"floatingTags": ["latest"]}),
                false,
            ),
            (
                api::create_repository_needs_ecr_public(),
                json!({"repository": "quay.io/a/b", "createRepository": {}}),
                false,
            ),
            (
                api::create_repository_needs_ecr_public(),
                json!({"repository": "public.ecr.aws/a/b", "createRepository": {}}),
                true,
            ),
            (
                api::create_repository_needs_ecr_public(),
                json!({"repository": "127.0.0.1:5000/a/b", "createRepository": {},
                       "credentials": {"ecrPublic": {}}}),
                true,
            ),
            (
                api::exactly_one_of(&["ecr", "ecrPublic", "secretRef"]),
                json!({"ecr": {}, "secretRef": {"name": "x"}}),
                false,
            ),
            (
                api::exactly_one_of(&["publicKey", "keyless"]),
                json!({"keyless": {}}),
                true,
            ),
            (
                Rule::new(HTTPS_URL_RULE),
                json!("http://issuer.example"),
                false,
            ),
            (
                Rule::new(HTTPS_URL_RULE),
                json!("https://token.actions.githubusercontent.com"),
                true,
            ),
        ];
        for (rule, value, holds) in cases {
            assert_eq!(
                check(&rule.rule, &value),
                holds.into(),
                "{} on {value}",
                rule.rule
            );
        }
        assert_eq!(
            check("self == oldSelf", &json!({})),
            RuleCheck::NotApplicable
        );
        assert_eq!(check("size(self) > 3", &json!("x")), RuleCheck::Unknown);
    }
}
