//! Manifest operations: HEAD, GET (size-limited, digest-checked), PUT, and
//! small JSON documents (referrers).

use super::RegistryClient;
use crate::registry::auth::Scope;
use crate::registry::digest::Digest;
use crate::registry::error::RegistryError;
use crate::registry::manifest::{self, MAX_MANIFEST_BYTES};
use bytes::Bytes;
use reqwest::{StatusCode, header};

/// How often a manifest is read before wrong bytes are reported.
pub const MANIFEST_READS: u32 = crate::registry::retry::CONTENT_READS;

/// What a manifest HEAD or GET told about a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest as received: exact bytes, their media type and digest.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl RegistryClient {
    /// HEAD a manifest; None when it does not exist.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send("HEAD manifest", &Scope::pull(repository), || {
                self.inner
                    .http
                    .head(&url)
                    .header(header::ACCEPT, manifest::ACCEPTED.join(", "))
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<Digest>().ok());
                let Some(digest) = digest else {
                    // No digest header: the only way to know is to read the bytes.
                    return self.get_manifest(repository, reference).await.map(|m| {
                        Some(ManifestHead {
                            size: m.bytes.len() as u64,
                            digest: m.digest,
                            media_type: m.media_type,
                        })
                    });
                };
                let media_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                // The header itself: a HEAD response has no body, so the
                // body's length (`content_length()`) is 0.
                let size = response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Ok(Some(ManifestHead {
                    digest,
                    media_type,
                    size,
                }))
            }
            status => Err(self.status_error("HEAD manifest", status, &[])),
        }
    }

    /// GET a manifest's exact bytes, size-limited and digest-checked. Bytes
    /// that do not match their digest are read again, [`MANIFEST_READS`] times
    /// in all; a registry that keeps sending them gets a permanent error.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let mut reads = 0;
        loop {
            reads += 1;
            match self.get_manifest_once(repository, reference).await {
                Err(RegistryError::DigestMismatch { .. }) if reads < MANIFEST_READS => {
                    tracing::debug!(host = %self.inner.host, repository, reads, "manifest bytes do not match their digest; reading again");
                }
                result => return result,
            }
        }
    }

    async fn get_manifest_once(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let answer = self
            .fetch(
                "GET manifest",
                &Scope::pull(repository),
                MAX_MANIFEST_BYTES,
                || {
                    self.inner
                        .http
                        .get(&url)
                        .header(header::ACCEPT, manifest::ACCEPTED.join(", "))
                },
            )
            .await?;
        let status = answer.status;
        let header_digest = answer
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let content_type = answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = answer.body;
        if !status.is_success() {
            return Err(self.status_error("GET manifest", status, &bytes));
        }
        let manifest_error = |source| RegistryError::Manifest {
            at: format!("{}/{repository}", self.inner.host),
            source,
        };
        let media_type =
            manifest::media_type_of(content_type.as_deref(), &bytes).map_err(manifest_error)?;
        let expected = reference.parse::<Digest>().ok().or(header_digest);
        let actual = match &expected {
            Some(expected) => {
                let mut hasher = expected.hasher();
                hasher.update(&bytes);
                hasher.finish()
            }
            None => Digest::sha256_of(&bytes),
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                at: format!("{}/{repository}", self.inner.host),
                expected,
                actual,
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: actual,
        })
    }

    /// PUT manifest bytes under a tag or digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send("PUT manifest", &Scope::push(repository), || {
                self.inner
                    .http
                    .put(&url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        let status = response.status();
        if status == StatusCode::CREATED || status == StatusCode::OK {
            return Ok(());
        }
        let body = self
            .read_limited("PUT manifest", response, 64 << 10)
            .await
            .unwrap_or_default();
        Err(self.status_error("PUT manifest", status, &body))
    }

    /// Sends an arbitrary replayable GET (used for tag lists and referrers).
    pub async fn get_json(
        &self,
        operation: &'static str,
        repository: &str,
        path: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Option<Bytes>, RegistryError> {
        let url = self.url(path);
        let answer = self
            .fetch(operation, &Scope::pull(repository), limit, || {
                self.inner.http.get(&url).header(header::ACCEPT, accept)
            })
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(answer.body)),
            status => Err(self.status_error(operation, status, &answer.body)),
        }
    }
}
