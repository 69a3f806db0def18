//! A promotion that passes verification: promoted to two targets, Ready,
//! shown by `kubectl get promotions`, with events and metrics; a target added
//! later is promoted, a removed one leaves the status (never the registry).

use image_promoter::api::TargetState;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, events, is, metric, public_key_secret};
use crate::world::{
    GOOD, Key, TAG, World, promotion, public_target, quay_target, signed_kms_policy,
};

#[tokio::test]
async fn a_signed_scanned_image_is_promoted_to_two_targets_and_reported() {
    let world = World::new().await;
    let cluster = Cluster::start("op-promoted").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-promoted", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-0001", "LOW")])
        .await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (quay_name, quay_repository) = world.quay_target("op-promoted");
    let (public_name, public_repository) = world.public_target("op-promoted");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            signed_kms_policy(),
            json!([
                quay_target("quay", &quay_repository),
                public_target("ecr-public", &public_repository),
            ]),
        ),
    )
    .await;
    operator.wait_ready().await;

    let status = operator
        .wait_status(&cluster, &name, "Ready=True", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(
        status.source_digest.as_deref(),
        Some(source.digest.as_str())
    );
    assert_eq!(status.targets_ready.as_deref(), Some("2/2"));
    assert_eq!(status.observed_generation, Some(1));
    assert!(is(&status, "Verified", ("True", "PolicySatisfied")));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.type_ != "Stalled" && c.type_ != "Reconciling")
    );
    for target in &status.targets {
        assert_eq!(target.state, TargetState::Promoted, "{target:?}");
        assert_eq!(target.digest.as_deref(), Some(source.digest.as_str()));
    }
    let evidence = status.verification.as_ref().expect("evidence");
    assert!(evidence.signature.is_some(), "{evidence:?}");
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    assert_eq!(
        world.quay_tag(&quay_name, "latest").await,
        Ok(source.digest.clone())
    );
    assert_eq!(
        world.public_tag(&public_name, TAG).await,
        Ok(source.digest.clone())
    );

    // kubectl get promotions: one row with 2/2, Ready True and the
    // summary; the digest with -o wide.
    let table = cluster.kubectl(&["get", "promotions", "-n", &cluster.namespace]);
    let row = table
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
    for column in ["2/2", "True", "2/2 targets promoted"] {
        assert!(row.contains(column), "{column} not in {row}");
    }
    let wide = cluster.kubectl(&["get", "promotions", "-n", &cluster.namespace, "-o", "wide"]);
    assert!(wide.contains(source.digest.as_str()), "{wide}");

    // Events on transitions: verified once, promoted per target.
    let client = cluster.client.clone();
    let namespace = cluster.namespace.clone();
    let seen = operator
        .eventually("the Verified and Promoted events", || {
            let (client, namespace, name) = (client.clone(), namespace.clone(), name.clone());
            async move {
                let events = events(&client, &namespace, &name).await;
                let has = |reason: &str, action: &str| {
                    events.iter().any(|(r, a, _)| r == reason && a == action)
                };
                (has("Verified", "Verify")
                    && has("Promoted", "Promote/quay")
                    && has("Promoted", "Promote/ecr-public"))
                .then_some(events)
            }
        })
        .await;
    assert!(
        seen.iter()
            .all(|(r, _, _)| r != "VerificationFailed" && r != "TagConflict"),
        "{seen:?}"
    );

    // Metrics: controller-runtime's names and the product's.
    let text = operator.metrics().await;
    assert_eq!(
        metric(&text, "image_promoter_promotions{state=\"Ready\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "controller_runtime_max_concurrent_reconciles{controller=\"imagepromotion\"}"
        ),
        Some(4.0)
    );
    assert!(
        metric(&text, "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}")
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let uploaded = metric(
        &text,
        &format!(
            "image_promoter_blobs_total{{registry=\"{}\",outcome=\"uploaded\"}}",
            world.env.get("PROMOTER_TEST_QUAY_REGISTRY")
        ),
    );
    let mounted = metric(
        &text,
        &format!(
            "image_promoter_blobs_total{{registry=\"{}\",outcome=\"mounted\"}}",
            world.env.get("PROMOTER_TEST_QUAY_REGISTRY")
        ),
    );
    assert!(
        uploaded.unwrap_or(0.0) + mounted.unwrap_or(0.0) >= 2.0,
        "{text}"
    );

    // The audit log: one JSON line per promotion published, with the object.
    let log = operator.log();
    let published: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["event"] == "PromotionPublished")
        .collect();
    assert_eq!(published.len(), 2, "{log}");
    for line in &published {
        assert_eq!(line["source_digest"], source.digest.as_str(), "{line}");
        // The object as controller-runtime's log lines name it.
        assert_eq!(line["namespace"], cluster.namespace.as_str(), "{line}");
        assert_eq!(line["name"], name.as_str(), "{line}");
        assert_eq!(line["controller"], "imagepromotion", "{line}");
    }
    assert!(
        !log.contains(world.env.get("PROMOTER_TEST_QUAY_PASSWORD")),
        "a credential was logged"
    );
}

#[tokio::test]
async fn a_target_added_later_is_promoted_and_a_removed_one_leaves_the_status_only() {
    let world = World::new().await;
    let cluster = Cluster::start("op-targets").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-targets", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-targets");
    let (public_name, public_repository) = world.public_target("op-targets");
    let quay = quay_target("quay", &quay_repository);
    let public = public_target("ecr-public", &public_repository);
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay.clone()]),
        ),
    )
    .await;
    operator
        .wait_status(&cluster, &name, "Ready=True with one target", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;

    let api: kube::Api<image_promoter::api::ImagePromotion> = cluster.typed();
    let patch = |targets: serde_json::Value| json!({"spec": {"targets": targets}});
    let merge = kube::api::PatchParams::default();
    api.patch(
        &name,
        &merge,
        &kube::api::Patch::Merge(&patch(json!([quay, public.clone()]))),
    )
    .await
    .expect("adding a target");
    let both = operator
        .wait_status(&cluster, &name, "2/2 targets promoted", |s| {
            s.targets_ready.as_deref() == Some("2/2") && is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(both.observed_generation, Some(2));
    assert_eq!(
        world.public_tag(&public_name, TAG).await,
        Ok(source.digest.clone())
    );

    api.patch(
        &name,
        &merge,
        &kube::api::Patch::Merge(&patch(json!([public]))),
    )
    .await
    .expect("removing a target");
    let one = operator
        .wait_status(
            &cluster,
            &name,
            "the removed target gone from the status",
            |s| s.observed_generation == Some(3) && is(s, "Ready", ("True", "Promoted")),
        )
        .await;
    let names: Vec<&str> = one.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ecr-public"]);
    assert_eq!(one.targets_ready.as_deref(), Some("1/1"));
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone()),
        "a published image is never deleted"
    );
}
