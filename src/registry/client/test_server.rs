//! A scripted HTTP/1.1 server on 127.0.0.1 for unit tests of the client and
//! the auth session: hostile registries and token realms that answer what a
//! test tells them (oversized or endless bodies, bodies that stall or trickle,
//! challenges on any request), and a log of what the client sent them.
//!
//! One request per connection (`Connection: close`), enough for a client that
//! reconnects as it needs.
//!
//! A hand-written fake, on purpose: no real registry or token server can be
//! told to misbehave in these ways (the integration tests put the fault proxy
//! of `tests/faults/` in front of real registries for what a proxy can fake).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server received it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// How the body of a reply is sent.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    Full(Vec<u8>),
    /// `chunk` every `every`, `count` times (forever when None), with an
    /// optional declared length; then the connection closes.
    Trickle {
        chunk: Vec<u8>,
        every: Duration,
        count: Option<usize>,
        declared: Option<u64>,
    },
    /// Declares `declared` bytes, sends `first`, then nothing more until the
    /// client goes away.
    Stall {
        first: Vec<u8>,
        declared: u64,
    },
}

/// What the server answers.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Full(Vec::new()),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Full(body.into());
        self
    }

    pub fn streamed(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A server that answers `GET /v2/` with 200 and holds every other request:
/// it reads nothing of its body and never answers.
pub(crate) async fn silent() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                if line.starts_with("GET /v2/ ") {
                    let _ = reader
                        .into_inner()
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                        )
                        .await;
                    return;
                }
                // Hold the connection, reading nothing more.
                std::future::pending::<()>().await;
            });
        }
    });
    TestServer {
        port,
        requests: Arc::new(Mutex::new(Vec::new())),
        task,
    }
}

/// A running server; stops when dropped.
pub(crate) struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, handler, log).await;
                });
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    stream: TcpStream,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Request>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body_len: 0,
    };
    if let Some(length) = request
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        let mut body = Vec::new();
        (&mut reader).take(length).read_to_end(&mut body).await?;
        request.body_len = body.len();
    } else if request.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            request.body_len += size;
            if size == 0 {
                break;
            }
        }
    }
    let reply = handler(&request);
    log.lock().unwrap().push(request);
    let mut stream = reader.into_inner();
    let mut head = format!("HTTP/1.1 {} Test\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let declared = match &reply.body {
        Body::Full(bytes) => Some(bytes.len() as u64),
        Body::Trickle { declared, .. } => *declared,
        Body::Stall { declared, .. } => Some(*declared),
    };
    if let Some(length) = declared {
        head.push_str(&format!("content-length: {length}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    match reply.body {
        Body::Full(bytes) => stream.write_all(&bytes).await?,
        Body::Trickle {
            chunk,
            every,
            count,
            ..
        } => {
            let mut sent = 0;
            while count.is_none_or(|count| sent < count) {
                stream.write_all(&chunk).await?;
                stream.flush().await?;
                sent += 1;
                tokio::time::sleep(every).await;
            }
        }
        Body::Stall { first, .. } => {
            stream.write_all(&first).await?;
            stream.flush().await?;
            // Wait until the client closes its side.
            let mut buffer = [0u8; 1024];
            let (mut read, _write) = stream.split();
            while read.read(&mut buffer).await? > 0 {}
            return Ok(());
        }
    }
    stream.shutdown().await
}
