//! A Sigstore trusted root: the certificate authorities (Fulcio) whose
//! certificates are accepted and the transparency logs (Rekor) whose entries
//! prove when something was signed.
//!
//! The input is Sigstore's `trusted_root.json` (the protobuf-specs
//! `TrustedRoot` message in its JSON form), as `cosign trusted-root create`
//! writes it and the public-good TUF repository ships it. Only
//! `certificateAuthorities` and `tlogs` are read; timestamp authorities and
//! CT logs are not used. The root is data the user provides: nothing here
//! fetches anything.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519, ParsedPublicKey,
};
use base64::Engine as _;
use k8s_openapi::jiff::Timestamp;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

/// Largest `trusted_root.json` read (the public-good one is ~6 KiB).
pub const MAX_TRUSTED_ROOT: usize = 1 << 20;

/// A period during which a key or authority is trusted: `[start, end)`, open-ended without `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First instant.
    pub start: Timestamp,
    /// First instant after it, if it ends.
    pub end: Option<Timestamp>,
}

impl Window {
    /// Whether `at` falls in the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && self.end.is_none_or(|end| at < end)
    }
}

/// A certificate authority: its chain, root last.
#[derive(Clone, Debug)]
pub struct CertificateAuthority {
    /// How messages name it: its `uri`, else its subject's organization and common name.
    pub name: String,
    /// DER certificates, the issuing one first and the root last.
    pub chain: Vec<CertificateDer<'static>>,
    /// When it issues trusted certificates.
    pub valid_for: Window,
}

/// A transparency log and the key its signed entry timestamps are made with.
#[derive(Clone)]
pub struct TransparencyLog {
    /// Its `baseUrl`, for messages.
    pub base_url: String,
    /// Its log id: SHA-256 of its DER public key, as Rekor names it.
    pub log_id: Vec<u8>,
    /// Its public key.
    pub key: ParsedPublicKey,
    /// When its key is trusted.
    pub valid_for: Window,
}

impl std::fmt::Debug for TransparencyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransparencyLog")
            .field("base_url", &self.base_url)
            .field("log_id", &hex(&self.log_id))
            .finish()
    }
}

/// The parsed trusted root.
#[derive(Clone, Debug)]
pub struct TrustedRoot {
    /// The certificate authorities.
    pub authorities: Vec<CertificateAuthority>,
    /// The transparency logs.
    pub logs: Vec<TransparencyLog>,
    /// `sha256:<hex>` of the JSON it was read from: names this root in
    /// verdict fingerprints, so another root means another verdict.
    pub digest: String,
}

/// Why a trusted root cannot be used; the text names the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a usable Sigstore trusted_root.json: {0}")]
pub struct RootError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    #[serde(default)]
    certificate_authorities: Vec<AuthorityJson>,
    #[serde(default)]
    tlogs: Vec<LogJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorityJson {
    #[serde(default)]
    subject: Option<SubjectJson>,
    #[serde(default)]
    uri: Option<String>,
    cert_chain: ChainJson,
    valid_for: WindowJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectJson {
    #[serde(default)]
    organization: String,
    #[serde(default)]
    common_name: String,
}

#[derive(Deserialize)]
struct ChainJson {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct WindowJson {
    start: String,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    #[serde(default)]
    base_url: String,
    public_key: LogKeyJson,
    log_id: LogIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogKeyJson {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    valid_for: WindowJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

impl TrustedRoot {
    /// Reads `trusted_root.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RootError> {
        if bytes.len() > MAX_TRUSTED_ROOT {
            return Err(RootError(format!(
                "{} bytes, more than the {MAX_TRUSTED_ROOT} a trusted root can be",
                bytes.len()
            )));
        }
        let json: RootJson = serde_json::from_slice(bytes).map_err(|e| RootError(e.to_string()))?;
        let authorities = json
            .certificate_authorities
            .into_iter()
            .enumerate()
            .map(|(index, ca)| authority(index, ca))
            .collect::<Result<Vec<_>, _>>()?;
        let logs = json
            .tlogs
            .into_iter()
            .enumerate()
            .map(|(index, log)| transparency_log(index, log))
            .collect::<Result<Vec<_>, _>>()?;
        if authorities.is_empty() {
            return Err(RootError(
                "it lists no certificateAuthorities, so no certificate can chain to it".into(),
            ));
        }
        if logs.is_empty() {
            return Err(RootError(
                "it lists no tlogs, so no signing time can be proven".into(),
            ));
        }
        Ok(Self {
            authorities,
            logs,
            digest: format!("sha256:{}", hex(digest(&SHA256, bytes).as_ref())),
        })
    }

    /// The log whose id is `log_id`.
    pub fn log(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.logs.iter().find(|log| log.log_id == log_id)
    }
}

fn authority(index: usize, ca: AuthorityJson) -> Result<CertificateAuthority, RootError> {
    let field = format!("certificateAuthorities[{index}]");
    let chain = ca
        .cert_chain
        .certificates
        .iter()
        .map(|c| decode_base64(&c.raw_bytes).map(CertificateDer::from))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| RootError(format!("{field}.certChain: a certificate is not base64")))?;
    if chain.is_empty() {
        return Err(RootError(format!("{field}.certChain has no certificate")));
    }
    if let Some(bad) = chain
        .iter()
        .position(|c| webpki::anchor_from_trusted_cert(c).is_err())
    {
        return Err(RootError(format!(
            "{field}.certChain.certificates[{bad}] is not an X.509 certificate"
        )));
    }
    let name = match (ca.uri, ca.subject) {
        (Some(uri), _) if !uri.is_empty() => uri,
        (_, Some(s)) => format!("{} {}", s.organization, s.common_name)
            .trim()
            .to_string(),
        _ => field.clone(),
    };
    Ok(CertificateAuthority {
        name,
        chain,
        valid_for: window(&format!("{field}.validFor"), &ca.valid_for)?,
    })
}

fn transparency_log(index: usize, log: LogJson) -> Result<TransparencyLog, RootError> {
    let field = format!("tlogs[{index}]");
    let der = decode_base64(&log.public_key.raw_bytes)
        .ok_or_else(|| RootError(format!("{field}.publicKey.rawBytes is not base64")))?;
    let algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match log
        .public_key
        .key_details
        .as_str()
    {
        "PKIX_ECDSA_P256_SHA_256" | "ECDSA_P256_SHA_256" | "" => &ECDSA_P256_SHA256_ASN1,
        "PKIX_ECDSA_P384_SHA_384" | "ECDSA_P384_SHA_384" => &ECDSA_P384_SHA384_ASN1,
        "PKIX_ED25519" | "ED25519" => &ED25519,
        other => {
            return Err(RootError(format!(
                "{field}.publicKey.keyDetails {other:?} is not supported (PKIX_ECDSA_P256_SHA_256, \
                     PKIX_ECDSA_P384_SHA_384 or PKIX_ED25519)"
            )));
        }
    };
    let key = ParsedPublicKey::new(algorithm, &der).map_err(|_| {
        RootError(format!(
            "{field}.publicKey.rawBytes is not a {} public key",
            if log.public_key.key_details.is_empty() {
                "PKIX_ECDSA_P256_SHA_256"
            } else {
                &log.public_key.key_details
            }
        ))
    })?;
    let log_id = decode_base64(&log.log_id.key_id)
        .ok_or_else(|| RootError(format!("{field}.logId.keyId is not base64")))?;
    Ok(TransparencyLog {
        base_url: log.base_url,
        log_id,
        key,
        valid_for: window(
            &format!("{field}.publicKey.validFor"),
            &log.public_key.valid_for,
        )?,
    })
}

fn window(field: &str, json: &WindowJson) -> Result<Window, RootError> {
    let time = |text: &str| {
        text.parse::<Timestamp>()
            .map_err(|e| RootError(format!("{field}: {text:?} is not an RFC 3339 time: {e}")))
    };
    Ok(Window {
        start: time(&json.start)?,
        end: json.end.as_deref().map(time).transpose()?,
    })
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64 as Sigstore JSON writes it: standard, padded or not.
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}
