//! The `sha256-<hex>.att` manifest of one image at one target: finding a
//! receipt of an object generation there, and appending a new one.
//!
//! A receipt found there counts only when its envelope verifies with the
//! operator's key and its statement names the object generation and the
//! digest: an annotation alone (anyone who can push there can write one)
//! never stops a receipt from being written.

use bytes::Bytes;

use super::key::{KeyError, SigningKey};
use super::layout::{self, IN_TOTO_PAYLOAD_TYPE, OCI_MANIFEST};
use super::statement::{self, ReceiptFacts, VSA_PREDICATE_TYPE};
use crate::registry::manifest::ManifestError;
use crate::registry::{Digest, RegistryClient, RegistryError, Repository};
use crate::verify::cosign::SignatureStore;
use crate::verify::cosign::registry::{RepositorySignatures, SignatureReadError};

/// Why a receipt could not be found or written.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The promoted digest is not a digest.
    #[error("{0:?} is not a digest")]
    NotADigest(String),
    /// The target's registry refused or failed.
    #[error("receipt at {at}: {source}")]
    Registry {
        /// The target repository.
        at: String,
        /// The registry's error.
        source: Box<RegistryError>,
    },
    /// Reading the existing attestations failed.
    #[error("receipt at {at}: reading the .att manifest: {source}")]
    Read {
        /// The target repository.
        at: String,
        /// Why.
        source: Box<SignatureReadError>,
    },
    /// The target's `.att` manifest cannot be appended to.
    #[error("receipt at {at}: {source}")]
    Manifest {
        /// The target repository.
        at: String,
        /// Why.
        source: ManifestError,
    },
    /// The key could not sign.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl ReceiptError {
    /// PascalCase reason for events, conditions and metrics.
    pub fn reason(&self) -> &'static str {
        "ReceiptFailed"
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Registry { source, .. } => source.is_transient(),
            Self::Read { source, .. } => source.is_transient(),
            Self::Key(error) => error.is_transient(),
            Self::NotADigest(_) | Self::Manifest { .. } => false,
        }
    }
}

/// The `.att` tag of one digest in one target repository.
pub struct AttestationTag<'a> {
    client: &'a RegistryClient,
    repository: &'a Repository,
    digest: &'a str,
    tag: String,
}

impl<'a> AttestationTag<'a> {
    /// The `.att` tag of `digest` in `repository`, reached through `client`.
    pub fn new(
        client: &'a RegistryClient,
        repository: &'a Repository,
        digest: &'a str,
    ) -> Result<Self, ReceiptError> {
        let parsed: Digest = digest
            .parse()
            .map_err(|_| ReceiptError::NotADigest(digest.to_string()))?;
        Ok(Self {
            client,
            repository,
            digest,
            tag: parsed.tag_with_suffix("att"),
        })
    }

    fn at(&self) -> String {
        self.repository.to_string()
    }

    fn store(&self) -> RepositorySignatures {
        RepositorySignatures::new(self.client.clone(), &self.repository.name)
    }

    async fn manifest(&self) -> Result<Option<Vec<u8>>, ReceiptError> {
        self.store()
            .manifest(&self.tag)
            .await
            .map_err(|source| ReceiptError::Read {
                at: self.at(),
                source: Box::new(source),
            })
    }

    /// The digest of a receipt `key` signed for (`uid`, `generation`) at
    /// this digest, if the `.att` manifest holds one.
    pub async fn find(
        &self,
        key: &SigningKey,
        uid: &str,
        generation: i64,
    ) -> Result<Option<String>, ReceiptError> {
        let Some(manifest) = self.manifest().await? else {
            return Ok(None);
        };
        let hint = format!("{uid}/{generation}");
        for (layer, size) in layout::receipt_layers(&manifest, &hint) {
            if size > crate::verify::cosign::MAX_SIGNATURE_BLOB {
                continue;
            }
            let blob = match self.store().blob(&layer).await {
                Ok(blob) => blob,
                Err(SignatureReadError::Registry(e)) if e.is_not_found() => continue,
                Err(source) => {
                    return Err(ReceiptError::Read {
                        at: self.at(),
                        source: Box::new(source),
                    });
                }
            };
            if self.is_receipt_of(key, &blob, uid, generation) {
                return Ok(Some(layer));
            }
        }
        Ok(None)
    }

    fn is_receipt_of(&self, key: &SigningKey, blob: &[u8], uid: &str, generation: i64) -> bool {
        let Some((payload_type, payload, signatures)) = layout::open_envelope(blob) else {
            return false;
        };
        is_signed_receipt(
            key,
            &payload_type,
            &payload,
            &signatures,
            (uid, generation, self.digest),
        )
    }

    /// Appends the signed receipt to the `.att` manifest; the receipt layer's digest.
    pub async fn write(
        &self,
        signed: &SignedReceipt,
        facts: &ReceiptFacts,
    ) -> Result<String, ReceiptError> {
        let envelope = layout::envelope(&signed.payload, &signed.signature);
        let existing = self.manifest().await?;
        let hint = format!("{}/{}", facts.object.uid, facts.object.generation);
        let appended = layout::append(existing.as_deref(), &envelope, VSA_PREDICATE_TYPE, &hint)
            .map_err(|source| ReceiptError::Manifest {
                at: self.at(),
                source,
            })?;
        upload(self.client, self.repository, &appended.receipt, envelope).await?;
        upload(
            self.client,
            self.repository,
            &Digest::sha256_of(&appended.config),
            appended.config,
        )
        .await?;
        self.client
            .put_manifest(
                &self.repository.name,
                &self.tag,
                OCI_MANIFEST,
                &Bytes::from(appended.manifest),
            )
            .await
            .map_err(|source| ReceiptError::Registry {
                at: self.at(),
                source: Box::new(source),
            })?;
        Ok(appended.receipt.to_string())
    }
}

/// A receipt statement and the key's signature over its DSSE PAE: made
/// once, stored in both layouts.
#[derive(Clone, Debug)]
pub struct SignedReceipt {
    /// The in-toto statement, JSON.
    pub payload: Vec<u8>,
    /// The signature over the PAE of the in-toto payload type and `payload`.
    pub signature: Vec<u8>,
}

impl SignedReceipt {
    /// Signs the receipt of `facts` with `key`.
    pub async fn sign(key: &SigningKey, facts: &ReceiptFacts) -> Result<Self, ReceiptError> {
        let payload = serde_json::to_vec(&statement::statement(facts)).expect("JSON serialises");
        let pae = layout::pre_authentication_encoding(IN_TOTO_PAYLOAD_TYPE, &payload);
        let signature = key.sign(&pae).await?;
        Ok(Self { payload, signature })
    }
}

/// Whether an envelope (`payload_type`, `payload`, `signatures`) is a
/// receipt `key` signed for `(uid, generation, digest)`.
pub fn is_signed_receipt(
    key: &SigningKey,
    payload_type: &str,
    payload: &[u8],
    signatures: &[Vec<u8>],
    (uid, generation, digest): (&str, i64, &str),
) -> bool {
    let pae = layout::pre_authentication_encoding(payload_type, payload);
    if payload_type != IN_TOTO_PAYLOAD_TYPE || !signatures.iter().any(|s| key.verifies(&pae, s)) {
        return false;
    }
    serde_json::from_slice(payload)
        .ok()
        .and_then(|s| statement::identity(&s))
        .is_some_and(|i| i.uid == uid && i.generation == generation && i.digest == digest)
}

/// Uploads `bytes` as blob `digest` to `repository`, unless it is there.
pub async fn upload(
    client: &RegistryClient,
    repository: &Repository,
    digest: &Digest,
    bytes: Vec<u8>,
) -> Result<(), ReceiptError> {
    let registry = |source| ReceiptError::Registry {
        at: repository.to_string(),
        source: Box::new(source),
    };
    let name = &repository.name;
    if client
        .blob_size(name, digest)
        .await
        .map_err(registry)?
        .is_some()
    {
        return Ok(());
    }
    let session = client.start_upload(name).await.map_err(registry)?;
    let size = bytes.len() as u64;
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
    client
        .upload_monolithic(session, digest, size, body)
        .await
        .map_err(registry)
}
