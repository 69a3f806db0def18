//! The authentication state of one registry: what its `/v2/` challenge asked
//! for, the current credential lease, and bearer tokens cached per scope.
//!
//! Tokens are cached until shortly before they expire and dropped when the
//! registry answers 401, so the next request fetches a fresh one; credential
//! leases (ECR tokens) are renewed before expiry and after a refusal. The session
//! is shared by every request of one client (a client made with
//! `RegistryClient::with_source` has its own). A 401's own challenge replaces the
//! one learned at the ping. Expiry is judged by a [`Clock`], the system's unless
//! a test moves time on.
//!
//! Token realms are untrusted: a realm must be HTTPS for an HTTPS registry, a
//! source's [`RealmRule`] is checked before anything is sent (the operator's ECR
//! Public identity goes only to a realm on the registry's host), responses are
//! read with a size cap while streaming, and any `expires_in` is bounded.

use super::challenge::{self, Challenge};
use super::credentials::{Credential, Lease, RealmRule, Secret, SharedSource};
use crate::registry::error::RegistryError;
use base64::Engine as _;
use reqwest::header::HeaderValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Mutex;

/// Token lifetime when the realm does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are dropped this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The longest a `/v2/` ping or a token request may take.
const AUTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
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

    /// Adds one `type:name:actions` entry (e.g. from a challenge) unless present.
    pub fn and_entry(mut self, entry: &str) -> Self {
        if !self.entries.iter().any(|e| e == entry) {
            self.entries.push(entry.to_string());
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
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
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
    /// Seconds; any JSON number (a hostile realm may send anything).
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
}

/// The longest a token is believed, whatever the realm says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a token is used: the realm's `expires_in`, bounded to
/// [2 × margin, 24 h], never overflowing; the default when absent or negative.
fn token_lifetime(expires_in: Option<&serde_json::Number>) -> Duration {
    let seconds = expires_in.and_then(|n| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| f.min(u64::MAX as f64) as u64)
        })
    });
    seconds
        .map(|s| Duration::from_secs(s.min(MAX_TOKEN_LIFETIME.as_secs())))
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .max(TOKEN_MARGIN * 2)
}

/// A header value that HTTP libraries and logs treat as sensitive.
fn sensitive(value: String) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn basic_header(username: &str, password: &Secret) -> Option<HeaderValue> {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    sensitive(format!("Basic {encoded}"))
}

/// Why a token realm may not be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RealmRefusal {
    /// The realm is plain HTTP while the registry is HTTPS.
    PlainHttp,
    /// The source's credentials may only go to the registry's own host.
    ForeignHost,
}

/// Whether a request (with credentials from a source following `rule`) may
/// go to `realm` for the registry at `registry` (its base URL).
fn check_realm(
    registry: &reqwest::Url,
    realm: &reqwest::Url,
    rule: RealmRule,
) -> Result<(), RealmRefusal> {
    let registry_plain = registry.scheme() == "http";
    if realm.scheme() != "https" && !registry_plain {
        return Err(RealmRefusal::PlainHttp);
    }
    if rule == RealmRule::SameHost {
        let same_host = match (registry.host_str(), realm.host_str()) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        if !same_host {
            return Err(RealmRefusal::ForeignHost);
        }
    }
    Ok(())
}

/// Reads a response body of at most `limit` bytes, stopping as soon as more
/// arrive; None when the body is larger.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
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

    /// The `Authorization` header for a request with `scope`, if any is
    /// needed; marked sensitive.
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
        base: &str,
        scope: &Scope,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = self.challenge(http, base).await?;
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credential().await? {
                Credential::Anonymous => Ok(None),
                Credential::Basic { username, password } => basic_header(&username, &password)
                    .map(Some)
                    .ok_or_else(|| RegistryError::Auth {
                        host: self.host.clone(),
                        message: "the user name cannot be sent in an HTTP header".into(),
                        transient: false,
                    }),
                Credential::IdentityToken(_) => Err(RegistryError::Auth {
                    host: self.host.clone(),
                    message: "the credential is an identity token (OAuth2 refresh token), \
                              which only a registry that asks for bearer tokens takes; this \
                              one asks for a user name and password"
                        .into(),
                    transient: false,
                }),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scope.key();
                if let Some(token) = self.tokens.lock().await.get(&key)
                    && token.expires > self.clock.instant()
                {
                    return Ok(Some(token.header.clone()));
                }
                let token = self
                    .fetch_token(http, base, &realm, service.as_deref(), scope)
                    .await?;
                let header = token.header.clone();
                let mut tokens = self.tokens.lock().await;
                // Expired tokens go: the repositories of deleted objects are
                // never asked for again, and their tokens would stay forever.
                let now = self.clock.instant();
                tokens.retain(|_, kept| kept.expires > now);
                tokens.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    /// Forgets what a 401 proved stale: the scope's token, and the lease when the
    /// registry takes basic credentials directly. `challenge` is the 401's own
    /// `WWW-Authenticate`: when usable it replaces the challenge learned before
    /// (a registry that let `/v2/` through anonymously may still want
    /// credentials for a repository), and the scope it names is added to the
    /// scope returned for the next attempt.
    pub async fn refused(&self, scope: &Scope, challenge: Option<&str>) -> Scope {
        let mut next = scope.clone();
        let learned = challenge.and_then(|header| challenge::parse(header).ok());
        if let Some(learned) = learned {
            if let Challenge::Bearer {
                scope: Some(asked), ..
            } = &learned
            {
                for entry in asked.split_whitespace() {
                    next = next.and_entry(entry);
                }
            }
            let mut known = self.challenge.lock().await;
            if known.as_ref() != Some(&Some(learned.clone())) {
                *known = Some(Some(learned));
                self.tokens.lock().await.clear();
            }
        }
        self.tokens.lock().await.remove(&scope.key());
        let basic = matches!(*self.challenge.lock().await, Some(Some(Challenge::Basic)));
        if basic || self.tokens.lock().await.is_empty() {
            *self.lease.lock().await = None;
        }
        next
    }

    /// How many bearer tokens the session keeps.
    #[cfg(test)]
    async fn tokens_kept(&self) -> usize {
        self.tokens.lock().await.len()
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
        let fresh = self.source.fetch().await.map_err(|e| match e.reason {
            Some(reason) => RegistryError::CredentialSource {
                host: self.host.clone(),
                reason,
                message: e.message,
                transient: e.transient,
            },
            None => RegistryError::Auth {
                host: self.host.clone(),
                message: e.message,
                transient: e.transient,
            },
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
            .timeout(AUTH_REQUEST_TIMEOUT)
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
        base: &str,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<Token, RegistryError> {
        let auth_error = |message: String, transient: bool| RegistryError::Auth {
            host: self.host.clone(),
            message,
            transient,
        };
        let realm_url = reqwest::Url::parse(realm)
            .map_err(|_| auth_error("the registry's token realm is not a URL".into(), false))?;
        let realm_host = realm_url.host_str().unwrap_or_default().to_string();
        let registry_url = reqwest::Url::parse(base)
            .map_err(|_| auth_error("the registry address is not a URL".into(), false))?;
        let registry_name = registry_url.host_str().unwrap_or_default();
        match check_realm(&registry_url, &realm_url, self.source.realm_rule()) {
            Ok(()) => {}
            Err(RealmRefusal::PlainHttp) => {
                return Err(RegistryError::CredentialsNotAllowed {
                    host: self.host.clone(),
                    message: format!(
                        "the token realm {realm_host} is plain HTTP while the registry is HTTPS; \
                         nothing is sent to it (only a registry declared plainHttp may use a \
                         plain-HTTP realm)"
                    ),
                });
            }
            Err(RealmRefusal::ForeignHost) => {
                return Err(RegistryError::CredentialsNotAllowed {
                    host: self.host.clone(),
                    message: format!(
                        "the token realm {realm_host} is not on {registry_name}; the operator's \
                         ECR Public identity is only sent to the registry's own realm (give the \
                         registry a dockerconfigjson Secret to authenticate elsewhere)"
                    ),
                });
            }
        }
        let request = match self.credential().await? {
            Credential::IdentityToken(token) => {
                // OAuth2's refresh-token grant, in the form body (never the URL).
                let mut form = reqwest::Url::parse("http://form.invalid/").expect("a URL");
                {
                    let mut pairs = form.query_pairs_mut();
                    pairs.append_pair("grant_type", "refresh_token");
                    pairs.append_pair("refresh_token", token.expose());
                    pairs.append_pair("client_id", "image-promoter");
                    if let Some(service) = service {
                        pairs.append_pair("service", service);
                    }
                    if !scope.entries.is_empty() {
                        pairs.append_pair("scope", &scope.entries.join(" "));
                    }
                }
                http.post(realm_url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.query().unwrap_or_default().to_string())
                    .timeout(AUTH_REQUEST_TIMEOUT)
            }
            credential => {
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(service) = service {
                    query.push(("service", service));
                }
                for entry in &scope.entries {
                    query.push(("scope", entry));
                }
                let mut request = http
                    .get(realm_url)
                    .query(&query)
                    .timeout(AUTH_REQUEST_TIMEOUT);
                if let Credential::Basic { username, password } = credential {
                    let header = basic_header(&username, &password).ok_or_else(|| {
                        auth_error(
                            "the user name cannot be sent in an HTTP header".into(),
                            false,
                        )
                    })?;
                    request = request.header(reqwest::header::AUTHORIZATION, header);
                }
                request
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::transport("GET token", &realm_host, e))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            // The credential itself was refused: renew it next time.
            *self.lease.lock().await = None;
            return Err(auth_error(
                format!("the token realm {realm_host} refused the credentials (HTTP {status})"),
                false,
            ));
        }
        if !(200..300).contains(&status) {
            return Err(auth_error(
                format!("the token realm {realm_host} answered HTTP {status}"),
                super::super::retry::is_retryable_status(status),
            ));
        }
        let body = read_capped(response, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|e| RegistryError::transport("GET token", &realm_host, e))?
            .ok_or_else(|| {
                auth_error(
                    format!(
                        "the token realm {realm_host} sent a response larger than {MAX_TOKEN_RESPONSE} bytes"
                    ),
                    false,
                )
            })?;
        parse_token_response(&body, self.clock.instant())
            .map_err(|problem| auth_error(format!("the token realm {realm_host} {problem}"), false))
    }
}

/// A token from a realm's response body, expiring relative to `now`. The
/// error completes "the token realm … " and never quotes the body.
fn parse_token_response(body: &[u8], now: Instant) -> Result<Token, &'static str> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|_| "sent a response that is not a token")?;
    let value = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token)
        .ok_or("sent no token")?;
    let header =
        sensitive(format!("Bearer {value}")).ok_or("sent a token that cannot be a header")?;
    let lifetime = token_lifetime(parsed.expires_in.as_ref()) - TOKEN_MARGIN;
    let expires = now.checked_add(lifetime).unwrap_or(now);
    Ok(Token { header, expires })
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

    use super::super::credentials::{CredentialError, CredentialSource, StaticCredential};
    use crate::registry::client::test_server::{Body, Reply, TestServer};

    /// Basic credentials `user:password` that may go only where `rule` allows.
    #[derive(Debug)]
    struct RuledSource(RealmRule);

    impl CredentialSource for RuledSource {
        fn fetch(&self) -> futures::future::BoxFuture<'_, Result<Lease, CredentialError>> {
            Box::pin(async { Ok(Lease::forever(basic())) })
        }

        fn realm_rule(&self) -> RealmRule {
            self.0
        }
    }

    fn basic() -> Credential {
        Credential::Basic {
            username: "user".into(),
            password: Secret::new("hunter2-secret"),
        }
    }

    fn bearer_registry(
        realm: String,
    ) -> impl Fn(&crate::registry::client::test_server::Request) -> Reply {
        move |_| {
            Reply::new(401).header(
                "www-authenticate",
                &format!("Bearer realm=\"{realm}\",service=\"svc\""),
            )
        }
    }

    async fn authorize(
        registry: &TestServer,
        source: SharedSource,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let session = AuthSession::new(&registry.host(), source);
        let http = reqwest::Client::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            session.authorization(
                &http,
                &format!("http://{}", registry.host()),
                &Scope::pull("team/app"),
            ),
        )
        .await
        .expect("the session answers in time")
    }

    #[tokio::test]
    async fn any_expires_in_is_accepted_without_overflow() {
        for expires_in in ["18446744073709551615", "1e300", "-5", "0", "3600.5"] {
            let realm = TestServer::start(move |_| {
                Reply::new(200).body(format!(r#"{{"token":"t","expires_in":{expires_in}}}"#))
            })
            .await;
            let registry =
                TestServer::start(bearer_registry(format!("http://{}/token", realm.host()))).await;
            let header = authorize(&registry, Arc::new(StaticCredential(basic())))
                .await
                .unwrap_or_else(|e| panic!("{expires_in}: {e}"))
                .unwrap();
            assert_eq!(header.to_str().unwrap(), "Bearer t");
        }
        let now = Instant::now();
        let token =
            parse_token_response(br#"{"token":"t","expires_in":18446744073709551615}"#, now)
                .unwrap();
        assert_eq!(token.expires, now + MAX_TOKEN_LIFETIME - TOKEN_MARGIN);
    }

    #[tokio::test]
    async fn an_identity_token_is_exchanged_in_a_form_post_never_in_the_url() {
        let refresh = "refresh-hunter2-secret";
        let realm = TestServer::start(|request| {
            if request.method == "POST" {
                Reply::new(200).body(r#"{"access_token":"a","expires_in":300}"#)
            } else {
                Reply::new(405)
            }
        })
        .await;
        let registry =
            TestServer::start(bearer_registry(format!("http://{}/token", realm.host()))).await;
        let token = Arc::new(StaticCredential(Credential::IdentityToken(Secret::new(
            refresh,
        ))));
        let header = authorize(&registry, token.clone()).await.unwrap().unwrap();
        assert_eq!(header.to_str().unwrap(), "Bearer a");
        let sent = &realm.requests()[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(
            sent.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert!(sent.body_len > refresh.len(), "the token is in the body");
        assert!(!sent.target.contains(refresh), "{}", sent.target);
        assert_eq!(sent.header("authorization"), None);

        // A registry that asks for basic credentials cannot take one.
        let basic_registry =
            TestServer::start(|_| Reply::new(401).header("www-authenticate", "Basic realm=\"r\""))
                .await;
        let error = authorize(&basic_registry, token).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains("identity token"), "{message}");
        assert!(!message.contains(refresh), "{message}");
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn an_endless_token_response_is_cut_off_while_streaming() {
        let realm = TestServer::start(|_| {
            Reply::new(200).streamed(Body::Trickle {
                chunk: vec![b' '; 16 << 10],
                every: Duration::from_millis(2),
                count: None,
                declared: None,
            })
        })
        .await;
        let registry =
            TestServer::start(bearer_registry(format!("http://{}/token", realm.host()))).await;
        let error = authorize(&registry, Arc::new(StaticCredential(basic())))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
        assert!(!error.is_transient());
        // A declared length over the cap is refused before reading.
        let realm =
            TestServer::start(|_| Reply::new(200).body(vec![b' '; MAX_TOKEN_RESPONSE + 1])).await;
        let registry =
            TestServer::start(bearer_registry(format!("http://{}/token", realm.host()))).await;
        let error = authorize(&registry, Arc::new(StaticCredential(basic())))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
    }

    #[tokio::test]
    async fn the_operators_identity_goes_only_to_a_realm_on_the_registry_host() {
        let realm = TestServer::start(|_| Reply::new(200).body(r#"{"token":"t"}"#)).await;
        // Same host name, another port: allowed.
        let registry = TestServer::start(bearer_registry(format!(
            "http://127.0.0.1:{}/t",
            realm.port()
        )))
        .await;
        let header = authorize(&registry, Arc::new(RuledSource(RealmRule::SameHost)))
            .await
            .unwrap();
        assert!(header.is_some());
        assert_eq!(realm.requests().len(), 1);
        // Another host name: refused before any request reaches the realm.
        let registry = TestServer::start(bearer_registry(format!(
            "http://localhost:{}/t",
            realm.port()
        )))
        .await;
        let error = authorize(&registry, Arc::new(RuledSource(RealmRule::SameHost)))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "CredentialsNotAllowed");
        assert!(!error.is_transient());
        let message = error.to_string();
        assert!(
            message.contains("the token realm localhost is not on 127.0.0.1")
                && message.contains("only sent to the registry's own realm"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        assert_eq!(realm.requests().len(), 1, "nothing more reached the realm");
        // A Secret given for the registry may follow its challenge elsewhere.
        let header = authorize(&registry, Arc::new(RuledSource(RealmRule::Any)))
            .await
            .unwrap();
        assert!(header.is_some());
        let sent = realm.requests()[1]
            .header("authorization")
            .unwrap()
            .to_string();
        assert!(sent.starts_with("Basic "), "{sent}");
    }

    /// A clock the test moves.
    struct Hands(std::sync::Mutex<Instant>);

    impl Clock for Hands {
        fn instant(&self) -> Instant {
            *self.0.lock().unwrap()
        }

        fn system(&self) -> SystemTime {
            SystemTime::now()
        }
    }

    #[tokio::test]
    async fn tokens_of_repositories_no_longer_used_are_dropped_once_expired() {
        let realm =
            TestServer::start(|_| Reply::new(200).body(r#"{"token":"t","expires_in":300}"#)).await;
        let registry =
            TestServer::start(bearer_registry(format!("http://{}/token", realm.host()))).await;
        let clock = Arc::new(Hands(std::sync::Mutex::new(Instant::now())));
        let session = AuthSession::with_clock(
            &registry.host(),
            Arc::new(StaticCredential(basic())),
            clock.clone(),
        );
        let http = reqwest::Client::new();
        let base = format!("http://{}", registry.host());
        for repository in ["deleted/one", "deleted/two", "kept"] {
            session
                .authorization(&http, &base, &Scope::push(repository))
                .await
                .unwrap();
        }
        assert_eq!(session.tokens_kept().await, 3);
        *clock.0.lock().unwrap() += Duration::from_secs(600);
        session
            .authorization(&http, &base, &Scope::push("kept"))
            .await
            .unwrap();
        assert_eq!(
            session.tokens_kept().await,
            1,
            "only the token just fetched is kept"
        );
    }

    #[tokio::test]
    async fn authorization_headers_are_marked_sensitive() {
        let registry =
            TestServer::start(|_| Reply::new(401).header("www-authenticate", "Basic realm=x"))
                .await;
        let header = authorize(&registry, Arc::new(StaticCredential(basic())))
            .await
            .unwrap()
            .unwrap();
        assert!(header.is_sensitive());
        let realm = TestServer::start(|_| Reply::new(200).body(r#"{"access_token":"t"}"#)).await;
        let registry =
            TestServer::start(bearer_registry(format!("http://{}/token", realm.host()))).await;
        let header = authorize(&registry, Arc::new(StaticCredential(basic())))
            .await
            .unwrap()
            .unwrap();
        assert!(header.is_sensitive());
    }

    #[test]
    fn realms_must_be_https_for_https_registries_and_on_the_host_when_asked() {
        use RealmRefusal::*;
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let cases = [
            (
                "https://r.io",
                "https://auth.io/token",
                RealmRule::Any,
                Ok(()),
            ),
            (
                "https://r.io",
                "http://auth.io/token",
                RealmRule::Any,
                Err(PlainHttp),
            ),
            (
                "https://r.io",
                "http://r.io/token",
                RealmRule::SameHost,
                Err(PlainHttp),
            ),
            (
                "http://r.io:5000",
                "http://auth.io/token",
                RealmRule::Any,
                Ok(()),
            ),
            (
                "https://r.io",
                "https://r.io:8443/token",
                RealmRule::SameHost,
                Ok(()),
            ),
            (
                "https://R.io",
                "https://r.IO/token",
                RealmRule::SameHost,
                Ok(()),
            ),
            (
                "https://r.io",
                "https://auth.r.io/token",
                RealmRule::SameHost,
                Err(ForeignHost),
            ),
            (
                "https://r.io",
                "https://r.io.evil/token",
                RealmRule::SameHost,
                Err(ForeignHost),
            ),
            (
                "http://r.io",
                "http://r.io:1/token",
                RealmRule::SameHost,
                Ok(()),
            ),
        ];
        for (registry, realm, rule, expected) in cases {
            assert_eq!(
                check_realm(&url(registry), &url(realm), rule),
                expected,
                "{registry} {realm} {rule:?}"
            );
        }
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(token_lifetime(None), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(&n("1"))), TOKEN_MARGIN * 2);
        assert_eq!(token_lifetime(Some(&n("300"))), Duration::from_secs(300));
        assert_eq!(token_lifetime(Some(&n("-1"))), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(&n("1e300"))), MAX_TOKEN_LIFETIME);
        assert_eq!(
            token_lifetime(Some(&n("18446744073709551615"))),
            MAX_TOKEN_LIFETIME
        );
    }

    mod untrusted {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

            #[test]
            fn token_responses_never_panic(
                body in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..200),
                    (
                        proptest::option::of(".{0,20}"),
                        proptest::option::of(".{0,20}"),
                        proptest::option::of(prop_oneof![
                            any::<u64>().prop_map(|n| n.to_string()),
                            any::<i64>().prop_map(|n| n.to_string()),
                            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
                            Just("\"3600\"".to_string()),
                            Just("null".to_string()),
                        ]),
                    )
                        .prop_map(|(token, access, expires)| {
                            let mut fields = Vec::new();
                            if let Some(t) = token {
                                fields.push(format!("\"token\":{}", serde_json::Value::from(t)));
                            }
                            if let Some(a) = access {
                                fields.push(format!("\"access_token\":{}", serde_json::Value::from(a)));
                            }
                            if let Some(e) = expires {
                                fields.push(format!("\"expires_in\":{e}"));
                            }
                            format!("{{{}}}", fields.join(",")).into_bytes()
                        }),
                ],
            ) {
                let _ = &body;
                if let Ok(token) = parse_token_response(&body, Instant::now()) {
                    prop_assert!(token.header.is_sensitive());
                }
            }
        }
    }
}
