//! Checking one signature against trusted keys and the pinned image digest.
//!
//! Two envelopes carry cosign image signatures:
//!
//! - the **simple-signing payload**: JSON whose
//!   `critical.image.docker-manifest-digest` names the image, signed as is
//!   (ECDSA P-256 over SHA-256, DER signature in base64);
//! - the **Sigstore bundle** ([`crate::verify::bundle`]) with a **DSSE
//!   envelope**: an in-toto statement
//!   whose `subject[].digest` names the image and whose `predicateType` is
//!   `https://sigstore.dev/cosign/sign/v1`, signed over the DSSE
//!   pre-authentication encoding (PAE) of payload type and payload.
//!
//! The signature is checked first; only a payload a trusted key signed is
//! read. A verified payload that names another digest is a signature of
//! another image, never a match. Transparency-log entries are not checked
//! (as `cosign verify --insecure-ignore-tlog`): trust comes from the key.

use base64::Engine as _;
use serde::Deserialize;

use super::key::PublicKey;
use crate::verify::bundle::{self, Envelope};

/// The `critical.type` of a cosign image signature payload.
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// The predicate type of a cosign image signature in a DSSE envelope.
const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The DSSE payload type of an in-toto statement.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// What checking one signature found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// A trusted key signed the pinned digest.
    Verified {
        /// The key that verified.
        key_id: String,
    },
    /// No trusted key made this signature, or the payload was altered after signing.
    NotTrusted,
    /// A trusted key signed, but another image.
    OtherImage {
        /// The key that verified.
        key_id: String,
        /// The digest the payload names.
        signed: String,
    },
    /// Not an image signature that can be checked, and why.
    Unusable(String),
}

/// Checks a simple-signing payload and its base64 signature.
pub(super) fn check_simple_signing(
    keys: &[PublicKey],
    digest: &str,
    payload: &[u8],
    signature: &str,
) -> Check {
    let Some(signature) = decode_base64(signature) else {
        return Check::Unusable("the signature annotation is not base64".into());
    };
    let Some(key) = keys.iter().find(|k| k.verifies(payload, &signature)) else {
        return Check::NotTrusted;
    };
    match signed_image(payload) {
        Ok(signed) => signed_digest_check(key, digest, signed),
        Err(problem) => Check::Unusable(problem),
    }
}

/// The image digest a simple-signing payload names, once its signature verified.
pub(super) fn signed_image(payload: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Payload {
        critical: Critical,
    }
    #[derive(Deserialize)]
    struct Critical {
        #[serde(rename = "type")]
        type_: String,
        image: Image,
    }
    #[derive(Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let payload: Payload = serde_json::from_slice(payload)
        .map_err(|err| format!("the signed payload is not cosign's: {err}"))?;
    if !payload
        .critical
        .type_
        .eq_ignore_ascii_case(SIMPLE_SIGNING_TYPE)
    {
        return Err(format!(
            "the signed payload is of type {:?}, not a cosign image signature",
            payload.critical.type_
        ));
    }
    Ok(payload.critical.image.digest)
}

/// Checks a Sigstore bundle holding a DSSE envelope, signed by a trusted key.
pub(super) fn check_bundle(keys: &[PublicKey], digest: &str, bytes: &[u8]) -> Check {
    let bundle = match bundle::parse(bytes) {
        Ok(bundle) => bundle,
        Err(err) => return Check::Unusable(err.to_string()),
    };
    let envelope = match bundle::envelope(&bundle) {
        Ok(envelope) => envelope,
        Err(problem) => return Check::Unusable(problem.into()),
    };
    let pae = pre_authentication_encoding(&envelope.payload_type, &envelope.payload);
    let verified = envelope
        .signatures
        .iter()
        .find_map(|signature| keys.iter().find(|k| k.verifies(&pae, signature)));
    let Some(key) = verified else {
        return Check::NotTrusted;
    };
    check_statement(key.key_id().to_string(), digest, envelope)
}

/// Once `signer` is known to have signed `envelope`: whether its in-toto
/// statement is a cosign image signature of `digest`.
pub(super) fn check_statement(signer: String, digest: &str, envelope: &Envelope) -> Check {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Check::Unusable(format!(
            "the DSSE payload is {:?}, not an in-toto statement",
            envelope.payload_type
        ));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Statement {
        predicate_type: String,
        #[serde(default)]
        subject: Vec<Subject>,
    }
    #[derive(Deserialize)]
    struct Subject {
        #[serde(default)]
        digest: std::collections::BTreeMap<String, String>,
    }
    let statement: Statement = match serde_json::from_slice(&envelope.payload) {
        Ok(statement) => statement,
        Err(err) => return Check::Unusable(format!("the signed statement is not in-toto: {err}")),
    };
    if statement.predicate_type != SIGN_PREDICATE_TYPE {
        return Check::Unusable(format!(
            "an attestation ({}), not a signature",
            statement.predicate_type
        ));
    }
    let signed: Vec<String> = statement
        .subject
        .iter()
        .flat_map(|s| s.digest.iter().map(|(alg, hex)| format!("{alg}:{hex}")))
        .collect();
    if signed.iter().any(|s| s == digest) {
        return Check::Verified { key_id: signer };
    }
    Check::OtherImage {
        key_id: signer,
        signed: if signed.is_empty() {
            "no image".into()
        } else {
            signed.join(", ")
        },
    }
}

fn signed_digest_check(key: &PublicKey, digest: &str, signed: String) -> Check {
    if signed == digest {
        Check::Verified {
            key_id: key.key_id().to_string(),
        }
    } else {
        Check::OtherImage {
            key_id: key.key_id().to_string(),
            signed,
        }
    }
}

/// DSSE v1 PAE: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub(crate) fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// Base64 as cosign and the Sigstore bundle JSON write it: standard, padded or not.
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_dsse_v1_encoding() {
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn base64_with_and_without_padding() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("!!"), None);
    }
}
