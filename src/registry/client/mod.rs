//! An OCI distribution client for one registry host: the transport layers
//! (authentication → per-registry concurrency and pace → retry with backoff) and
//! the operations the copy engine needs, each checked against what the
//! distribution spec allows a registry to answer.
//!
//! Why not oci-client for this: it has no retries or 429 handling, caps chunked
//! uploads at 4 MiB parts accepting only 202 (ECR needs ≥ 5 MiB parts and answers
//! 201), mounts only inside one registry and treats a refused mount as an error,
//! and its auth store is write-once (ECR tokens expire). See docs/architecture.md.

mod blobs;
mod manifests;
mod settings;
mod tags;
#[cfg(test)]
pub(crate) mod test_server;
mod tls;

pub(crate) use blobs::receiver_stream;
pub use blobs::{Mount, UploadSession};
pub use manifests::{FetchedManifest, MANIFEST_READS, ManifestHead};
pub use settings::{ClientSettings, UploadMode};
pub use tags::{MAX_TAGS_PAGE_BYTES, TAGS_PAGE_SIZE, TagListing};

use super::auth::{AuthSession, Scope, SharedSource};
use super::error::RegistryError;
use super::manifest;
use super::retry;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::{StatusCode, header};
use settings::http_client;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// What every client of one registry host shares: connections, settings,
/// concurrency permits and pace.
/// Told of every request a registry client sends: the registry host, the
/// HTTP method and the status answered (0 when no answer came). The operator
/// counts them for `image_promoter_registry_requests_total`; one observer per
/// process, set once at start.
pub type RequestObserver = Arc<dyn Fn(&str, &str, u16) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<RequestObserver> = std::sync::OnceLock::new();

/// Sets the process's request observer; false when one was set before.
pub fn observe_requests(observer: RequestObserver) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// `operation` reads like `HEAD manifest`: its first word is the method.
fn observed(host: &str, operation: &str, status: u16) {
    if let Some(observer) = OBSERVER.get() {
        let method = operation.split(' ').next().unwrap_or(operation);
        observer(host, method, status);
    }
}

struct Inner {
    host: String,
    base: String,
    base_url: reqwest::Url,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    pace: Option<(Duration, Mutex<Instant>)>,
    settings: ClientSettings,
}

/// A response with the concurrency permit it holds until its body has been
/// read or dropped, so `maxConcurrentRequests` counts streaming bodies too.
struct Answered {
    response: reqwest::Response,
    /// None for an upload that went ahead without one (see `upload_permit`).
    permit: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Answered {
    type Target = reqwest::Response;

    fn deref(&self) -> &reqwest::Response {
        &self.response
    }
}

/// When an upload body last yielded bytes: a request whose body moves is not
/// stalled, however long it takes.
struct Progress {
    start: Instant,
    millis: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            millis: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    /// Bytes yielded so far.
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn touch(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

/// A response read whole.
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Bytes,
}

/// A client for one registry host; cheap to clone. Clones made with
/// [`RegistryClient::counting`] share the connection, tokens and limits but
/// count their own requests; clients made with [`RegistryClient::with_source`]
/// share the connection and limits but authenticate on their own.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    auth: Arc<AuthSession>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

/// The most requests in flight to one registry, whatever the settings say.
const MAX_CONCURRENCY: usize = 4096;
/// The longest wait between two requests a pace may impose.
const MAX_PACE_INTERVAL: Duration = Duration::from_secs(3600);

/// The interval between request starts for `rps` requests per second; None
/// (no pace) for a rate that is not a positive number.
fn pace_interval(rps: f64) -> Option<Duration> {
    if rps.is_nan() || rps <= 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(1.0 / rps)
            .unwrap_or(MAX_PACE_INTERVAL)
            .min(MAX_PACE_INTERVAL),
    )
}

/// The `WWW-Authenticate` challenge of an answer, if readable.
fn challenge_of(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
}

/// True when an error body says the token expired (ECR Public's 400 answer).
fn says_token_expired(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("token") && text.contains("expired")
}

fn oci_error_detail(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let parsed: Errors = serde_json::from_slice(body).ok()?;
    let text = parsed
        .errors
        .iter()
        .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    // Registry messages are untrusted: keep them short and printable.
    Some(text.chars().filter(|c| !c.is_control()).take(300).collect())
}

impl RegistryClient {
    /// A client for `host` (`host[:port]`) with credentials from `source`.
    pub fn new(
        host: &str,
        source: SharedSource,
        settings: ClientSettings,
    ) -> Result<Self, RegistryError> {
        let http = http_client(&settings, host)?;
        let scheme = if settings.plain_http { "http" } else { "https" };
        let base = format!("{scheme}://{}", super::reference::api_host(host));
        let base_url = reqwest::Url::parse(&base).map_err(|_| RegistryError::Transport {
            operation: "reading the registry address",
            host: host.to_string(),
            message: "not a host[:port]".into(),
            transient: false,
        })?;
        let pace = settings
            .requests_per_second
            .and_then(pace_interval)
            .map(|interval| (interval, Mutex::new(Instant::now())));
        Ok(Self {
            inner: Arc::new(Inner {
                host: host.to_string(),
                base,
                base_url,
                http,
                permits: Arc::new(Semaphore::new(
                    settings.max_concurrent_requests.clamp(1, MAX_CONCURRENCY),
                )),
                pace,
                settings,
            }),
            auth: Arc::new(AuthSession::new(host, source)),
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A client for the same host with credentials from `source`: it shares
    /// the connection pool, settings, concurrency permits and pace with `self`
    /// (per-registry limits stay shared), but has its own credential lease and
    /// token cache, and counts its own requests.
    pub fn with_source(&self, source: SharedSource) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: Arc::new(AuthSession::new(&self.inner.host, source)),
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A handle that shares everything but counts its own requests.
    pub fn counting(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn host(&self) -> &str {
        &self.inner.host
    }

    pub fn upload_mode(&self) -> UploadMode {
        self.inner.settings.upload
    }

    /// Requests sent through this handle.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    async fn wait_for_pace(&self) {
        if let Some((interval, next)) = &self.inner.pace {
            let slot = {
                let mut next = next.lock().await;
                let slot = (*next).max(Instant::now());
                *next = slot + *interval;
                slot
            };
            tokio::time::sleep_until(slot.into()).await;
        }
    }

    fn status_error(
        &self,
        operation: &'static str,
        status: StatusCode,
        body: &[u8],
    ) -> RegistryError {
        RegistryError::Status {
            operation,
            host: self.inner.host.clone(),
            status: status.as_u16(),
            detail: oci_error_detail(body),
        }
    }

    /// A permit of the registry's concurrency limit, after the pace allows.
    async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.wait_for_pace().await;
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        self.requests.fetch_add(1, Ordering::Relaxed);
        Some(permit)
    }

    /// A permit for an upload, waiting at most the stall timeout. An upload
    /// is fed by a blob read that holds a permit while it streams; when source
    /// and target are one registry (a refused mount), reads holding every
    /// permit would otherwise wait forever for their own uploads. Past the
    /// wait the upload goes ahead without a permit.
    async fn upload_permit(&self, operation: &'static str) -> Option<OwnedSemaphorePermit> {
        self.wait_for_pace().await;
        let acquire = self.inner.permits.clone().acquire_owned();
        let permit = match tokio::time::timeout(self.inner.settings.stall_timeout, acquire).await {
            Ok(permit) => Some(permit.expect("semaphore never closes")),
            Err(_) => {
                tracing::debug!(host = %self.inner.host, operation, "no permit free; uploading beyond the limit");
                None
            }
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        permit
    }

    fn stalled(&self, operation: &'static str) -> RegistryError {
        RegistryError::Transport {
            operation,
            host: self.inner.host.clone(),
            message: format!(
                "nothing moved for {} s (the registry's stall timeout)",
                self.inner.settings.stall_timeout.as_secs()
            ),
            transient: true,
        }
    }

    /// Sends a request and waits for the answer's head, failing when nothing
    /// moves for the stall timeout: measured from the start, or from the last
    /// bytes an upload body yielded (`progress`).
    async fn watched(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        progress: Option<&Progress>,
    ) -> Result<reqwest::Response, RegistryError> {
        let stall = self.inner.settings.stall_timeout;
        let start = Instant::now();
        let send = request.send();
        tokio::pin!(send);
        loop {
            let last = progress.map_or(start, |p| p.last().max(start));
            tokio::select! {
                result = &mut send => {
                    observed(&self.inner.host, operation, result.as_ref().map_or(0, |r| r.status().as_u16()));
                    return result.map_err(|e| RegistryError::transport(operation, &self.inner.host, e));
                }
                () = tokio::time::sleep_until((last + stall).into()) => {
                    let moved = progress.map_or(start, |p| p.last().max(start));
                    if moved + stall <= Instant::now() {
                        observed(&self.inner.host, operation, 0);
                        return Err(self.stalled(operation));
                    }
                }
            }
        }
    }

    /// Sends a replayable request: authenticates, retries transient failures
    /// (honouring Retry-After), refreshes credentials once on 401 (learning
    /// the 401's own challenge).
    async fn send(
        &self,
        operation: &'static str,
        scope: &Scope,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answered, RegistryError> {
        let policy = &self.inner.settings.retry;
        let mut attempt = 0;
        let mut reauthenticated = false;
        let mut scope = scope.clone();
        loop {
            attempt += 1;
            let authorization = self
                .auth
                .authorization(&self.inner.http, &self.inner.base, &scope)
                .await;
            let authorization = match authorization {
                Ok(value) => value,
                Err(error) if error.is_transient() && policy.allows_another(attempt) => {
                    tokio::time::sleep(policy.delay(attempt, None, fastrand::f64())).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let mut request = make();
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let permit = self.permit().await;
            let result = self.watched(operation, request, None).await;
            match result {
                Ok(response)
                    if response.status() == StatusCode::UNAUTHORIZED && !reauthenticated =>
                {
                    reauthenticated = true;
                    attempt -= 1;
                    scope = self.auth.refused(&scope, challenge_of(&response)).await;
                }
                // ECR Public answers an expired token with 400, not 401.
                Ok(response)
                    if response.status() == StatusCode::BAD_REQUEST && !reauthenticated =>
                {
                    let body = self
                        .read_limited(operation, Answered { response, permit }, 64 << 10)
                        .await?;
                    if !says_token_expired(&body) {
                        return Err(self.status_error(operation, StatusCode::BAD_REQUEST, &body));
                    }
                    reauthenticated = true;
                    attempt -= 1;
                    scope = self.auth.refused(&scope, None).await;
                }
                Ok(response)
                    if retry::is_retryable_status(response.status().as_u16())
                        && policy.allows_another(attempt) =>
                {
                    let after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                    tracing::debug!(host = %self.inner.host, operation, status = response.status().as_u16(), attempt, "retrying");
                    drop((response, permit));
                    tokio::time::sleep(policy.delay(attempt, after, fastrand::f64())).await;
                }
                Ok(response) => return Ok(Answered { response, permit }),
                Err(error) => {
                    drop(permit);
                    if !(error.is_transient() && policy.allows_another(attempt)) {
                        return Err(error);
                    }
                    tracing::debug!(host = %self.inner.host, operation, attempt, %error, "retrying");
                    tokio::time::sleep(policy.delay(attempt, None, fastrand::f64())).await;
                }
            }
        }
    }

    /// Sends a request whose body cannot be replayed: authenticates, sends
    /// once. `progress` tracks the body, for the stall timeout.
    async fn send_once(
        &self,
        operation: &'static str,
        scope: &Scope,
        request: reqwest::RequestBuilder,
        progress: Option<&Progress>,
    ) -> Result<Answered, RegistryError> {
        let authorization = self
            .auth
            .authorization(&self.inner.http, &self.inner.base, scope)
            .await?;
        let request = match authorization {
            Some(value) => request.header(header::AUTHORIZATION, value),
            None => request,
        };
        let permit = match progress {
            Some(_) => self.upload_permit(operation).await,
            None => self.permit().await,
        };
        let response = self.watched(operation, request, progress).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.auth.refused(scope, challenge_of(&response)).await;
        }
        Ok(Answered { response, permit })
    }

    /// Sends a replayable request and reads its whole body (at most `limit`
    /// bytes); a body that breaks mid-read is fetched again within the retry budget.
    async fn fetch(
        &self,
        operation: &'static str,
        scope: &Scope,
        limit: usize,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, RegistryError> {
        let policy = &self.inner.settings.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self.send(operation, scope, &make).await?;
            let status = response.status();
            let headers = response.headers().clone();
            match self.read_limited(operation, response, limit).await {
                Ok(body) => {
                    return Ok(Answer {
                        status,
                        headers,
                        body,
                    });
                }
                Err(error) if error.is_transient() && policy.allows_another(attempt) => {
                    tracing::debug!(host = %self.inner.host, operation, attempt, %error, "reading again");
                    tokio::time::sleep(policy.delay(attempt, None, fastrand::f64())).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The body of an answer as a stream that fails (transient) when no bytes
    /// arrive for the stall timeout, and releases the answer's permit when it
    /// ends or is dropped.
    fn body_stream(
        &self,
        operation: &'static str,
        answered: Answered,
    ) -> impl futures::Stream<Item = Result<Bytes, RegistryError>> + Send + 'static + use<> {
        let Answered { response, permit } = answered;
        let stall = self.inner.settings.stall_timeout;
        let host = self.inner.host.clone();
        let stalled = self.stalled(operation);
        let body = Box::pin(response.bytes_stream());
        futures::stream::unfold(Some((body, permit)), move |state| {
            let host = host.clone();
            let stalled = stalled.clone();
            async move {
                let (mut body, permit) = state?;
                match tokio::time::timeout(stall, body.next()).await {
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some((body, permit)))),
                    Ok(Some(Err(error))) => {
                        Some((Err(RegistryError::transport(operation, &host, error)), None))
                    }
                    Ok(None) => None,
                    Err(_) => Some((Err(stalled), None)),
                }
            }
        })
    }

    async fn read_limited(
        &self,
        operation: &'static str,
        response: Answered,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        let too_large = |size: usize| RegistryError::Manifest {
            at: self.inner.host.clone(),
            source: manifest::ManifestError::TooLarge(size),
        };
        if let Some(length) = response.content_length()
            && length > limit as u64
        {
            return Err(too_large(usize::try_from(length).unwrap_or(usize::MAX)));
        }
        let mut body = Vec::new();
        let stream = self.body_stream(operation, response);
        tokio::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if chunk.len() > limit.saturating_sub(body.len()) {
                return Err(too_large(body.len().saturating_add(chunk.len())));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_expired_token_answers_and_sanitises_registry_messages() {
        assert!(says_token_expired(br#"{"errors":[{"code":"DENIED","message":"Your authorization token has expired. Reauthenticate and try again."}]}"#));
        assert!(!says_token_expired(
            br#"{"errors":[{"code":"MANIFEST_INVALID","message":"bad"}]}"#
        ));
        let detail = oci_error_detail(
            b"{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no\\u001b[31m way\"}]}",
        )
        .unwrap();
        assert_eq!(detail, "DENIED no[31m way");
        assert_eq!(oci_error_detail(b"<html>"), None);
    }

    use super::test_server::{Body, Reply, TestServer};
    use crate::registry::auth::{Credential, Secret, StaticCredential};
    use crate::registry::digest::Digest;

    fn basic(user: &str) -> SharedSource {
        Arc::new(StaticCredential(Credential::Basic {
            username: user.into(),
            password: Secret::new("pw"),
        }))
    }

    fn plain(max_concurrent_requests: usize) -> ClientSettings {
        ClientSettings {
            plain_http: true,
            max_concurrent_requests,
            ..ClientSettings::default()
        }
    }

    fn digest() -> Digest {
        Digest::sha256_of(b"blob")
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_is_permanent() {
        // A peer that answers a ClientHello with plain HTTP.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut hello = [0u8; 512];
                let _ = stream.read(&mut hello).await;
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let client = RegistryClient::new(
            &format!("127.0.0.1:{port}"),
            basic("u"),
            ClientSettings::default(),
        )
        .unwrap();
        let error = client.blob_size("team/app", &digest()).await.unwrap_err();
        assert_eq!(error.reason(), "TLSError", "{error}");
        assert!(!error.is_transient(), "{error}");
        server.abort();
    }

    #[tokio::test]
    async fn wrong_manifest_bytes_are_read_three_times_then_refused_for_good() {
        use std::sync::atomic::AtomicUsize;
        let right = br#"{"schemaVersion":2}"#.to_vec();
        let digest = Digest::sha256_of(&right);
        let flaky_reads = Arc::new(AtomicUsize::new(0));
        let served = right.clone();
        let counter = flaky_reads.clone();
        let registry = TestServer::start(move |request| {
            // team/bad always sends wrong bytes; team/flaky only the first time.
            let wrong = request.path().contains("/team/bad/")
                || (request.path().contains("/team/flaky/")
                    && counter.fetch_add(1, Ordering::SeqCst) == 0);
            Reply::new(200)
                .header("content-type", manifest::OCI_MANIFEST)
                .body(if wrong {
                    b"{}".to_vec()
                } else {
                    served.clone()
                })
        })
        .await;
        let client = RegistryClient::new(&registry.host(), basic("u"), plain(4)).unwrap();
        let reads = |repository: &str| {
            let prefix = format!("/v2/{repository}/manifests/");
            registry
                .requests()
                .iter()
                .filter(|r| r.path().starts_with(&prefix))
                .count()
        };
        let error = client
            .get_manifest("team/bad", &digest.to_string())
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "DigestMismatch");
        assert!(!error.is_transient());
        assert_eq!(reads("team/bad"), MANIFEST_READS as usize);
        let fetched = client
            .get_manifest("team/flaky", &digest.to_string())
            .await
            .unwrap();
        assert_eq!(fetched.bytes.to_vec(), right);
        assert_eq!(reads("team/flaky"), 2);
    }

    fn stalling(seconds: u64, max_concurrent_requests: usize) -> ClientSettings {
        plain(max_concurrent_requests).with_stall_timeout(seconds)
    }

    async fn read_all(
        stream: impl futures::Stream<Item = Result<Bytes, RegistryError>>,
    ) -> Result<usize, RegistryError> {
        tokio::pin!(stream);
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk?.len();
        }
        Ok(total)
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_after_the_stall_timeout_and_may_be_retried() {
        let registry = TestServer::start(|_| {
            Reply::new(200).streamed(Body::Stall {
                first: vec![7; 100],
                declared: 1000,
            })
        })
        .await;
        let client = RegistryClient::new(&registry.host(), basic("u"), stalling(1, 4)).unwrap();
        let started = Instant::now();
        let stream = client.get_blob("team/app", &digest(), 0).await.unwrap();
        let error = tokio::time::timeout(Duration::from_secs(20), read_all(stream))
            .await
            .expect("the stall timeout ends the read")
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("stall timeout"), "{error}");
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn an_upload_the_registry_stops_reading_fails_after_the_stall_timeout() {
        let registry = super::test_server::silent().await;
        let client = RegistryClient::new(&registry.host(), basic("u"), stalling(1, 4)).unwrap();
        let session = UploadSession {
            url: reqwest::Url::parse(&format!(
                "http://{}/v2/team/app/blobs/uploads/u1",
                registry.host()
            ))
            .unwrap(),
            repository: "team/app".into(),
        };
        // More than socket buffers hold, so the body stops moving.
        let size = 64u64 << 20;
        let body = futures::stream::iter((0..64).map(|_| Ok(Bytes::from(vec![0u8; 1 << 20]))));
        let error = tokio::time::timeout(
            Duration::from_secs(30),
            client.upload_monolithic(session, &digest(), size, body),
        )
        .await
        .expect("the stall timeout ends the upload")
        .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("stall timeout"), "{error}");
    }

    #[tokio::test]
    async fn a_slow_but_steady_upload_outlasts_the_stall_timeout() {
        let registry = upload_registry(vec![201], 404).await;
        let client = RegistryClient::new(&registry.host(), basic("u"), stalling(1, 4)).unwrap();
        let session = client.start_upload("team/app").await.unwrap();
        let body = futures::stream::unfold(0, |sent| async move {
            if sent == 6 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            Some((Ok(Bytes::from(vec![7u8; 100])), sent + 1))
        });
        let started = Instant::now();
        client
            .upload_monolithic(session, &digest(), 600, body)
            .await
            .unwrap();
        assert!(started.elapsed() > Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_slow_but_steady_body_outlasts_the_stall_timeout() {
        let registry = TestServer::start(|_| {
            Reply::new(200).streamed(Body::Trickle {
                chunk: vec![7; 100],
                every: Duration::from_millis(400),
                count: Some(6),
                declared: Some(600),
            })
        })
        .await;
        let client = RegistryClient::new(&registry.host(), basic("u"), stalling(1, 4)).unwrap();
        let started = Instant::now();
        let stream = client.get_blob("team/app", &digest(), 0).await.unwrap();
        assert_eq!(read_all(stream).await.unwrap(), 600);
        assert!(
            started.elapsed() > Duration::from_secs(2),
            "longer than the stall timeout"
        );
    }

    #[tokio::test]
    async fn an_upload_never_waits_forever_for_a_permit_held_by_its_own_read() {
        // One permit, held by a streaming read; the upload it feeds still goes.
        let registry = upload_registry(vec![201], 404).await;
        let client = RegistryClient::new(&registry.host(), basic("u"), stalling(1, 1)).unwrap();
        let session = client.start_upload("team/app").await.unwrap();
        let held = client.inner.permits.clone().acquire_owned().await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(20),
            client.upload_monolithic(session, &digest(), 4, blob()),
        )
        .await
        .expect("the upload went ahead after the stall timeout")
        .unwrap();
        drop(held);
        assert_eq!(client.inner.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_streaming_body_holds_its_permit_until_read_or_dropped() {
        let registry = TestServer::start(|_| {
            Reply::new(200).streamed(Body::Stall {
                first: vec![7; 100],
                declared: 1000,
            })
        })
        .await;
        let client = RegistryClient::new(&registry.host(), basic("u"), stalling(60, 2)).unwrap();
        let permits = || client.inner.permits.available_permits();
        let first = client.get_blob("team/app", &digest(), 0).await.unwrap();
        assert_eq!(permits(), 1, "the first body still streams");
        let second = client.get_blob("team/app", &digest(), 0).await.unwrap();
        assert_eq!(permits(), 0);
        drop(first);
        assert_eq!(permits(), 1);
        drop(second);
        assert_eq!(permits(), 2);
    }

    /// A registry whose closing PUT answers `put` (in turn; the last one
    /// repeats) and whose blob HEAD answers `head`.
    async fn upload_registry(put: Vec<u16>, head: u16) -> TestServer {
        let puts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        TestServer::start(move |request| {
            let location = "/v2/team/app/blobs/uploads/u1";
            match (request.method.as_str(), request.path()) {
                ("GET", "/v2/") => Reply::new(200),
                ("POST", _) | ("PATCH", _) => Reply::new(202).header("location", location),
                ("PUT", _) => {
                    let n = puts.fetch_add(1, Ordering::SeqCst);
                    Reply::new(put[n.min(put.len() - 1)])
                }
                ("HEAD", _) => Reply::new(head),
                _ => Reply::new(404),
            }
        })
        .await
    }

    fn count(registry: &TestServer, method: &str) -> usize {
        registry
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path() != "/v2/")
            .count()
    }

    fn blob()
    -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + Unpin + 'static
    {
        futures::stream::iter(vec![Ok(Bytes::from_static(b"blob"))])
    }

    #[tokio::test]
    async fn a_committed_upload_whose_answer_failed_is_a_success() {
        // Chunked: the closing PUT answers 500 after committing; then 404 (session gone).
        let registry = upload_registry(vec![500, 404], 200).await;
        let client = RegistryClient::new(&registry.host(), basic("u"), plain(4)).unwrap();
        let session = client.start_upload("team/app").await.unwrap();
        client
            .upload_chunked(session, &digest(), 4, 8 << 20, blob())
            .await
            .unwrap();
        assert_eq!((count(&registry, "PUT"), count(&registry, "HEAD")), (1, 1));
        // Monolithic: the same.
        let registry = upload_registry(vec![500], 200).await;
        let client = RegistryClient::new(&registry.host(), basic("u"), plain(4)).unwrap();
        let session = client.start_upload("team/app").await.unwrap();
        client
            .upload_monolithic(session, &digest(), 4, blob())
            .await
            .unwrap();
        assert_eq!((count(&registry, "PUT"), count(&registry, "HEAD")), (1, 1));
    }

    #[tokio::test]
    async fn a_lost_upload_session_is_never_not_found() {
        let registry = upload_registry(vec![503, 404], 404).await;
        let client = RegistryClient::new(&registry.host(), basic("u"), plain(4)).unwrap();
        let session = client.start_upload("team/app").await.unwrap();
        let error = client
            .upload_chunked(session, &digest(), 4, 8 << 20, blob())
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "UploadSessionLost", "{error}");
        assert!(!error.is_not_found());
        assert!(error.is_transient());
        assert_eq!((count(&registry, "PUT"), count(&registry, "HEAD")), (2, 2));
    }

    #[test]
    fn any_rate_gives_a_bounded_pace() {
        let cases = [
            (20.0, Some(Duration::from_millis(50))),
            (1e-300, Some(MAX_PACE_INTERVAL)),
            (5e-324, Some(MAX_PACE_INTERVAL)),
            (f64::INFINITY, Some(Duration::ZERO)),
            (0.0, None),
            (-1.0, None),
            (f64::NAN, None),
        ];
        for (rps, expected) in cases {
            assert_eq!(pace_interval(rps), expected, "{rps}");
        }
    }

    #[tokio::test]
    async fn a_client_with_another_source_shares_limits_but_not_credentials() {
        let registry = TestServer::start(|request| match request.header("authorization") {
            None => Reply::new(401).header("www-authenticate", "Basic realm=r"),
            Some(_) => Reply::new(200).header("x-size", "4"),
        })
        .await;
        let first = RegistryClient::new(&registry.host(), basic("first"), plain(3)).unwrap();
        let second = first.with_source(basic("second"));
        first.blob_size("team/app", &digest()).await.unwrap();
        second.blob_size("team/app", &digest()).await.unwrap();
        second.blob_size("team/app", &digest()).await.unwrap();
        let users: Vec<String> = registry
            .requests()
            .iter()
            .filter(|r| r.method == "HEAD" && r.path().contains("/blobs/"))
            .map(|r| {
                let value = r.header("authorization").unwrap();
                let encoded = value.strip_prefix("Basic ").unwrap();
                let decoded =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
                        .unwrap();
                String::from_utf8(decoded).unwrap()
            })
            .collect();
        assert_eq!(users, ["first:pw", "second:pw", "second:pw"]);
        assert_eq!((first.requests(), second.requests()), (1, 2));
        assert_eq!(second.host(), first.host());
        // One pool, one set of permits and one pace for the host.
        assert!(Arc::ptr_eq(&first.inner, &second.inner));
        assert!(!Arc::ptr_eq(&first.auth, &second.auth));
        assert_eq!(first.inner.permits.available_permits(), 3);
        let held = first.inner.permits.acquire().await.unwrap();
        assert_eq!(second.inner.permits.available_permits(), 2);
        drop(held);
        // A counting handle keeps its session.
        assert!(Arc::ptr_eq(&second.counting().auth, &second.auth));
    }

    #[tokio::test]
    async fn a_401_with_a_challenge_brings_credentials_to_an_anonymous_registry() {
        let realm = TestServer::start(|request| match request.header("authorization") {
            Some(_) => Reply::new(200).body(r#"{"token":"repo-token"}"#),
            None => Reply::new(401),
        })
        .await;
        let realm_url = format!("http://{}/token", realm.host());
        let registry = TestServer::start(move |request| {
            if request.path() == "/v2/" {
                return Reply::new(200);
            }
            match request.header("authorization") {
                Some("Bearer repo-token") => Reply::new(200),
                _ => Reply::new(401).header(
                    "www-authenticate",
                    &format!(
                        r#"Bearer realm="{realm_url}",service="svc",scope="repository:team/app:pull""#
                    ),
                ),
            }
        })
        .await;
        let client = RegistryClient::new(&registry.host(), basic("u"), plain(4)).unwrap();
        assert!(
            client
                .blob_size("team/app", &digest())
                .await
                .unwrap()
                .is_some()
        );
        let token_requests = realm.requests();
        assert_eq!(token_requests.len(), 1);
        let query = &token_requests[0].target;
        assert!(
            query.contains("service=svc") && query.contains("scope=repository%3Ateam%2Fapp%3Apull"),
            "{query}"
        );
        // The learned challenge serves the next request without a 401 first.
        client.blob_size("team/app", &digest()).await.unwrap();
        let statuses = registry.requests().len();
        assert_eq!(statuses, 4, "/v2/, 401, 200, 200");
    }

    mod untrusted {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

            #[test]
            fn oci_error_bodies_never_panic(
                body in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..300),
                    proptest::collection::vec((".{0,40}", ".{0,400}", any::<bool>()), 0..4)
                        .prop_map(|errors| {
                            let errors: Vec<serde_json::Value> = errors
                                .into_iter()
                                .map(|(code, message, detail)| {
                                    let mut e = serde_json::json!({"code": code, "message": message});
                                    if detail {
                                        e["detail"] = serde_json::json!({"nested": [1, 2]});
                                    }
                                    e
                                })
                                .collect();
                            serde_json::to_vec(&serde_json::json!({ "errors": errors })).unwrap()
                        }),
                ],
            ) {
                let _ = says_token_expired(&body);
                if let Some(detail) = oci_error_detail(&body) {
                    prop_assert!(detail.chars().count() <= 300);
                    prop_assert!(!detail.chars().any(char::is_control));
                }
            }
        }
    }
}
