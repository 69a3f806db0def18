//! ECR and ECR Public authorization tokens as registry credentials.
//!
//! The registry client asks a [`CredentialSource`] for credentials when it has
//! none, when the lease nears its expiry and after a refusal; these sources answer
//! with `GetAuthorizationToken`, so a long-running operator never holds a stale
//! 12-hour token. An expiry that is missing or already past (stand-ins send such
//! values) leases the token for a short while instead, relying on the refresh
//! after a 401.

use super::{EcrInspector, EcrPublic, RegistryToken};
use crate::registry::auth::{
    Credential, CredentialError, CredentialSource, Lease, RealmRule, Secret,
};
use futures::future::BoxFuture;
use std::time::{Duration, SystemTime};

/// How long a token without a believable expiry is used before asking again.
const FALLBACK_LEASE: Duration = Duration::from_secs(60 * 60);

/// The lease for a token, given the time now.
fn lease(token: &RegistryToken, now: SystemTime) -> Lease {
    let believable = token
        .expires_at()
        .filter(|expires| *expires > now + crate::registry::auth::credentials::RENEW_BEFORE);
    Lease {
        credential: Credential::Basic {
            username: token.username().to_string(),
            password: Secret::new(token.password()),
        },
        expires: Some(believable.unwrap_or(now + FALLBACK_LEASE)),
    }
}

/// The lease for a token just fetched, or the error in the registry's terms:
/// its retry class and its reason (`AWSCredentialsMissing`, `AccessDenied`, …).
fn leased<E: std::fmt::Display>(
    what: &str,
    fetched: Result<RegistryToken, E>,
    class: impl Fn(&E) -> (bool, &'static str),
) -> Result<Lease, CredentialError> {
    match fetched {
        Ok(token) => Ok(lease(&token, SystemTime::now())),
        Err(error) => {
            let (transient, reason) = class(&error);
            Err(CredentialError {
                message: format!("{what} GetAuthorizationToken: {error}"),
                transient,
                reason: Some(reason),
            })
        }
    }
}

/// Credentials for a private ECR registry from `ecr:GetAuthorizationToken`.
#[derive(Debug)]
pub struct EcrTokenSource(pub EcrInspector);

impl CredentialSource for EcrTokenSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, CredentialError>> {
        Box::pin(async move {
            leased("ECR", self.0.authorization_token().await, |e| {
                (e.is_transient(), e.reason())
            })
        })
    }
}

/// Credentials for the ECR Public token realm from `ecr-public:GetAuthorizationToken`.
#[derive(Debug)]
pub struct EcrPublicTokenSource(pub EcrPublic);

impl CredentialSource for EcrPublicTokenSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, CredentialError>> {
        Box::pin(async move {
            leased("ECR Public", self.0.authorization_token().await, |e| {
                (e.is_transient(), e.reason())
            })
        })
    }

    /// The operator's own AWS identity goes only to the realm on the registry's host.
    fn realm_rule(&self) -> RealmRule {
        RealmRule::SameHost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn token(expires: Option<SystemTime>) -> RegistryToken {
        let encoded = base64::engine::general_purpose::STANDARD.encode("AWS:secret");
        RegistryToken::decode(&encoded, expires).unwrap()
    }

    #[test]
    fn leases_until_the_real_expiry_or_a_short_while() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let twelve_hours = now + Duration::from_secs(12 * 3600);
        assert_eq!(
            lease(&token(Some(twelve_hours)), now).expires,
            Some(twelve_hours)
        );
        let past = now - Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(
            lease(&token(Some(past)), now).expires,
            Some(now + FALLBACK_LEASE)
        );
        assert_eq!(lease(&token(None), now).expires, Some(now + FALLBACK_LEASE));
        let printed = format!("{:?}", lease(&token(None), now));
        assert!(!printed.contains("secret"), "{printed}");
    }

    #[tokio::test]
    async fn an_operator_without_aws_credentials_is_told_so_not_asked_to_retry() {
        let config = aws_sdk_ecrpublic::Config::builder()
            .behavior_version(aws_sdk_ecrpublic::config::BehaviorVersion::latest())
            .region(aws_sdk_ecrpublic::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let public = EcrPublic::from_client(aws_sdk_ecrpublic::Client::from_conf(config));
        let error = public.authorization_token().await.unwrap_err();
        assert_eq!(error.reason(), "AWSCredentialsMissing", "{error}");
        assert!(!error.is_transient(), "{error}");
        let source = EcrPublicTokenSource(public);
        let refused = source.fetch().await.unwrap_err();
        assert!(!refused.transient, "{refused}");
        assert_eq!(refused.reason, Some("AWSCredentialsMissing"));
        assert_eq!(source.realm_rule(), RealmRule::SameHost);
        // The registry client reports it with that reason, for good.
        use crate::registry::client::test_server::{Reply, TestServer};
        let registry =
            TestServer::start(|_| Reply::new(401).header("www-authenticate", "Basic realm=r"))
                .await;
        let session =
            crate::registry::auth::AuthSession::new(&registry.host(), std::sync::Arc::new(source));
        let error = session
            .authorization(
                &reqwest::Client::new(),
                &format!("http://{}", registry.host()),
                &crate::registry::auth::Scope::pull("team/app"),
            )
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "AWSCredentialsMissing", "{error}");
        assert!(!error.is_transient());
    }
}
