//! Reading an ImagePromotion (or a RegistryMirror, for `mirror`) as
//! `kubectl apply -f` would: exactly one YAML document of the kind, checked against the CRD's schema and
//! CEL rules ([`crate::api::validation`]) before it is typed.
//!
//! What the apiserver would refuse is refused here with the same field paths
//! and messages. `status` in the file is ignored, as the apiserver ignores it
//! when an object is created; explicit nulls count as absent, as they do
//! there.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::validation::{Violation, validate};
use crate::api::{GROUP, ImagePromotion, VERSION};

/// Why the file is not a usable ImagePromotion.
#[derive(Debug)]
pub enum InputError {
    /// The file could not be read.
    Read {
        /// Where from.
        origin: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not YAML, or holds other than one object.
    Document {
        /// Where from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The object breaks the schema or its rules.
    Invalid {
        /// Where from.
        origin: String,
        /// The kind read.
        kind: &'static str,
        /// `metadata.name`, when there is one.
        name: String,
        /// Every violation found.
        violations: Vec<Violation>,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { origin, source } => write!(f, "reading {origin}: {source}"),
            Self::Document { origin, message } => write!(f, "{origin}: {message}"),
            Self::Invalid {
                origin,
                kind,
                name,
                violations,
            } => {
                write!(
                    f,
                    "{origin}: {kind} {name:?} is invalid (the apiserver would refuse it too):"
                )?;
                for violation in violations {
                    write!(f, "\n  {violation}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InputError {}

/// Reads the ImagePromotion in `path` (`-`: standard input).
pub fn read(path: &Path) -> Result<ImagePromotion, InputError> {
    read_as(path, "ImagePromotion")
}

/// Parses and validates one ImagePromotion from YAML `text` read from `origin`.
pub fn parse(text: &str, origin: &str) -> Result<ImagePromotion, InputError> {
    parse_as(text, origin, "ImagePromotion")
}

/// Reads one object of `kind` in `path` (`-`: standard input).
pub fn read_as<K: DeserializeOwned>(path: &Path, kind: &'static str) -> Result<K, InputError> {
    let origin = path.display().to_string();
    let text = if origin == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    let text = text.map_err(|source| InputError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse_as(&text, &origin, kind)
}

/// Parses and validates one object of `kind` from YAML `text` read from `origin`.
pub fn parse_as<K: DeserializeOwned>(
    text: &str,
    origin: &str,
    kind: &'static str,
) -> Result<K, InputError> {
    let document = |message: String| InputError::Document {
        origin: origin.to_string(),
        message,
    };
    let mut documents = Vec::new();
    for document_yaml in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document_yaml)
            .map_err(|e| document(format!("not valid YAML: {e}")))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    let mut object = match documents.len() {
        1 => documents.remove(0),
        0 => {
            return Err(document(format!("holds no object; expected one {kind}")));
        }
        n => {
            return Err(document(format!(
                "holds {n} objects; one run takes exactly one {kind}"
            )));
        }
    };
    strip_nulls(&mut object);
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let invalid = |violations| InputError::Invalid {
        origin: origin.to_string(),
        kind,
        name: name.clone(),
        violations,
    };
    let violations = check(&object, kind);
    if !violations.is_empty() {
        return Err(invalid(violations));
    }
    serde_json::from_value(object).map_err(|e| {
        invalid(vec![Violation {
            path: "(object)".into(),
            message: e.to_string(),
        }])
    })
}

/// Violations of the object's envelope and of its spec.
fn check(object: &Value, kind: &str) -> Vec<Violation> {
    let violation = |path: &str, message: String| Violation {
        path: path.into(),
        message,
    };
    let Some(map) = object.as_object() else {
        return vec![violation("(object)", "must be a map".into())];
    };
    let api_version = format!("{GROUP}/{VERSION}");
    let mut out = Vec::new();
    if map.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str()) {
        out.push(violation(
            "apiVersion",
            format!("must be {api_version}, the version this command reads"),
        ));
    }
    if map.get("kind").and_then(Value::as_str) != Some(kind) {
        out.push(violation(
            "kind",
            format!("must be {kind} (this command reads no other kind)"),
        ));
    }
    let name = object.pointer("/metadata/name").and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        out.push(violation(
            "metadata.name",
            "required field is missing".into(),
        ));
    }
    for key in map.keys() {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
            out.push(violation(
                key,
                format!("unknown field {key:?} (known fields: apiVersion, kind, metadata, spec)"),
            ));
        }
    }
    match map.get("spec") {
        Some(spec) => out.extend(validate(spec, &spec_schema(kind), "spec")),
        None => out.push(violation("spec", "required field is missing".into())),
    }
    out
}

/// The OpenAPI schema of `spec`, from the generated CRD.
fn spec_schema(kind: &str) -> Value {
    let crd = crate::api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .expect("the kind's CRD is generated");
    let schema = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == VERSION)
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema for its version");
    let schema = serde_json::to_value(schema).expect("a schema serializes");
    schema["properties"]["spec"].clone()
}

/// Removes every null map entry, as the apiserver drops explicit nulls.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata:
  name: app-1.0.0
  generation: 3
spec:
  source:
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app:1.0.0
    digest: null
  targets:
    - name: quay
      repository: quay.io/acme/app
status:
  sourceDigest: whatever
"#;

    fn refusal(yaml: &str) -> String {
        parse(yaml, "promotion.yaml").unwrap_err().to_string()
    }

    #[test]
    fn the_examples_and_a_minimal_object_are_accepted() {
        let promotion = parse(VALID, "promotion.yaml").unwrap();
        assert_eq!(promotion.metadata.name.as_deref(), Some("app-1.0.0"));
        assert_eq!(promotion.metadata.generation, Some(3));
        assert_eq!(promotion.status, None, "status in the file is ignored");
        assert_eq!(promotion.spec.source.digest, None);
        for example in ["imagepromotion-gold.yaml", "imagepromotion-by-digest.yaml"] {
            let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn what_the_apiserver_refuses_is_refused_with_its_message() {
        let cases = [
            (
                VALID.replace("name: quay", "name: Quay"),
                "spec.targets[0].name: must be a DNS label",
            ),
            (
                VALID.replace("name: quay\n", "name: quay\n      tagz: [a]\n"),
                "spec.targets[0].tagz: unknown field \"tagz\"",
            ),
            (
                VALID.replace("quay.io/acme/app", "quay.io/acme/app:1"),
                "spec.targets[0].repository: must be a repository with its registry host",
            ),
            (
                VALID.replace(
                    "quay.io/acme/app",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app",
                ),
                "spec.targets: a target repository must differ from the source repository",
            ),
            (
                VALID.replace("name: quay\n", "name: quay\n      floatingTags: [latest]\n"),
                "spec.targets[0].floatingTags: every floating tag must also be listed in tags",
            ),
            (
                VALID.replace("name: quay\n", "name: quay\n      createRepository: {}\n"),
                "spec.targets[0].createRepository: createRepository works only for ECR Public",
            ),
            (
                VALID.replace("app:1.0.0", "app"),
                "spec.source.image: must be a full image reference",
            ),
            (
                VALID.replace("  targets:", "  verify: {encryption: kms}\n  targets:"),
                "spec.verify.encryption: unsupported value \"kms\"",
            ),
            (
                VALID.replace("kind: ImagePromotion", "kind: RegistryMirror"),
                "kind: must be ImagePromotion",
            ),
            (
                VALID.replace("  name: app-1.0.0\n", ""),
                "metadata.name: required field is missing",
            ),
            (format!("{VALID}---\n{VALID}"), "holds 2 objects"),
            ("spec: [".to_string(), "not valid YAML"),
            (String::new(), "holds no object"),
        ];
        for (yaml, expected) in cases {
            let message = refusal(&yaml);
            assert!(
                message.contains(expected),
                "expected {expected:?} in:\n{message}"
            );
        }
    }

    #[test]
    fn every_violation_is_listed() {
        let yaml = VALID
            .replace("name: quay", "name: Quay")
            .replace("quay.io/acme/app", "quay.io/acme/App");
        let message = refusal(&yaml);
        assert!(
            message.contains("ImagePromotion \"app-1.0.0\" is invalid")
                && message.contains("spec.targets[0].name")
                && message.contains("spec.targets[0].repository"),
            "{message}"
        );
    }
}
