//! A keyless policy in the cluster: the operator reads the trusted root from
//! a ConfigMap of the object's namespace (with exactly the rules of
//! deploy/rbac.yaml), promotes an image the expected identity signed with
//! the real `cosign` and a private Sigstore, records that identity as the
//! verifying key, and stalls an object that expects another subject with a
//! message naming the subject it found, copying nothing.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is};
use crate::keyless_sigstore::{Entry, GITHUB, Sigstore, WORKFLOW};
use crate::world::{GOOD, TAG, World, promotion, quay_target};

fn keyless_policy(subject: &str) -> Value {
    json!({
        "encryption": "KMS",
        "signature": {"keyless": {
            "issuer": GITHUB,
            "subject": subject,
            "trustedRoot": {"configMapRef": {"name": "sigstore"}},
        }},
    })
}

#[tokio::test]
async fn a_keyless_policy_promotes_the_signing_identity_and_stalls_on_another() {
    let world = World::new().await;
    let cluster = Cluster::start("op-keyless").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let sigstore = Sigstore::new(&world.env);
    sigstore.certificate("ci", "trusted", GITHUB, WORKFLOW);
    let source = world.source("op-keyless", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    sigstore.sign(
        &format!("{}@{}", world.source_repository(&source), source.digest),
        "ci",
        Entry::By("log"),
    );
    let root = std::fs::read_to_string(sigstore.path("trusted_root.json")).unwrap();
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "sigstore"},
        "data": {"trusted_root.json": root},
    }))
    .unwrap();
    let api: Api<ConfigMap> = cluster.typed();
    api.create(&PostParams::default(), &config_map)
        .await
        .expect("creating the trusted root ConfigMap");

    let (quay_name, quay_repository) = world.quay_target("op-keyless");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            keyless_policy(WORKFLOW),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    let ready = operator
        .wait_status(&cluster, &name, "Ready=True", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    let evidence = ready
        .verification
        .as_ref()
        .and_then(|v| v.signature.as_ref());
    assert_eq!(
        evidence.map(|e| e.key_id.as_str()),
        Some(format!("{GITHUB} {WORKFLOW}").as_str()),
        "{ready:?}"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );

    let nightly = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main";
    let (other_quay, other_repository) = world.quay_target("op-keyless-other");
    let mut other = promotion(
        &world,
        &source,
        keyless_policy(nightly),
        json!([quay_target("quay", &other_repository)]),
    );
    other["metadata"]["name"] = json!("keyless-other-subject");
    let other = create(&cluster, other).await;
    let stalled = operator
        .wait_status(&cluster, &other, "Stalled=True", |s| {
            is(s, "Stalled", ("True", "SignatureInvalid"))
        })
        .await;
    let verified = stalled
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .expect("a Verified condition");
    assert_eq!(verified.reason, "SignatureInvalid");
    for part in [
        format!("names subject {WORKFLOW}"),
        format!("not {nightly}"),
    ] {
        assert!(
            verified.message.contains(&part),
            "{:?} lacks {part:?}",
            verified.message
        );
    }
    assert_eq!(
        world.quay_tag(&other_quay, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "nothing copied"
    );
}
