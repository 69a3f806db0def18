//! A cosign public key (ECDSA P-256, PEM `PUBLIC KEY`) and its key id.
//!
//! The key id is `sha256:<hex>` of the key's DER SubjectPublicKeyInfo — the
//! bytes between the PEM armour. It is what status reports as the verifying
//! key, and the same value cosign puts (base64-encoded) in a Sigstore
//! bundle's `publicKey.hint`, so `sha256sum` of the decoded PEM body
//! identifies a key file.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;

/// Why a public key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text holds no PEM `PUBLIC KEY` section.
    #[error("no PEM PUBLIC KEY section found")]
    NoPublicKey,
    /// The key is not an ECDSA P-256 key (cosign's default), or is malformed.
    #[error("the public key is not a valid ECDSA P-256 key (the only kind supported)")]
    Unsupported,
}

/// A trusted ECDSA P-256 public key.
#[derive(Clone)]
pub struct PublicKey {
    key: ParsedPublicKey,
    key_id: String,
}

impl PublicKey {
    /// Reads the first `PUBLIC KEY` section of PEM text (a `cosign.pub` file).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der =
            SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| KeyError::NoPublicKey)?;
        Self::from_der(der.as_ref())
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
            .map_err(|_| KeyError::Unsupported)?;
        Ok(Self {
            key,
            key_id: key_id(der),
        })
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `signature` (ASN.1 DER ECDSA) signs `message` (hashed with SHA-256).
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.key_id).finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
    }
}

impl Eq for PublicKey {}

fn key_id(der: &[u8]) -> String {
    let hash = digest(&SHA256, der);
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const KEY_A: &[u8] = include_bytes!("../../../tests/fixtures/cosign/key-a.pub");

    #[test]
    fn the_key_id_is_the_hash_cosign_uses_as_a_bundle_hint() {
        let key = PublicKey::from_pem(KEY_A).unwrap();
        // publicKey.hint of the Sigstore bundle cosign made with this key.
        let bundle: serde_json::Value = serde_json::from_slice(include_bytes!(
            "../../../tests/fixtures/cosign/blob-d1cd115b244cb0aba5f7b56c804b1079c760c9d16ceed1a8e63d75ae7f1f5488"
        ))
        .unwrap();
        let hint = bundle["verificationMaterial"]["publicKey"]["hint"]
            .as_str()
            .unwrap();
        let hint_hex: String = base64::engine::general_purpose::STANDARD
            .decode(hint)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(key.key_id(), format!("sha256:{hint_hex}"));
        assert_eq!(format!("{key:?}"), format!("PublicKey({:?})", key.key_id()));
    }

    #[test]
    fn other_text_and_other_key_types_are_refused() {
        assert_eq!(
            PublicKey::from_pem(b"not a key").unwrap_err(),
            KeyError::NoPublicKey
        );
        // An Ed25519 SubjectPublicKeyInfo: a valid key, but not P-256.
        let ed25519 = b"-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
            -----END PUBLIC KEY-----\n";
        assert_eq!(
            PublicKey::from_pem(ed25519).unwrap_err(),
            KeyError::Unsupported
        );
    }
}
