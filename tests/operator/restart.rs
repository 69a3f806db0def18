//! What a promoted object costs afterwards and what it survives: a restart
//! of the operator repeats no copy and moves no transition time; a
//! write-once tag taken by another image stalls that target only; a tag
//! that drifts after Ready is reported within the resync interval and never
//! rewritten.

use image_promoter::api::{ImagePromotion, TargetState};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, config_with, create, events, is, metric, service_account};
use crate::oci::TestImage;
use crate::proxy::Proxy;
use crate::world::{GOOD, TAG, World, promotion, public_target, quay_target};

/// A scanned source that passes `{encryption: KMS}`.
async fn source(world: &World, prefix: &str) -> crate::world::Source {
    let source = world.source(prefix, GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    source
}

#[tokio::test]
async fn a_restarted_operator_repeats_no_copy_and_moves_no_transition_time() {
    let world = World::new().await;
    let cluster = Cluster::start("op-restart").await;
    // The target registry behind a (fault-free) proxy that counts requests.
    let proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &world.env.ca_pem(),
        Vec::new(),
    )
    .await;
    let config = config_with(&cluster, vec![quay_through(&world, &proxy)]);
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let mut first = Operator::start_with_config(&cluster, &kubeconfig, &config, &[]);
    let source = source(&world, "op-restart").await;
    let (quay_name, _) = world.quay_target("op-restart");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay_target(
                "quay",
                &format!("{}/{quay_name}", proxy.host())
            )]),
        ),
    )
    .await;
    let before = first
        .wait_status(&cluster, &name, "Ready=True", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    let api: Api<ImagePromotion> = cluster.typed();
    let version = api.get(&name).await.unwrap().resource_version();
    first.kill();
    let seen = proxy.exchanges().len();

    let mut second = Operator::start_with_config(&cluster, &kubeconfig, &config, &[]);
    second.wait_ready().await;
    // Wait until the new process has reconciled the object once.
    let url = second.metrics_url.clone();
    second
        .eventually("a reconcile by the restarted operator", || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                metric(
                    &text,
                    "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}",
                )
                .filter(|n| *n >= 1.0)
            }
        })
        .await;
    let object = api.get(&name).await.unwrap();
    assert_eq!(
        object.resource_version(),
        version,
        "the restarted operator wrote the object"
    );
    assert_eq!(
        object.status.as_ref(),
        Some(&before),
        "transition times kept"
    );
    // At the registry: the new process's one ping of /v2/, then one manifest
    // HEAD for the one write-once tag, nothing else (`latest` floats, so it is
    // not checked for drift).
    let after: Vec<String> = proxy.exchanges()[seen..]
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .filter(|e| e != "GET /v2/")
        .collect();
    assert_eq!(
        after,
        [format!("HEAD /v2/{quay_name}/manifests/{TAG}")],
        "the restarted operator repeated work"
    );
    assert!(
        !second.log().contains("PromotionPublished"),
        "{}",
        second.log()
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
}

/// A configuration entry reaching the Quay registry through `proxy`.
fn quay_through(world: &World, proxy: &Proxy) -> serde_json::Value {
    let password_file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(crate::support::unique_name("quay-password"));
    std::fs::write(&password_file, world.env.get("PROMOTER_TEST_QUAY_PASSWORD")).unwrap();
    json!({
        "host": proxy.host(),
        "plainHttp": true,
        "auth": {"basic": {
            "username": world.env.get("PROMOTER_TEST_QUAY_USER"),
            "passwordFile": password_file,
        }},
    })
}

#[tokio::test]
async fn a_taken_write_once_tag_stalls_its_target_and_the_other_is_promoted() {
    let world = World::new().await;
    let cluster = Cluster::start("op-conflict").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = source(&world, "op-conflict").await;
    let (quay_name, quay_repository) = world.quay_target("op-conflict");
    let (public_name, public_repository) = world.public_target("op-conflict");
    let squatter = world
        .quay
        .push_image(
            &quay_name,
            &TestImage::new(&format!("{quay_name}-other")),
            TAG,
        )
        .await
        .expect("pushing another image under the tag");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([
                quay_target("quay", &quay_repository),
                public_target("ecr-public", &public_repository),
            ]),
        ),
    )
    .await;
    let status = operator
        .wait_status(&cluster, &name, "Stalled=True TagConflict", |s| {
            is(s, "Stalled", ("True", "TagConflict"))
        })
        .await;
    assert!(is(&status, "Ready", ("False", "TagConflict")));
    assert_eq!(status.targets_ready.as_deref(), Some("1/2"));
    let quay = status.targets.iter().find(|t| t.name == "quay").unwrap();
    assert_eq!(quay.state, TargetState::Conflict, "{quay:?}");
    let public = status
        .targets
        .iter()
        .find(|t| t.name == "ecr-public")
        .unwrap();
    assert_eq!(public.state, TargetState::Promoted, "{public:?}");
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(squatter),
        "not overwritten"
    );
    assert_eq!(
        world.public_tag(&public_name, TAG).await,
        Ok(source.digest.clone())
    );
    let seen = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        seen.iter()
            .any(|(r, a, _)| r == "TagConflict" && a == "Promote/quay"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(r, a, _)| r == "Promoted" && a == "Promote/ecr-public"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_drifted_tag_is_reported_within_the_resync_interval_and_not_rewritten() {
    let world = World::new().await;
    let cluster = Cluster::start("op-drift").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &["--resync-interval", "3s"]).await;
    let source = source(&world, "op-drift").await;
    let (quay_name, quay_repository) = world.quay_target("op-drift");
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
    operator
        .wait_status(&cluster, &name, "Ready=True", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    let moved = world
        .quay
        .push_image(
            &quay_name,
            &TestImage::new(&format!("{quay_name}-moved")),
            TAG,
        )
        .await
        .expect("moving the published tag by hand");
    let status = operator
        .wait_status(&cluster, &name, "Ready=False TagDrifted", |s| {
            is(s, "Ready", ("False", "TagDrifted"))
        })
        .await;
    assert!(is(&status, "Stalled", ("True", "TagDrifted")));
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(message.contains(&moved), "{message}");
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(moved),
        "not rewritten"
    );
    let seen = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(seen.iter().any(|(r, _, _)| r == "TagDrifted"), "{seen:?}");
    let text = operator.metrics().await;
    assert_eq!(
        metric(&text, "image_promoter_drifted_tags"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_promoted_object_stays_ready_when_its_public_key_secret_is_deleted() {
    let world = World::new().await;
    let cluster = Cluster::start("op-keygone").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &["--resync-interval", "2s"]).await;
    let source = source(&world, "op-keygone").await;
    world.sign(&source, crate::world::Key::Signer);
    crate::harness::public_key_secret(&cluster, &world).await;
    let (_, quay_repository) = world.quay_target("op-keygone");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            crate::world::signed_kms_policy(),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    let ready = operator
        .wait_status(&cluster, &name, "Ready=True", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = cluster.typed();
    secrets
        .delete("cosign-public-key", &Default::default())
        .await
        .expect("deleting the public key Secret");
    // Wait for a few more reconciles (the Secret's deletion, then resyncs).
    let series = "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}";
    let seen = metric(&operator.metrics().await, series).unwrap_or(0.0);
    operator.wait_metric_at_least(series, seen + 3.0).await;
    // The key is gone, so the published signature is no longer trusted
    // (Compliant, docs/compliance.md); everything else is as it was.
    let mut status = operator
        .wait_status(&cluster, &name, "Compliant=False SignatureInvalid", |s| {
            is(s, "Compliant", ("False", "SignatureInvalid"))
        })
        .await;
    let compliant = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Compliant")
        .unwrap();
    assert!(
        compliant.message.contains("cosign-public-key"),
        "{}",
        compliant.message
    );
    let mut ready = ready;
    for s in [&mut status, &mut ready] {
        s.conditions.retain(|c| c.type_ != "Compliant");
    }
    assert_eq!(status, ready, "a done promotion needs no key to stay Ready");
}
