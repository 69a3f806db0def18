//! A release as users get it, without a checkout: hack/release/release.py
//! (`make release`) publishes the image and the chart to a repository of the
//! world's internal ECR with a key pair the test makes, and the test then does
//! what the README's quick start says: `helm install … oci://… --version`,
//! `cosign verify` of the image the running pod was started from, `cosign
//! verify-attestation` of its SBOM, and a promotion that becomes Ready.
//! Without a key the release stops before pushing anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::installed::{apply_promotion, free_port, wait_ready};
use crate::release::{NAME, ONE_AT_A_TIME, Release, adopt_crds};
use crate::support::{TestEnv, unique_name};
use crate::world::World;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PASSWORD: &str = "release-test-password";

/// A folder of its own under the test's target dir.
fn folder(prefix: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name(prefix));
    std::fs::create_dir_all(&folder).expect("creating a folder");
    folder
}

/// `tool args` with the world's tools first on PATH, its registries' CA and
/// credentials, and `extra` variables.
fn run(env: &TestEnv, tool: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let path = format!(
        "{}:{}",
        env.get("PROMOTER_TEST_BIN"),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(tool)
        .args(args)
        .env("PATH", path)
        .env("DOCKER_CONFIG", env.get("PROMOTER_TEST_DOCKER_CONFIG"))
        .env("SSL_CERT_FILE", env.get("PROMOTER_TEST_CA"))
        .env_remove("COSIGN_KEY")
        .env_remove("COSIGN_PASSWORD")
        .envs(extra.iter().copied())
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", tool.display()))
}

fn succeeded(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `cosign generate-key-pair` in a new folder: (private key, public key).
fn key_pair(env: &TestEnv) -> (PathBuf, PathBuf) {
    let dir = folder("cosign-key");
    let made = Command::new(env.tool("cosign"))
        .arg("generate-key-pair")
        .current_dir(&dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .expect("running cosign generate-key-pair");
    succeeded("cosign generate-key-pair", &made);
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// hack/release/release.py to `registry` with `extra` variables.
fn release(env: &TestEnv, registry: &str, extra: &[(&str, &str)]) -> Output {
    let script = Path::new(ROOT).join("hack/release/release.py");
    let python = Path::new("python3");
    run(
        env,
        python,
        &[
            script.to_str().unwrap(),
            "--version",
            VERSION,
            "--registry",
            registry,
        ],
        extra,
    )
}

/// The crates Cargo.lock names.
fn locked_crates() -> Vec<String> {
    let lock = std::fs::read_to_string(Path::new(ROOT).join("Cargo.lock")).expect("Cargo.lock");
    lock.lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .map(|rest| rest.trim_end_matches('"').to_string())
        .collect()
}

/// The image the release's running pod was started from.
async fn running_image(cluster: &Cluster) -> String {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pods = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={NAME}")))
        .await
        .expect("listing the release's pods");
    let running = pods
        .items
        .into_iter()
        .find(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .expect("a running pod of the release");
    running.spec.expect("a pod spec").containers[0]
        .image
        .clone()
        .expect("the container's image")
}

#[tokio::test]
async fn the_quick_start_installs_the_signed_release_from_its_oci_chart_and_promotes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let world = World::new().await;
    let cluster = Cluster::start("quickstart").await;
    let env = &cluster.env;
    let registry = format!(
        "{}/{}",
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        unique_name("release")
    );
    let (key, public) = key_pair(env);
    let (_, other_public) = key_pair(env);

    // make release VERSION=… REGISTRY=… (the same script, with the test's key).
    let published = release(
        env,
        &registry,
        &[
            ("COSIGN_KEY", key.to_str().unwrap()),
            ("COSIGN_PASSWORD", PASSWORD),
        ],
    );
    let printed: Value = serde_json::from_str(
        succeeded("hack/release/release.py", &published)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .expect("release.py prints what it published as JSON");
    let image = printed["image"].as_str().expect("the image it published");
    assert!(
        image.starts_with(&format!("{registry}/image-promoter@sha256:")),
        "published {image}"
    );

    // 1. helm install image-promoter oci://<registry>/charts/image-promoter --version x.y.z
    cluster.kubectl(&[
        "label",
        "namespace",
        &cluster.namespace,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    adopt_crds(&cluster);
    let installation = Release::prepare(&cluster, "unused/by-this-test:0").with_the_chart_image();
    let ports = format!("ports.metrics={},ports.health={}", free_port(), free_port());
    let watch = format!("watchNamespaces={{{}}}", cluster.namespace);
    let chart = format!("oci://{registry}/charts/image-promoter");
    installation.install_from(
        &chart,
        &["--version", VERSION, "--set", &ports, "--set", &watch],
    );
    installation.wait_available(2).await;

    // 2. cosign verify --key on the image the Deployment runs: the release's digest.
    let running = running_image(&cluster).await;
    assert_eq!(
        running, image,
        "the installed chart runs the published image by digest"
    );
    let cosign = env.tool("cosign");
    let verified = run(
        env,
        &cosign,
        &[
            "verify",
            "--key",
            public.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            &running,
        ],
        &[],
    );
    let said = succeeded("cosign verify (the installed image)", &verified);
    assert!(
        said.contains(image.rsplit('@').next().unwrap()),
        "cosign verify said {said}"
    );
    let forged = run(
        env,
        &cosign,
        &[
            "verify",
            "--key",
            other_public.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            &running,
        ],
        &[],
    );
    assert!(
        !forged.status.success(),
        "the image verified with another key"
    );
    let chart_reference = format!("{registry}/charts/image-promoter:{VERSION}");
    succeeded(
        "cosign verify (the chart)",
        &run(
            env,
            &cosign,
            &[
                "verify",
                "--key",
                public.to_str().unwrap(),
                "--insecure-ignore-tlog=true",
                &chart_reference,
            ],
            &[],
        ),
    );

    // 3. cosign verify-attestation: a CycloneDX SBOM naming the crates of Cargo.lock.
    let attested = succeeded(
        "cosign verify-attestation",
        &run(
            env,
            &cosign,
            &[
                "verify-attestation",
                "--key",
                public.to_str().unwrap(),
                "--type",
                "cyclonedx",
                "--insecure-ignore-tlog=true",
                &running,
            ],
            &[],
        ),
    );
    let envelope: Value = serde_json::from_str(attested.lines().next().unwrap_or_default())
        .expect("verify-attestation prints a DSSE envelope");
    let statement: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(
                envelope["payload"]
                    .as_str()
                    .expect("the envelope's payload"),
            )
            .expect("the payload is base64"),
    )
    .expect("the payload is an in-toto statement");
    assert_eq!(statement["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(statement["predicate"]["bomFormat"], "CycloneDX");
    let components: Vec<&str> = statement["predicate"]["components"]
        .as_array()
        .expect("the SBOM's components")
        .iter()
        .filter_map(|component| component["name"].as_str())
        .collect();
    let locked = locked_crates();
    for name in ["kube", "tokio", "aws-sdk-ecr", "serde_json"] {
        assert!(
            components.contains(&name),
            "the SBOM lacks {name}: {components:?}"
        );
    }
    assert!(
        !components.contains(&"proptest"),
        "the SBOM names a dev-dependency (proptest)"
    );
    let unknown: Vec<&&str> = components
        .iter()
        .filter(|name| !locked.iter().any(|locked| locked == *name))
        .collect();
    assert!(
        unknown.is_empty(),
        "the SBOM names crates Cargo.lock lacks: {unknown:?}"
    );

    // 4. A promotion becomes Ready.
    let (name, _, _) = apply_promotion(&world, &cluster, "quickstart").await;
    let status = wait_ready(&cluster, &installation, &name).await;
    assert!(
        status.source_digest.is_some(),
        "Ready without a pinned digest: {status:#?}"
    );

    installation.uninstall();
}

#[tokio::test]
async fn a_release_without_a_signing_key_stops_before_pushing_anything() {
    let env = TestEnv::load();
    let registry = format!(
        "{}/{}",
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        unique_name("unsigned")
    );
    let refused = release(&env, &registry, &[]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "release.py without COSIGN_KEY: {refused:?}"
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("COSIGN_KEY is not set") && said.contains("nothing was built or pushed"),
        "release.py said: {said}"
    );
    let listed = run(
        &env,
        &env.tool("crane"),
        &["ls", &format!("{registry}/image-promoter")],
        &[],
    );
    assert!(
        !listed.status.success() || listed.stdout.is_empty(),
        "a tag was pushed without a key: {}",
        String::from_utf8_lossy(&listed.stdout)
    );
}
