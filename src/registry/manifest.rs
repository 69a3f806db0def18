//! Manifests and indexes as the copy engine sees them: which media types are
//! accepted, which children (blobs, platform manifests) an object names, and the
//! limits that keep a hostile registry from smuggling content or exhausting memory.
//!
//! The bytes are never re-serialised: parsing only reads the graph; the engine
//! moves the exact bytes it received, so digests never change.

use super::digest::Digest;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest media type the engine accepts, for `Accept` headers.
pub const ACCEPTED: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// The largest manifest the engine reads (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// A content descriptor: what a manifest says about one child.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of one entry of an index.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// True when `selector` (`os/arch[/variant]`) names this platform.
    pub fn matches(&self, selector: &str) -> bool {
        let mut parts = selector.split('/');
        let os = parts.next();
        let arch = parts.next();
        let variant = parts.next();
        os == Some(self.os.as_str())
            && arch == Some(self.architecture.as_str())
            && variant.is_none_or(|v| self.variant.as_deref() == Some(v))
    }
}

/// A parsed manifest: an image (config + layers) or an index of manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
        subject: Option<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
        subject: Option<Descriptor>,
    },
}

/// Why manifest bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "manifest media type {0:?} is not supported (expected an OCI or Docker v2 manifest or index)"
    )]
    UnsupportedMediaType(String),
    #[error("manifest says mediaType {body:?} but the registry sent Content-Type {header:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest is {0} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("manifest is not valid JSON for {media_type}: {message}")]
    Malformed { media_type: String, message: String },
    #[error("manifest child {digest} has media type {media_type:?}, not allowed in {parent}")]
    UnexpectedChild {
        parent: String,
        digest: Digest,
        media_type: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// The media type of manifest bytes: the registry's `Content-Type` and the body's
/// own `mediaType` must agree when both are present.
pub fn media_type_of(header: Option<&str>, bytes: &[u8]) -> Result<String, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
    }
    let body = serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type);
    let header = header
        .map(|h| h.split(';').next().unwrap_or(h).trim().to_string())
        .filter(|h| ACCEPTED.contains(&h.as_str()));
    match (header, body) {
        (Some(h), Some(b)) if h != b => {
            Err(ManifestError::MediaTypeMismatch { header: h, body: b })
        }
        (Some(h), _) => Ok(h),
        (None, Some(b)) if ACCEPTED.contains(&b.as_str()) => Ok(b),
        (None, Some(b)) => Err(ManifestError::UnsupportedMediaType(b)),
        (None, None) => Err(ManifestError::UnsupportedMediaType(String::new())),
    }
}

impl Manifest {
    /// Parses manifest bytes of a known media type.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let malformed = |message: String| ManifestError::Malformed {
            media_type: media_type.to_string(),
            message,
        };
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        match media_type {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let config = raw.config.ok_or_else(|| malformed("no config".into()))?;
                Ok(Manifest::Image {
                    config,
                    layers: raw.layers.unwrap_or_default(),
                    subject: raw.subject,
                })
            }
            OCI_INDEX | DOCKER_LIST => {
                let manifests = raw
                    .manifests
                    .ok_or_else(|| malformed("no manifests".into()))?;
                for child in &manifests {
                    if !ACCEPTED.contains(&child.media_type.as_str()) {
                        return Err(ManifestError::UnexpectedChild {
                            parent: media_type.to_string(),
                            digest: child.digest.clone(),
                            media_type: child.media_type.clone(),
                        });
                    }
                }
                Ok(Manifest::Index {
                    manifests,
                    subject: raw.subject,
                })
            }
            other => Err(ManifestError::UnsupportedMediaType(other.to_string())),
        }
    }

    /// The blobs an image manifest names (config first, then layers); none for an index.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image { config, layers, .. } => {
                std::iter::once(config).chain(layers).collect()
            }
            Manifest::Index { .. } => Vec::new(),
        }
    }

    /// The child manifests an index names; none for an image.
    pub fn children(&self) -> &[Descriptor] {
        match self {
            Manifest::Index { manifests, .. } => manifests,
            Manifest::Image { .. } => &[],
        }
    }
}

/// True for index media types.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn parses_images_and_indexes() {
        let image = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(1), "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(2), "size": 20}],
        });
        let bytes = serde_json::to_vec(&image).unwrap();
        let parsed = Manifest::parse(OCI_MANIFEST, &bytes).unwrap();
        let sizes: Vec<u64> = parsed.blobs().iter().map(|d| d.size).collect();
        assert_eq!(sizes, [10, 20]);

        let index = json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": digest(3), "size": 5, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": digest(4), "size": 5, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            ],
        });
        let parsed = Manifest::parse(OCI_INDEX, &serde_json::to_vec(&index).unwrap()).unwrap();
        let platforms: Vec<String> = parsed
            .children()
            .iter()
            .map(|d| d.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
        assert!(
            parsed.children()[1]
                .platform
                .as_ref()
                .unwrap()
                .matches("linux/arm64")
        );
        assert!(
            parsed.children()[1]
                .platform
                .as_ref()
                .unwrap()
                .matches("linux/arm64/v8")
        );
        assert!(
            !parsed.children()[1]
                .platform
                .as_ref()
                .unwrap()
                .matches("linux/arm64/v7")
        );
    }

    #[test]
    fn refuses_what_a_registry_must_not_send() {
        let index_body =
            serde_json::to_vec(&json!({"mediaType": OCI_INDEX, "manifests": []})).unwrap();
        assert!(matches!(
            media_type_of(Some(OCI_MANIFEST), &index_body),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert_eq!(
            media_type_of(Some("application/json"), &index_body).unwrap(),
            OCI_INDEX
        );
        assert_eq!(
            media_type_of(Some(&format!("{OCI_INDEX}; charset=utf-8")), &index_body).unwrap(),
            OCI_INDEX
        );
        assert!(matches!(
            media_type_of(None, b"{\"schemaVersion\":1}"),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            Manifest::parse(OCI_MANIFEST, &huge),
            Err(ManifestError::TooLarge(_))
        ));
        let bad_child = serde_json::to_vec(&json!({
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": "text/html", "digest": digest(1), "size": 1}],
        }))
        .unwrap();
        assert!(matches!(
            Manifest::parse(OCI_INDEX, &bad_child),
            Err(ManifestError::UnexpectedChild { .. })
        ));
        let bad_digest = br#"{"config":{"mediaType":"x","digest":"sha256:../../x","size":1}}"#;
        assert!(matches!(
            Manifest::parse(OCI_MANIFEST, bad_digest),
            Err(ManifestError::Malformed { .. })
        ));
    }
}
