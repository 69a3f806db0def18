//! An OCI distribution client for one registry host: the transport layers
//! (authentication → per-registry concurrency and pace → retry with backoff) and
//! the operations the copy engine needs, each checked against what the
//! distribution spec allows a registry to answer.
//!
//! Why not oci-client for this: it has no retries or 429 handling, caps chunked
//! uploads at 4 MiB parts accepting only 202 (ECR needs ≥ 5 MiB parts and answers
//! 201), mounts only inside one registry and treats a refused mount as an error,
//! and its auth store is write-once (ECR tokens expire). See docs/architecture.md.

use super::auth::{AuthSession, Scope, SharedSource};
use super::digest::Digest;
use super::error::RegistryError;
use super::manifest::{self, MAX_MANIFEST_BYTES};
use super::retry::{self, RetryPolicy};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::{StatusCode, header};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Mutex, Semaphore};

/// How uploads are sent to a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// One streamed `PUT ?digest=` with the whole blob (most registries).
    Monolithic,
    /// `PATCH` parts of at least `part_size` bytes, then a closing `PUT` (ECR).
    Chunked { part_size: u64 },
}

/// Connection settings and limits for one registry.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Plain HTTP instead of HTTPS (only for registries declared insecure).
    pub plain_http: bool,
    /// Extra CA certificates (PEM) trusted for this registry.
    pub ca_pem: Option<Vec<u8>>,
    pub max_concurrent_requests: usize,
    /// Requests started per second; None for no limit.
    pub requests_per_second: Option<f64>,
    pub retry: RetryPolicy,
    pub upload: UploadMode,
    pub timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            plain_http: false,
            ca_pem: None,
            max_concurrent_requests: 16,
            requests_per_second: None,
            retry: RetryPolicy::default(),
            upload: UploadMode::Monolithic,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// What a manifest HEAD or GET told about a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest as received: exact bytes, their media type and digest.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

/// Result of asking a registry to mount a blob from another repository.
#[derive(Debug)]
pub enum Mount {
    Mounted,
    /// The registry refused and opened an upload session instead (202).
    Refused(UploadSession),
}

/// An open upload session (the Location of `POST /blobs/uploads/`).
#[derive(Debug)]
pub struct UploadSession {
    url: reqwest::Url,
    repository: String,
}

struct Inner {
    host: String,
    base: String,
    http: reqwest::Client,
    auth: AuthSession,
    permits: Semaphore,
    pace: Option<(Duration, Mutex<Instant>)>,
    settings: ClientSettings,
}

/// A client for one registry host; cheap to clone. Clones made with
/// [`RegistryClient::counting`] share the connection, tokens and limits but
/// count their own requests.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client: TLS with extra CAs, redirects limited and HTTPS-only.
fn http_client(settings: &ClientSettings, host: &str) -> Result<reqwest::Client, RegistryError> {
    let plain_http = settings.plain_http;
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if attempt.url().scheme() != "https" && !plain_http {
            attempt.error("redirect to a non-HTTPS location refused")
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(redirects)
        .user_agent(concat!("image-promoter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .timeout(settings.timeout)
        .pool_max_idle_per_host(settings.max_concurrent_requests);
    if let Some(pem) = &settings.ca_pem {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::Transport {
                operation: "loading CA bundle",
                host: host.to_string(),
                message: e.without_url().to_string(),
                transient: false,
            })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| RegistryError::transport("building HTTP client", host, e))
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
        let pace = settings
            .requests_per_second
            .filter(|rps| *rps > 0.0)
            .map(|rps| {
                (
                    Duration::from_secs_f64(1.0 / rps),
                    Mutex::new(Instant::now()),
                )
            });
        Ok(Self {
            inner: Arc::new(Inner {
                host: host.to_string(),
                base: format!("{scheme}://{host}"),
                http,
                auth: AuthSession::new(host, source),
                permits: Semaphore::new(settings.max_concurrent_requests.max(1)),
                pace,
                settings,
            }),
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A handle that shares everything but counts its own requests.
    pub fn counting(&self) -> Self {
        Self {
            inner: self.inner.clone(),
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

    /// Sends a replayable request: authenticates, retries transient failures
    /// (honouring Retry-After), refreshes credentials once on 401.
    async fn send(
        &self,
        operation: &'static str,
        scope: &Scope,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let policy = &self.inner.settings.retry;
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let authorization = self
                .inner
                .auth
                .authorization(&self.inner.http, &self.inner.base, scope)
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
            self.wait_for_pace().await;
            let result = {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .expect("semaphore never closes");
                self.requests.fetch_add(1, Ordering::Relaxed);
                request.send().await
            };
            match result {
                Ok(response)
                    if response.status() == StatusCode::UNAUTHORIZED && !reauthenticated =>
                {
                    reauthenticated = true;
                    attempt -= 1;
                    self.inner.auth.refused(scope).await;
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
                    tokio::time::sleep(policy.delay(attempt, after, fastrand::f64())).await;
                }
                Ok(response) => return Ok(response),
                Err(error) => {
                    let error = RegistryError::transport(operation, &self.inner.host, error);
                    if !(error.is_transient() && policy.allows_another(attempt)) {
                        return Err(error);
                    }
                    tracing::debug!(host = %self.inner.host, operation, attempt, %error, "retrying");
                    tokio::time::sleep(policy.delay(attempt, None, fastrand::f64())).await;
                }
            }
        }
    }

    /// Sends a request whose body cannot be replayed: authenticates, sends once.
    async fn send_once(
        &self,
        operation: &'static str,
        scope: &Scope,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let authorization = self
            .inner
            .auth
            .authorization(&self.inner.http, &self.inner.base, scope)
            .await?;
        let request = match authorization {
            Some(value) => request.header(header::AUTHORIZATION, value),
            None => request,
        };
        self.wait_for_pace().await;
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("semaphore never closes");
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::transport(operation, &self.inner.host, e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.inner.auth.refused(scope).await;
        }
        Ok(response)
    }

    /// HEAD a manifest; None when it does not exist.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send("HEAD manifest", &Scope::pull(repository), || {
                self.inner
                    .http
                    .head(&url)
                    .header(header::ACCEPT, manifest::ACCEPTED.join(", "))
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<Digest>().ok());
                let Some(digest) = digest else {
                    // No digest header: the only way to know is to read the bytes.
                    return self.get_manifest(repository, reference).await.map(|m| {
                        Some(ManifestHead {
                            size: m.bytes.len() as u64,
                            digest: m.digest,
                            media_type: m.media_type,
                        })
                    });
                };
                let media_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let size = response.content_length().unwrap_or(0);
                Ok(Some(ManifestHead {
                    digest,
                    media_type,
                    size,
                }))
            }
            status => Err(self.status_error("HEAD manifest", status, &[])),
        }
    }

    /// GET a manifest's exact bytes, size-limited and digest-checked.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send("GET manifest", &Scope::pull(repository), || {
                self.inner
                    .http
                    .get(&url)
                    .header(header::ACCEPT, manifest::ACCEPTED.join(", "))
            })
            .await?;
        let status = response.status();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = self
            .read_limited("GET manifest", response, MAX_MANIFEST_BYTES)
            .await?;
        if !status.is_success() {
            return Err(self.status_error("GET manifest", status, &bytes));
        }
        let manifest_error = |source| RegistryError::Manifest {
            host: self.inner.host.clone(),
            repository: repository.to_string(),
            source,
        };
        let media_type =
            manifest::media_type_of(content_type.as_deref(), &bytes).map_err(manifest_error)?;
        let expected = reference.parse::<Digest>().ok().or(header_digest);
        let actual = match &expected {
            Some(expected) => {
                let mut hasher = expected.hasher();
                hasher.update(&bytes);
                hasher.finish()
            }
            None => Digest::sha256_of(&bytes),
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                host: self.inner.host.clone(),
                repository: repository.to_string(),
                expected,
                actual,
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: actual,
        })
    }

    async fn read_limited(
        &self,
        operation: &'static str,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        let too_large = |size: usize| RegistryError::Manifest {
            host: self.inner.host.clone(),
            repository: String::new(),
            source: manifest::ManifestError::TooLarge(size),
        };
        if let Some(length) = response.content_length()
            && length > limit as u64
        {
            return Err(too_large(length as usize));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| RegistryError::transport(operation, &self.inner.host, e))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large(body.len() + chunk.len()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// PUT manifest bytes under a tag or digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send("PUT manifest", &Scope::push(repository), || {
                self.inner
                    .http
                    .put(&url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        let status = response.status();
        if status == StatusCode::CREATED || status == StatusCode::OK {
            return Ok(());
        }
        let body = self
            .read_limited("PUT manifest", response, 64 << 10)
            .await
            .unwrap_or_default();
        Err(self.status_error("PUT manifest", status, &body))
    }

    /// HEAD a blob; its size when it exists.
    pub async fn blob_size(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let response = self
            .send("HEAD blob", &Scope::pull(repository), || {
                self.inner.http.head(&url)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response.content_length().unwrap_or(0))),
            status => Err(self.status_error("HEAD blob", status, &[])),
        }
    }

    /// GET a blob from `offset` on; the response streams its body.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, RegistryError>> + use<>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let response = self
            .send("GET blob", &Scope::pull(repository), || {
                let request = self.inner.http.get(&url);
                if offset > 0 {
                    request.header(header::RANGE, format!("bytes={offset}-"))
                } else {
                    request
                }
            })
            .await?;
        let status = response.status();
        let resumed = offset == 0 || status == StatusCode::PARTIAL_CONTENT;
        if !status.is_success() || !resumed {
            let body = self
                .read_limited("GET blob", response, 64 << 10)
                .await
                .unwrap_or_default();
            return Err(if status.is_success() {
                RegistryError::Status {
                    operation: "GET blob (resume)",
                    host: self.inner.host.clone(),
                    status: status.as_u16(),
                    detail: Some("the registry ignored the Range request".into()),
                }
            } else {
                self.status_error("GET blob", status, &body)
            });
        }
        let host = self.inner.host.clone();
        Ok(response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| RegistryError::transport("GET blob", &host, e))))
    }

    fn upload_url(
        &self,
        operation: &'static str,
        response: &reqwest::Response,
    ) -> Result<reqwest::Url, RegistryError> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::MissingLocation {
                operation,
                host: self.inner.host.clone(),
            })?;
        let base = reqwest::Url::parse(&self.inner.base).expect("base URL is valid");
        let url = base
            .join(location)
            .map_err(|_| RegistryError::MissingLocation {
                operation,
                host: self.inner.host.clone(),
            })?;
        let same_origin = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        if !same_origin {
            return Err(RegistryError::ForeignLocation {
                operation,
                host: self.inner.host.clone(),
                location_host: url.host_str().unwrap_or_default().to_string(),
            });
        }
        Ok(url)
    }

    /// Opens an upload session.
    pub async fn start_upload(&self, repository: &str) -> Result<UploadSession, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let response = self
            .send("POST upload", &Scope::push(repository), || {
                self.inner.http.post(&url)
            })
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            let status = response.status();
            let body = self
                .read_limited("POST upload", response, 64 << 10)
                .await
                .unwrap_or_default();
            return Err(self.status_error("POST upload", status, &body));
        }
        Ok(UploadSession {
            url: self.upload_url("POST upload", &response)?,
            repository: repository.to_string(),
        })
    }

    /// Asks the registry to mount `digest` from `from` (same registry) into `repository`.
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let scope = Scope::push(repository).and_pull(from);
        let response = self
            .send("POST mount", &scope, || {
                self.inner
                    .http
                    .post(&url)
                    .query(&[("mount", digest.to_string().as_str()), ("from", from)])
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Refused(UploadSession {
                url: self.upload_url("POST mount", &response)?,
                repository: repository.to_string(),
            })),
            status => {
                let body = self
                    .read_limited("POST mount", response, 64 << 10)
                    .await
                    .unwrap_or_default();
                Err(self.status_error("POST mount", status, &body))
            }
        }
    }

    /// Streams a whole blob into an upload session with one `PUT ?digest=`.
    /// `body` must yield exactly `size` bytes; an error item aborts the request,
    /// so nothing is committed.
    pub async fn upload_monolithic<S>(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        let mut url = session.url;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let request = self
            .inner
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        let response = self
            .send_once("PUT blob", &Scope::push(&session.repository), request)
            .await?;
        let status = response.status();
        if status == StatusCode::CREATED {
            return Ok(());
        }
        let body = self
            .read_limited("PUT blob", response, 64 << 10)
            .await
            .unwrap_or_default();
        Err(self.status_error("PUT blob", status, &body))
    }

    /// Streams a blob as `PATCH` parts of `part_size` bytes (the last may be
    /// smaller), accepting 201 or 202 for each part as ECR does, then closes the
    /// session with `PUT ?digest=`.
    pub async fn upload_chunked(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        part_size: u64,
        mut body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
    ) -> Result<(), RegistryError> {
        let scope = Scope::push(&session.repository);
        let mut url = session.url;
        let mut offset = 0u64;
        let mut leftover: Option<Bytes> = None;
        while offset < size {
            let length = part_size.min(size - offset);
            let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            let part = receiver_stream(receiver);
            let request = self
                .inner
                .http
                .patch(url.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, length)
                .header(
                    header::CONTENT_RANGE,
                    format!("{}-{}", offset, offset + length - 1),
                )
                .body(reqwest::Body::wrap_stream(part));
            let feed = async {
                let mut remaining = length;
                while remaining > 0 {
                    let mut chunk = match leftover.take() {
                        Some(chunk) => chunk,
                        None => match body.next().await {
                            Some(Ok(chunk)) => chunk,
                            Some(Err(error)) => {
                                let _ = sender.send(Err(error)).await;
                                return false;
                            }
                            None => {
                                let _ = sender
                                    .send(Err(std::io::Error::new(
                                        std::io::ErrorKind::UnexpectedEof,
                                        "source ended early",
                                    )))
                                    .await;
                                return false;
                            }
                        },
                    };
                    if chunk.len() as u64 > remaining {
                        leftover = Some(chunk.split_off(remaining as usize));
                    }
                    remaining -= chunk.len() as u64;
                    if sender.send(Ok(chunk)).await.is_err() {
                        return false;
                    }
                }
                drop(sender);
                true
            };
            let (response, fed) = tokio::join!(self.send_once("PATCH blob", &scope, request), feed);
            let response = response?;
            let status = response.status();
            if !(status == StatusCode::ACCEPTED || status == StatusCode::CREATED) || !fed {
                let body = self
                    .read_limited("PATCH blob", response, 64 << 10)
                    .await
                    .unwrap_or_default();
                return Err(self.status_error("PATCH blob", status, &body));
            }
            url = self.upload_url("PATCH blob", &response)?;
            offset += length;
        }
        // Whatever the source still sends past the declared size is a mismatch.
        if leftover.is_some_and(|b| !b.is_empty()) {
            return Err(RegistryError::Cancelled(
                "source sent more bytes than declared".into(),
            ));
        }
        match body.next().await {
            None => {}
            Some(Ok(extra)) if extra.is_empty() => {}
            Some(Ok(_)) => {
                return Err(RegistryError::Cancelled(
                    "source sent more bytes than declared".into(),
                ));
            }
            Some(Err(error)) => return Err(RegistryError::Cancelled(error.to_string())),
        }
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let response = self
            .send("PUT blob", &scope, || {
                self.inner
                    .http
                    .put(url.clone())
                    .header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        let status = response.status();
        if status == StatusCode::CREATED {
            return Ok(());
        }
        let body = self
            .read_limited("PUT blob", response, 64 << 10)
            .await
            .unwrap_or_default();
        Err(self.status_error("PUT blob", status, &body))
    }

    /// Sends an arbitrary replayable GET (used for tag lists and referrers).
    pub async fn get_json(
        &self,
        operation: &'static str,
        repository: &str,
        path: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Option<Bytes>, RegistryError> {
        let url = self.url(path);
        let response = self
            .send(operation, &Scope::pull(repository), || {
                self.inner.http.get(&url).header(header::ACCEPT, accept)
            })
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = self.read_limited(operation, response, limit).await?;
        if !status.is_success() {
            return Err(self.status_error(operation, status, &body));
        }
        Ok(Some(body))
    }
}

/// A stream over an mpsc receiver.
pub(crate) fn receiver_stream<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + Sync + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
