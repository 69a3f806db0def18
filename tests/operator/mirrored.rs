//! A RegistryMirror reconciled by the operator: its tags are copied, it
//! becomes Ready with its counts, `kubectl get mirrors` shows in sync,
//! drifted, ready, status and suspended (and tier and last sync when wide),
//! a Normal InSync event is recorded, and
//! `image-promoter mirror report` lists its source as retirable in its tier.

use std::process::Command;
use std::time::Duration;

use image_promoter::api::RegistryMirror;
use kube::Api;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, events};
use crate::oci::{Auth, Registry, TestImage};
use crate::support::unique_name;

/// The test world's Quay registry, as its robot account.
pub fn quay_registry(cluster: &Cluster) -> Registry {
    let env = &cluster.env;
    Registry::new(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    )
}

/// Creates a RegistryMirror with `spec` in the cluster's namespace; its name.
pub async fn create_mirror(cluster: &Cluster, spec: serde_json::Value) -> String {
    let name = unique_name("mirror");
    cluster
        .create(&json!({
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "RegistryMirror",
            "metadata": {"name": name, "namespace": cluster.namespace},
            "spec": spec,
        }))
        .await
        .expect("creating the RegistryMirror");
    name
}

#[tokio::test]
async fn a_mirror_becomes_ready_and_shows_in_kubectl_and_the_report() {
    let cluster = Cluster::start("op-mirror").await;
    let env = &cluster.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let quay = quay_registry(&cluster);
    let source = unique_name("mirror/op-source");
    let mut digests = Vec::new();
    for tag in ["1.0.0", "1.1.0", "latest"] {
        let image = TestImage::new(&format!("{source}-{tag}"));
        digests.push((
            tag,
            quay.push_image(&source, &image, tag).await.expect("push"),
        ));
    }
    let target = unique_name("mirror/op-target");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "tags": {"floating": ["^latest$"]},
            "tier": "Bronze",
            "interval": "1m",
        }),
    )
    .await;
    operator.wait_ready().await;

    let api: Api<RegistryMirror> = cluster.typed();
    let status = operator
        .eventually("the mirror Ready=True with 3 tags in sync", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                let ready = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (ready && status.tags.as_ref()?.in_sync == 3).then_some(status)
            }
        })
        .await;
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.targets[0].name, "quay");
    assert_eq!(status.targets[0].in_sync, 3);
    assert!(status.last_sync_time.is_some() && status.last_full_resync_time.is_some());
    for (tag, digest) in &digests {
        assert_eq!(
            &quay.manifest_digest(&target, tag).await.unwrap(),
            digest,
            "{tag}"
        );
    }

    let table = cluster.kubectl(&[
        "get",
        "mirrors",
        "-n",
        &cluster.namespace,
        &name,
        "-o",
        "wide",
    ]);
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "TIER",
        "IN SYNC",
        "DRIFTED",
        "READY",
        "STATUS",
        "SUSPENDED",
        "LAST SYNC",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(row.contains(&"Bronze") && row.contains(&"True"), "{table}");

    let noted = operator
        .eventually("an InSync event", || {
            let client = cluster.client.clone();
            let (namespace, name) = (cluster.namespace.clone(), name.clone());
            async move {
                let all = events(&client, &namespace, &name).await;
                all.iter()
                    .any(|(reason, _, _)| reason == "InSync")
                    .then_some(all)
            }
        })
        .await;
    assert_eq!(
        noted.iter().filter(|(r, _, _)| r == "InSync").count(),
        1,
        "{noted:?}"
    );

    let report = Command::new(env!("CARGO_BIN_EXE_image-promoter"))
        .args(["mirror", "report", "-n", &cluster.namespace])
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .output()
        .expect("running mirror report");
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(
        text.contains("Tier Bronze: 1 of 1 source repositories fully mirrored with no drift"),
        "{text}"
    );
    assert!(
        text.contains(&format!("retirable      {quay_host}/{source}")),
        "{text}"
    );
}

#[tokio::test]
async fn an_invalid_tag_filter_stalls_the_mirror() {
    let cluster = Cluster::start("op-mirror-stalled").await;
    let quay_host = cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/mirror/none")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/mirror/none-copy")}],
            "tags": {"semver": ">=banana"},
        }),
    )
    .await;
    let api: Api<RegistryMirror> = cluster.typed();
    let stalled = operator
        .eventually("Stalled=True InvalidTagFilter", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Stalled" && c.status == "True")
                    .cloned()
            }
        })
        .await;
    assert_eq!(stalled.reason, "InvalidTagFilter");
    assert!(
        stalled.message.contains("spec.tags.semver"),
        "{}",
        stalled.message
    );
}

#[tokio::test]
async fn a_suspended_mirror_is_not_synced() {
    let cluster = Cluster::start("op-mirror-suspended").await;
    let env = &cluster.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let quay = quay_registry(&cluster);
    let source = unique_name("mirror/op-suspended");
    let image = TestImage::new(&source);
    quay.push_image(&source, &image, "1.0.0")
        .await
        .expect("push");
    let target = unique_name("mirror/op-suspended-copy");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "suspend": true,
        }),
    )
    .await;
    operator.wait_log("suspended: no sync").await;
    let api: Api<RegistryMirror> = cluster.typed();
    let status = crate::support::eventually(
        "the suspended mirror's generation acknowledged",
        Duration::from_secs(60),
        || async {
            let status = api.get(&name).await.ok()?.status?;
            (status.observed_generation == Some(1)).then_some(status)
        },
    )
    .await;
    assert!(
        status.conditions.is_empty() && status.tags.is_none() && status.last_sync_time.is_none(),
        "a suspended mirror reports no sync: {status:?}"
    );
    assert!(
        quay.manifest_digest(&target, "1.0.0").await.is_err(),
        "nothing was copied"
    );
}

/// A mirror whose `spec.verify` names a key in a Secret: the operator reads
/// the Secret, copies the signed tag, refuses the unsigned one (counted,
/// listed with `VerificationFailed`) and says so in one Warning event.
#[tokio::test]
async fn a_mirror_refuses_an_unsigned_tag_with_a_warning_event() {
    let cluster = Cluster::start("op-mirror-verify").await;
    let world = crate::world::World::new().await;
    crate::harness::public_key_secret(&cluster, &world).await;
    let env = &cluster.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let quay = quay_registry(&cluster);
    let source = unique_name("mirror/op-verify");
    let mut digests = std::collections::BTreeMap::new();
    for tag in ["1.0.0", "1.1.0"] {
        let image = TestImage::new(&format!("{source}-{tag}"));
        let digest = quay.push_image(&source, &image, tag).await.expect("push");
        digests.insert(tag, digest);
    }
    world.sign_reference(
        &format!("{quay_host}/{source}@{}", digests["1.0.0"]),
        crate::world::Key::Signer,
        &[],
    );
    let target = unique_name("mirror/op-verify-target");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "verify": {
                "requireTagImmutability": false,
                "scan": {"required": false},
                "signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}},
            },
        }),
    )
    .await;
    operator.wait_ready().await;
    let api: Api<RegistryMirror> = cluster.typed();
    let status = operator
        .eventually("one tag in sync and one refused", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                let tags = status.tags.as_ref()?;
                (tags.in_sync == 1 && tags.refused == 1).then_some(status)
            }
        })
        .await;
    assert_eq!(status.failures.len(), 1, "{:?}", status.failures);
    assert_eq!(
        (
            status.failures[0].tag.as_str(),
            status.failures[0].reason.as_str()
        ),
        ("1.1.0", "VerificationFailed")
    );
    assert_eq!(
        quay.manifest_digest(&target, "1.0.0").await.unwrap(),
        digests["1.0.0"]
    );
    assert_eq!(
        quay.manifest_digest(&target, "1.1.0")
            .await
            .unwrap_err()
            .as_u16(),
        404,
        "the unsigned tag was published"
    );
    // One event for the tag, one for Ready turning False with the same reason.
    let refused = operator
        .eventually("the VerificationFailed events", || {
            let client = cluster.client.clone();
            let (namespace, name) = (cluster.namespace.clone(), name.clone());
            async move {
                let all = events(&client, &namespace, &name).await;
                let mut refused: Vec<_> = all
                    .into_iter()
                    .filter(|(reason, _, _)| reason == "VerificationFailed")
                    .collect();
                refused.sort();
                (refused.len() >= 2).then_some(refused)
            }
        })
        .await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].1, "Reconcile");
    assert!(refused[0].2.contains("fail verification"), "{refused:?}");
    assert_eq!(refused[1].1, "Verify/1.1.0");
    assert!(refused[1].2.contains("SignatureMissing"), "{refused:?}");
}
