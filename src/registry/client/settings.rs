//! How to reach one registry: TLS, limits, retries, upload mode; and the HTTP
//! client those settings build.

use crate::registry::error::RegistryError;
use crate::registry::retry::RetryPolicy;
use std::time::Duration;

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
    /// A request fails (transient) when its body sends or receives nothing for
    /// this long; a large blob may take as long as it needs while bytes flow.
    pub stall_timeout: Duration,
}

/// The default stall timeout.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest stall timeout accepted.
pub const MAX_STALL_TIMEOUT: Duration = Duration::from_secs(3600);

impl ClientSettings {
    /// These settings with a stall timeout of `seconds`, kept within 1 s … 1 h.
    pub fn with_stall_timeout(mut self, seconds: u64) -> Self {
        self.stall_timeout = Duration::from_secs(seconds.clamp(1, MAX_STALL_TIMEOUT.as_secs()));
        self
    }
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
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

/// Builds the HTTP client: TLS with extra CAs, redirects limited and HTTPS-only.
pub(super) fn http_client(
    settings: &ClientSettings,
    host: &str,
) -> Result<reqwest::Client, RegistryError> {
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
    let builder = reqwest::Client::builder()
        .redirect(redirects)
        .user_agent(concat!("image-promoter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        // No total or read timeout here: reqwest's read timeout also bounds the
        // wait for an answer from the start of the request, upload included.
        // The client applies the stall timeout itself (client/mod.rs).
        .pool_max_idle_per_host(settings.max_concurrent_requests)
        // HTTP/2 multiplexes every blob over one connection under small flow-control
        // windows; a 256 MiB copy took twice as long as over HTTP/1.1 connections.
        .http1_only()
        .tls_backend_preconfigured(super::tls::client_config(settings.ca_pem.as_deref(), host)?);
    builder
        .build()
        .map_err(|e| RegistryError::transport("building HTTP client", host, e))
}
