//! The operator's attestation key, named the way cosign names keys:
//!
//! - `k8s://NAMESPACE/NAME`: a Secret as `cosign generate-key-pair k8s://…`
//!   writes it (`cosign.key`, encrypted; `cosign.password`; `cosign.pub`);
//! - `awskms:///alias/NAME` (or a key id / ARN, optionally with an
//!   endpoint `awskms://HOST/…`): an ECC_NIST_P256 KMS key, signing through
//!   the AWS SDK;
//! - anything else: a path to a cosign key file, its password in
//!   `COSIGN_PASSWORD` (empty when unset), as cosign reads it.
//!
//! cosign's encrypted private key is a PEM section (`ENCRYPTED SIGSTORE
//! PRIVATE KEY`, older `ENCRYPTED COSIGN PRIVATE KEY`) holding JSON: a scrypt
//! key derivation (`N`, `r`, `p`, salt) and a NaCl secretbox (nonce,
//! ciphertext) around the PKCS#8 DER of an ECDSA P-256 key. Decryption is
//! [`decrypt_cosign_key`]; the rest of the module turns a reference into a
//! [`SigningKey`] that signs ASN.1 ECDSA P-256 over SHA-256, as cosign verifies.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::Deserialize;

/// Why the attestation key cannot be used. Messages never hold key material
/// or passwords.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The reference names no key cosign would understand.
    #[error("attestation key {0:?}: expected k8s://NAMESPACE/NAME, awskms:///KEY or a file path")]
    BadReference(String),
    /// The key file cannot be read.
    #[error("reading attestation key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The Secret cannot be read.
    #[error("reading attestation key Secret {reference}: {message}")]
    Secret {
        /// The reference.
        reference: String,
        /// Why (the API's answer).
        message: String,
    },
    /// The key material is not a cosign key.
    #[error("attestation key {reference}: {message}")]
    Invalid {
        /// The reference.
        reference: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// KMS refused or failed.
    #[error("attestation key {reference}: AWS KMS {operation}: {message}")]
    Kms {
        /// The reference.
        reference: String,
        /// The operation.
        operation: &'static str,
        /// The service's answer.
        message: String,
    },
}

impl KeyError {
    /// Whether trying again later may succeed (KMS or the apiserver being away).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Kms { .. } | Self::Secret { .. })
    }
}

/// Where the key is, parsed from `--attestation-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyReference {
    /// A Secret `cosign generate-key-pair k8s://NAMESPACE/NAME` wrote.
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An AWS KMS key.
    AwsKms {
        /// `HOST` of `awskms://HOST/…`, when given.
        endpoint: Option<String>,
        /// The key id, ARN or `alias/…`.
        key: String,
    },
    /// A cosign key file.
    File(String),
}

impl KeyReference {
    /// Parses a reference as cosign's `--key` takes it.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadReference(text.to_string());
        if let Some(rest) = text.strip_prefix("k8s://") {
            let (namespace, name) = rest.split_once('/').ok_or_else(bad)?;
            let valid = |s: &str| {
                !s.is_empty()
                    && s.len() <= 253
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    })
            };
            if !valid(namespace) || !valid(name) {
                return Err(bad());
            }
            return Ok(Self::Secret {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        if let Some(rest) = text.strip_prefix("awskms://") {
            let (host, key) = rest.split_once('/').ok_or_else(bad)?;
            if key.is_empty() {
                return Err(bad());
            }
            return Ok(Self::AwsKms {
                endpoint: (!host.is_empty()).then(|| host.to_string()),
                key: key.to_string(),
            });
        }
        if text.is_empty() || text.contains("://") {
            return Err(bad());
        }
        Ok(Self::File(text.to_string()))
    }
}

impl fmt::Display for KeyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret { namespace, name } => write!(f, "k8s://{namespace}/{name}"),
            Self::AwsKms { endpoint, key } => {
                write!(f, "awskms://{}/{key}", endpoint.as_deref().unwrap_or(""))
            }
            Self::File(path) => f.write_str(path),
        }
    }
}

/// A key that signs receipts.
pub enum SigningKey {
    /// A decrypted cosign key held in memory.
    Local(Box<EcdsaKeyPair>),
    /// A KMS key: each signature is a KMS `Sign` call.
    Kms {
        /// The client.
        client: aws_sdk_kms::Client,
        /// The key id, ARN or alias.
        key: String,
        /// The DER SubjectPublicKeyInfo KMS reported.
        public: Vec<u8>,
        /// The reference, for messages.
        reference: String,
    },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(_) => f.write_str("SigningKey::Local"),
            Self::Kms { reference, .. } => write!(f, "SigningKey::Kms({reference})"),
        }
    }
}

/// The largest message KMS signs as is (`MessageType=RAW`); longer ones are
/// sent as their SHA-256 (`DIGEST`).
const KMS_RAW_LIMIT: usize = 4096;

impl SigningKey {
    /// The key of a cosign private key file's PEM text and its password.
    pub fn from_cosign_pem(pem: &[u8], password: &[u8], reference: &str) -> Result<Self, KeyError> {
        let der = decrypt_cosign_key(pem, password).map_err(|message| KeyError::Invalid {
            reference: reference.into(),
            message,
        })?;
        Self::from_pkcs8(&der, reference)
    }

    /// The key of an unencrypted PKCS#8 DER ECDSA P-256 key.
    pub fn from_pkcs8(der: &[u8], reference: &str) -> Result<Self, KeyError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map(|pair| Self::Local(Box::new(pair)))
            .map_err(|_| KeyError::Invalid {
                reference: reference.into(),
                message:
                    "not an ECDSA P-256 private key (cosign's default kind, the only one supported)"
                        .into(),
            })
    }

    /// A KMS key, its public key read once (GetPublicKey).
    pub async fn kms(
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        key: &str,
        reference: &str,
    ) -> Result<Self, KeyError> {
        let mut config = aws_sdk_kms::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(format!("https://{endpoint}"));
        }
        let client = aws_sdk_kms::Client::from_conf(config.build());
        let answer = client
            .get_public_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| KeyError::Kms {
                reference: reference.into(),
                operation: "GetPublicKey",
                message: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
            })?;
        let public = answer
            .public_key
            .map(|b| b.into_inner())
            .unwrap_or_default();
        if aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public).is_err() {
            return Err(KeyError::Invalid {
                reference: reference.into(),
                message: "the KMS key is not an ECC_NIST_P256 signing key".into(),
            });
        }
        Ok(Self::Kms {
            client,
            key: key.into(),
            public,
            reference: reference.into(),
        })
    }

    /// Signs `message`: ASN.1 DER ECDSA P-256 over its SHA-256.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Local(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Invalid {
                    reference: "local key".into(),
                    message: "signing failed".into(),
                }),
            Self::Kms {
                client,
                key,
                reference,
                ..
            } => {
                use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
                let (kind, body) = if message.len() <= KMS_RAW_LIMIT {
                    (MessageType::Raw, message.to_vec())
                } else {
                    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
                    (MessageType::Digest, hash.as_ref().to_vec())
                };
                let answer = client
                    .sign()
                    .key_id(key)
                    .message(aws_sdk_kms::primitives::Blob::new(body))
                    .message_type(kind)
                    .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                    .send()
                    .await
                    .map_err(|e| KeyError::Kms {
                        reference: reference.clone(),
                        operation: "Sign",
                        message: aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
                    })?;
                Ok(answer.signature.map(|b| b.into_inner()).unwrap_or_default())
            }
        }
    }

    /// The public key, DER SubjectPublicKeyInfo.
    pub fn public_der(&self) -> Vec<u8> {
        match self {
            Self::Local(pair) => {
                use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
                let der: PublicKeyX509Der<'_> =
                    pair.public_key().as_der().expect("a P-256 key encodes");
                der.as_ref().to_vec()
            }
            Self::Kms { public, .. } => public.clone(),
        }
    }

    /// The key's hint in a Sigstore bundle, as cosign writes it: the base64
    /// SHA-256 of its DER form.
    pub fn hint(&self) -> String {
        use base64::Engine as _;
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.public_der());
        base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
    }

    /// Whether `signature` over `message` was made by this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Local(pair) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref())
                    .verify(message, signature)
                    .is_ok()
            }
            Self::Kms { public, .. } => {
                aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public)
                    .is_ok_and(|k| k.verify_sig(message, signature).is_ok())
            }
        }
    }
}

/// The PKCS#8 DER inside a cosign encrypted private key (PEM text), or what
/// is wrong with it. A wrong password is told apart from a damaged key.
pub fn decrypt_cosign_key(pem: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the key file is not PEM text".to_string())?;
    let body = ["ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"]
        .iter()
        .find_map(|label| pem_section(text, label))
        .ok_or_else(|| {
            "no ENCRYPTED SIGSTORE PRIVATE KEY section: expected a key written by cosign generate-key-pair".to_string()
        })?;
    #[derive(Deserialize)]
    struct Encrypted {
        kdf: Kdf,
        cipher: Cipher,
        ciphertext: String,
    }
    #[derive(Deserialize)]
    struct Kdf {
        name: String,
        params: ScryptParams,
        salt: String,
    }
    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    struct ScryptParams {
        N: u64,
        r: u32,
        p: u32,
    }
    #[derive(Deserialize)]
    struct Cipher {
        name: String,
        nonce: String,
    }
    let encrypted: Encrypted = serde_json::from_slice(&body)
        .map_err(|e| format!("the encrypted key is not cosign's JSON: {e}"))?;
    if encrypted.kdf.name != "scrypt" || encrypted.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "unsupported key encryption {} / {} (cosign writes scrypt / nacl/secretbox)",
            encrypted.kdf.name, encrypted.cipher.name
        ));
    }
    let b64 = |s: &str, what: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| format!("the key's {what} is not base64"))
    };
    let salt = b64(&encrypted.kdf.salt, "salt")?;
    let nonce = b64(&encrypted.cipher.nonce, "nonce")?;
    let ciphertext = b64(&encrypted.ciphertext, "ciphertext")?;
    let n = encrypted.kdf.params.N;
    // cosign writes N = 2^16; more than 2^20 would take more than a
    // gigabyte of memory to derive: refused.
    if !n.is_power_of_two()
        || !(2..=1 << 20).contains(&n)
        || encrypted.kdf.params.r > 32
        || encrypted.kdf.params.p > 16
    {
        return Err(format!(
            "scrypt parameters N={n} r={} p={} are outside what cosign writes",
            encrypted.kdf.params.r, encrypted.kdf.params.p
        ));
    }
    let params = scrypt::Params::new(
        n.trailing_zeros() as u8,
        encrypted.kdf.params.r,
        encrypted.kdf.params.p,
        32,
    )
    .map_err(|e| format!("invalid scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).map_err(|e| format!("scrypt: {e}"))?;
    if nonce.len() != 24 {
        return Err("the key's nonce is not 24 bytes".into());
    }
    XSalsa20Poly1305::new(&key.into())
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_ref())
        .map_err(|_| {
            "cannot decrypt the private key: wrong password (cosign.password) or a damaged key"
                .to_string()
        })
}

/// The decoded body of the first PEM section labelled `label`.
fn pem_section(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The DER SubjectPublicKeyInfo of a PEM `PUBLIC KEY` (a `cosign.pub`).
pub fn public_key_der(pem: &[u8]) -> Option<Vec<u8>> {
    SubjectPublicKeyInfoDer::from_pem_slice(pem)
        .ok()
        .map(|d| d.as_ref().to_vec())
}

/// A PKCS#8 private key PEM (unencrypted), for tests and tooling.
pub fn pkcs8_from_pem(pem: &[u8]) -> Option<Vec<u8>> {
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .ok()
        .map(|d| d.secret_pkcs8_der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_cosign_names_keys() {
        let cases = [
            (
                "k8s://promoter/receipt-key",
                Some(KeyReference::Secret {
                    namespace: "promoter".into(),
                    name: "receipt-key".into(),
                }),
            ),
            (
                "awskms:///alias/promoter",
                Some(KeyReference::AwsKms {
                    endpoint: None,
                    key: "alias/promoter".into(),
                }),
            ),
            (
                "awskms://localhost:4566/alias/promoter",
                Some(KeyReference::AwsKms {
                    endpoint: Some("localhost:4566".into()),
                    key: "alias/promoter".into(),
                }),
            ),
            (
                "/etc/promoter/cosign.key",
                Some(KeyReference::File("/etc/promoter/cosign.key".into())),
            ),
            ("k8s://only-namespace", None),
            ("k8s://Upper/name", None),
            ("k8s:///name", None),
            ("awskms:///", None),
            ("gcpkms://projects/x", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = KeyReference::parse(text).ok();
            assert_eq!(parsed, expected, "{text}");
            if let Some(parsed) = parsed {
                assert_eq!(parsed.to_string(), text);
            }
        }
    }

    #[test]
    fn damaged_or_foreign_key_text_is_refused_with_a_reason() {
        let err = decrypt_cosign_key(
            b"-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n",
            b"",
        )
        .unwrap_err();
        assert!(err.contains("ENCRYPTED SIGSTORE PRIVATE KEY"), "{err}");
        let body = base64::engine::general_purpose::STANDARD.encode(
            br#"{"kdf":{"name":"scrypt","params":{"N":4294967296,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"AA=="},"ciphertext":"AA=="}"#,
        );
        let pem = format!(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        );
        let err = decrypt_cosign_key(pem.as_bytes(), b"").unwrap_err();
        assert!(err.contains("scrypt parameters"), "{err}");
    }

    const FIXTURE_KEY: &[u8] = include_bytes!("../../tests/fixtures/receipt/cosign.key");
    const FIXTURE_PUB: &[u8] = include_bytes!("../../tests/fixtures/receipt/cosign.pub");

    #[tokio::test]
    async fn a_key_cosign_generated_decrypts_with_its_password_and_matches_its_public_key() {
        // tests/fixtures/receipt: `cosign generate-key-pair`, password "fixture-password".
        let key = SigningKey::from_cosign_pem(FIXTURE_KEY, b"fixture-password", "fixture").unwrap();
        let SigningKey::Local(pair) = &key else {
            panic!("a local key")
        };
        let spki = public_key_der(FIXTURE_PUB).unwrap();
        assert!(
            spki.ends_with(pair.public_key().as_ref()),
            "cosign.pub is this key's"
        );
        let signature = key.sign(b"receipt").await.unwrap();
        let public =
            aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki).unwrap();
        assert!(public.verify_sig(b"receipt", &signature).is_ok());

        let wrong = SigningKey::from_cosign_pem(FIXTURE_KEY, b"other", "fixture").unwrap_err();
        let message = wrong.to_string();
        assert!(message.contains("wrong password"), "{message}");
        assert!(
            !message.contains("other"),
            "no password in messages: {message}"
        );
    }

    #[tokio::test]
    async fn a_local_key_signs_what_it_verifies() {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = SigningKey::from_pkcs8(der.as_ref(), "test").unwrap();
        let signature = key.sign(b"payload").await.unwrap();
        assert!(key.verifies(b"payload", &signature));
        assert!(!key.verifies(b"payloae", &signature));
    }
}
