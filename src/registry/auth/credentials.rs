//! Credentials for one registry, and where they come from.
//!
//! A [`Secret`] never prints: `Debug` and `Display` show `<redacted>`, so a
//! credential cannot reach a log line, an event or a status message by accident.
//! Short-lived credentials (ECR's 12-hour tokens, ECR Public's) come from a
//! [`CredentialSource`] that the client asks again when a token is near expiry or
//! the registry refuses it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the client presents: nothing, a user name and password (which for
/// bearer registries is sent to the token realm, not the registry), or an
/// identity token: an OAuth2 refresh token (what `docker login` keeps as
/// `identitytoken`), exchanged at a bearer registry's token realm only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Basic { username: String, password: Secret },
    IdentityToken(Secret),
}

/// A credential with the time it stops being valid (None: never expires).
#[derive(Clone, Debug)]
pub struct Lease {
    pub credential: Credential,
    pub expires: Option<SystemTime>,
}

/// How long before expiry a credential is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(15 * 60);

impl Lease {
    pub fn forever(credential: Credential) -> Self {
        Self {
            credential,
            expires: None,
        }
    }

    /// True when the lease should be renewed at `now`.
    pub fn needs_renewal(&self, now: SystemTime) -> bool {
        self.expires
            .is_some_and(|expires| now + RENEW_BEFORE >= expires)
    }
}

/// Error from a credential source, already free of secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CredentialError {
    pub message: String,
    /// True when asking again later may succeed (throttling, network).
    pub transient: bool,
    /// The source's own reason (e.g. `AWSCredentialsMissing`, `AccessDenied`),
    /// kept as the registry error's reason; None: `RegistryAuthFailed`.
    pub reason: Option<&'static str>,
}

/// Which token realms a source's credentials may be sent to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RealmRule {
    /// Whatever realm the registry's challenge names (a Secret given for it).
    #[default]
    Any,
    /// Only a realm on the registry's own host name (any port), over HTTPS
    /// unless the registry is declared plain HTTP: the operator's own identity
    /// (ECR Public) never follows a challenge to another host.
    SameHost,
}

/// Produces credentials on demand (e.g. ECR GetAuthorizationToken).
pub trait CredentialSource: Send + Sync + fmt::Debug {
    fn fetch(&self) -> futures::future::BoxFuture<'_, Result<Lease, CredentialError>>;

    /// Where these credentials may be sent.
    fn realm_rule(&self) -> RealmRule {
        RealmRule::Any
    }
}

/// A credential that never changes (basic auth from a config file or Secret).
#[derive(Debug)]
pub struct StaticCredential(pub Credential);

impl CredentialSource for StaticCredential {
    fn fetch(&self) -> futures::future::BoxFuture<'_, Result<Lease, CredentialError>> {
        let lease = Lease::forever(self.0.clone());
        Box::pin(async move { Ok(lease) })
    }
}

/// Shared handle to a source.
pub type SharedSource = Arc<dyn CredentialSource>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credential = Credential::Basic {
            username: "AWS".into(),
            password: Secret::new("hunter2"),
        };
        let printed = format!("{credential:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn renews_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let lease = |secs| Lease {
            credential: Credential::Anonymous,
            expires: Some(now + Duration::from_secs(secs)),
        };
        assert!(!lease(12 * 3600).needs_renewal(now));
        assert!(lease(10 * 60).needs_renewal(now));
        assert!(!Lease::forever(Credential::Anonymous).needs_renewal(now));
    }
}
