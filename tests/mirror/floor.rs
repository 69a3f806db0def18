//! A mirror obeys the operator's verification floor: a tag whose image a
//! promotion would refuse (unsigned, a CRITICAL finding, no scan where one is
//! required) is not copied, is reported per tag as refused
//! (`VerificationFailed`), and the other tags go on. Verdicts are kept, so
//! idle runs cost what they cost without a floor, counted at the registry.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::faults_world::{Kind, Upstream, config_file};
use crate::promote_world::{GOOD, Key, TAG, World, public_key_file};
use crate::proxy::Proxy;
use crate::support::{TestEnv, unique_name};
use crate::world::{mirror, quay_target, run, seed, state_file, world_config};

/// `base` with `floor` as its `verify:` section, written to a new file.
fn with_floor(base: &Path, floor: Value) -> PathBuf {
    let text = std::fs::read_to_string(base).expect("reading the configuration file");
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    config["verify"] = serde_yaml_ng::to_value(floor).unwrap();
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.yaml", unique_name("floor")));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

/// A floor that requires a signature by the world's signer key.
fn signed_floor(env: &TestEnv) -> Value {
    let pem = std::fs::read_to_string(public_key_file(env, Key::Signer)).unwrap();
    json!({"signature": {"publicKeys": [pem]}})
}

fn copied(report: &Value) -> Vec<String> {
    let mut tags: Vec<String> = report["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tag"].as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

/// `(tag, reason, message)` of each `status.failures` entry.
fn failures(report: &Value) -> Vec<(String, String, String)> {
    report["status"]["failures"]
        .as_array()
        .map(|failures| {
            failures
                .iter()
                .map(|f| {
                    (
                        f["tag"].as_str().unwrap().to_string(),
                        f["reason"].as_str().unwrap().to_string(),
                        f["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn count(report: &Value, what: &str) -> u64 {
    report["status"]["tags"][what].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_unsigned_tag_is_refused_and_the_signed_ones_are_copied() {
    let world = World::new().await;
    let env = &world.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let source = seed(env, "floor-signed", &["1.0.0", "1.1.0", "1.2.0"]).await;
    for tag in ["1.0.0", "1.2.0"] {
        let reference = format!("{}@{}", source.reference(quay_host), source.tags[tag]);
        world.sign_reference(&reference, Key::Signer, &[]);
    }
    let config = with_floor(&world_config(env), signed_floor(env));
    let (quay_name, quay) = quay_target(env, "floor-signed");
    let object = mirror(&source.reference(quay_host), &[("quay", &quay)], json!({}));
    let state = state_file();
    let state_arg = state.to_str().unwrap();

    for attempt in ["first run", "second run"] {
        let synced = run(&config, &object, &["--state", state_arg]);
        synced.expect_exit(1);
        let report = synced.report();
        if attempt == "first run" {
            assert_eq!(copied(&report), ["1.0.0", "1.2.0"], "{report:#}");
        } else {
            assert!(copied(&report).is_empty(), "{attempt}: {report:#}");
        }
        assert_eq!(count(&report, "refused"), 1, "{attempt}: {report:#}");
        assert_eq!(count(&report, "inSync"), 2, "{attempt}: {report:#}");
        assert_eq!(count(&report, "failed"), 0, "{attempt}: {report:#}");
        let listed = failures(&report);
        assert_eq!(listed.len(), 1, "{attempt}: {listed:?}");
        let (tag, reason, message) = &listed[0];
        assert_eq!(
            (tag.as_str(), reason.as_str()),
            ("1.1.0", "VerificationFailed")
        );
        assert!(message.starts_with("SignatureMissing: "), "{message}");
        assert!(message.contains("the operator's floor"), "{message}");
        let ready = report["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["reason"], "VerificationFailed", "{attempt}");
    }
    assert_eq!(
        world
            .quay
            .manifest_digest(&quay_name, "1.2.0")
            .await
            .unwrap(),
        source.tags["1.2.0"]
    );
    assert_eq!(
        world
            .quay
            .manifest_digest(&quay_name, "1.1.0")
            .await
            .unwrap_err()
            .as_u16(),
        404,
        "the unsigned tag was published"
    );
}

#[tokio::test]
async fn an_ecr_image_with_a_critical_finding_is_refused() {
    let world = World::new().await;
    let env = &world.env;
    let source = world.source("mirror-floor-scan", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-31337", "CRITICAL")])
        .await;
    let config = with_floor(
        &world_config(env),
        json!({"scan": {"required": true, "failOnSeverity": "HIGH"}, "requireTagImmutability": true}),
    );
    let (quay_name, quay) = quay_target(env, "floor-scan");
    let object = mirror(
        &format!("{}/{}", env.get("PROMOTER_TEST_ECR_REGISTRY"), source.name),
        &[("quay", &quay)],
        json!({}),
    );
    let synced = run(&config, &object, &[]);
    synced.expect_exit(1);
    let report = synced.report();
    assert!(copied(&report).is_empty(), "{report:#}");
    assert_eq!(count(&report, "refused"), 1, "{report:#}");
    let listed = failures(&report);
    let (tag, reason, message) = &listed[0];
    assert_eq!((tag.as_str(), reason.as_str()), (TAG, "VerificationFailed"));
    assert!(message.starts_with("VulnerabilitiesFound: "), "{message}");
    assert!(message.contains("CVE-2026-31337 (CRITICAL"), "{message}");
    assert_eq!(
        world
            .quay
            .manifest_digest(&quay_name, TAG)
            .await
            .unwrap_err()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn a_source_outside_ecr_is_refused_when_the_floor_requires_a_scan() {
    let env = TestEnv::load();
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let source = seed(&env, "floor-unscanned", &["1.0.0", "2.0.0"]).await;
    let config = with_floor(&world_config(&env), json!({"scan": {"required": true}}));
    let (_, quay) = quay_target(&env, "floor-unscanned");
    let object = mirror(&source.reference(quay_host), &[("quay", &quay)], json!({}));
    let synced = run(&config, &object, &[]);
    synced.expect_exit(1);
    let report = synced.report();
    assert!(copied(&report).is_empty(), "{report:#}");
    assert_eq!(count(&report, "refused"), 2, "{report:#}");
    for (_, reason, message) in failures(&report) {
        assert_eq!(reason, "VerificationFailed");
        assert!(message.starts_with("ScanMissing: "), "{message}");
        assert!(
            message.contains("is not an Amazon ECR repository")
                && message.contains("it has no ECR scan"),
            "the refusal says why: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_runs_with_refused_tags_stay_within_the_request_budget() {
    let world = World::new().await;
    let env = &world.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let tags: Vec<String> = (0..15).map(|i| format!("1.{i}.0")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let source = seed(env, "floor-idle", &refs).await;
    // Every tag but three is signed.
    for tag in &tags[3..] {
        let reference = format!("{}@{}", source.reference(quay_host), source.tags[tag]);
        world.sign_reference(&reference, Key::Signer, &[]);
    }
    let proxy = Proxy::start(quay_host, &env.ca_pem(), vec![]).await;
    let config = with_floor(
        &config_file(env, &[(&proxy, Upstream::Quay, Kind::Generic)]),
        signed_floor(env),
    );
    // The target is reached directly: the proxy sees the source only.
    let (_, quay) = quay_target(env, "floor-idle");
    let object = mirror(
        &source.reference(&proxy.host()),
        &[("quay", &quay)],
        json!({"maxCopiesPerSync": 100}),
    );
    let state = state_file();
    let state_arg = state.to_str().unwrap();
    let backfill = run(&config, &object, &["--state", state_arg]);
    backfill.expect_exit(1);
    let report = backfill.report();
    assert_eq!(copied(&report).len(), 12, "{report:#}");
    assert_eq!(count(&report, "refused"), 3, "{report:#}");

    let before = proxy.exchanges().len();
    for _ in 0..2 {
        let idle = run(&config, &object, &["--state", state_arg]);
        idle.expect_exit(1);
        let report = idle.report();
        assert!(copied(&report).is_empty(), "{report:#}");
        assert_eq!(count(&report, "refused"), 3, "{report:#}");
        assert_eq!(count(&report, "inSync"), 12, "{report:#}");
    }
    let idle_requests: Vec<String> = proxy.exchanges()[before..]
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    eprintln!(
        "two idle runs of 15 tags (3 refused): {} requests at the source: {idle_requests:?}",
        idle_requests.len()
    );
    assert!(
        idle_requests.len() <= 12,
        "two idle runs sent {} requests to the source (budget 12): {idle_requests:#?}",
        idle_requests.len()
    );
}

#[tokio::test]
async fn a_running_scan_makes_the_tag_wait_until_the_scan_completes() {
    let world = World::new().await;
    let env = &world.env;
    let source = world.source("mirror-floor-pending", GOOD).await;
    world.sign(&source, Key::Signer);
    world.scan(&source, "IN_PROGRESS", &[]).await;
    let (quay_name, quay) = quay_target(env, "floor-pending");
    // spec.verify with its key given on the command line, as `promote` takes it.
    let object = mirror(
        &format!("{}/{}", env.get("PROMOTER_TEST_ECR_REGISTRY"), source.name),
        &[("quay", &quay)],
        json!({"verify": {
            "scan": {"required": true, "failOnSeverity": "CRITICAL"},
            "signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}},
        }}),
    );
    let key = public_key_file(env, Key::Signer);
    let key_arg = key.to_str().unwrap();
    let state = state_file();
    let state_arg = state.to_str().unwrap();
    let args = ["--public-key", key_arg, "--state", state_arg];
    let without_key = run(&world_config(env), &object, &["--state", state_arg]);
    without_key.expect_exit(2);
    assert!(
        without_key.stderr.contains("--public-key FILE"),
        "{}",
        without_key.stderr
    );

    let waiting = run(&world_config(env), &object, &args);
    waiting.expect_exit(0);
    let report = waiting.report();
    assert!(copied(&report).is_empty(), "{report:#}");
    assert_eq!(count(&report, "pending"), 1, "{report:#}");
    assert_eq!(count(&report, "refused"), 0, "{report:#}");
    assert_eq!(report["decisions"][0]["state"], "waiting", "{report:#}");
    assert_eq!(
        report["decisions"][0]["reason"], "ScanPending",
        "{report:#}"
    );
    assert_eq!(report["status"]["phase"], "Backfilling");

    world
        .rescan(&source, "COMPLETE", &[("CVE-2026-4242", "HIGH")])
        .await;
    let copied_now = run(&world_config(env), &object, &args);
    copied_now.expect_exit(0);
    let report = copied_now.report();
    assert_eq!(copied(&report), [TAG], "{report:#}");
    assert_eq!(count(&report, "inSync"), 1, "{report:#}");
    assert_eq!(
        world.quay.manifest_digest(&quay_name, TAG).await.unwrap(),
        source.digest
    );
}
