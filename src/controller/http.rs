//! The operator's two small HTTP endpoints, on the addresses
//! controller-runtime's flags name: `/healthz` and `/readyz` (ready once
//! the caches have synced and no watch is failing) on the probe address,
//! `/metrics` on the metrics address. A plain HTTP/1.1 responder over tokio:
//! GET only, one request per connection, bounded reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Serves `handler` on `listener` until the process ends.
pub async fn serve<H>(listener: TcpListener, handler: Arc<H>)
where
    H: Fn(&str) -> Response + Send + Sync + 'static,
{
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            let mut read = 0;
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let n = stream.read(&mut buffer[read..]).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    read += n;
                    if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") || read == buffer.len() {
                        return Some(String::from_utf8_lossy(&buffer[..read]).into_owned());
                    }
                }
            })
            .await
            .ok()
            .flatten();
            let Some(head) = head else { return };
            let mut parts = head.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (code, content_type, body) = if method == "GET" {
                handler(path.split('?').next().unwrap_or(""))
            } else {
                (405, "text/plain", "only GET\n".into())
            };
            let reason = match code {
                200 => "OK",
                404 => "Not Found",
                405 => "Method Not Allowed",
                _ => "Service Unavailable",
            };
            let response = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
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
}
