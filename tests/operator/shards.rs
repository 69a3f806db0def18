//! Sharding past one leader: releases started with `--watch-label-selector
//! sharding.fluxcd.io/key=<shard>` (Flux's convention) split the
//! ImagePromotions and RegistryMirrors between them, each leading with a Lease
//! of its own. An object no shard selects is left alone until it is labelled.

use image_promoter::api::{ImagePromotion, RegistryMirror};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is, service_account};
use crate::oci::{Auth, Registry, TestImage};
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

/// A promotion of a fresh source to a fresh Quay repository, labelled with
/// `shard` (none: unlabelled); its name.
async fn promotion_in(world: &World, cluster: &Cluster, shard: Option<&str>) -> String {
    let prefix = format!("op-shard-{}", shard.unwrap_or("none"));
    let source = world.source(&prefix, GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (_, repository) = world.quay_target(&prefix);
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

/// A mirror of a one-tag Quay repository, labelled with `shard`; its name.
async fn mirror_in(cluster: &Cluster, quay: &Registry, shard: Option<&str>) -> String {
    let host = cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let source = unique_name("mirror/op-shard-source");
    quay.push_image(&source, &TestImage::new(&source), "1.0.0")
        .await
        .expect("pushing the mirror's source");
    let name = unique_name("mirror");
    let mut metadata = json!({"name": name, "namespace": cluster.namespace});
    if let Some(shard) = shard {
        metadata["labels"] = json!({KEY: shard});
    }
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

#[tokio::test]
async fn two_shards_reconcile_disjoint_objects_each_under_a_lease_of_its_own() {
    let world = World::new().await;
    let cluster = Cluster::start("op-shards").await;
    let env = &cluster.env;
    let quay = Registry::new(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    );
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let mut one = Operator::start_with(
        &cluster,
        &kubeconfig,
        &shard_args(&cluster, "shard-one", &format!("{KEY}=one")),
    );
    let mut two = Operator::start_with(
        &cluster,
        &kubeconfig,
        &shard_args(&cluster, "shard-two", &format!("{KEY}=two")),
    );
    one.wait_metric("leader_election_master_status{name=\"shard-one\"}", 1.0)
        .await;
    two.wait_metric("leader_election_master_status{name=\"shard-two\"}", 1.0)
        .await;
    let leases: Api<Lease> = cluster.typed();
    let holders: Vec<Option<String>> =
        futures::future::join_all(["shard-one", "shard-two"].map(|name| {
            let leases = leases.clone();
            async move {
                leases
                    .get(name)
                    .await
                    .expect("each shard's Lease")
                    .spec
                    .and_then(|s| s.holder_identity)
            }
        }))
        .await;
    assert!(holders.iter().all(Option::is_some), "{holders:?}");
    assert_ne!(holders[0], holders[1], "one leader per shard");

    let first = promotion_in(&world, &cluster, Some("one")).await;
    let second = promotion_in(&world, &cluster, Some("two")).await;
    let nobodys = promotion_in(&world, &cluster, None).await;
    let first_mirror = mirror_in(&cluster, &quay, Some("one")).await;
    let second_mirror = mirror_in(&cluster, &quay, Some("two")).await;
    let nobodys_mirror = mirror_in(&cluster, &quay, None).await;

    let promoted =
        |s: &image_promoter::api::ImagePromotionStatus| is(s, "Ready", ("True", "Promoted"));
    one.wait_status(&cluster, &first, "Ready=True by shard one", promoted)
        .await;
    two.wait_status(&cluster, &second, "Ready=True by shard two", promoted)
        .await;
    mirror_ready(&mut one, &cluster, &first_mirror).await;
    mirror_ready(&mut two, &cluster, &second_mirror).await;

    // Each shard's log names only its own objects; nobody's objects are
    // untouched (no status at all).
    let (log_one, log_two) = (one.log(), two.log());
    for (log, mine, theirs) in [
        (&log_one, [&first, &first_mirror], [&second, &second_mirror]),
        (&log_two, [&second, &second_mirror], [&first, &first_mirror]),
    ] {
        for name in mine {
            assert!(log.contains(name.as_str()), "{name} missing:\n{log}");
        }
        for name in theirs.into_iter().chain([&nobodys, &nobodys_mirror]) {
            assert!(
                !log.contains(name.as_str()),
                "{name} reconciled by the wrong shard:\n{log}"
            );
        }
    }
    let promotions: Api<ImagePromotion> = cluster.typed();
    let untouched = promotions
        .get(&nobodys)
        .await
        .expect("the unlabelled promotion");
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    let mirrors: Api<RegistryMirror> = cluster.typed();
    let untouched = mirrors
        .get(&nobodys_mirror)
        .await
        .expect("the unlabelled mirror");
    assert!(untouched.status.is_none(), "{:?}", untouched.status);

    // Labelled later, an object is taken up by its shard alone.
    let label = |shard: &str| -> Value { json!({"metadata": {"labels": {KEY: shard}}}) };
    promotions
        .patch(
            &nobodys,
            &PatchParams::default(),
            &Patch::Merge(label("two")),
        )
        .await
        .expect("labelling the promotion");
    mirrors
        .patch(
            &nobodys_mirror,
            &PatchParams::default(),
            &Patch::Merge(label("one")),
        )
        .await
        .expect("labelling the mirror");
    two.wait_status(
        &cluster,
        &nobodys,
        "Ready=True by shard two, once labelled",
        promoted,
    )
    .await;
    mirror_ready(&mut one, &cluster, &nobodys_mirror).await;
    assert!(!one.log().contains(nobodys.as_str()), "{}", one.log());
    assert!(
        !two.log().contains(nobodys_mirror.as_str()),
        "{}",
        two.log()
    );
}
