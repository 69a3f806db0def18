//! Tags that keep failing do not starve the copy budget: the newest tags of
//! the source are broken (their manifests name a layer the registry no
//! longer has, so every copy of them fails), yet every good tag is copied
//! within ceil(tags / maxCopiesPerSync) runs, and the broken ones are still
//! reported as failed.

use serde_json::json;

use crate::fixtures::{self, OCI_MANIFEST, random_bytes};
use crate::support::TestEnv;
use crate::world::{Source, mirror, quay_target, run, seed, state_file, world_config};

/// Pushes `tag` to `source` as an image whose layer is then deleted from the
/// repository: the manifest stays, its layer answers 404.
async fn push_broken(env: &TestEnv, source: &mut Source, tag: &str) {
    let registry = fixtures::quay(env);
    let repository = source.repository.clone();
    let layer = random_bytes(&format!("{repository}-{tag}"), 1024);
    let layer_digest = registry.push_blob(&repository, &layer).await.unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "test.tag": tag,
    }))
    .unwrap();
    let config_digest = registry.push_blob(&repository, &config).await.unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let digest = registry
        .put_manifest(&repository, tag, OCI_MANIFEST, &manifest)
        .await
        .unwrap();
    source.tags.insert(tag.to_string(), digest);
    let ca = reqwest::Certificate::from_pem(&env.ca_pem()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let response = http
        .delete(format!(
            "https://{}/v2/{repository}/blobs/{layer_digest}",
            env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        ))
        .basic_auth(
            env.get("PROMOTER_TEST_QUAY_USER"),
            Some(env.get("PROMOTER_TEST_QUAY_PASSWORD")),
        )
        .send()
        .await
        .expect("DELETE blob");
    assert_eq!(
        response.status().as_u16(),
        202,
        "deleting the layer of {tag}"
    );
}

#[tokio::test]
async fn failing_tags_wait_their_turn_after_the_tags_never_tried() {
    let env = TestEnv::load();
    let good: Vec<String> = (0..7).map(|i| format!("1.{i}.0")).collect();
    let broken = ["2.0.0", "2.1.0", "2.2.0", "2.3.0"];
    let refs: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut source = seed(&env, "backoff", &refs).await;
    for tag in broken {
        push_broken(&env, &mut source, tag).await;
    }
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let (quay_name, quay) = quay_target(&env, "backoff");
    let budget = 3;
    let object = mirror(
        &source.reference(quay_host),
        &[("quay", &quay)],
        json!({"tags": {"semver": ">=1.0.0"}, "maxCopiesPerSync": budget}),
    );
    let state = state_file();
    let state_arg = state.to_str().unwrap();
    let runs = (good.len() + broken.len()).div_ceil(budget);
    let mut report = json!(null);
    for _ in 0..runs {
        let synced = run(&world_config(&env), &object, &["--state", state_arg]);
        report = synced.report();
        let copies = report["copies"].as_array().unwrap().len();
        assert!(copies <= budget, "{report:#}");
    }
    let tags = &report["status"]["tags"];
    assert_eq!(
        tags["inSync"],
        good.len(),
        "every good tag copied within {runs} runs: {report:#}"
    );
    assert_eq!(tags["failed"], broken.len(), "{report:#}");
    assert_eq!(tags["pending"], 0, "{report:#}");
    let registry = fixtures::quay(&env);
    for tag in &good {
        assert_eq!(
            registry.manifest_digest(&quay_name, tag).await.unwrap(),
            source.tags[tag],
            "{tag}"
        );
    }
}
