//! Sharding past one leader: releases started with `--watch-label-selector
//! sharding.fluxcd.io/key=<shard>` (Flux's convention) split the
//! ImagePromotions and RegistryMirrors between them, each leading with a Lease
//! of its own. An object no shard selects is left alone until it is labelled.
//!
//! Which process touched which object is read from the processes themselves:
//! every object's registries sit behind a proxy of their own (a host name of
//! their own), and each operator counts its registry requests by host
//! (`image_promoter_registry_requests_total{registry=…}`).

use image_promoter::api::{ImagePromotion, ImagePromotionStatus, RegistryMirror};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{
    Operator, Rbac, config_with, create, is, metric, quay_through, service_account,
};
use crate::oci::{Auth, Registry, TestImage};
use crate::proxy::Proxy;
use crate::support::unique_name;
use crate::world::{GOOD, World, promotion, quay_target};

const KEY: &str = "sharding.fluxcd.io/key";

/// The flags of one shard's release: its selector and its own Lease.
fn shard_args<'a>(cluster: &'a Cluster, lease: &'a str, selector: &'a str) -> Vec<&'a str> {
    vec![
        "--leader-elect",
        "--leader-election-namespace",
        cluster.namespace.as_str(),
        "--leader-election-id",
        lease,
        "--watch-label-selector",
        selector,
    ]
}

/// A promotion of a fresh source to a fresh repository behind `proxy`,
/// labelled with `shard` (none: unlabelled); its name.
async fn promotion_in(
    world: &World,
    cluster: &Cluster,
    proxy: &Proxy,
    shard: Option<&str>,
) -> String {
    let prefix = format!("op-shard-{}", shard.unwrap_or("none"));
    let source = world.source(&prefix, GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let repository = format!("{}/{}", proxy.host(), unique_name("promote/op-shard"));
    let mut object = promotion(
        world,
        &source,
        json!({"encryption": "KMS"}),
        json!([quay_target("quay", &repository)]),
    );
    if let Some(shard) = shard {
        object["metadata"]["labels"] = json!({KEY: shard});
    }
    create(cluster, object).await
}

/// A mirror of a one-tag Quay repository, read and written through `proxy`,
/// labelled with `shard`; its name.
async fn mirror_in(
    cluster: &Cluster,
    quay: &Registry,
    proxy: &Proxy,
    shard: Option<&str>,
) -> String {
    let source = unique_name("mirror/op-shard-source");
    quay.push_image(&source, &TestImage::new(&source), "1.0.0")
        .await
        .expect("pushing the mirror's source");
    let name = unique_name("mirror");
    let mut metadata = json!({"name": name, "namespace": cluster.namespace});
    if let Some(shard) = shard {
        metadata["labels"] = json!({KEY: shard});
    }
    let host = proxy.host();
    cluster
        .create(&json!({
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "RegistryMirror",
            "metadata": metadata,
            "spec": {
                "source": {"repository": format!("{host}/{source}")},
                "targets": [{"name": "quay", "repository": format!("{host}/{}", unique_name("mirror/op-shard-target"))}],
                "interval": "1m",
            },
        }))
        .await
        .expect("creating the RegistryMirror");
    name
}

async fn mirror_ready(operator: &mut Operator, cluster: &Cluster, name: &str) {
    let api: Api<RegistryMirror> = cluster.typed();
    operator
        .eventually(&format!("the mirror {name} Ready=True"), || {
            let (api, name) = (api.clone(), name.to_string());
            async move {
                let status = api.get(&name).await.ok()?.status?;
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
}

/// The registry hosts `operator` sent requests to, among `hosts`.
async fn hosts_asked(operator: &Operator, hosts: &[&Proxy]) -> Vec<String> {
    let text = operator.metrics().await;
    hosts
        .iter()
        .map(|proxy| proxy.host())
        .filter(|host| text.contains(&format!("registry=\"{host}\"")))
        .collect()
}

fn promoted(status: &ImagePromotionStatus) -> bool {
    is(status, "Ready", ("True", "Promoted"))
}

#[tokio::test]
async fn two_shards_reconcile_disjoint_objects_each_under_a_lease_of_its_own() {
    let world = World::new().await;
    let cluster = Cluster::start("op-shards").await;
    let env = &cluster.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let quay = Registry::new(
        quay_host,
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    );
    // Shard one's objects, shard two's, the unlabelled promotion's and the
    // unlabelled mirror's registries: four host names.
    let mut proxies = Vec::new();
    for _ in 0..4 {
        proxies.push(Proxy::start(quay_host, &env.ca_pem(), vec![]).await);
    }
    let [one_host, two_host, loose_promotion, loose_mirror] = [0, 1, 2, 3].map(|i| &proxies[i]);
    let all = [one_host, two_host, loose_promotion, loose_mirror];
    let config = config_with(
        &cluster,
        all.iter()
            .map(|proxy| quay_through(&cluster, proxy))
            .collect(),
    );
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let (selector_one, selector_two) = (format!("{KEY}=one"), format!("{KEY}=two"));
    let mut one = Operator::start_with_config(
        &cluster,
        &kubeconfig,
        &config,
        &shard_args(&cluster, "shard-one", &selector_one),
    );
    let mut two = Operator::start_with_config(
        &cluster,
        &kubeconfig,
        &config,
        &shard_args(&cluster, "shard-two", &selector_two),
    );
    one.wait_metric("leader_election_master_status{name=\"shard-one\"}", 1.0)
        .await;
    two.wait_metric("leader_election_master_status{name=\"shard-two\"}", 1.0)
        .await;
    let leases: Api<Lease> = cluster.typed();
    let mut holders = Vec::new();
    for name in ["shard-one", "shard-two"] {
        let lease = leases.get(name).await.expect("each shard's Lease");
        holders.push(lease.spec.and_then(|s| s.holder_identity));
    }
    assert!(holders.iter().all(Option::is_some), "{holders:?}");
    assert_ne!(holders[0], holders[1], "one leader per shard");

    let first = promotion_in(&world, &cluster, one_host, Some("one")).await;
    let second = promotion_in(&world, &cluster, two_host, Some("two")).await;
    let unlabelled = promotion_in(&world, &cluster, loose_promotion, None).await;
    let first_mirror = mirror_in(&cluster, &quay, one_host, Some("one")).await;
    let second_mirror = mirror_in(&cluster, &quay, two_host, Some("two")).await;
    let unlabelled_mirror = mirror_in(&cluster, &quay, loose_mirror, None).await;

    one.wait_status(&cluster, &first, "Ready=True by shard one", promoted)
        .await;
    two.wait_status(&cluster, &second, "Ready=True by shard two", promoted)
        .await;
    mirror_ready(&mut one, &cluster, &first_mirror).await;
    mirror_ready(&mut two, &cluster, &second_mirror).await;

    // Each shard asked only its own objects' registries, and reconciled one
    // promotion; the unlabelled objects are untouched (no status, no request).
    assert_eq!(hosts_asked(&one, &all).await, [one_host.host()]);
    assert_eq!(hosts_asked(&two, &all).await, [two_host.host()]);
    for operator in [&one, &two] {
        let text = operator.metrics().await;
        assert_eq!(
            metric(&text, "image_promoter_promotions{state=\"Ready\"}"),
            Some(1.0),
            "{text}"
        );
    }
    let promotions: Api<ImagePromotion> = cluster.typed();
    let untouched = promotions
        .get(&unlabelled)
        .await
        .expect("the unlabelled promotion");
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    let mirrors: Api<RegistryMirror> = cluster.typed();
    let untouched = mirrors
        .get(&unlabelled_mirror)
        .await
        .expect("the unlabelled mirror");
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    assert!(loose_promotion.exchanges().is_empty() && loose_mirror.exchanges().is_empty());

    // Labelled later, an object is taken up by its shard alone.
    let label = |shard: &str| -> Value { json!({"metadata": {"labels": {KEY: shard}}}) };
    promotions
        .patch(
            &unlabelled,
            &PatchParams::default(),
            &Patch::Merge(label("two")),
        )
        .await
        .expect("labelling the promotion");
    mirrors
        .patch(
            &unlabelled_mirror,
            &PatchParams::default(),
            &Patch::Merge(label("one")),
        )
        .await
        .expect("labelling the mirror");
    two.wait_status(
        &cluster,
        &unlabelled,
        "Ready=True by shard two, once labelled",
        promoted,
    )
    .await;
    mirror_ready(&mut one, &cluster, &unlabelled_mirror).await;
    assert_eq!(
        hosts_asked(&one, &all).await,
        [one_host.host(), loose_mirror.host()]
    );
    assert_eq!(
        hosts_asked(&two, &all).await,
        [two_host.host(), loose_promotion.host()]
    );
}
