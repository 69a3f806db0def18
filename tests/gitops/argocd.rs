//! Argo CD as the tests use it: the world's API server (`--disable-auth`, on
//! 127.0.0.1), its CLI, Applications in its namespace, and a Git repository
//! of the test's own that a commit changes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::support::unique_name;

/// How long Argo CD and the operator get for what a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// The folder of the repository an Application syncs.
pub const FOLDER: &str = "releases";

/// The world's Argo CD.
pub struct ArgoCd {
    pub namespace: String,
    server: String,
    cli: PathBuf,
    applications: Api<DynamicObject>,
    http: reqwest::Client,
}

impl ArgoCd {
    /// Finds the world's Argo CD and installs the resource customizations as
    /// docs/argocd.md says; fails, saying how to start it, when the world has none.
    pub fn find(cluster: &Cluster) -> Self {
        let env = &cluster.env;
        let Some(server) = env.vars().get("PROMOTER_TEST_ARGOCD_SERVER").cloned() else {
            panic!(
                "the test world has no Argo CD (PROMOTER_TEST_ARGOCD_SERVER is not in its env): \
                 start it with `make env-up-argocd` (or PROMOTER_TESTENV_ARGOCD=1 make env-up)"
            );
        };
        let namespace = env.get("PROMOTER_TEST_ARGOCD_NAMESPACE").to_string();
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "applications");
        let argocd = Self {
            applications: Api::namespaced_with(cluster.client.clone(), &namespace, &resource),
            namespace,
            server,
            cli: PathBuf::from(env.get("PROMOTER_TEST_ARGOCD_CLI")),
            http: reqwest::Client::new(),
        };
        argocd.install_customizations(cluster);
        argocd
    }

    /// docs/argocd.md, "Install the checks and actions through argocd-cm", word for word.
    fn install_customizations(&self, cluster: &Cluster) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("sh")
            .arg("-c")
            .arg(INSTALL)
            .current_dir(root)
            .env("KUBECONFIG", cluster.env.get("KUBECONFIG"))
            .env("PATH", path_with(cluster.env.get("PROMOTER_TEST_BIN")))
            .output()
            .expect("running the install command of docs/argocd.md");
        assert!(
            output.status.success(),
            "the install command of docs/argocd.md failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let docs = std::fs::read_to_string(root.join("docs/argocd.md")).unwrap();
        assert!(
            docs.contains(INSTALL),
            "docs/argocd.md no longer shows:\n{INSTALL}"
        );
    }

    /// Creates an Application syncing `repository`'s [`FOLDER`] into the
    /// cluster's namespace, automated with pruning and self-heal, with the
    /// options docs/argocd.md shows; its name.
    pub async fn create_application(
        &self,
        cluster: &Cluster,
        repository: &GitRepository,
    ) -> String {
        let name = unique_name("releases");
        let mut application = application_from_docs();
        application["metadata"] = json!({"name": name, "namespace": self.namespace});
        application["spec"]["source"]["repoURL"] = json!(repository.url());
        application["spec"]["source"]["targetRevision"] = json!("HEAD");
        application["spec"]["destination"]["namespace"] = json!(cluster.namespace);
        self.applications
            .create(
                &PostParams::default(),
                &serde_json::from_value(application).unwrap(),
            )
            .await
            .expect("creating the Application");
        name
    }

    /// Asks Argo CD to read Git again now, as a webhook does.
    pub async fn refresh(&self, name: &str) {
        let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
        self.applications
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("asking for a refresh");
    }

    /// The Application object.
    pub async fn application(&self, name: &str) -> Value {
        let object = self
            .applications
            .get(name)
            .await
            .expect("reading the Application");
        serde_json::to_value(object).unwrap()
    }

    /// The Application's resource tree from the API server (what the UI and
    /// `argocd app get` show), or None while it has none.
    pub async fn resource_tree(&self, name: &str) -> Option<Value> {
        let url = format!(
            "http://{}/api/v1/applications/{name}/resource-tree?appNamespace={}",
            self.server, self.namespace
        );
        let response = self.http.get(&url).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.json().await.ok()
    }

    /// The `(health, message)` of `kind`/`object` in the resource tree.
    pub async fn health(&self, name: &str, kind: &str, object: &str) -> Option<(String, String)> {
        let tree = self.resource_tree(name).await?;
        let node = tree["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["kind"] == kind && n["name"] == object)?;
        let health = &node["health"];
        Some((
            health["status"].as_str()?.to_string(),
            health["message"].as_str().unwrap_or_default().to_string(),
        ))
    }

    /// Runs the CLI against the world's API server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.cli)
            .args(args)
            .args(["--server", &self.server, "--plaintext"])
            .env("HOME", std::env::temp_dir())
            .output()
            .expect("running the argocd CLI")
    }

    /// `argocd app actions run` on an object of the Application.
    pub fn run_action(
        &self,
        application: &str,
        action: &str,
        kind: &str,
        object: &str,
        namespace: &str,
    ) {
        let output = self.cli(&[
            "app",
            "actions",
            "run",
            &format!("{}/{application}", self.namespace),
            action,
            "--group",
            "imagepromoter.dev",
            "--kind",
            kind,
            "--resource-name",
            object,
            "--namespace",
            namespace,
        ]);
        assert!(
            output.status.success(),
            "argocd app actions run {action} on {kind} {object} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Polls `check` until it gives a value; after [`DEADLINE`] fails with
    /// `what` and the Application as Argo CD last saw it.
    pub async fn eventually<T, F, Fut>(&self, application: &str, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if start.elapsed() > DEADLINE {
                let app = self.application(application).await;
                let tree = self.resource_tree(application).await;
                panic!(
                    "no {what} within {DEADLINE:?}; the Application's status:\n{:#}\nits resource tree:\n{tree:#?}",
                    app["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Asks for a refresh and waits until Argo CD has compared again (its
    /// `reconciledAt` moved and the refresh annotation is gone); the Application.
    pub async fn compared_again(&self, name: &str) -> Value {
        let before = self.application(name).await["status"]["reconciledAt"].clone();
        self.refresh(name).await;
        self.eventually(name, "a new comparison", || async {
            let app = self.application(name).await;
            let refreshed = app["status"]["reconciledAt"] != before
                && app["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_null();
            refreshed.then_some(app)
        })
        .await
    }

    /// Waits until the Application is Synced at `revision` with its last
    /// sync operation Succeeded at that revision.
    pub async fn wait_synced(&self, name: &str, revision: &str) {
        self.eventually(name, &format!("sync to {revision}"), || async {
            let app = self.application(name).await;
            let status = &app["status"];
            let synced =
                status["sync"]["status"] == "Synced" && status["sync"]["revision"] == revision;
            let operation = &status["operationState"];
            let done = operation["phase"] == "Succeeded"
                && operation["syncResult"]["revision"] == revision;
            (synced && done).then_some(())
        })
        .await;
    }
}

/// The install command of docs/argocd.md.
pub const INSTALL: &str = "python3 integrations/argocd/argocd-cm.py \\\n  | kubectl -n argocd patch configmap argocd-cm --type merge --patch-file /dev/stdin";

/// The Application of docs/argocd.md ("An Application that syncs a folder of
/// promotions"), read from the document so the two cannot differ.
fn application_from_docs() -> Value {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/argocd.md"))
            .unwrap();
    let marker = "kind: Application\n";
    let start = docs
        .find(marker)
        .expect("docs/argocd.md shows an Application");
    let block_start =
        docs[..start].rfind("```yaml\n").expect("in a yaml block") + "```yaml\n".len();
    let block_end = start + docs[start..].find("```").expect("the block ends");
    serde_yaml_ng::from_str(&docs[block_start..block_end])
        .expect("the Application of docs/argocd.md parses")
}

fn path_with(bin: &str) -> String {
    format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
}

/// A Git repository of the test's own: a bare repository Argo CD reads
/// through a file:// URL, and a work tree the test commits in.
pub struct GitRepository {
    bare: PathBuf,
    work: PathBuf,
}

impl GitRepository {
    pub fn new(prefix: &str) -> Self {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name(prefix));
        let (bare, work) = (root.join("repository.git"), root.join("work"));
        std::fs::create_dir_all(work.join(FOLDER)).unwrap();
        git(
            &root,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "repository.git",
            ],
        );
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self { bare, work }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes `FOLDER/file` as YAML.
    pub fn write(&self, file: &str, object: &Value) {
        let text = serde_yaml_ng::to_string(object).unwrap();
        std::fs::write(self.work.join(FOLDER).join(file), text).unwrap();
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.work.join(FOLDER).join(file)).unwrap();
    }

    /// Commits everything and pushes; the commit's id.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Release Engineer",
            "-c",
            "user.email=release@example.com",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running git");
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
