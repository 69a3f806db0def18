//! A cosign signature tag (`sha256-<hex>.sig`) that already exists at a target
//! with signatures the source lacks, for example one added by a release
//! process after an earlier promotion: copying the source's manifest over it
//! would delete them. The tag is pointed instead at the source's manifest
//! with the target's extra signature layers appended. Pure: bytes in, bytes out.
//!
//! A signature is a whole layer descriptor. Signatures of one image by
//! different keys often share the payload blob (same digest) and differ only
//! in their `dev.cosignproject.cosign/signature` annotation, so layers are
//! compared as whole descriptors, never by digest alone. The config blob is the
//! source's; verifiers read the layers only.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde_json::Value;

use crate::registry::manifest::{MAX_MANIFEST_BYTES, ManifestError};

/// What the target's tag should point at.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureTag {
    /// The source's manifest holds every signature the target has.
    Source,
    /// The source's signatures followed by those only the target has.
    Merged(Bytes),
}

/// Decides the target's signature tag from the source's manifest and the one
/// the target holds now.
pub fn merge(source: &[u8], target: &[u8]) -> Result<SignatureTag, ManifestError> {
    let mut merged = parse(source, "the source's")?;
    let existing = parse(target, "the target's")?;
    let mut seen: HashSet<String> = layers(&merged).iter().map(identity).collect();
    let extra: Vec<Value> = layers(&existing)
        .iter()
        .filter(|layer| seen.insert(identity(layer)))
        .cloned()
        .collect();
    if extra.is_empty() {
        return Ok(SignatureTag::Source);
    }
    merged["layers"]
        .as_array_mut()
        .expect("checked by parse")
        .extend(extra);
    let bytes = serde_json::to_vec(&merged).expect("a JSON value serialises");
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(bytes.len()));
    }
    Ok(SignatureTag::Merged(Bytes::from(bytes)))
}

/// What makes a layer one signature: its blob, media type and annotations
/// (the signature itself, certificates, bundles), whatever the key order.
fn identity(layer: &Value) -> String {
    let annotations: BTreeMap<&str, String> = layer["annotations"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect())
        .unwrap_or_default();
    format!("{}|{}|{annotations:?}", layer["digest"], layer["mediaType"])
}

fn layers(manifest: &Value) -> &[Value] {
    manifest["layers"].as_array().map_or(&[], Vec::as_slice)
}

/// An image manifest whose layers are descriptors with a digest.
fn parse(bytes: &[u8], whose: &str) -> Result<Value, ManifestError> {
    let malformed = |message: String| ManifestError::Malformed {
        media_type: "a cosign signature manifest".into(),
        message: format!("{whose} signature tag: {message}"),
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let Some(layers) = value.get("layers").and_then(Value::as_array) else {
        return Err(malformed(
            "no layers: not an image manifest, so it holds no cosign signatures".into(),
        ));
    };
    if layers
        .iter()
        .any(|layer| layer.get("digest").and_then(Value::as_str).is_none())
    {
        return Err(malformed("a layer without a digest".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signature(digest: &str, signature: &str) -> Value {
        json!({
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": 255,
            "digest": digest,
            "annotations": {"dev.cosignproject.cosign/signature": signature},
        })
    }

    fn manifest(layers: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": "sha256:c"},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn a_target_with_nothing_of_its_own_takes_the_source() {
        let a = signature("sha256:p", "A");
        let b = signature("sha256:p", "B");
        let source = manifest(&[a.clone(), b.clone()]);
        assert_eq!(
            merge(&source, &manifest(std::slice::from_ref(&a))).unwrap(),
            SignatureTag::Source
        );
        assert_eq!(
            merge(&source, &manifest(&[b, a])).unwrap(),
            SignatureTag::Source
        );
    }

    #[test]
    fn signatures_only_the_target_has_are_kept_after_the_sources() {
        let a = signature("sha256:p", "A");
        // Same payload blob, another key: a different signature.
        let b = signature("sha256:p", "B");
        let c = signature("sha256:q", "C");
        let merged = match merge(
            &manifest(std::slice::from_ref(&a)),
            &manifest(&[b.clone(), a.clone(), c.clone(), b.clone()]),
        )
        .unwrap()
        {
            SignatureTag::Merged(bytes) => bytes,
            SignatureTag::Source => panic!("B and C would be lost"),
        };
        let value: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(value["layers"], json!([a, b, c]));
        assert_eq!(value["config"]["digest"], "sha256:c", "the source's config");
    }

    #[test]
    fn what_is_not_a_signature_manifest_is_refused_with_whose_it_is() {
        let source = manifest(&[signature("sha256:p", "A")]);
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let error = merge(&source, index).unwrap_err().to_string();
        assert!(
            error.contains("the target's signature tag: no layers"),
            "{error}"
        );
        let error = merge(b"not json", &source).unwrap_err().to_string();
        assert!(error.contains("the source's signature tag"), "{error}");
        let no_digest = manifest(&[json!({"mediaType": "x", "size": 1})]);
        assert!(merge(&source, &no_digest).is_err());
    }

    #[test]
    fn a_merge_larger_than_a_manifest_may_be_is_refused() {
        // Each side fits under the limit; together they do not.
        let side = |key: &str| -> Vec<u8> {
            let layers: Vec<Value> = (0..15_000)
                .map(|i| signature("sha256:p", &format!("{key}{i:0>40}")))
                .collect();
            manifest(&layers)
        };
        let (source, target) = (side("S"), side("T"));
        assert!(source.len() < MAX_MANIFEST_BYTES && target.len() < MAX_MANIFEST_BYTES);
        let error = merge(&source, &target).unwrap_err();
        assert!(matches!(error, ManifestError::TooLarge(_)), "{error}");
    }
}
