//! Hosts that `--config` does not declare authenticate with the docker
//! client's login, found as skopeo and crane find it (`--authfile`,
//! `REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
//! `~/.docker/config.json`), including credential helpers. The Quay of the
//! test world refuses anonymous pulls and pushes, so each copy here proves
//! which credentials were used.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use crate::support::{TestEnv, unique_name};
use crate::{fixtures, image_promoter, scratch, shown};

/// An `auths` file, as `docker login` writes it, for the world's Quay.
fn docker_login(env: &TestEnv, password: &str) -> serde_json::Value {
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{password}", env.get("PROMOTER_TEST_QUAY_USER")));
    json!({"auths": {env.get("PROMOTER_TEST_QUAY_REGISTRY"): {"auth": auth}}})
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// A source image in Quay and a fresh target repository there.
async fn source_and_target(env: &TestEnv, prefix: &str) -> (fixtures::Seeded, String, String) {
    let seeded = fixtures::single(env, prefix, "v1", &[20_000]).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let target = unique_name(&format!("cli/{prefix}-target"));
    (seeded, format!("{quay}/{target}"), target)
}

fn copy_args(env: &TestEnv, seeded: &fixtures::Seeded, target: &str) -> Vec<String> {
    vec![
        "copy".into(),
        format!(
            "{}/{}:v1",
            env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            seeded.repository
        ),
        target.into(),
        // The spelling main already had, so these tests fail there on credentials.
        "--output".into(),
        "json".into(),
    ]
}

#[tokio::test]
async fn copy_to_quay_after_docker_login_needs_no_config() {
    let env = TestEnv::load();
    let (seeded, target, target_name) = source_and_target(&env, "login").await;
    let home = scratch("home");

    let anonymous = image_promoter(&env, &home)
        .args(copy_args(&env, &seeded, &target))
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(1), "{}", shown(&anonymous));
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("401"),
        "without a login Quay refuses: {}",
        shown(&anonymous)
    );

    write_json(
        &home.join(".docker/config.json"),
        &docker_login(&env, env.get("PROMOTER_TEST_QUAY_PASSWORD")),
    );
    let logged_in = image_promoter(&env, &home)
        .args(copy_args(&env, &seeded, &target))
        .output()
        .unwrap();
    assert_eq!(logged_in.status.code(), Some(0), "{}", shown(&logged_in));
    let report: serde_json::Value = serde_json::from_slice(&logged_in.stdout).unwrap();
    assert_eq!(report["digest"], seeded.digest.as_str());
    assert_eq!(
        fixtures::quay(&env)
            .manifest_digest(&target_name, "v1")
            .await
            .unwrap(),
        seeded.digest
    );
}

#[tokio::test]
async fn the_authfile_flag_wins_over_registry_auth_file_which_wins_over_docker_config() {
    let env = TestEnv::load();
    let (seeded, target, _) = source_and_target(&env, "authfile").await;
    let home = scratch("home");
    let good = env.get("PROMOTER_TEST_QUAY_PASSWORD");
    let docker_config = home.join("docker");
    write_json(
        &docker_config.join("config.json"),
        &docker_login(&env, good),
    );
    let wrong = home.join("containers/auth.json");
    write_json(&wrong, &docker_login(&env, "not-the-password"));
    let flag = home.join("flag.json");
    write_json(&flag, &docker_login(&env, good));

    let run = |extra: &[&str]| {
        image_promoter(&env, &home)
            .env("DOCKER_CONFIG", &docker_config)
            .env("REGISTRY_AUTH_FILE", &wrong)
            .args(copy_args(&env, &seeded, &target))
            .args(extra)
            .output()
            .unwrap()
    };
    let from_variable = run(&[]);
    assert_eq!(
        from_variable.status.code(),
        Some(1),
        "REGISTRY_AUTH_FILE (a wrong password) is read before DOCKER_CONFIG: {}",
        shown(&from_variable)
    );
    assert!(
        !shown(&from_variable).contains("not-the-password"),
        "{}",
        shown(&from_variable)
    );
    let from_flag = run(&["--authfile", flag.to_str().unwrap()]);
    assert_eq!(from_flag.status.code(), Some(0), "{}", shown(&from_flag));

    let missing = run(&["--authfile", "/nonexistent/auth.json"]);
    assert_eq!(missing.status.code(), Some(2), "{}", shown(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("--authfile /nonexistent/auth.json"),
        "{}",
        shown(&missing)
    );
}

/// A `docker-credential-<name>` of this test's own in a directory for PATH:
/// it logs each call and answers with `answer` (a shell snippet).
fn helper(dir: &Path, name: &str, answer: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join(format!("docker-credential-{name}"));
    let calls = dir.join("calls");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nserver=$(cat)\necho \"$1 $server\" >> '{}'\n{answer}\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    bin
}

fn with_path(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test]
async fn credential_helpers_and_stores_answer_for_their_hosts() {
    let env = TestEnv::load();
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let user = env.get("PROMOTER_TEST_QUAY_USER");
    let password = env.get("PROMOTER_TEST_QUAY_PASSWORD");
    let answer = format!(
        "[ \"$server\" = '{quay}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
         printf '{{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}}' \"$server\" '{user}' '{password}'"
    );

    for (name, config) in [
        (
            "promoterhelper",
            json!({"credHelpers": {quay: "promoterhelper"}}),
        ),
        // A store, beside an `auths` placeholder as `docker login` leaves one.
        (
            "promoterstore",
            json!({"auths": {quay: {}}, "credsStore": "promoterstore"}),
        ),
    ] {
        let (seeded, target, target_name) = source_and_target(&env, name).await;
        let home = scratch("home");
        let bin = helper(&home, name, &answer);
        write_json(&home.join("docker/config.json"), &config);
        let copied = image_promoter(&env, &home)
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("PATH", with_path(&bin))
            .args(copy_args(&env, &seeded, &target))
            .output()
            .unwrap();
        assert_eq!(copied.status.code(), Some(0), "{name}: {}", shown(&copied));
        assert!(
            !shown(&copied).contains(password),
            "{name}: {}",
            shown(&copied)
        );
        let calls = std::fs::read_to_string(home.join("calls")).unwrap();
        assert!(
            calls.lines().all(|line| line == format!("get {quay}")) && !calls.is_empty(),
            "{name}: the helper is asked `get` with the registry host on stdin: {calls}"
        );
        assert_eq!(
            fixtures::quay(&env)
                .manifest_digest(&target_name, "v1")
                .await
                .unwrap(),
            seeded.digest,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_failing_helper_is_reported_without_what_it_printed() {
    let env = TestEnv::load();
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let (seeded, target, _) = source_and_target(&env, "failing-helper").await;
    let home = scratch("home");
    let leaked = "s3cret-the-helper-must-not-leak";
    let bin = helper(
        &home,
        "promoterbroken",
        &format!("echo 'error: {leaked}'; echo '{leaked}' >&2; exit 7"),
    );
    write_json(
        &home.join("docker/config.json"),
        &json!({"credHelpers": {quay: "promoterbroken"}}),
    );
    let failed = image_promoter(&env, &home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("PATH", with_path(&bin))
        .args(copy_args(&env, &seeded, &target))
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", shown(&failed));
    let everything = shown(&failed);
    assert!(
        everything.contains("docker-credential-promoterbroken get failed")
            && everything.contains("CredentialHelperFailed"),
        "{everything}"
    );
    assert!(!everything.contains(leaked), "{everything}");

    // A helper that is not installed: said so, with what to do.
    std::fs::remove_dir_all(&bin).unwrap();
    let missing = image_promoter(&env, &home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("PATH", with_path(&bin))
        .args(copy_args(&env, &seeded, &target))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{}", shown(&missing));
    assert!(
        shown(&missing).contains("docker-credential-promoterbroken is not on PATH"),
        "{}",
        shown(&missing)
    );
}
