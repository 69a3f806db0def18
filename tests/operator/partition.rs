//! A network partition between one operator replica and the apiserver.
//!
//! What it fakes: a replica whose node loses the network to the control plane
//! while its registries stay reachable — the case where a leader that does
//! not notice keeps writing next to the replica that takes its place.
//!
//! Why it exists: the fault proxy in tests/faults/proxy.rs speaks HTTP/1.1
//! to a registry and cannot carry the apiserver's TLS end to end; this is a
//! plain TCP relay. The replica's kubeconfig names the relay as its server
//! (the apiserver's certificate is for 127.0.0.1, so TLS still verifies).
//! [`Partition::cut`] stops every byte in both directions on every open
//! connection and holds new connections open without answering, as a
//! dropped route does (requests hang; nothing is refused);
//! [`Partition::heal`] closes the held connections and relays again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::unique_name;

/// A running relay; it stops when dropped (held connections close).
pub struct Partition {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Partition {
    /// A relay to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the partition relay");
        let addr = listener.local_addr().expect("relay address");
        let (cut, _) = watch::channel(false);
        let upstream = upstream.to_string();
        let state = cut.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), state.subscribe()));
            }
        });
        Self { addr, cut, accept }
    }

    /// Cuts every connection, open or new.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relays again; connections held during the cut are closed.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// `kubeconfig` with its server replaced by this relay; its path.
    pub fn kubeconfig(&self, kubeconfig: &Path) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig");
        let mut config: Value = serde_yaml_ng::from_str(&text).expect("the kubeconfig parses");
        for cluster in config["clusters"].as_array_mut().expect("clusters") {
            let server = cluster["cluster"]["server"]
                .as_str()
                .expect("a server URL")
                .to_string();
            let url = reqwest::Url::parse(&server).expect("the server URL parses");
            let host = url.host_str().expect("the server's host");
            assert_eq!(
                host,
                self.addr.ip().to_string(),
                "the relay listens on the server's address, so its certificate still matches"
            );
            cluster["cluster"]["server"] =
                Value::String(format!("{}://{}", url.scheme(), self.addr));
        }
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}.kubeconfig", unique_name("partitioned")));
        std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        path
    }
}

/// The upstream address of the kubeconfig's (first) server.
pub fn server(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig");
    let config: Value = serde_yaml_ng::from_str(&text).expect("the kubeconfig parses");
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("a server URL");
    let url = reqwest::Url::parse(server).expect("the server URL parses");
    format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port_or_known_default().expect("a port")
    )
}

/// Relays `client` to `upstream` until either side closes or the cut comes;
/// then holds both sockets silent until the cut heals or the relay stops.
async fn relay(mut client: TcpStream, upstream: String, mut cut: watch::Receiver<bool>) {
    let open = !*cut.borrow();
    if open {
        let Ok(mut server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let cut_off = async { cut.wait_for(|cut| *cut).await.is_ok() };
        let closed = tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => true,
            _ = cut_off => false,
        };
        if closed {
            let _ = client.shutdown().await;
            return;
        }
    }
    // Held, not closed: the replica sees silence, not an error.
    let healed = async { cut.wait_for(|cut| !*cut).await.is_ok() };
    healed.await;
}
