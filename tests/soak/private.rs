//! A private control plane for one soak or benchmark run: its own etcd,
//! kube-apiserver (with an audit log of every ServiceAccount's requests),
//! registry for ECR Public and ECR Public stand-in, started by
//! `tests/testenv/testenv.py private` in a folder of the run's own.
//!
//! Why private: the soak restarts the apiserver and takes ECR Public down, and
//! the benchmark creates 10,000 objects; done to the shared world, that would
//! disturb every other test running on it. The shared world's tools,
//! certificates, moto, internal ECR and Quay registry are used as they are.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, unique_name};

/// A running private control plane; stopped (and its data removed) when dropped.
pub struct PrivateWorld {
    folder: PathBuf,
    python: PathBuf,
    script: PathBuf,
    /// The shared world's env with the private apiserver, ECR Public and
    /// operator configuration in their place.
    pub env: TestEnv,
}

impl PrivateWorld {
    /// Starts one in a new folder under the target directory.
    pub async fn start(prefix: &str) -> Self {
        let shared = TestEnv::load();
        let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name(prefix));
        let python = PathBuf::from(shared.get("PROMOTER_TEST_BIN")).join("python");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testenv/testenv.py");
        let mut world = Self {
            env: shared,
            folder,
            python,
            script,
        };
        world.testenv(&["up"]).await;
        world.env = TestEnv::load_from(&world.folder.join("env"));
        world
    }

    /// Where its logs and the audit log are.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The apiserver's audit log (JSON lines, one per ServiceAccount request).
    #[allow(dead_code)] // the operator benchmark's
    pub fn audit_log(&self) -> PathBuf {
        PathBuf::from(self.env.get("PROMOTER_TEST_AUDIT_LOG"))
    }

    /// Stops `component` (kube-apiserver, ecr-public, …).
    pub async fn stop(&self, component: &str) {
        self.testenv(&["stop", component]).await;
    }

    /// Starts again whatever was stopped; returns once every component answers.
    pub async fn start_stopped(&self) {
        self.testenv(&["up"]).await;
    }

    /// Stops `component` and starts it again at once; how long it was away.
    pub async fn restart(&self, component: &str) -> Duration {
        let down = Instant::now();
        self.stop(component).await;
        self.start_stopped().await;
        down.elapsed()
    }

    async fn testenv(&self, args: &[&str]) {
        let output = tokio::process::Command::new(&self.python)
            .arg(&self.script)
            .arg("private")
            .arg(&self.folder)
            .args(args)
            .output()
            .await
            .expect("running testenv.py private");
        assert!(
            output.status.success(),
            "testenv.py private {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateWorld {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.python)
            .arg(&self.script)
            .arg("private")
            .arg(&self.folder)
            .arg("down")
            .output();
    }
}
