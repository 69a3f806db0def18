//! Backfill under a budget, then follow: successive runs with a `--state`
//! file behave like the operator's intervals. New tags arrive within one
//! run, a floating tag moves, a write-once tag changed at the target is
//! reported as drift and left alone, a tag deleted at the source is reported
//! and kept, and an idle run costs the listings and the rotating budget,
//! counted at the registry.

use serde_json::{Value, json};

use crate::faults_world::{Kind, Upstream, config_file};
use crate::proxy::Proxy;
use crate::support::TestEnv;
use crate::world::{
    big_source, mirror, public_registry, public_target, quay_target, run, seed, state_file, states,
    world_config,
};

fn counts(report: &Value) -> (u64, u64, u64, u64) {
    let tags = &report["status"]["tags"];
    let n = |k: &str| tags[k].as_u64().unwrap_or(0);
    (n("inSync"), n("pending"), n("drifted"), n("failed"))
}

fn copied(report: &Value) -> Vec<String> {
    report["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tag"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn backfills_under_a_budget_then_follows_the_source() {
    let env = TestEnv::load();
    let tags = [
        "1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0", "2.1.0", "latest", "abc1234",
    ];
    let mut source = seed(&env, "follow", &tags).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let (quay_name, quay) = quay_target(&env, "follow");
    let (public_name, public) = public_target(&env, "follow").await;
    let object = mirror(
        &source.reference(&quay_host),
        &[("quay", &quay), ("ecr-public", &public)],
        json!({"maxCopiesPerSync": 3, "tags": {"floating": ["^latest$"]}, "tier": "Bronze"}),
    );
    let config = world_config(&env);
    let state = state_file();
    let state_arg = state.to_str().unwrap();
    let sync = |args: &[&str]| {
        let mut all = vec!["--state", state_arg];
        all.extend_from_slice(args);
        run(&config, &object, &all)
    };

    // Backfill: three tags per run, newest version first, versions before other tags.
    let first = sync(&[]);
    first.expect_exit(0);
    let report = first.report();
    assert_eq!(copied(&report), ["2.1.0", "2.0.0", "1.3.0"]);
    assert_eq!(report["status"]["phase"], "Backfilling");
    assert_eq!(counts(&report), (3, 5, 0, 0));
    let second = sync(&[]);
    second.expect_exit(0);
    assert_eq!(copied(&second.report()), ["1.2.0", "1.1.0", "1.0.0"]);
    let third = sync(&[]);
    third.expect_exit(0);
    let report = third.report();
    assert_eq!(copied(&report), ["abc1234", "latest"]);
    assert_eq!(report["status"]["phase"], "Synced");
    assert_eq!(counts(&report), (8, 0, 0, 0));
    let ready = report["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True", "{ready}");
    let quay_registry = crate::fixtures::quay(&env);
    let public_registry = public_registry(&env);
    for (tag, digest) in &source.tags {
        assert_eq!(
            &quay_registry
                .manifest_digest(&quay_name, tag)
                .await
                .unwrap(),
            digest,
            "{tag} at quay"
        );
        assert_eq!(
            &public_registry
                .manifest_digest(&public_name, tag)
                .await
                .unwrap(),
            digest,
            "{tag} at ecr-public"
        );
    }
    assert!(
        std::fs::metadata(&state).is_ok(),
        "the state file was written"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // A new tag arrives and the floating tag moves: both within one run.
    let new = source.push(&env, "2.2.0", "1").await;
    let moved = source.push(&env, "latest", "2").await;
    let fourth = sync(&[]);
    fourth.expect_exit(0);
    let mut made = copied(&fourth.report());
    made.sort();
    assert_eq!(made, ["2.2.0", "latest"]);
    assert_eq!(
        quay_registry
            .manifest_digest(&quay_name, "2.2.0")
            .await
            .unwrap(),
        new
    );
    assert_eq!(
        quay_registry
            .manifest_digest(&quay_name, "latest")
            .await
            .unwrap(),
        moved
    );
    assert_eq!(
        public_registry
            .manifest_digest(&public_name, "latest")
            .await
            .unwrap(),
        moved
    );

    // Drift at the target: found by the rotating re-check within
    // ceil(9 tags / 4 per run) runs, reported, and left alone.
    let intruder = quay_registry
        .put_manifest(
            &quay_name,
            "1.0.0",
            crate::fixtures::OCI_MANIFEST,
            &source_manifest_variant(&source, &env).await,
        )
        .await
        .unwrap();
    let mut drift_seen = None;
    for attempt in 1..=3 {
        let synced = sync(&[]);
        let report = synced.report();
        if states(&report)
            .get(&("1.0.0".to_string(), "quay".to_string()))
            .map(String::as_str)
            == Some("drifted")
        {
            synced.expect_exit(1);
            drift_seen = Some((attempt, report));
            break;
        }
        synced.expect_exit(0);
    }
    let (_, report) = drift_seen.expect("the rotating re-check found the drift within 3 runs");
    assert_eq!(counts(&report).2, 1);
    let failure = &report["status"]["failures"][0];
    assert_eq!(
        (
            failure["tag"].as_str(),
            failure["target"].as_str(),
            failure["reason"].as_str()
        ),
        (Some("1.0.0"), Some("quay"), Some("TagDrifted"))
    );
    assert_eq!(
        quay_registry
            .manifest_digest(&quay_name, "1.0.0")
            .await
            .unwrap(),
        intruder,
        "drift is left alone"
    );

    // A tag deleted at the source is reported and kept at the targets.
    source.delete(&env, "1.1.0").await;
    let synced = sync(&[]);
    let report = synced.report();
    let state_of = states(&report);
    assert_eq!(
        state_of[&("1.1.0".to_string(), "quay".to_string())],
        "deletedAtSource"
    );
    assert_eq!(
        state_of[&("1.1.0".to_string(), "ecr-public".to_string())],
        "deletedAtSource"
    );
    assert!(
        quay_registry
            .manifest_digest(&quay_name, "1.1.0")
            .await
            .is_ok(),
        "kept at the target"
    );
    assert!(
        report["status"]["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["tag"] == "1.1.0" && f["reason"] == "SourceTagDeleted"),
        "{}",
        report["status"]["failures"]
    );

    // A state file of another mirror is refused with what to do.
    let mut other = object.clone();
    other["metadata"]["name"] = json!("someone-else");
    let refused = run(&config, &other, &["--state", state_arg]);
    refused.expect_exit(2);
    assert!(
        refused.stderr.contains("belongs to mirror"),
        "{}",
        refused.stderr
    );
}

/// Another manifest of the source's layer, as someone pushing to the target by hand would.
async fn source_manifest_variant(source: &crate::world::Source, env: &TestEnv) -> Vec<u8> {
    let registry = crate::fixtures::quay(env);
    let (bytes, _) = registry
        .get_manifest(&source.repository, "1.0.0")
        .await
        .unwrap();
    let mut manifest: Value = serde_json::from_slice(&bytes).unwrap();
    manifest["annotations"]["test.variant"] = json!("pushed-by-hand");
    serde_json::to_vec(&manifest).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_run_costs_the_listings_and_the_rotating_budget_at_the_registry() {
    let env = TestEnv::load();
    let source = big_source(&env).await;
    let proxy = Proxy::start(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        vec![],
    )
    .await;
    let config = config_file(&env, &[(&proxy, Upstream::Quay, Kind::Generic)]);
    let (quay_name, _) = quay_target(&env, "idle");
    let quay = format!("{}/{quay_name}", proxy.host());
    let (public_name, public) = public_target(&env, "idle").await;
    let object = mirror(
        &source.reference(&proxy.host()),
        &[("quay", &quay), ("ecr-public", &public)],
        json!({"tags": {"semver": "^1", "include": ["^1\\.[0-4]\\."]}, "maxCopiesPerSync": 100}),
    );
    let state = state_file();
    let state_arg = state.to_str().unwrap();
    let backfill = run(&config, &object, &["--state", state_arg]);
    backfill.expect_exit(0);
    let report = backfill.report();
    assert_eq!(copied(&report).len(), 25);
    assert_eq!(report["status"]["phase"], "Synced");
    let signature = format!("sha256-{}.sig", &source.tags["1.0.0"]["sha256:".len()..]);
    assert_eq!(
        crate::fixtures::quay(&env)
            .manifest_digest(&quay_name, &signature)
            .await
            .unwrap(),
        source.tags[&signature],
        "the signature travelled with its image"
    );
    assert!(
        public_registry(&env)
            .manifest_digest(&public_name, &signature)
            .await
            .is_ok()
    );

    // Attached artifacts are asked for only where the source's listing shows
    // them: a cosign or referrers fallback tag (`sha256-<hex>[.suffix]`) that is
    // not listed costs no HEAD.
    let prefix = format!("/v2/{}/manifests/sha256-", source.repository);
    let unlisted: Vec<String> = proxy
        .exchanges()
        .iter()
        .filter(|e| e.method == "HEAD" && e.path.starts_with(&prefix))
        .map(|e| e.path.rsplit('/').next().unwrap().to_string())
        .filter(|tag| !source.tags.contains_key(tag))
        .collect();
    assert!(
        unlisted.is_empty(),
        "the backfill asked the source for tags its listing lacks: {unlisted:?}"
    );

    let before = proxy.exchanges().len();
    let idle = run(&config, &object, &["--state", state_arg]);
    idle.expect_exit(0);
    let report = idle.report();
    assert!(copied(&report).is_empty());
    let exchanges = proxy.exchanges();
    let idle_requests: Vec<String> = exchanges[before..]
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    let pages = report["source"]["listingPages"].as_u64().unwrap()
        + report["targets"][0]["listingPages"].as_u64().unwrap();
    // The process's /v2/ ping, the listing pages of the source and of the
    // Quay target, and the rotating re-check of 4 tags at each (ECR Public
    // is listed through its API, which gives digests).
    let bound = 1 + pages as usize + 4 + 4;
    eprintln!(
        "idle run of 25 selected tags: {} requests at the registry (bound {bound}): {idle_requests:?}",
        idle_requests.len()
    );
    assert!(
        idle_requests.len() <= bound,
        "an idle run sent {} requests to the registry (bound {bound}): {idle_requests:#?}",
        idle_requests.len()
    );
    assert!(
        idle_requests
            .iter()
            .all(|r| r.starts_with("GET /v2/") || r.starts_with("HEAD /v2/")),
        "{idle_requests:#?}"
    );
    assert!(
        idle_requests
            .iter()
            .filter(|r| r.contains("/tags/list"))
            .count() as u64
            == pages,
        "{idle_requests:#?}"
    );
    assert!(
        report["observeRequests"].as_u64().unwrap() as usize <= idle_requests.len(),
        "the report counts no more than the registry saw"
    );
}
