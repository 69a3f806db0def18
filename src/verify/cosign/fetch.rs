//! Gathering the signatures of one image from its registry.
//!
//! The registry client implements [`SignatureStore`] — three reads against
//! the image's repository — and [`fetch_signatures`] does the rest: the
//! `sha256-<hex>.sig` tag, the OCI 1.1 referrers (API, else the fallback
//! tag), the manifests they list and the signature blobs those name. Every
//! manifest fetched by digest and every blob is checked against its digest
//! here, so a store that does not check cannot slip other bytes in.
//!
//! What cannot be a signature of the image is kept as an unusable
//! candidate with the reason, so a refusal can say what was found.

use std::future::Future;

use aws_lc_rs::digest::{SHA256, SHA512, digest as hash};

use super::layout::{
    LayerKind, SignatureLayout, is_digest, parse_signature_manifest, referrers_fallback_tag,
    signature_referrers, signature_tag,
};

/// Largest signature blob read (payloads are ~250 bytes, bundles a few KiB).
pub const MAX_SIGNATURE_BLOB: u64 = 1 << 20;
/// Most signature manifests read for one image.
const MAX_MANIFESTS: usize = 64;

/// Reads from the repository of the image whose signatures are wanted.
/// Implemented by the registry client (with its auth and retries).
pub trait SignatureStore {
    /// A failed read (the registry client's error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The manifest a tag or digest names, accepting OCI and Docker image
    /// manifests and indexes; `None` when the registry answers 404.
    fn manifest(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send;

    /// The OCI 1.1 referrers index of `digest` from `GET /v2/<name>/referrers/<digest>`;
    /// `None` when the registry does not offer the API (404), in which case the
    /// fallback tag is read instead.
    fn referrers(
        &self,
        digest: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send;

    /// A blob, whole. Only called for blobs of at most [`MAX_SIGNATURE_BLOB`] bytes.
    fn blob(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
}

/// A failed read while gathering signatures.
#[derive(Debug, thiserror::Error)]
pub enum FetchError<E: std::error::Error + 'static> {
    /// Reading a signature manifest or referrers fallback index failed.
    #[error("reading signature manifest {reference}: {source}")]
    Manifest {
        /// The tag or digest.
        reference: String,
        /// The store's error.
        #[source]
        source: E,
    },
    /// The referrers API failed (other than by not existing).
    #[error("listing the referrers of {digest}: {source}")]
    Referrers {
        /// The image digest.
        digest: String,
        /// The store's error.
        #[source]
        source: E,
    },
    /// Reading a signature blob failed.
    #[error("reading signature blob {digest}: {source}")]
    Blob {
        /// The blob digest.
        digest: String,
        /// The store's error.
        #[source]
        source: E,
    },
}

impl<E: std::error::Error + 'static> FetchError<E> {
    /// The store's error, to classify (transient or not) and take its reason.
    pub fn store_error(&self) -> &E {
        match self {
            Self::Manifest { source, .. }
            | Self::Referrers { source, .. }
            | Self::Blob { source, .. } => source,
        }
    }
}

/// What one signature layer (or unusable manifest) holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureContent {
    /// A simple-signing payload and its base64 signature.
    SimpleSigning {
        /// The payload bytes, exactly as signed.
        payload: Vec<u8>,
        /// The base64 signature from the layer annotation.
        signature: String,
        /// The PEM certificate of a keyless signature.
        certificate: Option<String>,
        /// The PEM intermediates of that certificate.
        chain: Option<String>,
        /// cosign's Rekor bundle annotation (log entry and signed entry timestamp).
        log_entry: Option<String>,
    },
    /// A Sigstore bundle (JSON).
    Bundle(Vec<u8>),
    /// Presented as a signature of the image but cannot be one.
    Unusable(String),
}

/// One signature found for an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureCandidate {
    /// Digest of the signature manifest it came from.
    pub manifest_digest: String,
    /// Where that manifest was found.
    pub layout: SignatureLayout,
    /// What it holds.
    pub content: SignatureContent,
}

/// `<algorithm>:<hex>` of `bytes`, in the algorithm of `like` (sha256 or sha512).
fn digest_like(like: &str, bytes: &[u8]) -> Option<String> {
    let (algorithm, name) = match like.split_once(':')?.0 {
        "sha256" => (&SHA256, "sha256"),
        "sha512" => (&SHA512, "sha512"),
        _ => return None,
    };
    let hex: String = hash(algorithm, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("{name}:{hex}"))
}

/// Every signature of the image `digest` in the store's repository, from
/// the signature tag and the OCI 1.1 referrers. Empty: the image is unsigned.
pub async fn fetch_signatures<S>(
    store: &S,
    digest: &str,
) -> Result<Vec<SignatureCandidate>, FetchError<S::Error>>
where
    S: SignatureStore + Sync,
{
    let mut candidates = Vec::new();
    // The manifests to read: (reference, layout, expected digest when read by digest).
    let mut manifests: Vec<(String, SignatureLayout, Option<String>)> = Vec::new();
    if let Some(tag) = signature_tag(digest) {
        manifests.push((tag, SignatureLayout::SignatureTag, None));
    }
    let index = match store.referrers(digest).await {
        Ok(Some(index)) => Some(index),
        Ok(None) => match referrers_fallback_tag(digest) {
            Some(tag) => store
                .manifest(&tag)
                .await
                .map_err(|source| FetchError::Manifest {
                    reference: tag.clone(),
                    source,
                })?,
            None => None,
        },
        Err(source) => {
            return Err(FetchError::Referrers {
                digest: digest.to_string(),
                source,
            });
        }
    };
    if let Some(index) = index {
        match signature_referrers(&index) {
            Ok(referrers) => manifests.extend(
                referrers
                    .into_iter()
                    .map(|r| (r.digest.clone(), SignatureLayout::Referrer, Some(r.digest))),
            ),
            Err(problem) => candidates.push(SignatureCandidate {
                manifest_digest: String::new(),
                layout: SignatureLayout::Referrer,
                content: SignatureContent::Unusable(format!("the referrers index is {problem}")),
            }),
        }
    }
    manifests.truncate(MAX_MANIFESTS);

    for (reference, layout, expected) in manifests {
        if expected.as_deref().is_some_and(|d| !is_digest(d)) {
            candidates.push(SignatureCandidate {
                manifest_digest: String::new(),
                layout,
                content: SignatureContent::Unusable(format!(
                    "the referrers index names {reference:?}, which is not a digest"
                )),
            });
            continue;
        }
        let Some(bytes) =
            store
                .manifest(&reference)
                .await
                .map_err(|source| FetchError::Manifest {
                    reference: reference.clone(),
                    source,
                })?
        else {
            continue;
        };
        let manifest_digest = digest_like(expected.as_deref().unwrap_or("sha256:"), &bytes)
            .unwrap_or_else(|| reference.clone());
        let unusable = |problem: String| SignatureCandidate {
            manifest_digest: manifest_digest.clone(),
            layout,
            content: SignatureContent::Unusable(problem),
        };
        if let Some(expected) = &expected
            && *expected != manifest_digest
        {
            candidates.push(unusable(format!(
                "the registry returned other bytes for manifest {expected}"
            )));
            continue;
        }
        let parsed = match parse_signature_manifest(&bytes, layout, digest) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(problem) => {
                candidates.push(unusable(problem));
                continue;
            }
        };
        candidates.extend(parsed.problems.into_iter().map(&unusable));
        for layer in parsed.layers {
            if !is_digest(&layer.digest) {
                candidates.push(unusable(format!(
                    "layer {:?} is not a digest",
                    layer.digest
                )));
                continue;
            }
            if layer.size > MAX_SIGNATURE_BLOB {
                candidates.push(unusable(format!(
                    "layer {} is {} bytes, more than a signature can be",
                    layer.digest, layer.size
                )));
                continue;
            }
            let blob = store
                .blob(&layer.digest)
                .await
                .map_err(|source| FetchError::Blob {
                    digest: layer.digest.clone(),
                    source,
                })?;
            if digest_like(&layer.digest, &blob).as_deref() != Some(layer.digest.as_str()) {
                candidates.push(unusable(format!(
                    "blob {} does not have its digest",
                    layer.digest
                )));
                continue;
            }
            let content = match layer.kind {
                LayerKind::SimpleSigning {
                    signature,
                    certificate,
                    chain,
                    log_entry,
                } => SignatureContent::SimpleSigning {
                    payload: blob,
                    signature,
                    certificate,
                    chain,
                    log_entry,
                },
                LayerKind::Bundle => SignatureContent::Bundle(blob),
            };
            candidates.push(SignatureCandidate {
                manifest_digest: manifest_digest.clone(),
                layout,
                content,
            });
        }
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::layout;
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cosign");

    /// A repository held in memory: manifests by tag or digest, blobs by digest.
    #[derive(Default)]
    struct Repository {
        manifests: BTreeMap<String, Vec<u8>>,
        blobs: BTreeMap<String, Vec<u8>>,
        referrers_api: Option<Vec<u8>>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("no such blob")]
    struct Missing;

    impl SignatureStore for Repository {
        type Error = Missing;
        async fn manifest(&self, reference: &str) -> Result<Option<Vec<u8>>, Missing> {
            Ok(self.manifests.get(reference).cloned())
        }
        async fn referrers(&self, _digest: &str) -> Result<Option<Vec<u8>>, Missing> {
            Ok(self.referrers_api.clone())
        }
        async fn blob(&self, digest: &str) -> Result<Vec<u8>, Missing> {
            self.blobs.get(digest).cloned().ok_or(Missing)
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    /// The fixture registry: the signature tag, the fallback index, both referrers, the blobs.
    fn signed_repository() -> (Repository, String) {
        let digest = String::from_utf8(fixture("image.digest")).unwrap();
        let mut repo = Repository::default();
        repo.manifests.insert(
            signature_tag(&digest).unwrap(),
            fixture("legacy.sig.manifest.json"),
        );
        repo.manifests.insert(
            referrers_fallback_tag(&digest).unwrap(),
            fixture("referrers.index.json"),
        );
        for name in [
            "referrer.sig.manifest.json",
            "referrer.bundle.manifest.json",
        ] {
            let bytes = fixture(name);
            repo.manifests
                .insert(digest_like("sha256:", &bytes).unwrap(), bytes);
        }
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(hex) = name.strip_prefix("blob-") {
                repo.blobs.insert(format!("sha256:{hex}"), fixture(&name));
            }
        }
        (repo, digest)
    }

    #[tokio::test]
    async fn every_signature_of_both_layouts_is_gathered() {
        let (repo, digest) = signed_repository();
        let candidates = fetch_signatures(&repo, &digest).await.unwrap();
        let summary: Vec<_> = candidates
            .iter()
            .map(|c| {
                let kind = match &c.content {
                    SignatureContent::SimpleSigning { .. } => "simple",
                    SignatureContent::Bundle(_) => "bundle",
                    SignatureContent::Unusable(problem) => panic!("unusable: {problem}"),
                };
                (c.layout, kind)
            })
            .collect();
        use SignatureLayout::*;
        assert_eq!(
            summary,
            [
                (SignatureTag, "simple"),
                (SignatureTag, "simple"),
                (Referrer, "simple"),
                (Referrer, "simple"),
                (Referrer, "bundle"),
            ]
        );
    }

    #[tokio::test]
    async fn the_referrers_api_wins_over_the_fallback_tag() {
        let (mut repo, digest) = signed_repository();
        repo.referrers_api = Some(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec());
        let candidates = fetch_signatures(&repo, &digest).await.unwrap();
        assert_eq!(candidates.len(), 2);
        assert!(
            candidates
                .iter()
                .all(|c| c.layout == SignatureLayout::SignatureTag)
        );
    }

    #[tokio::test]
    async fn an_unsigned_image_has_no_candidates() {
        let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let candidates = fetch_signatures(&Repository::default(), digest)
            .await
            .unwrap();
        assert!(candidates.is_empty());
    }

    #[tokio::test]
    async fn substituted_bytes_are_unusable_and_a_missing_blob_is_an_error() {
        let (mut repo, digest) = signed_repository();
        let payload = "sha256:2757c71823ad271a0f41fcb61f004d0522e03d0b2e6fce0f309ccb4a67e887f0";
        repo.blobs.insert(payload.into(), b"tampered".to_vec());
        let bundle_manifest =
            digest_like("sha256:", &fixture("referrer.bundle.manifest.json")).unwrap();
        repo.manifests
            .insert(bundle_manifest.clone(), b"{\"layers\":[]}".to_vec());
        let candidates = fetch_signatures(&repo, &digest).await.unwrap();
        let problems: Vec<_> = candidates
            .iter()
            .filter_map(|c| match &c.content {
                SignatureContent::Unusable(problem) => Some(problem.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("does not have its digest"))
        );
        assert!(problems.iter().any(|p| p.contains(&bundle_manifest)));

        let hostile = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
             "digest": "sha256:../../../v2/other/manifests/latest",
             "artifactType": layout::SIGNATURE_ARTIFACT_TYPE},
        ]});
        let hostile_repo = Repository {
            referrers_api: Some(serde_json::to_vec(&hostile).unwrap()),
            ..Repository::default()
        };
        let candidates = fetch_signatures(&hostile_repo, &digest).await.unwrap();
        assert!(matches!(
            &candidates[..],
            [SignatureCandidate { content: SignatureContent::Unusable(p), .. }] if p.contains("not a digest")
        ));

        repo.blobs.clear();
        let err = fetch_signatures(&repo, &digest).await.unwrap_err();
        assert!(matches!(err, FetchError::Blob { .. }), "{err}");
    }
}
