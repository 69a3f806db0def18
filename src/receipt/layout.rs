//! How a signed receipt is stored so that `cosign verify-attestation` finds
//! it: cosign's attestation layout. Pure: bytes in, bytes out.
//!
//! - The statement is wrapped in a **DSSE envelope** (`payloadType`
//!   `application/vnd.in-toto+json`, the payload in base64, one signature
//!   over the DSSE pre-authentication encoding).
//! - The envelope is a layer of media type `application/vnd.dsse.envelope.v1+json`
//!   in the image manifest tagged `sha256-<hex>.att` next to the image,
//!   annotated as cosign annotates it (`dev.cosignproject.cosign/signature`
//!   empty: the signature is inside the envelope; `predicateType`).
//! - cosign keeps every attestation of an image as one layer of that
//!   manifest, so a receipt is **appended**: the layers already there (for
//!   example the source's attestations copied along) are kept, and the config
//!   blob lists the layers' digests as cosign's does.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::registry::Digest;
use crate::registry::manifest::{MAX_MANIFEST_BYTES, ManifestError};

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The media type of a DSSE envelope layer.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// cosign's signature annotation (empty on an attestation layer).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// cosign's predicate type annotation on an attestation layer.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// The promoter's own annotation: which object generation a receipt is for
/// (`<uid>/<generation>`), so a restarted operator finds its receipt
/// without reading every layer. Only a hint: the receipt is read and its
/// signature checked before it counts.
pub const RECEIPT_ANNOTATION: &str = "imagepromoter.dev/receipt";
/// The media type of the `.att` manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of its config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// DSSE's pre-authentication encoding, what the signature covers (shared
/// with the verification of cosign attestations).
pub(crate) use crate::verify::cosign::pre_authentication_encoding;

/// The DSSE envelope of `payload` with its `signature` (DER, over the PAE).
pub fn envelope(payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": b64.encode(payload),
        "signatures": [{"keyid": "", "sig": b64.encode(signature)}],
    }))
    .expect("JSON serialises")
}

/// The payload and signatures of a DSSE envelope, if it is one.
pub fn open_envelope(bytes: &[u8]) -> Option<(String, Vec<u8>, Vec<Vec<u8>>)> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(value["payload"].as_str()?).ok()?;
    let signatures = value["signatures"]
        .as_array()?
        .iter()
        .filter_map(|s| b64.decode(s["sig"].as_str()?).ok())
        .collect();
    Some((
        value["payloadType"].as_str()?.to_string(),
        payload,
        signatures,
    ))
}

/// The new `.att` manifest and config after appending a receipt layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The manifest to put under the `.att` tag.
    pub manifest: Vec<u8>,
    /// The config blob it names (to upload first).
    pub config: Vec<u8>,
    /// The receipt layer's digest (the envelope blob).
    pub receipt: Digest,
}

/// A receipt layer (`envelope` with `annotations`) appended to `existing`
/// (the `.att` manifest the target holds now, if any); every layer there
/// is kept.
pub fn append(
    existing: Option<&[u8]>,
    envelope: &[u8],
    predicate_type: &str,
    receipt_hint: &str,
) -> Result<Appended, ManifestError> {
    let mut layers: Vec<Value> = match existing {
        None => Vec::new(),
        Some(bytes) => {
            let manifest: Value =
                serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
                    media_type: OCI_MANIFEST.into(),
                    message: format!("the target's .att manifest: {e}"),
                })?;
            manifest["layers"]
                .as_array()
                .cloned()
                .ok_or_else(|| ManifestError::Malformed {
                    media_type: OCI_MANIFEST.into(),
                    message: "the target's .att manifest has no layers list".into(),
                })?
        }
    };
    let receipt = Digest::sha256_of(envelope);
    let annotations: BTreeMap<&str, &str> = [
        (SIGNATURE_ANNOTATION, ""),
        (PREDICATE_TYPE_ANNOTATION, predicate_type),
        (RECEIPT_ANNOTATION, receipt_hint),
    ]
    .into();
    layers.push(json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "size": envelope.len(),
        "digest": receipt.to_string(),
        "annotations": annotations,
    }));
    let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("JSON serialises");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "size": config.len(),
            "digest": Digest::sha256_of(&config).to_string(),
        },
        "layers": layers,
    }))
    .expect("JSON serialises");
    if manifest.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(manifest.len()));
    }
    Ok(Appended {
        manifest,
        config,
        receipt,
    })
}

/// The digests of the layers of an `.att` manifest annotated as receipts of
/// `hint` (`<uid>/<generation>`), and their sizes.
pub fn receipt_layers(manifest: &[u8], hint: &str) -> Vec<(String, u64)> {
    let Ok(value) = serde_json::from_slice::<Value>(manifest) else {
        return Vec::new();
    };
    value["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter(|l| {
                    l["mediaType"] == DSSE_MEDIA_TYPE
                        && l["annotations"][RECEIPT_ANNOTATION] == hint
                })
                .filter_map(|l| Some((l["digest"].as_str()?.to_string(), l["size"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_opens_to_what_was_sealed() {
        let bytes = envelope(b"{\"a\":1}", b"sig");
        let (kind, payload, signatures) = open_envelope(&bytes).unwrap();
        assert_eq!(kind, IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(payload, b"{\"a\":1}");
        assert_eq!(signatures, vec![b"sig".to_vec()]);
        assert_eq!(open_envelope(b"{}"), None);
    }

    #[test]
    fn a_receipt_is_appended_and_the_layers_there_are_kept() {
        let first = append(None, b"envelope-1", "https://slsa.dev/provenance/v1", "u/1").unwrap();
        let first_manifest: Value = serde_json::from_slice(&first.manifest).unwrap();
        assert_eq!(first_manifest["layers"].as_array().unwrap().len(), 1);
        let second = append(
            Some(&first.manifest),
            b"envelope-2",
            "https://slsa.dev/verification_summary/v1",
            "u/2",
        )
        .unwrap();
        let manifest: Value = serde_json::from_slice(&second.manifest).unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0], first_manifest["layers"][0], "kept as it was");
        assert_eq!(layers[1]["mediaType"], DSSE_MEDIA_TYPE);
        assert_eq!(layers[1]["digest"], second.receipt.to_string());
        assert_eq!(layers[1]["size"], 10);
        assert_eq!(layers[1]["annotations"][SIGNATURE_ANNOTATION], "");
        assert_eq!(
            layers[1]["annotations"][PREDICATE_TYPE_ANNOTATION],
            "https://slsa.dev/verification_summary/v1"
        );
        let config: Value = serde_json::from_slice(&second.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(
            manifest["config"]["digest"],
            Digest::sha256_of(&second.config).to_string()
        );
        assert_eq!(
            receipt_layers(&second.manifest, "u/2"),
            vec![(second.receipt.to_string(), 10)]
        );
        assert!(receipt_layers(&second.manifest, "u/3").is_empty());
        assert!(receipt_layers(b"not json", "u/2").is_empty());
    }

    #[test]
    fn a_target_manifest_that_is_not_a_manifest_is_refused() {
        for bad in [&b"{"[..], b"{\"schemaVersion\":2}"] {
            assert!(append(Some(bad), b"e", "t", "h").is_err());
        }
    }
}
