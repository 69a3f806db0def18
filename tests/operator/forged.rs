//! The verdict lives in the operator, not in the status: a status patched to
//! `Verified=True` publishes nothing (the operator writes its own status
//! back, and a restarted operator verifies again), and a floor tightened by
//! a configuration reload while a promotion is half done keeps the remaining
//! targets from being written under the old verdict.

use image_promoter::api::ImagePromotion;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, config_with, create, is, promotion_to_quay, service_account};
use crate::world::{GOOD, Key, TAG, World, promotion, public_key_file, quay_target};

/// Writes the configuration at `path` again with the floor requiring a
/// signature by the signer's key (written whole and renamed, as a ConfigMap
/// volume update is).
fn require_signature(path: &std::path::Path, world: &World) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut config: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let pem = std::fs::read_to_string(public_key_file(&world.env, Key::Signer)).unwrap();
    config["verify"] = json!({"signature": {"required": true, "publicKeys": [pem]}});
    let next = path.with_extension("next");
    std::fs::write(&next, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Writes [`forged`] into the status of `name`, as someone with the role would.
async fn forge(api: &Api<ImagePromotion>, name: &str, digest: &str) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&forged(digest)),
    )
    .await
    .expect("patching the status");
}

/// What someone with `imagepromotions/status` rights writes to make an
/// unverified image look verified.
fn forged(digest: &str) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": "",
               "observedGeneration": 1, "lastTransitionTime": now})
    };
    json!({"status": {
        "observedGeneration": 1,
        "sourceDigest": digest,
        "verification": {"tagMutability": "IMMUTABLE", "encryptionType": "KMS"},
        "conditions": [
            condition("Verified", "True", "PolicySatisfied"),
            condition("Ready", "False", "Progressing"),
            condition("Reconciling", "True", "Progressing"),
        ],
    }})
}

#[tokio::test]
async fn a_status_patched_to_verified_publishes_nothing() {
    let world = World::new().await;
    let cluster = Cluster::start("op-forged").await;
    let config = config_with(&cluster, Vec::new());
    require_signature(&config, &world);
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let mut operator = Operator::start_with_config(&cluster, &kubeconfig, &config, &[]);
    // Never signed.
    let (source, quay_name, name) = promotion_to_quay(
        &world,
        &cluster,
        "op-forged",
        GOOD,
        json!({"encryption": "KMS"}),
    )
    .await;
    let refused = |s: &image_promoter::api::ImagePromotionStatus| {
        is(s, "Stalled", ("True", "SignatureMissing"))
            && is(s, "Verified", ("False", "SignatureMissing"))
    };
    operator
        .wait_status(&cluster, &name, "Stalled=True SignatureMissing", refused)
        .await;

    let api: Api<ImagePromotion> = cluster.typed();
    forge(&api, &name, &source.digest).await;
    operator
        .wait_status(&cluster, &name, "the operator's own status back", refused)
        .await;
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "a forged verdict published the image:\n{}",
        operator.log()
    );

    // A restarted operator finds a forged status naming another digest: the
    // source must still resolve to what the status claims, or nothing moves.
    operator.kill();
    let other = format!("sha256:{}", "0".repeat(64));
    forge(&api, &name, &other).await;
    let mut restarted = Operator::start_with_config(&cluster, &kubeconfig, &config, &[]);
    let status = restarted
        .wait_status(&cluster, &name, "Stalled=True SourceDigestMismatch", |s| {
            is(s, "Stalled", ("True", "SourceDigestMismatch"))
        })
        .await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains(&other), "{}", ready.message);

    // And one naming the right digest: verified again, refused again.
    restarted.kill();
    forge(&api, &name, &source.digest).await;
    let mut restarted = Operator::start_with_config(&cluster, &kubeconfig, &config, &[]);
    restarted
        .wait_status(&cluster, &name, "Stalled again after a restart", refused)
        .await;
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "published after a restart:\n{}",
        restarted.log()
    );
}

#[tokio::test]
async fn a_floor_tightened_mid_promotion_stops_the_remaining_targets() {
    let world = World::new().await;
    let cluster = Cluster::start("op-tightened").await;
    let config = config_with(&cluster, Vec::new());
    let mut operator = Operator::start_configured(&cluster, &config, &[]).await;
    let source = world.source("op-tightened", GOOD).await; // never signed
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-tightened");
    // The ECR Public repository does not exist yet: that target fails.
    let (public_name, public_repository) = world.public_target("op-tightened");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([
                quay_target("quay", &quay_repository),
                {"name": "public", "repository": public_repository, "tags": [TAG],
                 "credentials": {"ecrPublic": {}}},
            ]),
        ),
    )
    .await;
    let half = operator
        .wait_status(&cluster, &name, "quay promoted, public failed", |s| {
            is(s, "Verified", ("True", "PolicySatisfied"))
                && s.targets.iter().any(|t| {
                    t.name == "quay" && t.state == image_promoter::api::TargetState::Promoted
                })
                && s.targets.iter().any(|t| {
                    t.name == "public" && t.state == image_promoter::api::TargetState::Failed
                })
        })
        .await;
    assert_eq!(half.targets_ready.as_deref(), Some("1/2"));
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );

    // The repository appears, and the floor now requires a signature.
    world.create_public_repository(&public_name).await;
    require_signature(&config, &world);
    operator
        .wait_status(&cluster, &name, "refused under the tightened floor", |s| {
            is(s, "Verified", ("False", "SignatureMissing"))
                && is(s, "Stalled", ("True", "SignatureMissing"))
        })
        .await;
    assert_eq!(
        world.public_tag(&public_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "the remaining target was written under the old verdict:\n{}",
        operator.log()
    );
}
