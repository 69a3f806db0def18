//! `image-promoter copy`: exit codes and output, with the real binary.

use crate::fixtures;
use crate::support::{TestEnv, unique_name};
use std::process::{Command, Output};

fn copy(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-promoter"))
        .arg("copy")
        .args(["--config", env.get("PROMOTER_TEST_CONFIG")])
        .args(args)
        .output()
        .expect("running image-promoter")
}

#[tokio::test]
async fn copy_exits_0_on_success_1_on_conflict_2_on_bad_usage() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "cli", "v1", &[10_000]).await;
    let other = fixtures::single(&env, "cli-other", "v1", &[10_000]).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let target = format!("{ecr}/{}", unique_name("cli/target"));

    let ok = copy(
        &env,
        &[
            &format!("{quay}/{}:v1", seeded.repository),
            &target,
            "--output",
            "json",
        ],
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("JSON report");
    assert_eq!(report["digest"], seeded.digest.as_str());
    assert_eq!(report["targets"][0]["tagsWritten"][0], "v1");

    let human = copy(
        &env,
        &[&format!("{quay}/{}:v1", seeded.repository), &target],
    );
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("up to date") && text.contains(&seeded.digest),
        "{text}"
    );

    let conflict = copy(&env, &[&format!("{quay}/{}:v1", other.repository), &target]);
    assert_eq!(conflict.status.code(), Some(1));
    let text = String::from_utf8_lossy(&conflict.stdout);
    assert!(text.contains("TagConflict"), "{text}");

    let bad = copy(&env, &[&format!("{quay}/{}", seeded.repository), &target]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tag or digest"));

    let missing = copy(
        &env,
        &[&format!("{quay}/{}:nope", seeded.repository), &target],
    );
    assert_eq!(missing.status.code(), Some(1));
    let text = String::from_utf8_lossy(&missing.stderr);
    assert!(text.contains("404") && text.contains("NotFound"), "{text}");
}
