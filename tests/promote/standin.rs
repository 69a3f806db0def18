//! A private ECR Public API for one test: the repository's own stand-in
//! (tests/testenv/ecr_public_standin.py, a hand-written fake: no maintained
//! ECR Public stand-in exists) started on free ports in front of the test
//! world's ECR Public registry, with a second account whose alias is
//! [`FOREIGN_ALIAS`]. Its API is always the code of this checkout, whatever
//! the world's long-running stand-in was started from; the world's registry
//! and token realm stay the world's, and so do the main account's
//! repositories and tokens (`--upstream`: every action of the main account
//! but DescribeRegistries is the world stand-in's). Stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestEnv, eventually, unique_name};

/// The alias of the stand-in's second account (another organisation).
pub const FOREIGN_ALIAS: &str = "other-org";
const FOREIGN_ACCOUNT: &str = "210987654321";
const FOREIGN_KEY: &str = "foreign-testing";

/// A running private stand-in.
pub struct StandIn {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub api_url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl StandIn {
    /// Starts one and waits until its API answers.
    pub async fn start(env: &TestEnv) -> Self {
        let certs = Path::new(env.get("PROMOTER_TEST_CA"))
            .parent()
            .expect("the CA lives in the world's certs folder")
            .to_path_buf();
        let (api, token) = (free_port(), free_port());
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testenv/ecr_public_standin.py");
        let child = Command::new(env.tool("python"))
            .arg(script)
            .arg(format!("--api-port={api}"))
            .arg(format!("--token-port={token}"))
            .arg(format!(
                "--registry={}",
                env.get("PROMOTER_TEST_PUBLIC_REGISTRY")
            ))
            .arg(format!("--alias={}", env.get("PROMOTER_TEST_PUBLIC_ALIAS")))
            .arg(format!(
                "--upstream={}",
                env.get("AWS_ENDPOINT_URL_ECR_PUBLIC")
            ))
            .arg(format!(
                "--account={}",
                env.get("PROMOTER_TEST_ECR_ACCOUNT")
            ))
            .arg(format!(
                "--foreign={FOREIGN_KEY}={FOREIGN_ACCOUNT}:{FOREIGN_ALIAS}"
            ))
            .arg(format!(
                "--service={}",
                env.get("PROMOTER_TEST_PUBLIC_SERVICE")
            ))
            .arg(format!(
                "--signing-key={}",
                certs.join("token-signer.key").display()
            ))
            .arg(format!(
                "--signing-cert={}",
                certs.join("token-signer.pem").display()
            ))
            .arg(format!("--tls-cert={}", certs.join("server.pem").display()))
            .arg(format!("--tls-key={}", certs.join("server.key").display()))
            .arg(format!("--ca={}", certs.join("ca.pem").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the ECR Public stand-in");
        let standin = Self {
            child,
            api_url: format!("http://127.0.0.1:{api}"),
        };
        let url = standin.api_url.clone();
        eventually(
            "the private ECR Public stand-in answers",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    let answered = reqwest::Client::new()
                        .post(&url)
                        .header("X-Amz-Target", "SpencerFrontendService.DescribeRegistries")
                        .header("Content-Type", "application/x-amz-json-1.1")
                        .body("{}")
                        .send()
                        .await
                        .ok()?;
                    answered.status().is_success().then_some(())
                }
            },
        )
        .await;
        standin
    }

    /// The world's configuration file with the ECR Public registry's API at
    /// this stand-in, plus `extra` YAML; its path.
    pub fn config(&self, env: &TestEnv, extra: &str) -> PathBuf {
        let base = std::fs::read_to_string(env.get("PROMOTER_TEST_CONFIG")).unwrap();
        let mut config: Value = serde_yaml_ng::from_str(&base).unwrap();
        let public = env.get("PROMOTER_TEST_PUBLIC_REGISTRY");
        for entry in config["registries"].as_array_mut().expect("registries") {
            if entry["host"] == public {
                entry["auth"]["ecrPublic"]["endpointUrl"] = Value::String(self.api_url.clone());
            }
        }
        let mut text = serde_yaml_ng::to_string(&config).unwrap();
        text.push_str(extra);
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}.yaml", unique_name("standin-config")));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Calls an action of the stand-in's API as the operator's account.
    pub async fn call(&self, action: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(&self.api_url)
            .header("X-Amz-Target", format!("SpencerFrontendService.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .expect("calling the stand-in");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
