//! The test world as the fault cases see it: seeded source images, target
//! repositories in the ECR and Quay registries, an engine configuration that
//! reaches registries through fault proxies, and the invariant every case ends
//! with — a target tag is absent, or it names the right digest and every blob
//! that image needs is there with the right bytes.

use crate::fixtures::{self, Seeded};
use crate::oci::{Registry, sha256};
use crate::proxy::Proxy;
use crate::support::{TestEnv, unique_name};
use base64::Engine as _;
use image_promoter::config::Config;
use image_promoter::registry::{Engine, ImageReference, Repository, Target};
use std::path::PathBuf;

/// The tag every case publishes.
pub const TAG: &str = "v1";

/// How the engine is told to treat a proxy's host.
pub enum Kind {
    Generic,
    /// ECR, optionally with its own part size.
    Ecr {
        chunk_bytes: Option<u64>,
    },
}

/// A registry of the test world that a proxy stands in front of.
#[derive(Clone, Copy)]
pub enum Upstream {
    Quay,
    Ecr,
}

impl Upstream {
    pub fn host(self, env: &TestEnv) -> &str {
        match self {
            Upstream::Quay => env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            Upstream::Ecr => env.get("PROMOTER_TEST_ECR_REGISTRY"),
        }
    }

    /// The independent client for it.
    pub async fn client(self, env: &TestEnv) -> Registry {
        match self {
            Upstream::Quay => fixtures::quay(env),
            Upstream::Ecr => fixtures::ecr(env).await,
        }
    }
}

/// Starts a proxy in front of `upstream` with `rules`.
pub async fn proxy(env: &TestEnv, upstream: Upstream, rules: Vec<crate::proxy::Rule>) -> Proxy {
    Proxy::start(upstream.host(env), &env.ca_pem(), rules).await
}

/// The user name and password the test world's docker config holds for `host`.
fn credentials(env: &TestEnv, host: &str) -> (String, String) {
    let path = format!("{}/config.json", env.get("PROMOTER_TEST_DOCKER_CONFIG"));
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("reading the docker config"))
            .expect("docker config is JSON");
    let auth = document["auths"][host]["auth"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} has no entry for {host}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .expect("auth is base64");
    let decoded = String::from_utf8(decoded).expect("auth is UTF-8");
    let (user, password) = decoded.split_once(':').expect("auth is user:password");
    (user.to_string(), password.to_string())
}

/// Writes an engine configuration: the test world's registries plus one entry
/// per proxy (plain HTTP, the upstream's credentials); returns its path.
pub fn config_file(env: &TestEnv, proxies: &[(&Proxy, Upstream, Kind)]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("faults"));
    std::fs::create_dir_all(&dir).expect("creating the case's directory");
    let base = std::fs::read_to_string(env.get("PROMOTER_TEST_CONFIG"))
        .expect("reading the test world's promoter.yaml");
    let mut config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&base).expect("promoter.yaml is YAML");
    let registries = config["registries"]
        .as_sequence_mut()
        .expect("promoter.yaml lists registries");
    for (index, (proxy, upstream, kind)) in proxies.iter().enumerate() {
        let (user, password) = credentials(env, upstream.host(env));
        let password_file = dir.join(format!("password-{index}"));
        std::fs::write(&password_file, password).expect("writing a password file");
        let mut entry = serde_json::json!({
            "host": proxy.host(),
            "plainHttp": true,
            "auth": {"basic": {"username": user, "passwordFile": password_file}},
        });
        match kind {
            Kind::Generic => entry["kind"] = "generic".into(),
            Kind::Ecr { chunk_bytes } => {
                entry["kind"] = "ecr".into();
                if let Some(bytes) = chunk_bytes {
                    entry["chunkBytes"] = (*bytes).into();
                }
            }
        }
        registries.push(serde_yaml_ng::to_value(entry).expect("entry converts to YAML"));
    }
    let path = dir.join("promoter.yaml");
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("config serialises"),
    )
    .expect("writing the case's promoter.yaml");
    path
}

/// The engine for a configuration file.
pub async fn engine(config: &std::path::Path) -> Engine {
    let config = Config::load(config).expect("the case's promoter.yaml is valid");
    Engine::new(config.registries().await.expect("registry clients"))
}

/// A single-platform image in the Quay registry with layers of these sizes.
pub async fn seed(env: &TestEnv, case: &str, layer_sizes: &[usize]) -> Seeded {
    fixtures::single(env, case, TAG, layer_sizes).await
}

/// The seeded image, read through `host` (a proxy or the registry itself).
pub fn source(host: &str, seeded: &Seeded) -> ImageReference {
    ImageReference::parse_image(&format!("{host}/{}:{TAG}", seeded.repository))
        .expect("a valid source reference")
}

/// A fresh repository `faults/<case>-…` at `host`, tagged with [`TAG`].
pub fn target(host: &str, case: &str) -> Target {
    let repository: Repository = format!("{host}/{}", unique_name(&format!("faults/{case}")))
        .parse()
        .expect("a valid target repository");
    Target {
        repository,
        tags: vec![TAG.to_string()],
        floating: Vec::new(),
    }
}

/// What a target holds after a fault.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The tag does not exist: nothing was published.
    Untouched,
    /// The tag names the image and every blob of it is present and intact.
    Complete,
}

/// Checks the invariant at `repository` of `registry`: the tag is absent, or it
/// names `image` exactly and every blob the manifest names can be read back and
/// hashes to its digest. Panics otherwise.
pub async fn assert_consistent(registry: &Registry, repository: &str, image: &Seeded) -> Outcome {
    let digest = match registry.manifest_digest(repository, TAG).await {
        Ok(digest) => digest,
        Err(status) if status.as_u16() == 404 => return Outcome::Untouched,
        Err(status) => panic!("HEAD {repository}:{TAG} answered {status}"),
    };
    assert_eq!(
        digest, image.digest,
        "{repository}:{TAG} points at another image"
    );
    let (manifest, _) = registry
        .get_manifest(repository, TAG)
        .await
        .expect("the tagged manifest can be read");
    assert_eq!(
        manifest, image.manifest,
        "{repository}:{TAG} holds other bytes"
    );
    for (blob, size) in &image.blobs {
        let bytes = registry
            .pull_blob(repository, blob)
            .await
            .unwrap_or_else(|status| {
                panic!(
                    "{repository}:{TAG} names {blob}, which the registry does not serve ({status})"
                )
            });
        assert_eq!(bytes.len() as u64, *size, "{repository}: {blob} size");
        assert_eq!(&sha256(&bytes), blob, "{repository}: {blob} content");
    }
    Outcome::Complete
}

/// True when `repository` of `registry` holds the blob.
pub async fn has_blob(registry: &Registry, repository: &str, digest: &str) -> bool {
    match registry.pull_blob(repository, digest).await {
        Ok(bytes) => {
            assert_eq!(sha256(&bytes), digest, "{repository}: {digest} content");
            true
        }
        Err(status) if status.as_u16() == 404 => false,
        Err(status) => panic!("GET blob {digest} in {repository} answered {status}"),
    }
}
