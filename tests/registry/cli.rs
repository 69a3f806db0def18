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

#[tokio::test]
async fn a_batch_file_copies_what_it_can_and_reports_each_failure() {
    let env = TestEnv::load();
    let good = fixtures::single(&env, "cli-batch", "v1", &[10_000]).await;
    let rebuilt = fixtures::single(&env, "cli-batch-rebuilt", "v1", &[10_000]).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let released = format!("{ecr}/{}", unique_name("cli/batch-released"));
    let fresh = format!("{ecr}/{}", unique_name("cli/batch-fresh"));
    // `released` already holds v1 as another image: the batch must not move it.
    let first = copy(
        &env,
        &[&format!("{quay}/{}:v1", rebuilt.repository), &released],
    );
    assert_eq!(first.status.code(), Some(0));

    let dir = std::env::temp_dir().join(unique_name("batch"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("batch.yaml");
    std::fs::write(
        &file,
        format!(
            "images:\n\
             - {{source: '{quay}/{good}:v1', targets: ['{fresh}']}}\n\
             - {{source: '{quay}/{good}:missing', targets: ['{fresh}'], tags: [v2]}}\n\
             - {{source: '{quay}/{good}:v1', targets: ['{released}']}}\n",
            good = good.repository
        ),
    )
    .unwrap();
    let run = copy(
        &env,
        &[
            "--batch",
            file.to_str().unwrap(),
            "--parallel",
            "2",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    assert_eq!(
        (report["succeeded"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let images = report["images"].as_array().unwrap();
    assert_eq!(images[0]["report"]["targets"][0]["tagsWritten"][0], "v1");
    assert_eq!(images[1]["error"]["reason"], "NotFound");
    assert_eq!(
        images[2]["report"]["targets"][0]["error"]["reason"],
        "TagConflict"
    );
    let target = fixtures::ecr(&env).await;
    let released_name = released.split_once('/').unwrap().1;
    assert_eq!(
        target.manifest_digest(released_name, "v1").await.as_deref(),
        Ok(rebuilt.digest.as_str()),
        "the published tag did not move"
    );

    std::fs::write(&file, "images:\n- {source: nope, targets: []}\n").unwrap();
    let bad = copy(&env, &["--batch", file.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let text = String::from_utf8_lossy(&bad.stderr);
    assert!(text.contains("images[0] (nope): no targets"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_tag_on_a_target_is_published_there_as_skopeo_and_crane_users_type_it() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "cli-dst-tag", "v1", &[10_000]).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let name = unique_name("cli/dst-tag");
    let source = format!("{quay}/{}:v1", seeded.repository);

    let run = copy(
        &env,
        &[
            &source,
            &format!("{ecr}/{name}:v1.0.0"),
            &format!("{ecr}/{name}:latest"),
            "--floating-tag",
            "latest",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    let targets = report["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "one repository, one target: {report}");
    assert_eq!(
        targets[0]["tagsWritten"],
        serde_json::json!(["v1.0.0", "latest"])
    );
    let target = fixtures::ecr(&env).await;
    for tag in ["v1.0.0", "latest"] {
        assert_eq!(
            target.manifest_digest(&name, tag).await.as_deref(),
            Ok(seeded.digest.as_str()),
            "{name}:{tag}"
        );
    }
    assert!(
        target.manifest_digest(&name, "v1").await.is_err(),
        "the source's tag is not published when the target names its own"
    );

    let both = copy(&env, &[&source, &format!("{ecr}/{name}:v2"), "--tag", "v2"]);
    assert_eq!(both.status.code(), Some(2));
    let text = String::from_utf8_lossy(&both.stderr);
    assert!(text.contains("--tag is given too"), "{text}");
    assert!(
        target.manifest_digest(&name, "v2").await.is_err(),
        "nothing is written on bad usage"
    );
}
