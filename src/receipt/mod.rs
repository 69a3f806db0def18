//! Promotion receipts: after the promoter copies a verified image to a
//! target, it attaches to that digest at that target a statement, signed with
//! the operator's attestation key, that the image passed the object's policy.
//! A consumer checks it with `cosign verify-attestation --type
//! https://slsa.dev/verification_summary/v1` (docs/verification.md).
//!
//! - [`statement`]: what a receipt says (in-toto Statement v1, SLSA VSA v1), pure;
//! - [`layout`]: the DSSE envelope and cosign's `.att` layout, pure;
//! - [`key`]: the attestation key as cosign names keys (`k8s://`, `awskms://`, a file);
//! - [`store`]: reading and writing the `.att` manifest of a target;
//! - [`referrer`]: the same receipt as a Sigstore bundle, an OCI 1.1
//!   referrer of the target digest (`cosign verify-attestation
//!   --new-bundle-format`);
//! - [`promotion`], [`mirror`]: the receipts of an ImagePromotion's targets and
//!   of a RegistryMirror's copies, called by the controller after its work.
//!
//! Receipts are write-once like tags: one per (object generation, target)
//! in each layout, signed once. [`Receipts`] remembers in the process what
//! it wrote, and after a restart it looks at the target's `.att` manifest
//! and referrers (for a receipt its own key signed for that object
//! generation and digest) before it writes what is missing. The status only
//! reports the receipt digests; it is never read back.

pub mod key;
pub mod layout;
pub mod mirror;
pub mod promotion;
pub mod referrer;
pub mod statement;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

pub use key::{KeyError, KeyReference, SigningKey};
pub use statement::{InputAttestation, PolicyObject, ReceiptFacts};
pub use store::ReceiptError;

use crate::registry::{RegistryClient, Repository};

/// Where one receipt was written: an object's UID, target name and generation.
type Slot = (String, String, i64);

/// The attestation key and what this process knows is at each target.
pub struct Receipts {
    key: SigningKey,
    reference: String,
    known: Mutex<HashMap<Slot, Known>>,
}

/// A receipt known to be at a target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    digest: String,
    receipt: String,
}

/// What [`Receipts::ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// This process wrote or found it earlier: nothing was asked of the registry.
    Known(String),
    /// It was at the target already (written before a restart).
    Found(String),
    /// It was written now.
    Written(String),
}

impl Ensured {
    /// The receipt's digest.
    pub fn digest(&self) -> &str {
        match self {
            Self::Known(d) | Self::Found(d) | Self::Written(d) => d,
        }
    }
}

/// Decrypts a cosign key off the async threads (scrypt takes a while on purpose).
async fn decrypt(pem: Vec<u8>, password: Vec<u8>, name: String) -> Result<SigningKey, KeyError> {
    tokio::task::spawn_blocking(move || SigningKey::from_cosign_pem(&pem, &password, &name))
        .await
        .expect("decrypting a key does not panic")
}

impl Receipts {
    /// Receipts signed with `key` (`reference` names it in messages and logs).
    pub fn new(key: SigningKey, reference: &str) -> Self {
        Self {
            key,
            reference: reference.to_string(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the key `reference` names: a Secret through `kube`, KMS through `sdk`.
    pub async fn load(
        reference: &KeyReference,
        kube: Option<&kube::Client>,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, KeyError> {
        let name = reference.to_string();
        let key = match reference {
            KeyReference::File(path) => {
                let pem = tokio::fs::read(path)
                    .await
                    .map_err(|source| KeyError::File {
                        path: path.clone(),
                        source,
                    })?;
                let password = std::env::var("COSIGN_PASSWORD").unwrap_or_default();
                decrypt(pem, password.into_bytes(), name.clone()).await?
            }
            KeyReference::Secret {
                namespace,
                name: secret,
            } => {
                let kube = kube.ok_or_else(|| KeyError::Secret {
                    reference: name.clone(),
                    message: "no Kubernetes client".into(),
                })?;
                let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                    kube::Api::namespaced(kube.clone(), namespace);
                let found = api.get(secret).await.map_err(|e| KeyError::Secret {
                    reference: name.clone(),
                    message: match &e {
                        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
                        _ => "the apiserver cannot be reached".into(),
                    },
                })?;
                let data = found.data.unwrap_or_default();
                let field = |key: &str| data.get(key).map(|b| b.0.clone());
                let pem = field("cosign.key").ok_or_else(|| KeyError::Invalid {
                    reference: name.clone(),
                    message: "the Secret has no cosign.key (create it with cosign generate-key-pair k8s://NAMESPACE/NAME)".into(),
                })?;
                let password = field("cosign.password").unwrap_or_default();
                decrypt(pem, password, name.clone()).await?
            }
            KeyReference::AwsKms { endpoint, key } => {
                SigningKey::kms(sdk, endpoint.as_deref(), key, &name).await?
            }
        };
        Ok(Self::new(key, &name))
    }

    /// The key's reference, as configured.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The receipt this process knows of for (`uid`, `target`, `generation`)
    /// at `digest`.
    pub fn known(&self, uid: &str, target: &str, generation: i64, digest: &str) -> Option<String> {
        let known = self.known.lock().expect("lock never poisoned");
        known
            .get(&(uid.to_string(), target.to_string(), generation))
            .filter(|k| k.digest == digest)
            .map(|k| k.receipt.clone())
    }

    fn remember(&self, uid: &str, target: &str, generation: i64, digest: &str, receipt: &str) {
        let mut known = self.known.lock().expect("lock never poisoned");
        known.retain(|(u, t, _), _| !(u == uid && t == target));
        known.insert(
            (uid.to_string(), target.to_string(), generation),
            Known {
                digest: digest.to_string(),
                receipt: receipt.to_string(),
            },
        );
    }

    /// Forgets a deleted object.
    pub fn forget(&self, uid: &str) {
        let mut known = self.known.lock().expect("lock never poisoned");
        known.retain(|(u, _, _), _| u != uid);
    }

    /// Forgets every object not in `live` (deleted while no watch saw it).
    pub fn retain(&self, live: &HashSet<String>) {
        let mut known = self.known.lock().expect("lock never poisoned");
        known.retain(|(u, _, _), _| live.contains(u));
    }

    /// How many receipts this process remembers.
    pub fn len(&self) -> usize {
        self.known.lock().expect("lock never poisoned").len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes sure the receipt of `facts` is at target `target` (the
    /// target's name in the object) in `repository`: known in the process,
    /// found at the target, or written now.
    pub async fn ensure(
        &self,
        client: &RegistryClient,
        repository: &Repository,
        target: &str,
        facts: &ReceiptFacts,
    ) -> Result<Ensured, ReceiptError> {
        let (uid, generation) = (&facts.object.uid, facts.object.generation);
        if let Some(receipt) = self.known(uid, target, generation, &facts.digest) {
            return Ok(Ensured::Known(receipt));
        }
        let store = store::AttestationTag::new(client, repository, &facts.digest)?;
        let referrers = referrer::BundleReferrers::new(client, repository, &facts.digest)?;
        let found = store.find(&self.key, uid, generation).await?;
        let bundled = referrers.find(&self.key, uid, generation).await?.is_some();
        if let (Some(receipt), true) = (&found, bundled) {
            self.remember(uid, target, generation, &facts.digest, receipt);
            return Ok(Ensured::Found(receipt.clone()));
        }
        let signed = store::SignedReceipt::sign(&self.key, facts).await?;
        let ensured = match found {
            Some(receipt) => Ensured::Found(receipt),
            None => Ensured::Written(store.write(&signed, facts).await?),
        };
        if !bundled {
            referrers.write(&self.key, &signed, uid, generation).await?;
        }
        self.remember(uid, target, generation, &facts.digest, ensured.digest());
        Ok(ensured)
    }

    /// The receipt of (`uid`, `generation`) at `digest` in `repository`, if
    /// this process knows it or it is at the target; never writes.
    pub async fn observe(
        &self,
        client: &RegistryClient,
        repository: &Repository,
        target: &str,
        uid: &str,
        generation: i64,
        digest: &str,
    ) -> Result<Option<String>, ReceiptError> {
        if let Some(receipt) = self.known(uid, target, generation, digest) {
            return Ok(Some(receipt));
        }
        let store = store::AttestationTag::new(client, repository, digest)?;
        let found = store.find(&self.key, uid, generation).await?;
        if let Some(receipt) = &found {
            self.remember(uid, target, generation, digest, receipt);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

    #[test]
    fn a_deleted_object_leaves_no_receipt_behind() {
        let der =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let receipts = Receipts {
            key: SigningKey::from_pkcs8(der.as_ref(), "test").unwrap(),
            reference: "test".into(),
            known: Mutex::default(),
        };
        for uid in ["deleted", "missed", "kept"] {
            receipts.remember(uid, "quay", 1, "sha256:a", "sha256:r");
            receipts.remember(uid, "ecr-public", 1, "sha256:a", "sha256:r");
        }
        assert_eq!(receipts.len(), 6);
        receipts.forget("deleted");
        assert_eq!(receipts.len(), 4);
        // Deleted while the watch was down: gone at the next prune.
        receipts.retain(&HashSet::from(["kept".to_string()]));
        assert_eq!(receipts.len(), 2);
        assert!(receipts.known("kept", "quay", 1, "sha256:a").is_some());
    }
}
