//! Verification in the cluster: a refused source stalls with nothing copied
//! until the object changes (an ignore entry), and a running scan is waited
//! for (Reconciling, never Stalled) with nothing copied.

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, events, is, metric, public_key_secret};
use crate::world::{GOOD, Key, TAG, World, promotion, quay_target, signed_kms_policy};
use image_promoter::api::ImagePromotion;

#[tokio::test]
async fn a_critical_finding_stalls_until_an_ignore_entry_is_added() {
    let world = World::new().await;
    let cluster = Cluster::start("op-refused").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-refused", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-4242", "CRITICAL")])
        .await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (quay_name, quay_repository) = world.quay_target("op-refused");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            signed_kms_policy(),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;

    let stalled = operator
        .wait_status(&cluster, &name, "Stalled=True", |s| {
            is(s, "Stalled", ("True", "VulnerabilitiesFound"))
        })
        .await;
    assert!(is(&stalled, "Verified", ("False", "VulnerabilitiesFound")));
    assert!(is(&stalled, "Ready", ("False", "VulnerabilitiesFound")));
    let ready = stalled
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("CVE-2026-4242"), "{}", ready.message);
    assert!(
        !ready.message.contains("run promote again"),
        "{}",
        ready.message
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "nothing copied"
    );
    let refused = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        refused
            .iter()
            .any(|(r, _, n)| r == "VerificationFailed" && n.contains("VulnerabilitiesFound")),
        "{refused:?}"
    );
    let text = operator.metrics().await;
    assert_eq!(
        metric(
            &text,
            "image_promoter_verification_failures_total{reason=\"VulnerabilitiesFound\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "image_promoter_promotions{state=\"Stalled\"}"),
        Some(1.0)
    );

    // The release engineer accepts the finding: the object changes, it is promoted.
    let api: Api<ImagePromotion> = cluster.typed();
    let ignore = json!({"spec": {"verify": {"scan": {"ignore": [{
        "id": "CVE-2026-4242",
        "reason": "not reachable in this image",
        "expires": "2099-01-01",
    }]}}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&ignore))
        .await
        .expect("adding the ignore entry");
    let status = operator
        .wait_status(&cluster, &name, "Ready=True after the ignore entry", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(status.observed_generation, Some(2));
    assert!(is(&status, "Verified", ("True", "PolicySatisfied")));
    assert!(status.conditions.iter().all(|c| c.type_ != "Stalled"));
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
}

#[tokio::test]
async fn a_running_scan_is_waited_for_then_promoted_when_it_completes() {
    let world = World::new().await;
    let cluster = Cluster::start("op-scanning").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-scanning", GOOD).await;
    world.scan(&source, "IN_PROGRESS", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-scanning");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    let pending = operator
        .wait_status(&cluster, &name, "Reconciling=True ScanPending", |s| {
            is(s, "Reconciling", ("True", "ScanPending"))
        })
        .await;
    assert!(pending.conditions.iter().all(|c| c.type_ != "Stalled"));
    let message = &pending
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(!message.contains("run promote again"), "{message}");
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND)
    );
    let scan_pending = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        scan_pending.iter().any(|(r, _, _)| r == "ScanPending"),
        "{scan_pending:?}"
    );

    // The scan finishes: the next look (after the scan backoff, 30 s) promotes
    // the image without any change to the object.
    world
        .rescan(&source, "COMPLETE", &[("CVE-2026-0003", "LOW")])
        .await;
    let promoted = operator
        .wait_status(&cluster, &name, "Ready=True after the scan", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert!(is(&promoted, "Verified", ("True", "PolicySatisfied")));
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await.as_deref(),
        Ok(source.digest.as_str())
    );
}
