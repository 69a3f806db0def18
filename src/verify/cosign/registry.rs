//! The engine's registry client as the [`SignatureStore`] cosign verification
//! reads from: one repository, with the client's authentication, retries and
//! limits, so signatures are read with the same credentials as the image.
//!
//! Blobs are read whole but bounded: a signature blob larger than
//! [`MAX_SIGNATURE_BLOB`] is refused while it streams, never buffered.

use std::pin::pin;

use futures::StreamExt;

use crate::registry::client::RegistryClient;
use crate::registry::error::RegistryError;
use crate::registry::manifest::{MAX_MANIFEST_BYTES, OCI_INDEX};
use crate::verify::cosign::{MAX_SIGNATURE_BLOB, SignatureStore};

/// A failed signature read.
#[derive(Debug, thiserror::Error)]
pub enum SignatureReadError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A blob digest that is not a digest.
    #[error("{0:?} is not a blob digest")]
    NotADigest(String),
    /// A blob longer than a signature can be.
    #[error("blob {digest} is longer than {MAX_SIGNATURE_BLOB} bytes, too long for a signature")]
    TooLong {
        /// The blob.
        digest: String,
    },
}

impl SignatureReadError {
    /// The registry error's reason, or `SignatureInvalid` for content that cannot be a signature.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Registry(error) => error.reason(),
            Self::NotADigest(_) | Self::TooLong { .. } => crate::api::reasons::SIGNATURE_INVALID,
        }
    }

    /// Whether reading again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry(error) if error.is_transient())
    }
}

/// The signatures of images in one repository of one registry.
pub struct RepositorySignatures {
    client: RegistryClient,
    repository: String,
}

impl RepositorySignatures {
    /// Reads from `repository` (the path, without host) through `client`.
    pub fn new(client: RegistryClient, repository: &str) -> Self {
        Self {
            client,
            repository: repository.to_string(),
        }
    }
}

impl SignatureStore for RepositorySignatures {
    type Error = SignatureReadError;

    async fn manifest(&self, reference: &str) -> Result<Option<Vec<u8>>, SignatureReadError> {
        match self.client.get_manifest(&self.repository, reference).await {
            Ok(manifest) => Ok(Some(manifest.bytes.to_vec())),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    async fn referrers(&self, digest: &str) -> Result<Option<Vec<u8>>, SignatureReadError> {
        let path = format!("/v2/{}/referrers/{digest}", self.repository);
        let index = self
            .client
            .get_json(
                "GET referrers",
                &self.repository,
                &path,
                OCI_INDEX,
                MAX_MANIFEST_BYTES,
            )
            .await?;
        Ok(index.map(|bytes| bytes.to_vec()))
    }

    async fn blob(&self, digest: &str) -> Result<Vec<u8>, SignatureReadError> {
        let parsed = digest
            .parse()
            .map_err(|_| SignatureReadError::NotADigest(digest.to_string()))?;
        let mut stream = pin!(self.client.get_blob(&self.repository, &parsed, 0).await?);
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as u64 > MAX_SIGNATURE_BLOB {
                return Err(SignatureReadError::TooLong {
                    digest: digest.to_string(),
                });
            }
        }
        Ok(bytes)
    }
}
