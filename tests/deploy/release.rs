//! One Helm release of charts/image-promoter in a test's namespace: the
//! world's values filled in, the objects those values name created, and helm
//! run with a home of its own (nothing written outside target/), the world's
//! CA and its registries' credentials (for charts from `oci://`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::cluster::Cluster;
use crate::support::{eventually, unique_name};

/// The release's name: the chart names its Deployment and Lease after it.
pub const NAME: &str = "image-promoter";

/// Held by each test that installs the chart: its cluster-scoped objects (the
/// CRDs it adopts, ClusterRoles named after the release) admit one release
/// named [`NAME`] at a time.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long helm and the pods get for an install, an upgrade or a handover.
pub const DEADLINE: Duration = Duration::from_secs(180);

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/image-promoter");
const FILL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/chart/testworld_values.py"
);

/// A release of the chart in `cluster`'s namespace.
pub struct Release<'a> {
    cluster: &'a Cluster,
    folder: PathBuf,
    values: PathBuf,
}

impl<'a> Release<'a> {
    /// Fills the test world's values for `image` and creates the Secrets and
    /// the ConfigMap they name. Nothing is installed yet.
    pub fn prepare(cluster: &'a Cluster, image: &str) -> Self {
        let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("chart"));
        std::fs::create_dir_all(&folder).expect("creating the release's folder");
        let values = folder.join("values.yaml");
        std::fs::write(&values, fill(cluster, image, "values")).expect("writing the values");
        let objects = folder.join("objects.yaml");
        std::fs::write(&objects, fill(cluster, image, "objects")).expect("writing the objects");
        cluster.kubectl(&["apply", "-n", &cluster.namespace, "-f", path(&objects)]);
        Self {
            cluster,
            folder,
            values,
        }
    }

    /// Leaves the image to the chart: the values name none, so the chart's
    /// own (a published chart's digest) is used.
    pub fn with_the_chart_image(self) -> Self {
        let text = std::fs::read_to_string(&self.values).expect("reading the values");
        let mut values: serde_yaml_ng::Mapping =
            serde_yaml_ng::from_str(&text).expect("the values are a YAML mapping");
        values.remove("image");
        std::fs::write(
            &self.values,
            serde_yaml_ng::to_string(&values).expect("writing the values"),
        )
        .expect("writing the values");
        self
    }

    /// `helm install` of the checkout's chart with the world's values, `args`
    /// after them, waiting until the Deployment is available.
    pub fn install(&self, args: &[&str]) -> String {
        self.helm_with_values("install", CHART, args)
    }

    /// `helm install` of `chart` (`oci://…`), as [`Release::install`].
    pub fn install_from(&self, chart: &str, args: &[&str]) -> String {
        self.helm_with_values("install", chart, args)
    }

    /// `helm upgrade` with the world's values and `args`, waiting likewise.
    pub fn upgrade(&self, args: &[&str]) -> String {
        self.helm_with_values("upgrade", CHART, args)
    }

    /// `helm uninstall`, waiting until what it deletes is gone.
    pub fn uninstall(&self) -> String {
        self.helm(&["uninstall", NAME, "--wait", "--timeout", "3m"])
    }

    fn helm_with_values(&self, command: &str, chart: &str, args: &[&str]) -> String {
        let mut all = vec![
            command,
            NAME,
            chart,
            "--values",
            path(&self.values),
            "--wait",
            "--timeout",
            "3m",
        ];
        all.extend_from_slice(args);
        self.helm(&all)
    }

    /// Runs helm in the release's namespace as the world's administrator.
    pub fn helm(&self, args: &[&str]) -> String {
        let env = &self.cluster.env;
        let home = self.folder.join("helm");
        let output = Command::new(env.tool("helm"))
            .args(args)
            .args(["--namespace", &self.cluster.namespace])
            .env("KUBECONFIG", env.get("KUBECONFIG"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("SSL_CERT_FILE", env.get("PROMOTER_TEST_CA"))
            .env(
                "HELM_REGISTRY_CONFIG",
                Path::new(env.get("PROMOTER_TEST_DOCKER_CONFIG")).join("config.json"),
            )
            .output()
            .expect("running helm");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "helm {args:?} failed ({}):\n{stdout}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.describe()
        );
        stdout
    }

    /// What the namespace's pods and events say, for failure messages.
    pub fn describe(&self) -> String {
        let namespace = &self.cluster.namespace;
        let output = self
            .cluster
            .env
            .kubectl(&["describe", "pods", "-n", namespace]);
        let events = self.cluster.env.kubectl(&[
            "get",
            "events",
            "-n",
            namespace,
            "--sort-by=.lastTimestamp",
        ]);
        format!(
            "pods:\n{}\nevents:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&events.stdout)
        )
    }

    /// The release's pods that are running and not being deleted, by name.
    pub async fn pods(&self) -> Vec<String> {
        let api: Api<Pod> = Api::namespaced(self.cluster.client.clone(), &self.cluster.namespace);
        let selector = format!("app.kubernetes.io/instance={NAME}");
        let pods = api
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("listing the release's pods");
        let mut names: Vec<String> = pods
            .items
            .into_iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|pod| pod.metadata.name)
            .collect();
        names.sort();
        names
    }

    /// Waits until the Deployment has `replicas` updated, available replicas
    /// and no others; returns their pods.
    pub async fn wait_available(&self, replicas: i32) -> Vec<String> {
        let api: Api<Deployment> =
            Api::namespaced(self.cluster.client.clone(), &self.cluster.namespace);
        eventually(
            &format!("the Deployment available with {replicas} replicas"),
            DEADLINE,
            || async {
                let deployment = api.get(NAME).await.ok()?;
                let status = deployment.status?;
                let generation = deployment.metadata.generation?;
                let settled = status.observed_generation == Some(generation)
                    && status.replicas == Some(replicas)
                    && status.updated_replicas == Some(replicas)
                    && status.available_replicas == Some(replicas);
                let pods = self.pods().await;
                (settled && pods.len() == replicas as usize).then_some(pods)
            },
        )
        .await
    }

    /// The pod whose replica holds the Lease (identities are `POD_suffix`).
    pub async fn leader(&self) -> String {
        let api: Api<Lease> = Api::namespaced(self.cluster.client.clone(), &self.cluster.namespace);
        eventually("a replica holding the Lease", DEADLINE, || async {
            let holder = api.get(NAME).await.ok()?.spec?.holder_identity?;
            let pods = self.pods().await;
            pods.into_iter()
                .find(|pod| holder.starts_with(&format!("{pod}_")))
        })
        .await
    }

    /// `kubectl port-forward` to `port` of `pod`: the local address, and the
    /// child to kill when done.
    pub fn port_forward(&self, pod: &str, port: u16) -> (String, Child) {
        let env = &self.cluster.env;
        let mut child = Command::new(env.tool("kubectl"))
            .args(["--kubeconfig", env.get("KUBECONFIG")])
            .args(["port-forward", "-n", &self.cluster.namespace])
            .args(["--address", "127.0.0.1"])
            .arg(format!("pod/{pod}"))
            .arg(format!(":{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running kubectl port-forward");
        let stdout = child.stdout.take().expect("port-forward's stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("reading port-forward's first line");
        // It says "Handling connection for …" on every connection: keep
        // reading, or a closed pipe ends it.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        // "Forwarding from 127.0.0.1:PORT -> 8080"
        let address = line
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("port-forward said {line:?}"))
            .to_string();
        (address, child)
    }
}

/// A test that failed halfway leaves no release behind: its cluster-scoped
/// objects would refuse the next test's (see [`ONE_AT_A_TIME`]).
impl Drop for Release<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new(self.cluster.env.tool("helm"))
                .args(["uninstall", NAME, "--ignore-not-found", "--wait"])
                .args(["--timeout", "1m", "--namespace", &self.cluster.namespace])
                .env("KUBECONFIG", self.cluster.env.get("KUBECONFIG"))
                .output();
        }
    }
}

/// Lets the release in `cluster`'s namespace adopt the CRDs the tests applied,
/// as a cluster whose CRDs were applied with kubectl would (chart README).
pub fn adopt_crds(cluster: &Cluster) {
    for crd in [
        "imagepromotions.imagepromoter.dev",
        "registrymirrors.imagepromoter.dev",
    ] {
        cluster.kubectl(&[
            "annotate",
            "--overwrite",
            "crd",
            crd,
            &format!("meta.helm.sh/release-name={NAME}"),
            &format!("meta.helm.sh/release-namespace={}", cluster.namespace),
        ]);
        cluster.kubectl(&[
            "label",
            "--overwrite",
            "crd",
            crd,
            "app.kubernetes.io/managed-by=Helm",
        ]);
    }
}

fn fill(cluster: &Cluster, image: &str, what: &str) -> String {
    let output = Command::new("python3")
        .arg(FILL)
        .arg(what)
        .envs(cluster.env.vars().iter().filter(|(key, _)| *key != "PATH"))
        .env("IMAGE", image)
        .output()
        .expect("running tests/chart/testworld_values.py");
    assert!(
        output.status.success(),
        "testworld_values.py {what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the values are UTF-8")
}

fn path(path: &Path) -> &str {
    path.to_str().expect("target/ paths are UTF-8")
}
