//! The authentication state of one registry: what its `/v2/` challenge asked
//! for, the current credential lease, and bearer tokens cached per scope.
//!
//! Tokens are cached until shortly before they expire and dropped when the
//! registry answers 401, so the next request fetches a fresh one; credential
//! leases (ECR tokens) are renewed before expiry and after a refusal. The session
//! is shared by every request to the registry. Expiry is judged by a [`Clock`],
//! the system's unless a test moves time on.

use super::challenge::{self, Challenge};
use super::credentials::{Credential, Lease, Secret, SharedSource};
use crate::registry::error::RegistryError;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Mutex;

/// Token lifetime when the realm does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are dropped this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The largest token response read.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// The repositories a request touches, and how.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    entries: Vec<String>,
}

impl Scope {
    pub fn pull(repository: &str) -> Self {
        Self {
            entries: vec![format!("repository:{repository}:pull")],
        }
    }

    pub fn push(repository: &str) -> Self {
        Self {
            entries: vec![format!("repository:{repository}:pull,push")],
        }
    }

    /// Adds read access to another repository (the source of a mount).
    pub fn and_pull(mut self, repository: &str) -> Self {
        let prefix = format!("repository:{repository}:");
        if !self.entries.iter().any(|e| e.starts_with(&prefix)) {
            self.entries.push(format!("{prefix}pull"));
        }
        self
    }

    fn key(&self) -> String {
        let mut entries = self.entries.clone();
        entries.sort();
        entries.join(" ")
    }
}

/// Where a session reads the time: monotonic for its tokens' lifetimes, wall
/// clock for credential leases (ECR tokens carry a date).
pub trait Clock: Send + Sync {
    fn instant(&self) -> Instant;
    fn system(&self) -> SystemTime;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn system(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[derive(Clone)]
struct Token {
    value: Secret,
    expires: Instant,
}

/// Authentication state of one registry host.
pub struct AuthSession {
    host: String,
    source: SharedSource,
    lease: Mutex<Option<Lease>>,
    challenge: Mutex<Option<Option<Challenge>>>,
    tokens: Mutex<HashMap<String, Token>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn basic_header(username: &str, password: &Secret) -> String {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    format!("Basic {encoded}")
}

impl AuthSession {
    pub fn new(host: &str, source: SharedSource) -> Self {
        Self::with_clock(host, source, Arc::new(SystemClock))
    }

    /// A session judging expiry by `clock`.
    pub fn with_clock(host: &str, source: SharedSource, clock: Arc<dyn Clock>) -> Self {
        Self {
            host: host.to_string(),
            source,
            lease: Mutex::new(None),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// The `Authorization` header for a request with `scope`, if any is needed.
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
        base: &str,
        scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self.challenge(http, base).await?;
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credential().await? {
                Credential::Anonymous => Ok(None),
                Credential::Basic { username, password } => {
                    Ok(Some(basic_header(&username, &password)))
                }
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scope.key();
                if let Some(token) = self.tokens.lock().await.get(&key)
                    && token.expires > self.clock.instant()
                {
                    return Ok(Some(format!("Bearer {}", token.value.expose())));
                }
                let token = self
                    .fetch_token(http, &realm, service.as_deref(), scope)
                    .await?;
                let header = format!("Bearer {}", token.value.expose());
                self.tokens.lock().await.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    /// Forgets what a 401 proved stale: the scope's token, and the lease when the
    /// registry takes basic credentials directly.
    pub async fn refused(&self, scope: &Scope) {
        self.tokens.lock().await.remove(&scope.key());
        let basic = matches!(*self.challenge.lock().await, Some(Some(Challenge::Basic)));
        if basic || self.tokens.lock().await.is_empty() {
            *self.lease.lock().await = None;
        }
    }

    /// Forgets the credential lease (e.g. the token realm refused it).
    pub async fn renew_credential(&self) {
        *self.lease.lock().await = None;
        self.tokens.lock().await.clear();
    }

    async fn credential(&self) -> Result<Credential, RegistryError> {
        let mut lease = self.lease.lock().await;
        if let Some(current) = lease.as_ref()
            && !current.needs_renewal(self.clock.system())
        {
            return Ok(current.credential.clone());
        }
        let fresh = self.source.fetch().await.map_err(|e| RegistryError::Auth {
            host: self.host.clone(),
            message: e.message,
            transient: e.transient,
        })?;
        let credential = fresh.credential.clone();
        *lease = Some(fresh);
        Ok(credential)
    }

    async fn challenge(
        &self,
        http: &reqwest::Client,
        base: &str,
    ) -> Result<Option<Challenge>, RegistryError> {
        let mut known = self.challenge.lock().await;
        if let Some(challenge) = known.as_ref() {
            return Ok(challenge.clone());
        }
        let response = http
            .get(format!("{base}/v2/"))
            .send()
            .await
            .map_err(|e| RegistryError::transport("GET /v2/", &self.host, e))?;
        let challenge = match response.status().as_u16() {
            401 => {
                let header = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| RegistryError::Auth {
                        host: self.host.clone(),
                        message: "the registry answered 401 without a WWW-Authenticate challenge"
                            .into(),
                        transient: false,
                    })?;
                Some(
                    challenge::parse(header).map_err(|source| RegistryError::Challenge {
                        host: self.host.clone(),
                        source,
                    })?,
                )
            }
            status if (200..300).contains(&status) => None,
            status => {
                return Err(RegistryError::Status {
                    operation: "GET /v2/",
                    host: self.host.clone(),
                    status,
                    detail: None,
                });
            }
        };
        *known = Some(challenge.clone());
        Ok(challenge)
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Token, RegistryError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for entry in &scope.entries {
            query.push(("scope", entry));
        }
        let mut request = http.get(realm).query(&query);
        if let Credential::Basic { username, password } = self.credential().await? {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                basic_header(&username, &password),
            );
        }
        let realm_host = reqwest::Url::parse(realm)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::transport("GET token", &realm_host, e))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            // The credential itself was refused: renew it next time.
            *self.lease.lock().await = None;
            return Err(RegistryError::Auth {
                host: self.host.clone(),
                message: format!(
                    "the token realm {realm_host} refused the credentials (HTTP {status})"
                ),
                transient: false,
            });
        }
        if !(200..300).contains(&status) {
            return Err(RegistryError::Auth {
                host: self.host.clone(),
                message: format!("the token realm {realm_host} answered HTTP {status}"),
                transient: super::super::retry::is_retryable_status(status),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| RegistryError::transport("GET token", &realm_host, e))?;
        if body.len() > MAX_TOKEN_RESPONSE {
            return Err(RegistryError::Auth {
                host: self.host.clone(),
                message: format!("the token realm {realm_host} sent an oversized response"),
                transient: false,
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| RegistryError::Auth {
                host: self.host.clone(),
                message: format!(
                    "the token realm {realm_host} sent a response that is not a token"
                ),
                transient: false,
            })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .ok_or_else(|| RegistryError::Auth {
                host: self.host.clone(),
                message: format!("the token realm {realm_host} sent no token"),
                transient: false,
            })?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .max(TOKEN_MARGIN * 2);
        Ok(Token {
            value: Secret::new(value),
            expires: self.clock.instant() + lifetime - TOKEN_MARGIN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_ignore_order_and_merge_mount_sources() {
        let a = Scope::push("team/app").and_pull("team/base");
        assert_eq!(
            a.key(),
            "repository:team/app:pull,push repository:team/base:pull"
        );
        let same_repo = Scope::push("team/app").and_pull("team/app");
        assert_eq!(same_repo.key(), "repository:team/app:pull,push");
        assert_eq!(Scope::pull("x").key(), "repository:x:pull");
    }
}
