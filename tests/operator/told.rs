//! What the operator tells people, for both kinds alike: a Warning event
//! whose reason is the Ready condition's own when an object fails, a Normal
//! one when it recovers; the STATUS summary kubectl shows; a `controller`
//! label of its own for each kind and per-mirror series that go with the
//! mirror; and JSON log lines with controller-runtime's keys.
//!
//! One ImagePromotion and one RegistryMirror push to a registry host only a
//! Secret authenticates at, and the Secret is missing: both fail with
//! CredentialsNotFound, then recover when it is created.
//!
//! The event recorder alone, against the apiserver: the same event again is
//! one Event whose series counts it, and nothing of a forgotten object is kept.

use image_promoter::api::{ImagePromotion, RegistryMirror};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is, metric, undeclared_quay};
use crate::mirrored::{create_mirror, quay_registry};
use crate::oci::TestImage;
use crate::support::unique_name;
use crate::world::{GOOD, TAG, World, promotion};

/// `(type, reason, action)` of every event about `name`.
async fn noted(cluster: &Cluster, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = cluster.typed();
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.action.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for an event of `type_` with `reason` about `name`; every event about it.
async fn wait_event(
    operator: &mut Operator,
    cluster: &Cluster,
    name: &str,
    type_: &str,
    reason: &str,
) -> Vec<(String, String, String)> {
    operator
        .eventually(
            &format!("a {type_} {reason} event about {name}"),
            || async move {
                let all = noted(cluster, name).await;
                all.iter()
                    .any(|(t, r, _)| t == type_ && r == reason)
                    .then_some(all)
            },
        )
        .await
}

/// The Ready condition's `(status, reason)` and the summary of a mirror.
async fn mirror_ready(api: &Api<RegistryMirror>, name: &str) -> Option<(String, String, String)> {
    let status = api.get(name).await.ok()?.status?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        status.summary.unwrap_or_default(),
    ))
}

#[tokio::test]
async fn both_kinds_warn_with_the_conditions_reason_recover_with_a_normal_event_and_log_alike() {
    let world = World::new().await;
    let cluster = Cluster::start("op-told").await;
    let ns = cluster.namespace.clone();
    let (host, secret) = undeclared_quay(&cluster, "quay-robot");

    // The promotion: its only target needs the missing Secret.
    let source = world.source("op-told", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, _) = world.quay_target("op-told");
    let promotion_name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([{
                "name": "quay",
                "repository": format!("{host}/{quay_name}"),
                "tags": [TAG],
                "credentials": {"secretRef": {"name": "quay-robot"}},
            }]),
        ),
    )
    .await;

    // The mirror: two tags in the world's Quay, to a target that needs it too.
    let quay = quay_registry(&cluster);
    let mirror_source = unique_name("told/source");
    for tag in ["1.0.0", "1.1.0"] {
        let image = TestImage::new(&format!("{mirror_source}-{tag}"));
        quay.push_image(&mirror_source, &image, tag)
            .await
            .expect("pushing a source tag");
    }
    let mirror_target = unique_name("told/target");
    let mirror_name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{}/{mirror_source}", cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY"))},
            "targets": [{
                "name": "quay",
                "repository": format!("{host}/{mirror_target}"),
                "credentials": {"secretRef": {"name": "quay-robot"}},
            }],
            "interval": "1m",
        }),
    )
    .await;

    // A directive, as --log-level takes it: every reconcile logs at debug.
    let mut operator = Operator::start(
        &cluster,
        Rbac::Full,
        &["--log-level", "info,image_promoter=debug"],
    )
    .await;
    let promotions: Api<ImagePromotion> = cluster.typed();
    let mirrors: Api<RegistryMirror> = cluster.typed();
    let (mirrors_ref, mirror_ref) = (&mirrors, mirror_name.as_str());

    // Both fail for the same reason, and say so in the same way.
    let failed = operator
        .wait_status(
            &cluster,
            &promotion_name,
            "Ready=False CredentialsNotFound",
            |s| is(s, "Ready", ("False", "CredentialsNotFound")),
        )
        .await;
    let summary = failed.summary.unwrap_or_default();
    assert!(
        summary.starts_with("CredentialsNotFound: ") && summary.chars().count() <= 48,
        "{summary:?}"
    );
    let (_, _, summary) = operator
        .eventually(
            "the mirror Ready=False CredentialsNotFound",
            || async move {
                mirror_ready(mirrors_ref, mirror_ref)
                    .await
                    .filter(|(s, r, _)| s == "False" && r == "CredentialsNotFound")
            },
        )
        .await;
    assert!(
        summary.starts_with("CredentialsNotFound: ") && summary.chars().count() <= 48,
        "{summary:?}"
    );
    for name in [&promotion_name, &mirror_name] {
        let all = wait_event(
            &mut operator,
            &cluster,
            name,
            "Warning",
            "CredentialsNotFound",
        )
        .await;
        assert!(
            all.contains(&(
                "Warning".into(),
                "CredentialsNotFound".into(),
                "Reconcile".into()
            )),
            "{name}: {all:?}"
        );
        assert!(
            !all.iter().any(|(_, r, _)| r == "SyncBlocked"),
            "{name}: {all:?}"
        );
    }

    // Each kind is counted under its own controller.
    let text = operator.metrics().await;
    for controller in ["imagepromotion", "registrymirror"] {
        let reconciles: f64 = ["success", "requeue_after", "error"]
            .iter()
            .filter_map(|result| {
                metric(
                    &text,
                    &format!(
                        "controller_runtime_reconcile_total{{controller=\"{controller}\",result=\"{result}\"}}"
                    ),
                )
            })
            .sum();
        assert!(reconciles >= 1.0, "{controller}:\n{text}");
    }
    let build = format!(
        "image_promoter_build_info{{version=\"{}\",revision=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "{build}\n{text}");

    // The Secret comes: both recover, and say so with a Normal event.
    let secrets: Api<Secret> = cluster.typed();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the Secret");
    operator
        .wait_status(&cluster, &promotion_name, "Ready=True", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    let all = wait_event(
        &mut operator,
        &cluster,
        &promotion_name,
        "Normal",
        "Promoted",
    )
    .await;
    assert!(
        !all.iter()
            .any(|(t, r, _)| t == "Warning" && r != "CredentialsNotFound"),
        "{all:?}"
    );
    let (_, _, summary) = operator
        .eventually("the mirror Ready=True InSync", || async move {
            mirror_ready(mirrors_ref, mirror_ref)
                .await
                .filter(|(s, r, _)| s == "True" && r == "InSync")
        })
        .await;
    assert_eq!(summary, "2 selected tags in sync at 1 target");
    let all = wait_event(&mut operator, &cluster, &mirror_name, "Normal", "InSync").await;
    assert!(
        all.contains(&("Normal".into(), "InSync".into(), "Reconcile".into())),
        "{all:?}"
    );
    assert!(
        !all.iter()
            .any(|(_, r, _)| r == "Synced" || r == "SyncBlocked"),
        "{all:?}"
    );
    let promotion = promotions.get(&promotion_name).await.unwrap();
    assert_eq!(
        promotion.status.unwrap().summary.as_deref(),
        Some("1/1 targets promoted")
    );

    // The mirror's series, then gone with it.
    let series = |state: &str| {
        format!(
            "image_promoter_mirror_tags{{namespace=\"{ns}\",name=\"{mirror_name}\",state=\"{state}\"}}"
        )
    };
    let in_sync = series("in_sync");
    operator.wait_metric(&in_sync, 2.0).await;
    let text = operator.metrics().await;
    assert_eq!(metric(&text, &series("drifted")), Some(0.0), "{text}");
    let last_sync = format!(
        "image_promoter_mirror_last_sync_timestamp_seconds{{namespace=\"{ns}\",name=\"{mirror_name}\"}}"
    );
    let synced_at = metric(&text, &last_sync).unwrap_or_else(|| panic!("{last_sync}\n{text}"));
    let now = k8s_openapi::jiff::Timestamp::now().as_second() as f64;
    assert!(
        (now - 600.0..=now + 5.0).contains(&synced_at),
        "{synced_at}"
    );
    mirrors
        .delete(&mirror_name, &DeleteParams::default())
        .await
        .expect("deleting the mirror");
    let (url, gone) = (
        operator.metrics_url.clone(),
        format!("name=\"{mirror_name}\""),
    );
    let (url, gone) = (url.as_str(), gone.as_str());
    operator
        .eventually("the deleted mirror's series to go", || async move {
            let text = reqwest::get(url).await.ok()?.text().await.ok()?;
            (!text.contains(gone)).then_some(())
        })
        .await;

    // The log: JSON lines with controller-runtime's keys, the same for both kinds.
    let log = operator.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(line["ts"].is_string() && line["msg"].is_string(), "{line}");
        let level = line["level"].as_str().unwrap_or_default();
        assert!(
            ["error", "warn", "info", "debug", "trace"].contains(&level),
            "{line}"
        );
        assert!(
            line.get("span").is_none() && line.get("fields").is_none(),
            "{line}"
        );
    }
    let start = lines
        .iter()
        .find(|l| l["msg"] == "starting image-promoter")
        .unwrap_or_else(|| panic!("no start line in\n{log}"));
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"), "{start}");
    assert!(start["revision"].is_string(), "{start}");
    for (controller, kind, name) in [
        ("imagepromotion", "ImagePromotion", &promotion_name),
        ("registrymirror", "RegistryMirror", &mirror_name),
    ] {
        let about: Vec<&Value> = lines
            .iter()
            .filter(|l| l["controller"] == controller && l["name"] == name.as_str())
            .collect();
        assert!(!about.is_empty(), "no line about {name} in\n{log}");
        let mut ids: Vec<&str> = Vec::new();
        for line in &about {
            assert_eq!(line["namespace"], ns.as_str(), "{line}");
            assert_eq!(line["controllerKind"], kind, "{line}");
            let id = line["reconcileID"]
                .as_str()
                .unwrap_or_else(|| panic!("{line}"));
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        // It failed, then recovered: at least two reconciles logged, each its own id.
        assert!(ids.len() >= 2, "{name}: {ids:?}\n{log}");
    }
}

/// `(note, series count)` of every event about `name` with `reason`.
async fn series_of(cluster: &Cluster, name: &str, reason: &str) -> Vec<(String, Option<i32>)> {
    let api: Api<Event> = cluster.typed();
    let mut found: Vec<(String, Option<i32>)> = api
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| (e.note.unwrap_or_default(), e.series.map(|s| s.count)))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn the_same_event_again_counts_on_the_first_and_a_forgotten_object_starts_afresh() {
    use image_promoter::controller::events::Notice;
    use image_promoter::controller::recorder::EventRecorder;

    let cluster = Cluster::start("op-series").await;
    let name = unique_name("series");
    // The object the events are about (no operator runs here: the recorder
    // needs its reference only).
    let promotions: Api<ImagePromotion> = cluster.typed();
    let object: ImagePromotion = serde_json::from_value(json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": name},
        "spec": {
            "source": {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app:1.0"},
            "targets": [{"name": "quay", "repository": "quay.io/acme/app"}]
        }
    }))
    .expect("an ImagePromotion");
    let object = promotions
        .create(&PostParams::default(), &object)
        .await
        .expect("creating the promotion");
    let uid = object.metadata.uid.clone().expect("a UID");
    let drifted = |note: &str| Notice {
        warning: true,
        reason: "TagsDrifted".into(),
        action: "Reconcile".into(),
        note: note.into(),
    };
    let recorder = EventRecorder::new(cluster.client.clone(), "image-promoter", None);

    recorder
        .publish(&object, vec![drifted("latest moved")])
        .await;
    recorder
        .publish(&object, vec![drifted("latest moved")])
        .await;
    recorder
        .publish(&object, vec![drifted("latest moved"), drifted("1.0 moved")])
        .await;
    assert_eq!(
        series_of(&cluster, &name, "TagsDrifted").await,
        vec![("1.0 moved".into(), None), ("latest moved".into(), Some(3))],
        "the same event three times is one Event counted three times; another note is another Event"
    );

    // The Event gone (the API keeps Events an hour): the next one is new.
    let events: Api<Event> = cluster.typed();
    let gone = events
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .find(|e| e.note.as_deref() == Some("1.0 moved"))
        .expect("the 1.0 event");
    events
        .delete(&gone.metadata.name.unwrap(), &DeleteParams::default())
        .await
        .expect("deleting the event");
    recorder.publish(&object, vec![drifted("1.0 moved")]).await;
    assert_eq!(
        series_of(&cluster, &name, "TagsDrifted").await,
        vec![("1.0 moved".into(), None), ("latest moved".into(), Some(3))],
        "a repeat of a deleted Event creates it again"
    );

    // Forgotten (as on the object's delete event, `Context::forget_promotion`):
    // nothing of it is kept, and the same event is new again.
    assert_eq!(recorder.remembered(), 1);
    recorder.forget(&uid);
    assert_eq!(recorder.remembered(), 0);
    recorder
        .publish(&object, vec![drifted("latest moved")])
        .await;
    assert_eq!(
        series_of(&cluster, &name, "TagsDrifted").await,
        vec![
            ("1.0 moved".into(), None),
            ("latest moved".into(), None),
            ("latest moved".into(), Some(3))
        ]
    );
}
