//! The chart's whole life on the node, in one test because each step needs
//! the one before: install → two available replicas, one holding the Lease →
//! a promotion applied with kubectl becomes Ready with exact digests and shows
//! in `kubectl get promotions` → /metrics through a port-forward → the
//! leader's pod deleted, another replica takes over and promotes → an
//! upgrade with changed values rolls both pods → uninstall leaves no workload
//! and no RBAC, and keeps the CRDs and the objects.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image_promoter::api::{ImagePromotion, ImagePromotionStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::release::{DEADLINE, NAME, ONE_AT_A_TIME, Release, adopt_crds};
use crate::support::{eventually, unique_name};
use crate::world::{GOOD, Source, TAG, World, promotion, quay_target};

/// The operator's image `make test` pushed to the world's internal ECR.
fn operator_image() -> String {
    std::env::var("PROMOTER_TEST_OPERATOR_IMAGE").unwrap_or_else(|_| {
        panic!(
            "PROMOTER_TEST_OPERATOR_IMAGE is unset: `make test` builds and pushes the operator's \
             image first; by hand: `make image` and export \
             PROMOTER_TEST_OPERATOR_IMAGE=$PROMOTER_TEST_ECR_REGISTRY/image-promoter:<the tag it pushed>"
        )
    })
}

/// A port nothing listens on now. The pods share the node's network
/// namespace, so the test picks ports no other part of the world uses.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a free port")
        .port()
}

/// Seeds a scanned source and applies its promotion to a new Quay repository
/// with `kubectl apply`; returns the object's name, the Quay repository and
/// the source.
pub async fn apply_promotion(
    world: &World,
    cluster: &Cluster,
    prefix: &str,
) -> (String, String, Source) {
    let source = world.source(prefix, GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target(prefix);
    let object = promotion(
        world,
        &source,
        json!({"encryption": "KMS"}),
        json!([quay_target("quay", &quay_repository)]),
    );
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    let file =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.json", unique_name(prefix)));
    std::fs::write(&file, serde_json::to_vec_pretty(&object).unwrap()).unwrap();
    let applied = cluster.kubectl(&[
        "apply",
        "-n",
        &cluster.namespace,
        "-f",
        file.to_str().unwrap(),
    ]);
    assert!(applied.contains("created"), "kubectl apply said: {applied}");
    (name, quay_name, source)
}

fn ready(status: &ImagePromotionStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub async fn wait_ready(
    cluster: &Cluster,
    release: &Release<'_>,
    name: &str,
) -> ImagePromotionStatus {
    let api: Api<ImagePromotion> = cluster.typed();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = api.get(name).await.ok().and_then(|object| object.status);
        if let Some(status) = status.as_ref().filter(|status| ready(status)) {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "promotion {name} not Ready within {DEADLINE:?}; last status: {status:#?}\n{}",
            release.describe()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The operator's log of `pod`, for failure messages.
fn logs(cluster: &Cluster, pod: &str) -> String {
    let output = cluster
        .env
        .kubectl(&["logs", "-n", &cluster.namespace, pod, "--tail=60"]);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_chart_installs_two_replicas_that_promote_hand_over_upgrade_and_uninstall() {
    let _one = ONE_AT_A_TIME.lock().await;
    let world = World::new().await;
    let cluster = Cluster::start("chart").await;
    let namespace = cluster.namespace.clone();
    cluster.kubectl(&[
        "label",
        "namespace",
        &namespace,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    // The CRDs exist already (the tests apply them): the release adopts them.
    adopt_crds(&cluster);
    let release = Release::prepare(&cluster, &operator_image());
    let (metrics, health) = (free_port(), free_port());
    let ports = format!("ports.metrics={metrics},ports.health={health}");
    let watch = format!("watchNamespaces={{{namespace}}}");
    release.install(&["--set", &ports, "--set", &watch]);

    // Two available replicas, one of them holding the Lease.
    let pods = release.wait_available(2).await;
    let leader = release.leader().await;
    assert!(pods.contains(&leader), "{leader} is not one of {pods:?}");

    // A promotion applied with kubectl: Ready, exact digests, in `kubectl get`.
    let (name, quay_name, source) = apply_promotion(&world, &cluster, "chart-a").await;
    let status = wait_ready(&cluster, &release, &name).await;
    assert_eq!(
        status.source_digest.as_deref(),
        Some(source.digest.as_str())
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    assert_eq!(
        world.quay_tag(&quay_name, "latest").await,
        Ok(source.digest.clone())
    );
    let listed = cluster.kubectl(&["get", "promotions", "-n", &namespace]);
    let row = listed
        .lines()
        .find(|line| line.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not in `kubectl get promotions`:\n{listed}"));
    assert!(
        row.contains("True") && row.contains("1/1"),
        "kubectl get promotions:\n{listed}"
    );

    // /metrics through a port-forward.
    let (address, mut forward) = release.port_forward(&leader, metrics);
    let body = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("GET /metrics through the port-forward")
        .text()
        .await
        .expect("reading /metrics");
    forward.kill().ok();
    forward.wait().ok();
    // Both replicas listen on the node's port (the pods share its network),
    // so either may answer: each serves the operator's metrics.
    for series in [
        "controller_runtime_max_concurrent_reconciles{controller=\"imagepromotion\"} 4",
        "leader_election_master_status{name=\"image-promoter\"}",
    ] {
        assert!(body.contains(series), "{series} not in /metrics:\n{body}");
    }

    // The leader's pod deleted: another replica takes the Lease and promotes.
    let deleted = Api::<Pod>::namespaced(cluster.client.clone(), &namespace);
    deleted
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("deleting the leader's pod");
    let (name, quay_name, source) = apply_promotion(&world, &cluster, "chart-b").await;
    wait_ready(&cluster, &release, &name).await;
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    // The standby and the pod that replaces the deleted one both campaign: the
    // Lease goes to whichever asks first once the leader released it.
    let new_leader = release.leader().await;
    assert_ne!(new_leader, leader, "the deleted pod still leads");
    assert!(
        logs(&cluster, &new_leader).contains("holding the leader Lease"),
        "{new_leader} holds the Lease but never said so:\n{}",
        logs(&cluster, &new_leader)
    );
    let pods = release.wait_available(2).await;

    // An upgrade with changed values rolls both pods.
    release.upgrade(&[
        "--set",
        &ports,
        "--set",
        &watch,
        "--set",
        "controller.logLevel=debug",
    ]);
    let rolled = release.wait_available(2).await;
    assert!(
        rolled.iter().all(|pod| !pods.contains(pod)),
        "pods before the upgrade {pods:?}, after {rolled:?}"
    );
    for pod in &rolled {
        let spec = Api::<Pod>::namespaced(cluster.client.clone(), &namespace)
            .get(pod)
            .await
            .unwrap()
            .spec
            .unwrap();
        let env = spec.containers[0].env.clone().unwrap_or_default();
        assert!(
            env.iter()
                .any(|e| e.name == "IMAGE_PROMOTER_LOG" && e.value.as_deref() == Some("debug")),
            "{pod} does not run with the upgraded values"
        );
    }

    // Uninstall: no workload or RBAC left; CRDs and promotions kept.
    release.uninstall();
    let selector = format!("app.kubernetes.io/instance={NAME}");
    let by_release = ListParams::default().labels(&selector);
    let left = eventually("the release's pods gone", DEADLINE, || async {
        let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace)
            .list(&by_release)
            .await
            .ok()?;
        pods.items.is_empty().then_some(())
    });
    left.await;
    let namespaced = |kind: &str| {
        let output =
            cluster.kubectl(&["get", kind, "-n", &namespace, "-l", &selector, "-o", "name"]);
        output.trim().to_string()
    };
    for kind in [
        "deployments",
        "replicasets",
        "serviceaccounts",
        "services",
        "configmaps",
        "poddisruptionbudgets",
        "roles",
        "rolebindings",
    ] {
        assert_eq!(namespaced(kind), "", "{kind} left after helm uninstall");
    }
    let cluster_roles = Api::<ClusterRole>::all(cluster.client.clone())
        .list(&by_release)
        .await
        .unwrap();
    let cluster_bindings = Api::<ClusterRoleBinding>::all(cluster.client.clone())
        .list(&by_release)
        .await
        .unwrap();
    let roles = Api::<Role>::namespaced(cluster.client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let bindings = Api::<RoleBinding>::namespaced(cluster.client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let names = |items: Vec<Option<String>>| items.into_iter().flatten().collect::<Vec<_>>();
    let leftovers: Vec<String> = [
        names(
            cluster_roles
                .items
                .into_iter()
                .map(|r| r.metadata.name)
                .collect(),
        ),
        names(
            cluster_bindings
                .items
                .into_iter()
                .map(|r| r.metadata.name)
                .collect(),
        ),
        names(roles.items.into_iter().map(|r| r.metadata.name).collect()),
        names(
            bindings
                .items
                .into_iter()
                .map(|r| r.metadata.name)
                .collect(),
        ),
    ]
    .concat();
    assert!(
        leftovers.is_empty(),
        "RBAC left after helm uninstall: {leftovers:?}"
    );
    let crds = Api::<CustomResourceDefinition>::all(cluster.client.clone());
    for crd in [
        "imagepromotions.imagepromoter.dev",
        "registrymirrors.imagepromoter.dev",
    ] {
        let kept = crds.get(crd).await;
        assert!(kept.is_ok(), "helm uninstall deleted the CRD {crd}");
    }
    let promotions: Api<ImagePromotion> = cluster.typed();
    let kept: Vec<Value> = promotions
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| json!(p.metadata.name))
        .collect();
    assert_eq!(kept.len(), 2, "promotions after helm uninstall: {kept:?}");
}
