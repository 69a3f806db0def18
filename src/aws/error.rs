//! What went wrong in an AWS call, reduced to what the controller acts on.
//!
//! The SDK already retried throttling, 5xx and connection errors (standard
//! retry mode). What reaches us is sorted into a few kinds: those the
//! controller retries later ([`AwsErrorKind::is_transient`]) and those that
//! need the world or the object to change. The classification is a pure
//! function of the error code and HTTP status, so it is table-tested.
//!
//! Messages carry the AWS error code and message, never request headers, so
//! no credential or signature reaches a condition or a log.

use std::fmt;

use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::api::reasons;

/// How an AWS call failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The repository, image or registry does not exist (permanent).
    NotFound,
    /// The identity is known but not allowed to do this (403; permanent).
    AccessDenied,
    /// The credentials were refused: unknown, expired or badly signed (401; permanent).
    AuthenticationFailed,
    /// AWS asked to slow down (429, throttling codes; transient).
    Throttled,
    /// AWS or the network failed: 5xx, timeouts, connection errors (transient).
    Unavailable,
    /// The request was refused as invalid, or a limit was hit (permanent).
    Rejected,
    /// The operator has no AWS credentials to sign with, or its credential
    /// provider refused to hand any out (permanent: the deployment must change).
    CredentialsMissing,
}

/// The reason for an operator without usable AWS credentials.
pub const AWS_CREDENTIALS_MISSING: &str = "AWSCredentialsMissing";

impl AwsErrorKind {
    /// Whether retrying later may succeed without anything changing.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable)
    }

    /// The API reason for this kind, when one fits regardless of the operation.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::AccessDenied => Some(reasons::ACCESS_DENIED),
            Self::AuthenticationFailed => Some(reasons::AUTHENTICATION_FAILED),
            Self::CredentialsMissing => Some(AWS_CREDENTIALS_MISSING),
            Self::Throttled | Self::Unavailable => Some(reasons::REGISTRY_UNAVAILABLE),
            Self::NotFound | Self::Rejected => None,
        }
    }
}

const NOT_FOUND: &[&str] = &[
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "RegistryNotFoundException",
    "ScanNotFoundException",
    "RepositoryCatalogDataNotFoundException",
    "ReferencedImagesNotFoundException",
];
const ACCESS_DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnauthorizedException",
];
const AUTHENTICATION_FAILED: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
];
const THROTTLED: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];
const UNAVAILABLE: &[&str] = &[
    "ServerException",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Classifies a service error by its code, then by its HTTP status.
pub fn classify(code: Option<&str>, status: Option<u16>) -> AwsErrorKind {
    if let Some(code) = code {
        let tables = [
            (NOT_FOUND, AwsErrorKind::NotFound),
            (ACCESS_DENIED, AwsErrorKind::AccessDenied),
            (AUTHENTICATION_FAILED, AwsErrorKind::AuthenticationFailed),
            (THROTTLED, AwsErrorKind::Throttled),
            (UNAVAILABLE, AwsErrorKind::Unavailable),
        ];
        if let Some((_, kind)) = tables.iter().find(|(codes, _)| codes.contains(&code)) {
            return *kind;
        }
    }
    match status {
        Some(401) => AwsErrorKind::AuthenticationFailed,
        Some(403) => AwsErrorKind::AccessDenied,
        Some(404) => AwsErrorKind::NotFound,
        Some(408 | 429) => AwsErrorKind::Throttled,
        Some(500..=599) => AwsErrorKind::Unavailable,
        _ => AwsErrorKind::Rejected,
    }
}

/// Classifies a request that never got an answer from AWS by what the SDK
/// said: no credentials (none configured, or the provider chain refused)
/// is permanent; a timeout or a connection failure is transient.
pub fn classify_unsent(message: &str) -> AwsErrorKind {
    let message = message.to_ascii_lowercase();
    let timed_out = message.contains("timed out") || message.contains("timeout");
    let about_credentials = message.contains("credential")
        || message.contains("identity resolver")
        || message.contains("no auth scheme")
        || message.contains("failed to select an auth scheme");
    if about_credentials && !timed_out {
        AwsErrorKind::CredentialsMissing
    } else {
        AwsErrorKind::Unavailable
    }
}

/// One failed AWS call: its kind, the AWS error code and a credential-free message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsFailure {
    kind: AwsErrorKind,
    code: Option<String>,
    message: String,
}

impl AwsFailure {
    /// A failure of the given kind (for answers that are not SDK errors, such as an empty result).
    pub fn new(kind: AwsErrorKind, code: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.map(str::to_string),
            message: message.into(),
        }
    }

    /// Reduces an SDK error (of ECR or ECR Public; they share the type) to a failure.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::ServiceError(context) => {
                let code = context.err().code();
                let status = context.raw().status().as_u16();
                let message = context
                    .err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                Self {
                    kind: classify(code, Some(status)),
                    code: code.map(str::to_string),
                    message,
                }
            }
            SdkError::ConstructionFailure(_) => Self {
                kind: AwsErrorKind::Rejected,
                code: None,
                message: DisplayErrorContext(err).to_string(),
            },
            // Timeouts, connection failures and unparseable responses; or no
            // credentials to sign the request with.
            _ => {
                let message = DisplayErrorContext(err).to_string();
                Self {
                    kind: classify_unsent(&message),
                    code: None,
                    message,
                }
            }
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> AwsErrorKind {
        self.kind
    }

    /// The AWS error code, e.g. `RepositoryNotFoundException`.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// Whether the AWS error code is `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for AwsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AwsFailure {}

#[cfg(test)]
mod tests {
    use super::*;
    use AwsErrorKind::*;

    #[test]
    fn codes_and_statuses_are_classified() {
        let cases = [
            (Some("RepositoryNotFoundException"), Some(400), NotFound),
            (Some("ImageNotFoundException"), Some(400), NotFound),
            (Some("RegistryNotFoundException"), Some(400), NotFound),
            (Some("ScanNotFoundException"), Some(400), NotFound),
            (Some("AccessDeniedException"), Some(400), AccessDenied),
            (None, Some(403), AccessDenied),
            (
                Some("UnrecognizedClientException"),
                Some(400),
                AuthenticationFailed,
            ),
            (
                Some("ExpiredTokenException"),
                Some(400),
                AuthenticationFailed,
            ),
            (
                Some("InvalidSignatureException"),
                Some(403),
                AuthenticationFailed,
            ),
            (None, Some(401), AuthenticationFailed),
            (Some("ThrottlingException"), Some(400), Throttled),
            (Some("TooManyRequestsException"), Some(400), Throttled),
            (None, Some(429), Throttled),
            (None, Some(408), Throttled),
            (Some("ServerException"), Some(500), Unavailable),
            (Some("SomethingNew"), Some(503), Unavailable),
            (None, Some(502), Unavailable),
            (Some("InvalidParameterException"), Some(400), Rejected),
            (Some("LimitExceededException"), Some(400), Rejected),
            (
                Some("RepositoryAlreadyExistsException"),
                Some(400),
                Rejected,
            ),
            (None, None, Rejected),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify(code, status), kind, "{code:?} {status:?}");
        }
    }

    #[test]
    fn requests_never_sent_are_sorted_by_what_the_sdk_said() {
        let cases = [
            (
                "dispatch failure: other: the credential provider was not enabled",
                CredentialsMissing,
            ),
            (
                "failed to select an auth scheme to sign the request with. \"sigv4\" wasn't a valid option because there was no identity resolver for it.",
                CredentialsMissing,
            ),
            (
                "dispatch failure: other: an error occurred while loading credentials: AccessDenied",
                CredentialsMissing,
            ),
            (
                "dispatch failure: other: an error occurred while loading credentials: timed out",
                Unavailable,
            ),
            (
                "dispatch failure: io error: connection refused",
                Unavailable,
            ),
            ("timeout: HTTP read timeout occurred", Unavailable),
            ("response error: unexpected EOF", Unavailable),
        ];
        for (message, kind) in cases {
            assert_eq!(classify_unsent(message), kind, "{message}");
        }
        assert!(!CredentialsMissing.is_transient());
        assert_eq!(CredentialsMissing.reason(), Some("AWSCredentialsMissing"));
    }

    #[test]
    fn only_throttling_and_unavailability_are_transient() {
        let transient: Vec<_> = [
            NotFound,
            AccessDenied,
            AuthenticationFailed,
            Throttled,
            Unavailable,
            Rejected,
            CredentialsMissing,
        ]
        .into_iter()
        .filter(|k| k.is_transient())
        .collect();
        assert_eq!(transient, [Throttled, Unavailable]);
        assert_eq!(Throttled.reason(), Some("RegistryUnavailable"));
        assert_eq!(AccessDenied.reason(), Some("AccessDenied"));
        assert_eq!(AuthenticationFailed.reason(), Some("AuthenticationFailed"));
        assert_eq!(NotFound.reason(), None);
    }

    #[test]
    fn a_failure_displays_code_and_message() {
        let failure = AwsFailure::new(NotFound, Some("ImageNotFoundException"), "no such tag");
        assert_eq!(failure.to_string(), "ImageNotFoundException: no such tag");
        assert!(failure.is("ImageNotFoundException"));
        assert!(!failure.is_transient());
    }
}
