//! A source registry that answers 429 with Retry-After slows a sync down
//! without failing it: the listing and the manifest reads wait as told and
//! every tag still arrives.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::faults_world::{Kind, Upstream, config_file};
use crate::proxy::{Fault, Proxy, RetryAfter, Rule};
use crate::support::TestEnv;
use crate::world::{mirror, quay_target, run, seed};

#[tokio::test(flavor = "multi_thread")]
async fn throttling_slows_a_sync_without_failing_it() {
    let env = TestEnv::load();
    let source = seed(&env, "throttled", &["1.0.0", "1.1.0", "2.0.0"]).await;
    let throttle = |method, path: &str, times| {
        Rule::new(
            method,
            path,
            Fault::Status {
                status: 429,
                retry_after: Some(RetryAfter::Seconds(1)),
            },
        )
        .times(times)
    };
    let repository = regex::escape(&source.repository);
    let proxy = Proxy::start(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        vec![
            throttle("GET", &format!("^/v2/{repository}/tags/list$"), 1),
            throttle("HEAD", &format!("^/v2/{repository}/manifests/"), 2),
        ],
    )
    .await;
    let config = config_file(&env, &[(&proxy, Upstream::Quay, Kind::Generic)]);
    let (quay_name, quay) = quay_target(&env, "throttled");
    let object = mirror(
        &source.reference(&proxy.host()),
        &[("quay", &quay)],
        json!({}),
    );
    let started = Instant::now();
    let synced = run(&config, &object, &[]);
    synced.expect_exit(0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the Retry-After was honoured"
    );
    let report = synced.report();
    assert_eq!(report["status"]["tags"]["inSync"], 3);
    assert_eq!(proxy.faulted().len(), 3, "{}", proxy.summary());
    let registry = crate::fixtures::quay(&env);
    for (tag, digest) in &source.tags {
        assert_eq!(
            &registry.manifest_digest(&quay_name, tag).await.unwrap(),
            digest
        );
    }
}
