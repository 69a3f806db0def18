//! The operator under test: a ServiceAccount with deploy/rbac.yaml's rules
//! (optionally one rule removed), a kubeconfig with its token, the binary
//! started on free ports and killed when the test ends, and waits that poll
//! the apiserver with a deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image_promoter::api::{ImagePromotion, ImagePromotionStatus};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::support::unique_name;
use crate::world::{Key, Source, SourceRepository, World, promotion, public_key_file, quay_target};

/// How long an operator gets to do what a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The rules of deploy/rbac.yaml, as the chart renders them.
const RBAC: &str = include_str!("../../deploy/rbac.yaml");

/// A running operator.
pub struct Operator {
    child: Child,
    log: PathBuf,
    pub metrics_url: String,
    pub health_url: String,
}

/// Which rule of deploy/rbac.yaml to leave out (by resource), if any.
#[derive(Clone, Copy, Debug)]
pub enum Rbac {
    Full,
    Without(&'static str),
}

impl Operator {
    /// Starts the operator for the cluster's namespace with `rbac` and `args`.
    pub async fn start(cluster: &Cluster, rbac: Rbac, args: &[&str]) -> Self {
        let kubeconfig = service_account(cluster, rbac).await;
        Self::start_with(cluster, &kubeconfig, args)
    }

    /// Starts the operator with another configuration file.
    pub async fn start_configured(cluster: &Cluster, config: &Path, args: &[&str]) -> Self {
        let kubeconfig = service_account(cluster, Rbac::Full).await;
        Self::spawn(cluster, &kubeconfig, config, args)
    }

    /// Starts another operator process with an existing kubeconfig.
    pub fn start_with(cluster: &Cluster, kubeconfig: &PathBuf, args: &[&str]) -> Self {
        let config = PathBuf::from(cluster.env.get("PROMOTER_TEST_CONFIG"));
        Self::spawn(cluster, kubeconfig, &config, args)
    }

    /// Starts an operator with a given kubeconfig and configuration file.
    pub fn start_with_config(
        cluster: &Cluster,
        kubeconfig: &PathBuf,
        config: &Path,
        args: &[&str],
    ) -> Self {
        Self::spawn(cluster, kubeconfig, config, args)
    }

    fn spawn(cluster: &Cluster, kubeconfig: &PathBuf, config: &Path, args: &[&str]) -> Self {
        let (metrics, health) = (free_port(), free_port());
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}.log", unique_name("operator")));
        let file = std::fs::File::create(&log).expect("creating the operator's log file");
        let child = Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(["--watch-namespace", &cluster.namespace])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics}")])
            .args([
                "--health-probe-bind-address",
                &format!("127.0.0.1:{health}"),
            ])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("IMAGE_PROMOTER_LOG", "info")
            // Hosts the configuration does not declare (an object's Secret) trust the world's CA.
            .env("SSL_CERT_FILE", cluster.env.get("PROMOTER_TEST_CA"))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("starting image-promoter run");
        Self {
            child,
            log,
            metrics_url: format!("http://127.0.0.1:{metrics}/metrics"),
            health_url: format!("http://127.0.0.1:{health}"),
        }
    }

    /// The process id (the benchmark reads its peak RSS).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited (the soak restarts replicas that did).
    #[allow(dead_code)]
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What the operator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until /readyz answers 200.
    pub async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.health_url);
        self.eventually("the operator to be ready", || async {
            let response = reqwest::get(&url).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    /// The Prometheus text of /metrics.
    pub async fn metrics(&self) -> String {
        reqwest::get(&self.metrics_url)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics text")
    }

    /// Polls `check` until it gives a value, failing after [`DEADLINE`]
    /// with the operator's log.
    pub async fn eventually<T, F, Fut>(&mut self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the operator exited ({exit}) while waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}; the operator's log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the promotion `name`'s status satisfies `done`; returns it.
    pub async fn wait_status(
        &mut self,
        cluster: &Cluster,
        name: &str,
        what: &str,
        done: impl Fn(&ImagePromotionStatus) -> bool,
    ) -> ImagePromotionStatus {
        let api: Api<ImagePromotion> = cluster.typed();
        let mut last = None;
        let start = Instant::now();
        loop {
            if let Ok(object) = api.get(name).await {
                let status = object.status.unwrap_or_default();
                if done(&status) {
                    return status;
                }
                last = Some(status);
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the operator exited ({exit}) while waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{name}: no {what} within {DEADLINE:?}; last status: {last:#?}\noperator log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    /// Sends SIGTERM and waits for the exit, at most `within`.
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.terminate_wait(within).await
    }

    /// Waits until the operator's log contains `needle`.
    pub async fn wait_log(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "the operator exited ({exit}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {needle:?} logged within {DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (without signalling) for the process to exit, at most `within`.
    pub async fn terminate_wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Some(exit);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Waits until metric `series` is at least `value`.
    pub async fn wait_metric_at_least(&mut self, series: &str, value: f64) {
        let url = self.metrics_url.clone();
        self.eventually(&format!("{series} >= {value}"), || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                metric(&text, series).filter(|n| *n >= value).map(|_| ())
            }
        })
        .await;
    }

    /// Waits until the operator has ended at least `n` reconciles, whatever their result.
    #[allow(dead_code)]
    pub async fn wait_reconciles(&mut self, n: f64) {
        let url = self.metrics_url.clone();
        self.eventually(&format!("{n} reconciles"), || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                let total: f64 = text
                    .lines()
                    .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                (total >= n).then_some(())
            }
        })
        .await;
    }

    /// Waits until metric `series` has `value`.
    pub async fn wait_metric(&mut self, series: &str, value: f64) {
        let url = self.metrics_url.clone();
        self.eventually(&format!("{series} {value}"), || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                (metric(&text, series) == Some(value)).then_some(())
            }
        })
        .await;
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The binary under test: this build's, or `IMAGE_PROMOTER_BIN` when a
/// shared target directory may be rebuilt by others while the tests run.
fn binary() -> PathBuf {
    std::env::var_os("IMAGE_PROMOTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_image-promoter")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A ServiceAccount in the cluster's namespace bound to deploy/rbac.yaml's
/// rules (less the one `rbac` removes); returns a kubeconfig with its token.
pub async fn service_account(cluster: &Cluster, rbac: Rbac) -> PathBuf {
    let client = &cluster.client;
    let namespace = &cluster.namespace;
    let name = "image-promoter";
    let pp = PostParams::default();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .expect("creating the ServiceAccount");
    let documents: Vec<Value> = RBAC
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).expect("deploy/rbac.yaml parses"))
        .collect();
    let subject = json!([{"kind": "ServiceAccount", "name": name, "namespace": namespace}]);
    for mut document in documents {
        if let Rbac::Without(resource) = rbac {
            let rules = document["rules"].as_array_mut().expect("rules");
            rules.retain(|r| {
                !r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
            });
        }
        let role_name = format!("image-promoter-{namespace}");
        document["metadata"]["name"] = json!(role_name);
        match document["kind"].as_str() {
            Some("ClusterRole") => {
                let roles: Api<ClusterRole> = Api::all(client.clone());
                let role: ClusterRole = serde_json::from_value(document).unwrap();
                roles
                    .create(&pp, &role)
                    .await
                    .expect("creating the ClusterRole");
                let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
                let binding = json!({
                    "metadata": {"name": role_name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                    "subjects": subject,
                });
                bindings
                    .create(&pp, &serde_json::from_value(binding).unwrap())
                    .await
                    .expect("creating the ClusterRoleBinding");
            }
            Some("Role") => {
                let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
                let role: Role = serde_json::from_value(document).unwrap();
                roles.create(&pp, &role).await.expect("creating the Role");
                let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
                let binding = json!({
                    "metadata": {"name": role_name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
                    "subjects": subject,
                });
                bindings
                    .create(&pp, &serde_json::from_value(binding).unwrap())
                    .await
                    .expect("creating the RoleBinding");
            }
            other => panic!("unexpected kind {other:?} in deploy/rbac.yaml"),
        }
    }
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .unwrap();
    let token = accounts
        .create_token_request(name, &pp, &request)
        .await
        .expect("a TokenRequest for the ServiceAccount")
        .status
        .expect("a token")
        .token;
    kubeconfig_with_token(cluster, &token)
}

/// The admin kubeconfig with its user replaced by `token`.
fn kubeconfig_with_token(cluster: &Cluster, token: &str) -> PathBuf {
    let text = std::fs::read_to_string(cluster.env.get("KUBECONFIG")).expect("the kubeconfig");
    let mut config: Value = serde_yaml_ng::from_str(&text).expect("the kubeconfig parses");
    for user in config["users"].as_array_mut().expect("users") {
        user["user"] = json!({"token": token});
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.kubeconfig", unique_name("operator")));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// The Secret holding the signer's cosign public key, as the policies name it.
pub async fn public_key_secret(cluster: &Cluster, world: &World) {
    let pem = std::fs::read_to_string(public_key_file(&world.env, Key::Signer)).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "cosign-public-key"},
        "stringData": {"cosign.pub": pem},
    }))
    .unwrap();
    let api: Api<Secret> = cluster.typed();
    api.create(&PostParams::default(), &secret)
        .await
        .expect("creating the public key Secret");
}

/// `object` (from [`crate::world::promotion`]) in the cluster's namespace; its name.
pub async fn create(cluster: &Cluster, mut object: Value) -> String {
    object["metadata"]["namespace"] = json!(cluster.namespace);
    cluster
        .create(&object)
        .await
        .expect("creating the ImagePromotion");
    object["metadata"]["name"].as_str().unwrap().to_string()
}

/// A scanned source set up as `settings` and a promotion of it (policy
/// `verify`) to a new Quay repository with [`TAG`] and a floating `latest`:
/// the source, the Quay repository's name and the promotion's name.
#[allow(dead_code)]
pub async fn promotion_to_quay(
    world: &World,
    cluster: &Cluster,
    prefix: &str,
    settings: SourceRepository,
    verify: Value,
) -> (Source, String, String) {
    let source = world.source(prefix, settings).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target(prefix);
    let name = create(
        cluster,
        promotion(
            world,
            &source,
            verify,
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    (source, quay_name, name)
}

/// The Quay registry under a name the configuration does not declare
/// (`localhost:<port>`), where only an object's own Secret authenticates,
/// and a dockerconfigjson Secret `name` with the robot account for it.
#[allow(dead_code)]
pub fn undeclared_quay(cluster: &Cluster, name: &str) -> (String, Secret) {
    let env = &cluster.env;
    let host = env
        .get("PROMOTER_TEST_QUAY_REGISTRY")
        .replace("127.0.0.1", "localhost");
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!(
            "{}:{}",
            env.get("PROMOTER_TEST_QUAY_USER"),
            env.get("PROMOTER_TEST_QUAY_PASSWORD")
        ),
    );
    let secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json!({"auths": {host.clone(): {"auth": auth}}}).to_string()},
    }))
    .unwrap();
    (host, secret)
}

/// `(reason, action, note)` of every event about `name` in the namespace.
pub async fn events(client: &Client, namespace: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.action.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// The value of the metric line starting with `series` (name and labels).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}

/// `(status, reason)` of condition `type_`.
pub fn condition(status: &ImagePromotionStatus, type_: &str) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether condition `type_` is `expected` (status, reason).
pub fn is(status: &ImagePromotionStatus, type_: &str, expected: (&str, &str)) -> bool {
    condition(status, type_).is_some_and(|(s, r)| s == expected.0 && r == expected.1)
}

/// The test world's configuration plus `entries` (YAML values); its path.
/// The "internal ECR" registry behind a fault proxy whose blob reads hang
/// (the first `times` of them, or all), and a configuration that reaches it
/// through the proxy as an ECR registry: a copy caught in the middle.
pub async fn hanging_source(
    world: &World,
    cluster: &Cluster,
    times: Option<u32>,
) -> (crate::proxy::Proxy, PathBuf) {
    use crate::proxy::{Fault, Proxy, Rule};
    let mut hang = Rule::new("GET", "^/v2/.*/blobs/sha256:", Fault::StallAfter(0));
    if let Some(times) = times {
        hang = hang.times(times);
    }
    let proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_ECR_REGISTRY"),
        &world.env.ca_pem(),
        vec![hang],
    )
    .await;
    let config = config_with(
        cluster,
        vec![json!({
            "host": proxy.host(),
            "kind": "ecr",
            "plainHttp": true,
            "auth": {"ecr": {
                "registryId": world.env.get("PROMOTER_TEST_ECR_ACCOUNT"),
                "region": world.env.get("AWS_REGION"),
                "endpointUrl": world.env.get("AWS_ENDPOINT_URL_ECR"),
            }},
        })],
    );
    (proxy, config)
}

pub fn config_with(cluster: &Cluster, entries: Vec<Value>) -> PathBuf {
    let base = std::fs::read_to_string(cluster.env.get("PROMOTER_TEST_CONFIG")).unwrap();
    let mut config: Value = serde_yaml_ng::from_str(&base).unwrap();
    let registries = config["registries"].as_array_mut().expect("registries");
    registries.extend(entries);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.yaml", unique_name("operator-config")));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// A configuration entry for `proxy` in front of the test world's Quay
/// registry (plain HTTP to the proxy, Quay's robot account from the
/// environment the operator inherits).
pub fn quay_through(cluster: &Cluster, proxy: &crate::proxy::Proxy) -> Value {
    json!({
        "host": proxy.host(),
        "kind": "generic",
        "plainHttp": true,
        "auth": {"basic": {
            "username": cluster.env.get("PROMOTER_TEST_QUAY_USER"),
            "passwordEnv": "PROMOTER_TEST_QUAY_PASSWORD",
        }},
    })
}
