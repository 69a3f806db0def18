//! The operator's two small HTTP endpoints, on the addresses
//! controller-runtime's flags name: `/healthz` and `/readyz` (ready once
//! the caches have synced and no watch is failing) on the probe address,
//! `/metrics` on the metrics address. Served by hyper's HTTP/1 server (hyper
//! is in the tree through kube): keep-alive, GET and HEAD only, and a
//! deadline for a request's head so a slow client holds no connection open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Parses a controller-runtime bind address: `:8080` (every interface),
/// `host:port`, or `0` (disabled: `None`).
pub fn parse_bind_address(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == "0" {
        return Ok(None);
    }
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse().map(Some).map_err(|_| {
        format!("{text:?} is not a bind address: use :PORT, HOST:PORT or 0 to disable")
    })
}

/// How long a failing watch keeps the operator not ready after its last error.
pub const PROBLEM_WINDOW: Duration = Duration::from_secs(60);

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    problem: Mutex<Option<(Instant, String)>>,
}

impl Health {
    /// The caches have synced.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    /// A watch failed with `problem` at `at`.
    pub fn set_problem(&self, at: Instant, problem: String) {
        *self.problem.lock().expect("lock never poisoned") = Some((at, problem));
    }

    /// `Ok` when ready now, else why not.
    pub fn ready(&self) -> Result<(), String> {
        self.ready_at(Instant::now())
    }

    /// `Ok` when ready at `now`: synced, and no watch failed in the last [`PROBLEM_WINDOW`].
    pub fn ready_at(&self, now: Instant) -> Result<(), String> {
        if let Some((at, problem)) = self.problem.lock().expect("lock never poisoned").clone()
            && now.saturating_duration_since(at) < PROBLEM_WINDOW
        {
            return Err(problem);
        }
        if !self.synced.load(Ordering::SeqCst) {
            return Err("the caches have not synced yet".into());
        }
        Ok(())
    }
}

/// A response: status code, content type, body.
pub type Response = (u16, &'static str, String);

/// How long a client may take to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `handler` on `listener` until the process ends: each connection
/// gets its own task and HTTP/1.1 with keep-alive.
pub async fn serve<H>(listener: TcpListener, handler: Arc<H>)
where
    H: Fn(&str) -> Response + Send + Sync + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&*handler, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "an HTTP connection ended with an error");
            }
        });
    }
}

/// The answer of `handler` to `request`: GET and HEAD by path (the query
/// ignored), 405 for any other method.
fn respond<H>(handler: &H, request: &Request<Incoming>) -> hyper::Response<Full<Bytes>>
where
    H: Fn(&str) -> Response,
{
    let (code, content_type, body) = match *request.method() {
        Method::GET | Method::HEAD => handler(request.uri().path()),
        _ => (405, "text/plain", "only GET\n".into()),
    };
    let mut response = hyper::Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, content_type);
    if code == 405 {
        response = response.header(ALLOW, "GET, HEAD");
    }
    response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"error\n"))))
}

/// The probe endpoints.
pub fn probes(health: Arc<Health>) -> impl Fn(&str) -> Response + Send + Sync + 'static {
    move |path| match path {
        "/healthz" | "/livez" => (200, "text/plain", "ok\n".into()),
        "/readyz" => match health.ready() {
            Ok(()) => (200, "text/plain", "ok\n".into()),
            Err(why) => (503, "text/plain", format!("not ready: {why}\n")),
        },
        _ => (404, "text/plain", "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_follow_controller_runtime() {
        let cases = [
            (":8080", Ok(Some("0.0.0.0:8080"))),
            ("127.0.0.1:9", Ok(Some("127.0.0.1:9"))),
            ("[::1]:9", Ok(Some("[::1]:9"))),
            ("0", Ok(None)),
        ];
        for (text, expected) in cases {
            let got = parse_bind_address(text).map(|a| a.map(|a| a.to_string()));
            assert_eq!(
                got,
                expected.map(|a: Option<&str>| a.map(String::from)),
                "{text}"
            );
        }
        assert!(parse_bind_address("8080").is_err());
        assert!(parse_bind_address(":http").is_err());
    }

    #[test]
    fn ready_only_after_sync_and_while_no_watch_fails() {
        let health = Arc::new(Health::default());
        let probe = probes(health.clone());
        assert_eq!(probe("/healthz").0, 200);
        assert_eq!(probe("/readyz").0, 503);
        health.set_synced();
        assert_eq!(probe("/readyz").0, 200);
        let now = Instant::now();
        health.set_problem(now, "watching secrets: forbidden".into());
        let (code, _, body) = probe("/readyz");
        assert_eq!(code, 503);
        assert!(body.contains("forbidden"), "{body}");
        assert!(
            health.ready_at(now + PROBLEM_WINDOW).is_ok(),
            "only while it fails"
        );
        assert_eq!(probe("/nope").0, 404);
    }

    /// Sends `request` (raw bytes) and reads until `responses` status lines
    /// came or the connection closed, with a deadline.
    async fn exchange(address: SocketAddr, request: &str, responses: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        let read = async {
            let mut buffer = [0u8; 4096];
            while text.matches("HTTP/1.1 ").count() < responses {
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        text
    }

    #[tokio::test]
    async fn the_server_keeps_connections_alive_and_answers_get_and_head_only() {
        let health = Arc::new(Health::default());
        health.set_synced();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(probes(health))));

        // Two requests on one connection (keep-alive, pipelined): two answers.
        let text = exchange(
            address,
            "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /readyz?verbose HTTP/1.1\r\nhost: x\r\n\r\n",
            2,
        )
        .await;
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{text}"
        );

        let text = exchange(
            address,
            "POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
            1,
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 405"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("allow: get, head"),
            "{text}"
        );

        let text = exchange(address, "HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n", 1).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(!text.contains("ok\n"), "no body for HEAD: {text}");

        let missing = reqwest::get(format!("http://{address}/nope"))
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
    }
}
