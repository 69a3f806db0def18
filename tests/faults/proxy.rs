//! A fault-injecting reverse proxy in front of one of the test world's registries.
//!
//! What it fakes: the ways registries and networks misbehave in production —
//! throttling (429 with `Retry-After`, in seconds or as an HTTP date), bursts of
//! 503, a connection reset or closed in the middle of a blob, a body shorter than
//! the descriptor says, a body whose bytes do not match their digest, a blob read
//! that stalls (so a test can kill the copier at a known point) or trickles, an
//! answer lost or replaced after the registry acted on the request, and ECR's upload
//! dialect: `PATCH` answered with 201 and parts below a minimum size refused
//! unless they are the last of the upload.
//!
//! Why it exists: no maintained registry stand-in injects faults at the HTTP
//! level, and TCP-level tools (toxiproxy) cannot answer 429, rewrite a status or
//! corrupt a body. So this small HTTP/1.1 proxy listens on plain HTTP on
//! 127.0.0.1, forwards every request over TLS to the real registry (with the test
//! CA), passes credentials through untouched, and rewrites `Location` headers to
//! its own origin so upload sessions keep going through it. Each test starts its
//! own proxy with its own rules (method + path pattern → fault, optionally only
//! for the first N matching requests), so tests run in parallel.
//!
//! Every exchange is logged with the time its request arrived; tests assert on
//! the log (which requests were retried, how long after the 429, whether a
//! `Range` request resumed a blob, which part sizes an upload used) and wait on it
//! with deadlines instead of sleeping.

use bytes::Bytes;
use futures::StreamExt;
use regex::Regex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// The largest request head the proxy reads.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// When a throttled client may come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP date>`, this far after the moment of the answer.
    DateIn(Duration),
}

/// What the proxy does to a request that matches a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this status itself; the registry never sees the request.
    Status {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Sends this many body bytes, then resets the connection (RST).
    ResetAfter(u64),
    /// Sends this many body bytes of a longer declared body, then closes (FIN).
    CloseAfter(u64),
    /// Declares and sends this many bytes fewer than the registry's body: a
    /// well-formed response that is too short.
    Shorten(u64),
    /// Flips one bit in the middle of the body; the length stays right.
    Corrupt,
    /// Sends this many body bytes, then sends nothing more until the client
    /// goes away.
    StallAfter(u64),
    /// Sends the body in pieces of `piece` bytes, one every `every`: slow but
    /// steady.
    Trickle { piece: u64, every: Duration },
    /// Forwards the request (the registry acts on it), then closes the
    /// connection without answering: an answer lost on the way back.
    LoseAnswer,
    /// Forwards the request (the registry acts on it), then answers this
    /// status instead of the registry's.
    ReplaceStatus(u16),
}

/// Method + path pattern → fault, for every match or only the first `times`.
#[derive(Clone, Debug)]
pub struct Rule {
    method: &'static str,
    path: Regex,
    fault: Fault,
    remaining: Option<u32>,
}

impl Rule {
    /// `method` is an HTTP method or `*`; `path` a regex matched against the
    /// request path (no query).
    pub fn new(method: &'static str, path: &str, fault: Fault) -> Self {
        Self {
            method,
            path: Regex::new(path).expect("valid rule pattern"),
            fault,
            remaining: None,
        }
    }

    /// Applies to the first `n` matching requests only.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }
}

/// ECR's upload dialect: 201 for a `PATCH` part, and parts smaller than
/// `min_part` refused with 400 unless they turn out to be the last.
#[derive(Clone, Copy, Debug)]
pub struct EcrUploads {
    pub min_part: u64,
}

/// One request and what the client got back.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: String,
    pub range: Option<String>,
    pub content_range: Option<String>,
    /// Request body bytes received from the client.
    pub request_bytes: u64,
    /// The status the client received.
    pub status: u16,
    /// The registry's status, when the request reached it.
    pub upstream_status: Option<u16>,
    pub fault: Option<Fault>,
    /// Response body bytes sent to the client.
    pub response_bytes: u64,
    /// The registry's `Docker-Content-Digest` (what a manifest `PUT` wrote).
    pub digest: Option<String>,
    pub received: Instant,
}

impl Exchange {
    /// The upload session a request belongs to (the last path segment under
    /// `/blobs/uploads/`).
    pub fn upload_id(&self) -> Option<&str> {
        let (_, rest) = self.path.split_once("/blobs/uploads/")?;
        Some(rest).filter(|id| !id.is_empty())
    }
}

struct Shared {
    upstream_host: String,
    origin: String,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    ecr: Option<EcrUploads>,
    /// Upload session → size of its latest accepted part (ECR dialect).
    parts: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<Exchange>>,
    logged: watch::Sender<usize>,
}

/// A running proxy; it stops accepting connections when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// A proxy in front of `upstream` (`host:port`, TLS signed by `ca_pem`).
    pub async fn start(upstream: &str, ca_pem: &[u8], rules: Vec<Rule>) -> Self {
        Self::start_with(upstream, ca_pem, rules, None).await
    }

    /// A proxy that also speaks ECR's upload dialect.
    pub async fn ecr_like(
        upstream: &str,
        ca_pem: &[u8],
        ecr: EcrUploads,
        rules: Vec<Rule>,
    ) -> Self {
        Self::start_with(upstream, ca_pem, rules, Some(ecr)).await
    }

    async fn start_with(
        upstream: &str,
        ca_pem: &[u8],
        rules: Vec<Rule>,
        ecr: Option<EcrUploads>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("test CA is PEM");
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("building the proxy's upstream client");
        let shared = Arc::new(Shared {
            upstream_host: upstream.to_string(),
            origin: format!("http://{addr}"),
            http,
            rules: Mutex::new(rules),
            ecr,
            parts: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            logged: watch::channel(0).0,
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(accepting.clone(), stream));
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// `127.0.0.1:<port>`, as image references and the engine's config write it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every exchange so far, in the order they finished.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Exchanges that a rule's fault was applied to.
    pub fn faulted(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.fault.is_some())
            .collect()
    }

    /// Waits until `done` holds for the log, or panics after `within` with
    /// what the proxy saw.
    pub async fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&[Exchange]) -> bool) {
        let mut changes = self.shared.logged.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if done(&self.exchanges()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                panic!(
                    "waited {within:?} for {what}; the proxy saw:\n{}",
                    self.summary()
                );
            }
        }
    }

    /// One line per exchange, for failure messages.
    pub fn summary(&self) -> String {
        self.exchanges()
            .iter()
            .map(|e| {
                format!(
                    "{} {} range={:?} -> {} ({:?}) sent {} bytes, received {} bytes\n",
                    e.method, e.path, e.range, e.status, e.fault, e.response_bytes, e.request_bytes
                )
            })
            .collect()
    }
}

impl Shared {
    /// The fault of the first matching rule with uses left, consuming one use.
    fn fault_for(&self, method: &str, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let rule = rules.iter_mut().find(|r| {
            (r.method == "*" || r.method == method)
                && r.path.is_match(path)
                && r.remaining != Some(0)
        })?;
        if let Some(n) = &mut rule.remaining {
            *n -= 1;
        }
        Some(rule.fault.clone())
    }

    fn record(&self, exchange: Exchange) {
        self.log.lock().unwrap().push(exchange);
        self.logged.send_modify(|n| *n += 1);
    }
}

/// How a request body is framed.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length(u64),
    Chunked,
}

struct RequestHead {
    method: String,
    target: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    framing: Framing,
    keep_alive: bool,
}

impl RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn exchange(&self, received: Instant) -> Exchange {
        Exchange {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            range: self.header("range").map(str::to_string),
            content_range: self.header("content-range").map(str::to_string),
            request_bytes: 0,
            status: 0,
            upstream_status: None,
            fault: None,
            response_bytes: 0,
            digest: None,
            received,
        }
    }
}

type Connection = BufReader<TcpStream>;

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let mut connection = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut connection).await {
        if !exchange(&shared, &mut connection, head).await {
            return;
        }
    }
}

async fn read_head(connection: &mut Connection) -> std::io::Result<Option<RequestHead>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = connection.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(std::io::Error::other("request head too large"));
        }
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(line);
    }
    let mut request_line = lines[0].split_whitespace();
    let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
        return Err(std::io::Error::other("malformed request line"));
    };
    let headers: Vec<(String, String)> = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let framing = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        Framing::Chunked
    } else {
        Framing::Length(
            find("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )
    };
    let keep_alive = find("connection").is_none_or(|v| !v.contains("close"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        framing,
        keep_alive,
    }))
}

/// Reads the request body, handing it to `sink` (or dropping it); the bytes read.
/// A client that stops sending midway turns into an error item for the sink.
async fn pump_body(
    connection: &mut Connection,
    framing: Framing,
    sink: Option<mpsc::Sender<std::io::Result<Bytes>>>,
) -> std::io::Result<u64> {
    let result = read_body(connection, framing, &sink).await;
    if let (Err(error), Some(sink)) = (&result, &sink) {
        let _ = sink
            .send(Err(std::io::Error::new(error.kind(), error.to_string())))
            .await;
    }
    result
}

async fn read_body(
    connection: &mut Connection,
    framing: Framing,
    sink: &Option<mpsc::Sender<std::io::Result<Bytes>>>,
) -> std::io::Result<u64> {
    let mut total = 0;
    match framing {
        Framing::Length(length) => {
            total += copy_exact(connection, length, sink).await?;
        }
        Framing::Chunked => loop {
            let mut line = String::new();
            connection.read_line(&mut line).await?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other("malformed chunk size"))?;
            if size == 0 {
                loop {
                    let mut trailer = String::new();
                    if connection.read_line(&mut trailer).await? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            total += copy_exact(connection, size, sink).await?;
            let mut crlf = String::new();
            connection.read_line(&mut crlf).await?;
        },
    }
    Ok(total)
}

async fn copy_exact(
    connection: &mut Connection,
    length: u64,
    sink: &Option<mpsc::Sender<std::io::Result<Bytes>>>,
) -> std::io::Result<u64> {
    let mut remaining = length;
    let mut buffer = vec![0u8; 64 << 10];
    while remaining > 0 {
        let want = remaining.min(buffer.len() as u64) as usize;
        let n = connection.read(&mut buffer[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        remaining -= n as u64;
        if let Some(sink) = sink {
            // A dropped receiver means the registry stopped listening; keep
            // draining so the connection stays in step.
            let _ = sink.send(Ok(Bytes::copy_from_slice(&buffer[..n]))).await;
        }
    }
    Ok(length)
}

fn response_head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Writes a complete response with a small body; false when the client is gone.
async fn answer(
    connection: &mut Connection,
    status: u16,
    mut headers: Vec<(String, String)>,
    body: &[u8],
) -> bool {
    headers.push(("Content-Type".into(), "application/json".into()));
    headers.push(("Content-Length".into(), body.len().to_string()));
    let stream = connection.get_mut();
    stream
        .write_all(&response_head(status, &headers))
        .await
        .is_ok()
        && stream.write_all(body).await.is_ok()
        && stream.flush().await.is_ok()
}

fn oci_error(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"errors": [{"code": code, "message": message}]}))
        .expect("JSON value serialises")
}

/// Handles one request; false when the connection must end.
async fn exchange(shared: &Shared, connection: &mut Connection, head: RequestHead) -> bool {
    let mut log = head.exchange(Instant::now());
    let fault = shared.fault_for(&head.method, &head.path);
    log.fault = fault.clone();

    if let Some(Fault::Status {
        status,
        retry_after,
    }) = &fault
    {
        let Ok(received) = pump_body(connection, head.framing, None).await else {
            return false;
        };
        log.request_bytes = received;
        let mut headers = Vec::new();
        match retry_after {
            Some(RetryAfter::Seconds(s)) => headers.push(("Retry-After".into(), s.to_string())),
            Some(RetryAfter::DateIn(after)) => headers.push((
                "Retry-After".into(),
                httpdate::fmt_http_date(SystemTime::now() + *after),
            )),
            None => {}
        }
        let code = match *status {
            429 => "TOOMANYREQUESTS",
            401 => "UNAUTHORIZED",
            _ => "UNAVAILABLE",
        };
        // A response to HEAD has no body: bytes after its head would be read as
        // the next response on the connection.
        let body = if head.method == "HEAD" {
            Vec::new()
        } else {
            oci_error(code, "injected by the fault proxy")
        };
        let ok = answer(connection, *status, headers, &body).await;
        log.status = *status;
        shared.record(log);
        return ok && head.keep_alive;
    }

    if let (Some(ecr), "PATCH") = (shared.ecr, head.method.as_str()) {
        let id = log.upload_id().unwrap_or_default().to_string();
        let previous = shared.parts.lock().unwrap().get(&id).copied();
        if let Some(previous) = previous.filter(|p| *p < ecr.min_part) {
            let Ok(received) = pump_body(connection, head.framing, None).await else {
                return false;
            };
            log.request_bytes = received;
            let message = format!(
                "Layer part size must be at least {} bytes; an earlier part had {previous}",
                ecr.min_part
            );
            let ok = answer(
                connection,
                400,
                Vec::new(),
                &oci_error("BLOB_UPLOAD_INVALID", &message),
            )
            .await;
            log.status = 400;
            shared.record(log);
            return ok && head.keep_alive;
        }
    }

    forward(shared, connection, head, log, fault).await
}

const HOP_BY_HOP: [&str; 8] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Sends the request to the registry and its answer back, applying `fault`.
async fn forward(
    shared: &Shared,
    connection: &mut Connection,
    head: RequestHead,
    mut log: Exchange,
    fault: Option<Fault>,
) -> bool {
    let url = format!("https://{}{}", shared.upstream_host, head.target);
    let method = reqwest::Method::from_bytes(head.method.as_bytes()).expect("a method token");
    let mut request = shared.http.request(method, url);
    for (name, value) in &head.headers {
        if !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let has_body = !matches!(head.framing, Framing::Length(0));
    let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(8);
    if has_body {
        let body = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        request = request.body(reqwest::Body::wrap_stream(body));
    }
    let sink = has_body.then_some(sender);
    let (response, received) =
        tokio::join!(request.send(), pump_body(connection, head.framing, sink));
    let Ok(received) = received else {
        log.status = 0;
        shared.record(log);
        return false;
    };
    log.request_bytes = received;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let body = oci_error("UNAVAILABLE", &format!("fault proxy upstream: {error}"));
            let ok = answer(connection, 502, Vec::new(), &body).await;
            log.status = 502;
            shared.record(log);
            return ok && head.keep_alive;
        }
    };

    let upstream_status = response.status().as_u16();
    log.upstream_status = Some(upstream_status);
    log.digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match &fault {
        Some(Fault::LoseAnswer) => {
            drop(response);
            let _ = connection.get_mut().shutdown().await;
            shared.record(log);
            return false;
        }
        Some(Fault::ReplaceStatus(status)) => {
            drop(response);
            let body = if head.method == "HEAD" {
                Vec::new()
            } else {
                oci_error(
                    "UNAVAILABLE",
                    "injected by the fault proxy after forwarding",
                )
            };
            let ok = answer(connection, *status, Vec::new(), &body).await;
            log.status = *status;
            shared.record(log);
            return ok && head.keep_alive;
        }
        _ => {}
    }
    let mut status = upstream_status;
    if let (Some(_), "PATCH", 202) = (shared.ecr, head.method.as_str(), upstream_status) {
        status = 201;
        if let Some(id) = log.upload_id() {
            shared
                .parts
                .lock()
                .unwrap()
                .insert(id.to_string(), received);
        }
    }
    log.status = status;

    let declared: Option<u64> = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let upstream_prefix = format!("https://{}", shared.upstream_host);
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name != "content-length" && !HOP_BY_HOP.contains(&name)
        })
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            let value = match value.strip_prefix(&upstream_prefix) {
                Some(rest) if name == reqwest::header::LOCATION => {
                    format!("{}{rest}", shared.origin)
                }
                _ => value.to_string(),
            };
            Some((name.to_string(), value))
        })
        .collect();

    let bodiless = head.method == "HEAD" || matches!(status, 204 | 304);
    if bodiless || declared.is_none() {
        // HEAD keeps the registry's length; a body of unknown length is read
        // whole (only small error documents come without a length).
        let body = if bodiless {
            Bytes::new()
        } else {
            response.bytes().await.unwrap_or_default()
        };
        if let Some(length) = declared.filter(|_| bodiless) {
            headers.push(("Content-Length".into(), length.to_string()));
        } else {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        let stream = connection.get_mut();
        let ok = stream
            .write_all(&response_head(status, &headers))
            .await
            .is_ok()
            && stream.write_all(&body).await.is_ok()
            && stream.flush().await.is_ok();
        log.response_bytes = body.len() as u64;
        shared.record(log);
        return ok && head.keep_alive;
    }

    let length = declared.expect("checked above");
    let (announced, cut) = match &fault {
        Some(Fault::Shorten(fewer)) => {
            let announced = length.saturating_sub(*fewer);
            (announced, announced)
        }
        Some(Fault::ResetAfter(n) | Fault::CloseAfter(n) | Fault::StallAfter(n)) => {
            (length, (*n).min(length))
        }
        _ => (length, length),
    };
    headers.push(("Content-Length".into(), announced.to_string()));
    let flip_at = matches!(fault, Some(Fault::Corrupt)).then_some(length / 2);

    let stream = connection.get_mut();
    if stream
        .write_all(&response_head(status, &headers))
        .await
        .is_err()
    {
        shared.record(log);
        return false;
    }
    let mut body = response.bytes_stream();
    let mut sent = 0u64;
    while sent < cut {
        let Some(Ok(chunk)) = body.next().await else {
            // The registry itself broke off; so does the proxy.
            log.response_bytes = sent;
            shared.record(log);
            return false;
        };
        let mut chunk = chunk.to_vec();
        chunk.truncate((cut - sent).min(chunk.len() as u64) as usize);
        if let Some(at) = flip_at
            && (sent..sent + chunk.len() as u64).contains(&at)
        {
            chunk[(at - sent) as usize] ^= 0x01;
        }
        let (piece, every) = match &fault {
            Some(Fault::Trickle { piece, every }) => ((*piece).max(1) as usize, Some(*every)),
            _ => (chunk.len().max(1), None),
        };
        for part in chunk.chunks(piece) {
            if let Some(every) = every {
                tokio::time::sleep(every).await;
            }
            if stream.write_all(part).await.is_err() || stream.flush().await.is_err() {
                log.response_bytes = sent;
                shared.record(log);
                return false;
            }
            sent += part.len() as u64;
        }
    }
    let _ = stream.flush().await;
    log.response_bytes = sent;
    drop(body);

    match fault {
        Some(Fault::ResetAfter(_)) => {
            let _ = connection.get_ref().set_zero_linger();
            shared.record(log);
            false
        }
        Some(Fault::CloseAfter(_)) => {
            let _ = connection.get_mut().shutdown().await;
            shared.record(log);
            false
        }
        Some(Fault::StallAfter(_)) => {
            shared.record(log);
            // Hold the connection open and silent until the client leaves.
            let mut scratch = [0u8; 1024];
            while matches!(connection.read(&mut scratch).await, Ok(n) if n > 0) {}
            false
        }
        _ => {
            shared.record(log);
            head.keep_alive
        }
    }
}
