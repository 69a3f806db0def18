//! cosign: the real binary signs an image in a test registry and verifies it.

use crate::oci::{Auth, Registry, TestImage};
use crate::support::{TestEnv, unique_name};
use std::path::Path;
use std::process::{Command, Output};

fn cosign(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    Command::new(env.tool("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "")
        .env("DOCKER_CONFIG", env.get("PROMOTER_TEST_DOCKER_CONFIG"))
        .env("SSL_CERT_FILE", env.get("PROMOTER_TEST_CA"))
        .env("SIGSTORE_NO_CACHE", "true")
        .env("TUF_ROOT", dir.join("tuf"))
        .output()
        .expect("running cosign")
}

fn succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn cosign_signs_and_verifies_an_image_in_a_test_registry() {
    let env = TestEnv::load();
    let dir = std::env::temp_dir().join(unique_name("promoter-cosign"));
    std::fs::create_dir_all(dir.join("other")).unwrap();
    succeeded(
        "generate-key-pair",
        &cosign(&env, &dir, &["generate-key-pair"]),
    );
    succeeded(
        "generate-key-pair (other)",
        &cosign(&env, &dir.join("other"), &["generate-key-pair"]),
    );

    let host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let repo = unique_name("smoke/signed");
    let registry = Registry::new(
        host,
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    );
    let image = TestImage::new(&repo);
    let digest = registry
        .push_image(&repo, &image, "v1")
        .await
        .expect("push image");
    let reference = format!("{host}/{repo}@{digest}");

    let unsigned = cosign(
        &env,
        &dir,
        &[
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog=true",
            &reference,
        ],
    );
    assert!(!unsigned.status.success(), "an unsigned image verified");

    succeeded(
        "cosign sign",
        &cosign(
            &env,
            &dir,
            &[
                "sign",
                "--key",
                "cosign.key",
                "--tlog-upload=false",
                "--yes",
                &reference,
            ],
        ),
    );
    // The legacy signature tag scheme: sha256-<hex>.sig next to the image.
    let sig_tag = format!("{}.sig", digest.replace(':', "-"));
    registry
        .manifest_digest(&repo, &sig_tag)
        .await
        .expect("the .sig manifest exists");

    let verified = cosign(
        &env,
        &dir,
        &[
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog=true",
            &reference,
        ],
    );
    succeeded("cosign verify", &verified);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        stdout.contains(&digest),
        "verification output does not name {digest}: {stdout}"
    );

    let wrong_key = cosign(
        &env,
        &dir,
        &[
            "verify",
            "--key",
            "other/cosign.pub",
            "--insecure-ignore-tlog=true",
            &reference,
        ],
    );
    assert!(
        !wrong_key.status.success(),
        "a signature verified with the wrong key"
    );
    std::fs::remove_dir_all(&dir).ok();
}
