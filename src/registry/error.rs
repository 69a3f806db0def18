//! Errors of registry operations: one variant per way an operation fails, each
//! with its context, a PascalCase `reason()` and whether retrying later may help.
//! No message carries a credential, a token or a URL query (signed URLs).

use super::auth::challenge::ChallengeError;
use super::digest::Digest;
use super::manifest::ManifestError;

/// A failed registry operation.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{operation} on {host}: {message}")]
    Transport {
        operation: &'static str,
        host: String,
        message: String,
        transient: bool,
    },
    /// The TLS handshake failed: an untrusted or wrong certificate, or a peer
    /// that does not speak TLS. Retrying cannot help until something changes.
    #[error("{operation} on {host}: TLS: {message}")]
    Tls {
        operation: &'static str,
        host: String,
        message: String,
    },
    #[error("{operation} on {host} answered HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        operation: &'static str,
        host: String,
        status: u16,
        detail: Option<String>,
    },
    #[error("authenticating to {host}: {message}")]
    Auth {
        host: String,
        message: String,
        transient: bool,
    },
    /// The credential source failed with a reason of its own (e.g. the
    /// operator has no AWS credentials: `AWSCredentialsMissing`).
    #[error("authenticating to {host}: {message}")]
    CredentialSource {
        host: String,
        reason: &'static str,
        message: String,
        transient: bool,
    },
    /// Credentials were not sent where the rules forbid it (a token realm on
    /// another host, plain HTTP); `message` says what would allow it.
    #[error("credentials for {host} not sent: {message}")]
    CredentialsNotAllowed { host: String, message: String },
    #[error("authenticating to {host}: {source}")]
    Challenge {
        host: String,
        source: ChallengeError,
    },
    /// `at` is `host/repository`.
    #[error("{at}: {source}")]
    Manifest { at: String, source: ManifestError },
    #[error("{at}: content for {expected} hashed to {actual}; nothing was committed")]
    DigestMismatch {
        at: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{at}: {digest} is {actual} bytes but its descriptor says {declared}; nothing was committed"
    )]
    SizeMismatch {
        at: String,
        digest: Digest,
        declared: u64,
        actual: u64,
    },
    #[error("{host}: {operation} sent a Location outside the registry ({location_host}); refused")]
    ForeignLocation {
        operation: &'static str,
        host: String,
        location_host: String,
    },
    #[error("{host}: {operation} answered without a usable Location header")]
    MissingLocation {
        operation: &'static str,
        host: String,
    },
    /// The closing `PUT` of an upload found its session gone (404) and the
    /// blob is not in the repository either: the upload starts again.
    #[error(
        "{at}: the upload session for {digest} was gone when it was closed, and the blob is not there; it is uploaded again"
    )]
    UploadSessionLost { at: String, digest: Digest },
    #[error("copy stopped: {0}")]
    Cancelled(String),
}

impl RegistryError {
    /// PascalCase reason, reused as condition reason, event reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Transport { .. } => "RegistryUnreachable",
            RegistryError::Tls { .. } => "TLSError",
            RegistryError::Status { status: 401, .. } => "RegistryUnauthorized",
            RegistryError::Status { status: 403, .. } => "RegistryForbidden",
            RegistryError::Status { status: 404, .. } => "NotFound",
            RegistryError::Status { status: 429, .. } => "RegistryThrottled",
            RegistryError::Status { .. } => "RegistryError",
            RegistryError::Auth { .. } | RegistryError::Challenge { .. } => "RegistryAuthFailed",
            RegistryError::CredentialsNotAllowed { .. } => "CredentialsNotAllowed",
            RegistryError::CredentialSource { reason, .. } => reason,
            RegistryError::Manifest { .. } => "ManifestRefused",
            RegistryError::DigestMismatch { .. } => "DigestMismatch",
            RegistryError::SizeMismatch { .. } => "SizeMismatch",
            RegistryError::ForeignLocation { .. } | RegistryError::MissingLocation { .. } => {
                "RegistryProtocolError"
            }
            RegistryError::UploadSessionLost { .. } => "UploadSessionLost",
            RegistryError::Cancelled(_) => "Cancelled",
        }
    }

    /// True when the same operation may succeed later without a change of spec.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { transient, .. }
            | RegistryError::Auth { transient, .. }
            | RegistryError::CredentialSource { transient, .. } => *transient,
            RegistryError::Status { status, .. } => super::retry::is_retryable_status(*status),
            // Wrong bytes are read again a bounded number of times where they
            // are read (manifests: the client; blobs: the engine); what is
            // still wrong after that waits for the source to change.
            RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => false,
            RegistryError::Cancelled(_) | RegistryError::UploadSessionLost { .. } => true,
            _ => false,
        }
    }

    /// True for "this does not exist" answers.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Status { status: 404, .. })
    }

    pub(crate) fn transport(operation: &'static str, host: &str, error: reqwest::Error) -> Self {
        let tls = is_tls_failure(&error);
        // A body that breaks mid-stream surfaces as a decode error in reqwest.
        let transient = error.is_timeout()
            || error.is_connect()
            || error.is_request()
            || error.is_body()
            || error.is_decode();
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if tls {
            return RegistryError::Tls {
                operation,
                host: host.to_string(),
                message,
            };
        }
        RegistryError::Transport {
            operation,
            host: host.to_string(),
            message,
            transient,
        }
    }
}

/// True when a rustls error (a refused certificate, a failed handshake) is
/// among the causes, bare or inside an I/O error.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<rustls::Error>() {
            return true;
        }
        // An I/O error hides what it wraps from `source()`.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_small_enough_to_return_by_value() {
        assert!(
            std::mem::size_of::<RegistryError>() <= 128,
            "{}",
            std::mem::size_of::<RegistryError>()
        );
    }

    #[test]
    fn reasons_and_transience() {
        let status = |status| RegistryError::Status {
            operation: "GET manifest",
            host: "r".into(),
            status,
            detail: None,
        };
        assert_eq!(status(404).reason(), "NotFound");
        assert!(!status(404).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert_eq!(status(403).reason(), "RegistryForbidden");
        assert!(!status(401).is_transient());
        let text = status(500).to_string();
        assert_eq!(text, "GET manifest on r answered HTTP 500");
    }
}
