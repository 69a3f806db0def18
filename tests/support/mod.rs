//! Shared by every integration test: finds the test world that `make env-up`
//! started and hands out clients for it.
//!
//! The test world is described by `target/testenv/env` (override the path with
//! `PROMOTER_TESTENV`). A missing file or variable is a test failure with a
//! message that says what to run; nothing here ever skips.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The variables of a running test world, read from its env file.
#[derive(Debug, Clone)]
pub struct TestEnv {
    vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// Reads the env file, or panics with the command that creates it.
    pub fn load() -> Self {
        Self::load_from(&env_file())
    }

    /// Reads another env file of the same shape (a private control plane's,
    /// `testenv.py private`).
    pub fn load_from(path: &std::path::Path) -> Self {
        let path = path.to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "the test world is not running ({}: {err}); start it with `make env-up` \
                 (make test does this for you)",
                path.display()
            )
        });
        let env = Self {
            vars: parse_env_file(&text),
        };
        env.check_process_environment();
        env
    }

    /// The AWS SDK reads credentials and endpoints from the process environment;
    /// without the file's values it would fall back to instance metadata. So the
    /// tests refuse to run unless the env file was sourced into their environment.
    fn check_process_environment(&self) {
        for key in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_EC2_METADATA_DISABLED",
        ] {
            let expected = self.get(key);
            let actual = std::env::var(key).unwrap_or_default();
            assert!(
                actual == expected,
                "{key} in the test process differs from {}: run the tests with the test world's \
                 environment (`make test` does; by hand: set -a; . target/testenv/env; set +a; cargo test)",
                env_file().display()
            );
        }
    }

    /// One variable; panics naming the variable and the file when it is absent.
    pub fn get(&self, key: &str) -> &str {
        self.vars.get(key).map(String::as_str).unwrap_or_else(|| {
            panic!(
                "{key} is missing from {}; rerun `make env-up`",
                env_file().display()
            )
        })
    }

    /// Every variable of the env file (to hand to a child process).
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// A path to one of the test world's tools (cosign, kubectl, helm, …).
    pub fn tool(&self, name: &str) -> PathBuf {
        let path = PathBuf::from(self.get("PROMOTER_TEST_BIN")).join(name);
        assert!(
            path.exists(),
            "{} is missing; `make tools` installs it",
            path.display()
        );
        path
    }

    /// Runs the test world's kubectl with its kubeconfig and `args`; the caller
    /// judges the exit status and output.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.tool("kubectl"))
            .arg("--kubeconfig")
            .arg(self.get("KUBECONFIG"))
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// The PEM CA bundle that signs every TLS certificate of the test world.
    pub fn ca_pem(&self) -> Vec<u8> {
        let path = self.get("PROMOTER_TEST_CA");
        std::fs::read(path).unwrap_or_else(|err| panic!("reading CA bundle {path}: {err}"))
    }

    /// A client for the test apiserver as its administrator.
    pub async fn kube_admin(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.get("KUBECONFIG"))
            .expect("reading the test world's kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("loading the test world's kubeconfig");
        kube::Client::try_from(config).expect("building a kube client")
    }

    /// A client for the test apiserver that authenticates with `token` instead.
    pub async fn kube_with_token(&self, token: &str) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.get("KUBECONFIG"))
            .expect("reading the test world's kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("loading the test world's kubeconfig");
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        kube::Client::try_from(config).expect("building a kube client")
    }
}

fn env_file() -> PathBuf {
    std::env::var_os("PROMOTER_TESTENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testenv/env"))
}

/// Parses `KEY=VALUE` lines (an `export ` prefix and matching quotes allowed).
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// A name unique to this test run, for namespaces and repositories, so tests
/// can run in parallel and again without cleaning up.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{n}", nanos ^ std::process::id())
}

/// Polls `check` until it returns `Some`, failing after `timeout`. The pause
/// between checks grows from 50 ms to 1 s: quick for what is quick, cheap for
/// what takes a while (a pod starting, a kubelet cleaning up).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}
