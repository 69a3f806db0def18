//! Where cosign keeps signatures in a registry, and how to read what is there.
//!
//! Two layouts exist, and both are read:
//!
//! - **Signature tag** (every cosign version): an image manifest tagged
//!   `sha256-<hex>.sig` next to the image, one layer per signature, each a
//!   simple-signing payload whose signature is the layer annotation
//!   `dev.cosignproject.cosign/signature`.
//! - **OCI 1.1 referrers** (newer cosign): manifests whose `subject` is the
//!   image, listed by the registry's referrers API or, where the registry has
//!   none, by the fallback index tagged `sha256-<hex>`. cosign writes either
//!   the same simple-signing layers (`artifactType`
//!   `application/vnd.dev.cosign.artifact.sig.v1+json`,
//!   `--registry-referrers-mode=oci-1-1`) or a Sigstore bundle
//!   (`application/vnd.dev.sigstore.bundle.v0.3+json`, `--new-bundle-format`,
//!   cosign v3's default).
//!
//! The functions here parse manifests handed to them; fetching is
//! `fetch`'s job.

use std::fmt;

use serde::Deserialize;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding a keyless signature's PEM certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the PEM intermediates of a keyless signature's certificate.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation holding a keyless signature's Rekor entry and signed entry timestamp.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Artifact type of cosign's OCI 1.1 signature manifests.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Media type prefix of Sigstore bundles (`…bundle.v0.3+json`, `…bundle+json;version=0.3`).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The empty config's media type, which some fallback indexes report as artifact type.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Where a signature manifest was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLayout {
    /// The `sha256-<hex>.sig` tag.
    SignatureTag,
    /// An OCI 1.1 referrer of the image.
    Referrer,
}

impl fmt::Display for SignatureLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SignatureTag => ".sig tag",
            Self::Referrer => "OCI 1.1 referrer",
        })
    }
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> Option<String> {
    referrers_fallback_tag(digest).map(|tag| format!("{tag}.sig"))
}

/// The OCI 1.1 referrers fallback tag of `digest`: `sha256-<hex>`.
pub fn referrers_fallback_tag(digest: &str) -> Option<String> {
    is_digest(digest).then(|| digest.replacen(':', "-", 1))
}

/// Whether `text` has the shape of a digest (`<algorithm>:<hex>`), so it is
/// safe to put in a registry URL. Registry content names digests; this keeps
/// a hostile manifest from naming paths instead.
pub fn is_digest(text: &str) -> bool {
    text.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm.bytes().all(|b| b.is_ascii_alphanumeric())
            && !hex.is_empty()
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// What one signature layer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// A simple-signing payload; the signature (and certificate) come from annotations.
    SimpleSigning {
        /// The base64 ECDSA signature.
        signature: String,
        /// The PEM certificate of a keyless signature.
        certificate: Option<String>,
        /// The PEM intermediates of that certificate.
        chain: Option<String>,
        /// The Rekor bundle annotation (log entry and signed entry timestamp).
        log_entry: Option<String>,
    },
    /// A Sigstore bundle.
    Bundle,
}

/// A layer of a signature manifest that carries a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLayer {
    /// Digest of the layer blob.
    pub digest: String,
    /// Declared size of the layer blob.
    pub size: u64,
    /// What it holds.
    pub kind: LayerKind,
}

/// A signature manifest, parsed: its signature layers, and layers it
/// announces as signatures but that cannot be one (e.g. no signature annotation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureManifest {
    /// The layers carrying signatures, in manifest order.
    pub layers: Vec<SignatureLayer>,
    /// Why some announced signature layers are unusable.
    pub problems: Vec<String>,
}

/// One entry of a referrers index that may be a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    /// Digest of the referrer manifest.
    pub digest: String,
    /// Its artifact type, as the index reports it.
    pub artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

fn is_signature_artifact(artifact_type: &str) -> bool {
    artifact_type == SIGNATURE_ARTIFACT_TYPE || artifact_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX)
}

/// The entries of a referrers index (from the referrers API or the fallback
/// tag) that may be signatures: those typed as cosign signatures or Sigstore
/// bundles, and those without a telling type (cosign's fallback index types
/// a bundle by its empty config). SBOMs and other artifacts are left out.
pub fn signature_referrers(index: &[u8]) -> Result<Vec<Referrer>, String> {
    let index: Index =
        serde_json::from_slice(index).map_err(|err| format!("not an OCI index: {err}"))?;
    Ok(index
        .manifests
        .into_iter()
        .filter(|d| match d.artifact_type.as_deref() {
            None => true,
            Some(t) => is_signature_artifact(t) || t == EMPTY_MEDIA_TYPE,
        })
        .map(|d| Referrer {
            digest: d.digest,
            artifact_type: d.artifact_type,
        })
        .collect())
}

/// Parses a signature manifest found under `layout` for the image `subject`.
///
/// `Ok(None)`: a referrer that is not a signature (an SBOM, an attestation
/// bundle is still returned and told apart later). `Err`: the manifest cannot
/// be a signature of `subject` — not JSON, or a referrer whose `subject` is
/// another image.
pub fn parse_signature_manifest(
    bytes: &[u8],
    layout: SignatureLayout,
    subject: &str,
) -> Result<Option<SignatureManifest>, String> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|err| format!("not an OCI manifest: {err}"))?;
    if layout == SignatureLayout::Referrer {
        let artifact_type = manifest
            .artifact_type
            .as_deref()
            .or(manifest.config.as_ref().map(|c| c.media_type.as_str()))
            .unwrap_or_default();
        if !is_signature_artifact(artifact_type) {
            return Ok(None);
        }
        match &manifest.subject {
            Some(s) if s.digest == subject => {}
            Some(s) => return Err(format!("its subject is {}, not {subject}", s.digest)),
            None => return Err("a referrer without subject".to_string()),
        }
    }
    let mut parsed = SignatureManifest {
        layers: Vec::new(),
        problems: Vec::new(),
    };
    for layer in manifest.layers {
        let kind = if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE {
            match layer.annotations.get(SIGNATURE_ANNOTATION) {
                Some(signature) => LayerKind::SimpleSigning {
                    signature: signature.clone(),
                    certificate: layer.annotations.get(CERTIFICATE_ANNOTATION).cloned(),
                    chain: layer.annotations.get(CHAIN_ANNOTATION).cloned(),
                    log_entry: layer.annotations.get(REKOR_BUNDLE_ANNOTATION).cloned(),
                },
                None => {
                    parsed.problems.push(format!(
                        "layer {} has no {SIGNATURE_ANNOTATION} annotation",
                        layer.digest
                    ));
                    continue;
                }
            }
        } else if layer.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
            LayerKind::Bundle
        } else {
            continue;
        };
        parsed.layers.push(SignatureLayer {
            digest: layer.digest,
            size: layer.size,
            kind,
        });
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cosign");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn image_digest() -> String {
        String::from_utf8(fixture("image.digest")).unwrap()
    }

    #[test]
    fn tags_follow_cosign_and_the_oci_fallback_scheme() {
        let digest = "sha256:611331e05a43aca74c233ad2c6885b6ca2cf12b63457825c2c90e67759f49abe";
        assert_eq!(
            signature_tag(digest).unwrap(),
            "sha256-611331e05a43aca74c233ad2c6885b6ca2cf12b63457825c2c90e67759f49abe.sig"
        );
        assert_eq!(
            referrers_fallback_tag(digest).unwrap(),
            "sha256-611331e05a43aca74c233ad2c6885b6ca2cf12b63457825c2c90e67759f49abe"
        );
        for bad in ["latest", "sha256:", ":abc", "sha256:xyz", "sha256:ab/../c"] {
            assert_eq!(signature_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_signature_tag_manifest_lists_one_layer_per_signature() {
        let parsed = parse_signature_manifest(
            &fixture("legacy.sig.manifest.json"),
            SignatureLayout::SignatureTag,
            &image_digest(),
        )
        .unwrap()
        .unwrap();
        assert!(parsed.problems.is_empty());
        assert_eq!(parsed.layers.len(), 2);
        for layer in &parsed.layers {
            assert!(matches!(
                &layer.kind,
                LayerKind::SimpleSigning { certificate: None, signature, log_entry: None, .. } if signature.starts_with("ME")
            ));
            assert_eq!(layer.size, 255);
        }
    }

    #[test]
    fn the_referrers_index_names_both_referrer_forms() {
        let referrers = signature_referrers(&fixture("referrers.index.json")).unwrap();
        assert_eq!(referrers.len(), 2);
        let sig = parse_signature_manifest(
            &fixture("referrer.sig.manifest.json"),
            SignatureLayout::Referrer,
            &image_digest(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(sig.layers.len(), 2);
        let bundle = parse_signature_manifest(
            &fixture("referrer.bundle.manifest.json"),
            SignatureLayout::Referrer,
            &image_digest(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(bundle.layers.len(), 1);
        assert_eq!(bundle.layers[0].kind, LayerKind::Bundle);
    }

    #[test]
    fn a_referrer_of_another_image_or_of_another_kind_is_not_a_signature_here() {
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let err = parse_signature_manifest(
            &fixture("referrer.sig.manifest.json"),
            SignatureLayout::Referrer,
            other,
        )
        .unwrap_err();
        assert!(err.contains("its subject is sha256:611331"), "{err}");

        let sbom = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44", "size": 2},
            "layers": [],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other, "size": 1},
        });
        let bytes = serde_json::to_vec(&sbom).unwrap();
        assert_eq!(
            parse_signature_manifest(&bytes, SignatureLayout::Referrer, other),
            Ok(None)
        );
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aa", "size": 1,
             "artifactType": "application/spdx+json"},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bb", "size": 1,
             "artifactType": SIGNATURE_ARTIFACT_TYPE},
        ]});
        let referrers = signature_referrers(&serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(referrers.len(), 1);
        assert_eq!(referrers[0].digest, "sha256:bb");
    }

    #[test]
    fn a_signature_layer_without_its_annotation_is_reported() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "layers": [{"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "sha256:cc", "size": 10}],
        });
        let parsed = parse_signature_manifest(
            &serde_json::to_vec(&manifest).unwrap(),
            SignatureLayout::SignatureTag,
            "sha256:dd",
        )
        .unwrap()
        .unwrap();
        assert!(parsed.layers.is_empty());
        assert_eq!(parsed.problems.len(), 1);
        assert!(
            parse_signature_manifest(b"{", SignatureLayout::SignatureTag, "sha256:dd").is_err()
        );
    }
}
