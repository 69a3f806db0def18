//! The `image-promoter copy` process killed in the middle of a copy, then run
//! again: the second run completes and moves only what the first did not.
//!
//! The source proxy stalls the large layer after 2 MiB; a proxy in front of the
//! target shows when every other blob has been committed. Only then is the
//! process killed, so what the first run left behind is known exactly.

use crate::proxy::{Fault, Rule};
use crate::support::TestEnv;
use crate::world::{self, Kind, Outcome, TAG, Upstream};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const MIB: usize = 1 << 20;

fn copy_command(source: &str, target: &str, config: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-promoter"));
    command
        .arg("copy")
        .args([source, target, "--output", "json", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// True when the log holds the 201 that committed `digest` at the target.
fn committed(log: &[crate::proxy::Exchange], digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    log.iter()
        .any(|e| e.method == "PUT" && e.status == 201 && e.query.contains(hex))
}

#[tokio::test]
async fn a_copy_killed_midway_completes_on_the_next_run_moving_only_what_was_missing() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "killed", &[12 * MIB, 100_000, 50_000]).await;
    let (large, large_size) = seeded.blobs[1].clone();
    let source_proxy = world::proxy(
        &env,
        Upstream::Quay,
        vec![
            Rule::new(
                "GET",
                &format!("/blobs/{}$", regex::escape(&large)),
                Fault::StallAfter(2 * MIB as u64),
            )
            .times(1),
        ],
    )
    .await;
    let target_proxy = world::proxy(&env, Upstream::Ecr, Vec::new()).await;
    let config = world::config_file(
        &env,
        &[
            (&source_proxy, Upstream::Quay, Kind::Generic),
            (
                &target_proxy,
                Upstream::Ecr,
                Kind::Ecr { chunk_bytes: None },
            ),
        ],
    );
    let source = format!("{}/{}:{TAG}", source_proxy.host(), seeded.repository);
    let target = world::target(&target_proxy.host(), "killed");
    let target_ref = target.repository.to_string();

    let mut first = copy_command(&source, &target_ref, &config)
        .spawn()
        .expect("starting image-promoter");
    let others: Vec<String> = seeded
        .blobs
        .iter()
        .map(|(d, _)| d.clone())
        .filter(|d| *d != large)
        .collect();
    source_proxy
        .wait_for("the large layer to stall", Duration::from_secs(60), |log| {
            log.iter().any(|e| e.fault.is_some())
        })
        .await;
    target_proxy
        .wait_for(
            "every other blob to be committed at the target",
            Duration::from_secs(60),
            |log| others.iter().all(|d| committed(log, d)),
        )
        .await;
    if let Some(status) = first.try_wait().expect("polling the first run") {
        let output = first.wait_with_output().await.expect("first run's output");
        panic!(
            "the first run ended ({status}) before it was killed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    first.start_kill().expect("killing the first run");
    let status = first.wait().await.expect("reaping the first run");
    assert!(!status.success(), "{status}");

    let ecr = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&ecr, &target.repository.name, &seeded).await,
        Outcome::Untouched,
        "a killed copy publishes no tag"
    );
    assert!(!world::has_blob(&ecr, &target.repository.name, &large).await);

    let second = copy_command(&source, &target_ref, &config)
        .output()
        .await
        .expect("running image-promoter again");
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).expect("a JSON report");
    let written = &report["targets"][0];
    assert_eq!(report["digest"], seeded.digest.as_str());
    assert_eq!(written["tagsWritten"], serde_json::json!([TAG]));
    assert_eq!(written["blobsUploaded"], 1, "{report:#}");
    assert_eq!(written["blobsSkipped"], others.len(), "{report:#}");
    assert_eq!(
        report["sourceBytesRead"],
        large_size + seeded.manifest.len() as u64,
        "only the missing layer (and the manifest) was read again: {report:#}"
    );
    assert_eq!(
        world::assert_consistent(&ecr, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}
