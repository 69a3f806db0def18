//! The mirror tests' world: sources seeded in the Quay registry (one shared
//! layer and config, one small manifest per tag), target repositories in
//! Quay and the ECR Public stand-in, and runs of `image-promoter mirror`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fixtures::{self, OCI_MANIFEST, random_bytes};
use crate::oci::{Registry, sha256};
use crate::support::{TestEnv, unique_name};

/// A source repository in the Quay registry.
pub struct Source {
    /// The repository name inside the registry.
    pub repository: String,
    /// Every tag pushed, with its digest.
    pub tags: BTreeMap<String, String>,
    config: (String, usize),
    layer: (String, usize),
}

/// The tags of the big source: 150 releases (`1.x.y`, `2.x.y`, `v3.x.y`),
/// 30 release candidates, 100 commit-hash tags (one all digits) and `latest`.
pub fn big_source_tags() -> Vec<String> {
    let mut tags = Vec::new();
    for major in 1..=3 {
        let prefix = if major == 3 { "v" } else { "" };
        for minor in 0..10 {
            tags.push(format!("{prefix}{major}.{minor}.0-rc.1"));
            for patch in 0..5 {
                tags.push(format!("{prefix}{major}.{minor}.{patch}"));
            }
        }
    }
    tags.push("1234567".into());
    for i in 1..100u32 {
        tags.push(sha256(&i.to_le_bytes())[7..14].to_string());
    }
    tags.push("latest".into());
    tags
}

/// The big source, seeded once per test binary, with three releases signed
/// (cosign `sha256-<hex>.sig` tags).
pub async fn big_source(env: &TestEnv) -> &'static Source {
    static SOURCE: tokio::sync::OnceCell<Source> = tokio::sync::OnceCell::const_new();
    SOURCE
        .get_or_init(|| async {
            let tags = big_source_tags();
            let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
            let mut source = seed(env, "big", &refs).await;
            for signed in ["1.0.0", "2.3.1", "v3.9.4"] {
                source.sign(env, signed).await;
            }
            source
        })
        .await
}

/// Pushes one shared layer and config, then one manifest per tag.
pub async fn seed(env: &TestEnv, prefix: &str, tags: &[&str]) -> Source {
    let registry = fixtures::quay(env);
    let repository = unique_name(&format!("mirror/{prefix}"));
    let layer = random_bytes(&repository, 2048);
    let layer_digest = registry
        .push_blob(&repository, &layer)
        .await
        .expect("push layer");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = registry
        .push_blob(&repository, &config)
        .await
        .expect("push config");
    let mut source = Source {
        repository,
        tags: BTreeMap::new(),
        config: (config_digest, config.len()),
        layer: (layer_digest, layer.len()),
    };
    let pushes = tags.iter().map(|tag| source.manifest(tag, "1"));
    let manifests: Vec<(String, Vec<u8>)> =
        tags.iter().map(|t| t.to_string()).zip(pushes).collect();
    for chunk in manifests.chunks(16) {
        let pushed = futures::future::join_all(chunk.iter().map(|(tag, bytes)| {
            registry.put_manifest(&source.repository, tag, OCI_MANIFEST, bytes)
        }))
        .await;
        for ((tag, _), digest) in chunk.iter().zip(pushed) {
            source
                .tags
                .insert(tag.clone(), digest.expect("push manifest"));
        }
    }
    source
}

impl Source {
    /// A manifest of the shared layer, made distinct by annotations.
    fn manifest(&self, tag: &str, variant: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.config.0, "size": self.config.1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self.layer.0, "size": self.layer.1}],
            "annotations": {"test.tag": tag, "test.variant": variant},
        }))
        .unwrap()
    }

    /// Pushes (or moves) `tag` to a manifest of `variant`; its digest.
    pub async fn push(&mut self, env: &TestEnv, tag: &str, variant: &str) -> String {
        let digest = fixtures::quay(env)
            .put_manifest(
                &self.repository,
                tag,
                OCI_MANIFEST,
                &self.manifest(tag, variant),
            )
            .await
            .expect("push manifest");
        self.tags.insert(tag.to_string(), digest.clone());
        digest
    }

    /// Pushes a cosign-style signature tag for `tag`; the signature tag.
    pub async fn sign(&mut self, env: &TestEnv, tag: &str) -> String {
        let digest = self.tags[tag].clone();
        let signature = format!("sha256-{}.sig", &digest["sha256:".len()..]);
        self.push(env, &signature, "signature").await;
        signature
    }

    /// The source repository as a mirror names it (through `host`).
    pub fn reference(&self, host: &str) -> String {
        format!("{host}/{}", self.repository)
    }

    /// Deletes the manifest `tag` names (the registry drops its tags).
    pub async fn delete(&mut self, env: &TestEnv, tag: &str) {
        let digest = self.tags.remove(tag).expect("a pushed tag");
        let ca = reqwest::Certificate::from_pem(&env.ca_pem()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        let response = http
            .delete(format!(
                "https://{}/v2/{}/manifests/{digest}",
                env.get("PROMOTER_TEST_QUAY_REGISTRY"),
                self.repository
            ))
            .basic_auth(
                env.get("PROMOTER_TEST_QUAY_USER"),
                Some(env.get("PROMOTER_TEST_QUAY_PASSWORD")),
            )
            .send()
            .await
            .expect("DELETE manifest");
        assert_eq!(response.status().as_u16(), 202, "deleting {tag}");
    }
}

/// A Quay target repository: (name inside the registry, full repository).
pub fn quay_target(env: &TestEnv, prefix: &str) -> (String, String) {
    let name = unique_name(&format!("mirrored/{prefix}"));
    let full = format!("{}/{name}", env.get("PROMOTER_TEST_QUAY_REGISTRY"));
    (name, full)
}

/// An ECR Public target repository, created in the stand-in: (path inside
/// the registry, full repository).
pub async fn public_target(env: &TestEnv, prefix: &str) -> (String, String) {
    let name = unique_name(prefix);
    fixtures::create_public_repository(env, &name).await;
    let path = format!("{}/{name}", env.get("PROMOTER_TEST_PUBLIC_ALIAS"));
    let full = format!("{}/{path}", env.get("PROMOTER_TEST_PUBLIC_REGISTRY"));
    (path, full)
}

/// The ECR Public registry, read anonymously.
pub fn public_registry(env: &TestEnv) -> Registry {
    Registry::new(
        env.get("PROMOTER_TEST_PUBLIC_REGISTRY"),
        &env.ca_pem(),
        crate::oci::Auth::Bearer { basic: None },
    )
}

/// A RegistryMirror object.
pub fn mirror(source: &str, targets: &[(&str, &str)], spec: Value) -> Value {
    let mut object = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": unique_name("mirror"), "namespace": "migration"},
        "spec": {
            "source": {"repository": source},
            "targets": targets.iter().map(|(name, repository)| json!({"name": name, "repository": repository})).collect::<Vec<_>>(),
        },
    });
    if let (Some(spec_map), Some(extra)) = (object["spec"].as_object_mut(), spec.as_object()) {
        spec_map.extend(extra.clone());
    }
    object
}

/// What one run of `image-promoter mirror` printed and returned.
pub struct Synced {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Synced {
    /// Asserts the exit code, showing what was printed when it differs.
    pub fn expect_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The `--json` report.
    pub fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "the report does not parse ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The selected tags of a report (each once, in the report's order).
pub fn selected_tags(report: &Value) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for decision in report["decisions"].as_array().expect("decisions") {
        let tag = decision["tag"].as_str().unwrap().to_string();
        if decision["state"] != "deletedAtSource" && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

/// `(tag, target) → state` of a report.
pub fn states(report: &Value) -> BTreeMap<(String, String), String> {
    report["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            (
                (
                    d["tag"].as_str().unwrap().to_string(),
                    d["target"].as_str().unwrap().to_string(),
                ),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Runs `image-promoter mirror --json` on `object` with `config` and `args`.
pub fn run(config: &Path, object: &Value, args: &[&str]) -> Synced {
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.yaml", unique_name("mirror")));
    std::fs::write(&path, serde_yaml_ng::to_string(object).unwrap()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_image-promoter"))
        .arg("mirror")
        .arg("-f")
        .arg(&path)
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(args)
        .output()
        .expect("running image-promoter");
    std::fs::remove_file(&path).ok();
    Synced {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A fresh state file path.
pub fn state_file() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.json", unique_name("state")))
}

/// The test world's configuration file.
pub fn world_config(env: &TestEnv) -> PathBuf {
    PathBuf::from(env.get("PROMOTER_TEST_CONFIG"))
}
