//! A RegistryMirror that applies verification, watched like a promotion
//! (issues 21 and 22): its in-sync tags are judged again at the compliance
//! interval (seconds here) against the scan as ECR (moto) reports it now —
//! a new CRITICAL finding counts the tag `noncompliant` with its reason and
//! a Warning event, makes no registry request (one scan read per check; the
//! signature checks of the copy's verification are reused), and a clean
//! scan turns it back — and each mirrored tag gets a receipt that carries the source
//! signature verified, the scan and the ignore entries, which the real
//! `cosign verify-attestation` accepts, listed in the mirror's status.

use std::path::PathBuf;

use image_promoter::api::{RegistryMirror, RegistryMirrorStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, events, public_key_secret, service_account};
use crate::mirrored::create_mirror;
use crate::receipts::{cosign, statements, text, verify_attestation};
use crate::support::unique_name;
use crate::world::{GOOD, Key, TAG, World};

/// Registry requests that write (PUT, POST, PATCH, DELETE).
fn writes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("image_promoter_registry_requests_total{"))
        .filter(|l| {
            ["PUT", "POST", "PATCH", "DELETE"]
                .iter()
                .any(|m| l.contains(&format!("method=\"{m}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every registry request the operator made (any method).
fn registry_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("image_promoter_registry_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of the series `series` (its full name with labels), 0 when absent.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `image_promoter_mirror_tags{state="noncompliant"}` of the mirror `name`.
fn noncompliant_gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("image_promoter_mirror_tags{"))
        .filter(|l| l.contains(&format!("name=\"{name}\"")))
        .find(|l| l.contains("state=\"noncompliant\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn compliant(status: &RegistryMirrorStatus) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Compliant")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls the mirror `name` until `done` holds of its status.
async fn wait_mirror(
    operator: &mut Operator,
    cluster: &Cluster,
    name: &str,
    what: &str,
    done: impl Fn(&RegistryMirrorStatus) -> bool,
) -> RegistryMirrorStatus {
    let api: Api<RegistryMirror> = cluster.typed();
    let done = &done;
    operator
        .eventually(what, || {
            let api = api.clone();
            async move {
                let status = api.get(name).await.ok()?.status?;
                done(&status).then_some(status)
            }
        })
        .await
}

fn counts(status: &RegistryMirrorStatus) -> (i32, i32) {
    status
        .tags
        .as_ref()
        .map_or((0, 0), |t| (t.in_sync, t.noncompliant))
}

#[tokio::test]
async fn a_new_critical_finding_counts_a_mirrored_tag_noncompliant_and_a_fix_clears_it() {
    let world = World::new().await;
    let cluster = Cluster::start("op-mirror-comply").await;
    let source = world.source("op-mcomply", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (quay_name, quay_repository) = world.quay_target("op-mcomply");
    let mut operator =
        Operator::start(&cluster, Rbac::Full, &["--compliance-interval", "2s"]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": world.source_repository(&source)},
            "targets": [{"name": "quay", "repository": quay_repository}],
            "verify": {
                "encryption": "KMS",
                "signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}},
            },
        }),
    )
    .await;
    let synced = wait_mirror(
        &mut operator,
        &cluster,
        &name,
        "the tag in sync and compliant",
        |s| {
            counts(s) == (1, 0)
                && compliant(s).is_some_and(|(st, r, _)| st == "True" && r == "PolicySatisfied")
        },
    )
    .await;
    assert!(synced.noncompliant_tags.is_empty(), "{synced:#?}");
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    let metrics = operator.metrics().await;
    let written_before = writes(&metrics);
    // The sync is over: from here on only compliance checks run, and the
    // signature checks of the copy's verification are kept for them.
    let requests_synced = registry_requests(&metrics);

    // ECR reports a new CRITICAL finding for the mirrored digest.
    world
        .rescan(&source, "COMPLETE", &[("CVE-2026-8888", "CRITICAL")])
        .await;
    let flipped = wait_mirror(
        &mut operator,
        &cluster,
        &name,
        "the tag counted noncompliant",
        |s| counts(s) == (1, 1),
    )
    .await;
    let listed = &flipped.noncompliant_tags;
    assert_eq!(listed.len(), 1, "{flipped:#?}");
    assert_eq!(
        (
            listed[0].tag.as_str(),
            listed[0].digest.as_str(),
            listed[0].reason.as_str()
        ),
        (TAG, source.digest.as_str(), "VulnerabilitiesFound")
    );
    assert!(
        listed[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("CVE-2026-8888"),
        "{listed:?}"
    );
    let (status, reason, message) = compliant(&flipped).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "VulnerabilitiesFound")
    );
    assert!(message.contains("CVE-2026-8888"), "{message}");
    assert!(
        flipped
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "Ready stays True: {flipped:#?}"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone()),
        "the tag did not move"
    );
    let warned = operator
        .eventually("the Warning event", || {
            let client = cluster.client.clone();
            let (namespace, name) = (cluster.namespace.clone(), name.clone());
            async move {
                let seen = events(&client, &namespace, &name).await;
                seen.into_iter().find(|(r, a, n)| {
                    r == "VulnerabilitiesFound"
                        && a == "CheckCompliance"
                        && n.contains("CVE-2026-8888")
                })
            }
        })
        .await;
    assert!(warned.2.contains(TAG), "{warned:?}");
    let metrics = operator.metrics().await;
    assert_eq!(noncompliant_gauge(&metrics, &name), Some(1.0), "{metrics}");
    assert_eq!(writes(&metrics), written_before, "no registry write");
    assert_eq!(registry_requests(&metrics), requests_synced, "{metrics}");
    let scans_flipped = value(&metrics, "image_promoter_compliance_scan_reads_total");
    let cached_flipped = value(
        &metrics,
        "image_promoter_compliance_signature_checks_total{source=\"cache\"}",
    );

    // The fix: the image is scanned clean again.
    world.rescan(&source, "COMPLETE", &[]).await;
    let fixed = wait_mirror(&mut operator, &cluster, &name, "compliant again", |s| {
        counts(s) == (1, 0)
            && compliant(s).is_some_and(|(st, r, _)| st == "True" && r == "PolicySatisfied")
    })
    .await;
    assert!(fixed.noncompliant_tags.is_empty());
    operator
        .eventually("the Normal event of the recovery", || {
            let client = cluster.client.clone();
            let (namespace, name) = (cluster.namespace.clone(), name.clone());
            async move {
                let seen = events(&client, &namespace, &name).await;
                seen.into_iter()
                    .find(|(r, a, _)| r == "PolicySatisfied" && a == "CheckCompliance")
            }
        })
        .await;
    let metrics = operator.metrics().await;
    assert_eq!(noncompliant_gauge(&metrics, &name), Some(0.0), "{metrics}");
    assert_eq!(writes(&metrics), written_before, "no registry write");
    let scans = value(&metrics, "image_promoter_compliance_scan_reads_total") - scans_flipped;
    let cached = value(
        &metrics,
        "image_promoter_compliance_signature_checks_total{source=\"cache\"}",
    ) - cached_flipped;
    assert!(scans >= 1.0, "the passes read the scan: {metrics}");
    assert_eq!(cached, scans, "one cached signature check per scan read");
    assert_eq!(
        registry_requests(&metrics),
        requests_synced,
        "no registry request while the digest and the key are unchanged: {metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            "image_promoter_compliance_signature_checks_total{source=\"registry\"}"
        ),
        0.0,
        "the signatures verified before the copy were not read again: {metrics}"
    );
    let events = events(&cluster.client, &cluster.namespace, &name).await;
    assert_eq!(
        events
            .iter()
            .filter(|(r, _, _)| r == "VulnerabilitiesFound")
            .count(),
        1,
        "one event per transition: {events:?}"
    );
}

#[tokio::test]
async fn a_mirrored_tag_gets_a_receipt_with_the_signature_and_scan_it_passed() {
    let world = World::new().await;
    let cluster = Cluster::start("op-mirror-receipt").await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("mirror-receipt"));
    std::fs::create_dir_all(&dir).unwrap();
    let reference = format!("k8s://{}/receipt-key", cluster.namespace);
    let generated = cosign(&cluster.env, &dir, &["generate-key-pair", &reference]);
    assert!(generated.status.success(), "{}", text(&generated));
    let secrets: Api<Secret> = cluster.typed();
    let data = secrets.get("receipt-key").await.unwrap().data.unwrap();
    let public_key = dir.join("receipt.pub");
    std::fs::write(&public_key, &data["cosign.pub"].0).unwrap();

    let source = world.source("op-mreceipt", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-0001", "LOW")])
        .await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (_, quay_repository) = world.quay_target("op-mreceipt");
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let mut operator =
        Operator::start_with(&cluster, &kubeconfig, &["--attestation-key", &reference]);
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": world.source_repository(&source)},
            "targets": [{"name": "quay", "repository": quay_repository}],
            "verify": {
                "encryption": "KMS",
                "signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}},
                "scan": {"ignore": [
                    {"id": "CVE-2026-0002", "reason": "not reachable from the app", "expires": "2099-01-01"},
                ]},
            },
        }),
    )
    .await;
    let status = wait_mirror(
        &mut operator,
        &cluster,
        &name,
        "the tag in sync with its receipt listed",
        |s| counts(s).0 == 1 && !s.receipts.is_empty(),
    )
    .await;
    let listed = &status.receipts[0];
    assert_eq!(
        (
            listed.tag.as_str(),
            listed.target.as_str(),
            listed.digest.as_str()
        ),
        (TAG, "quay", source.digest.as_str()),
        "{status:#?}"
    );
    assert!(listed.receipt.starts_with("sha256:"), "{listed:?}");

    let target = format!("{quay_repository}@{}", source.digest);
    let verified = verify_attestation(&cluster.env, &dir, &public_key, &target);
    assert!(verified.status.success(), "{}", text(&verified));
    let found = statements(&verified);
    assert_eq!(found.len(), 1, "one receipt: {found:?}");
    let predicate = &found[0]["predicate"];
    assert_eq!(predicate["verificationResult"], "PASSED");
    assert_eq!(predicate["resourceUri"], target);
    assert_eq!(
        predicate["policy"]["uri"],
        format!(
            "imagepromoter.dev/RegistryMirror/{}/{name}",
            cluster.namespace
        )
    );
    let inputs = predicate["inputAttestations"].as_array().unwrap();
    assert_eq!(
        inputs.len(),
        1,
        "the source signature verified: {predicate:#}"
    );
    assert!(
        inputs[0]["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}@sha256:", world.source_repository(&source))),
        "{inputs:?}"
    );
    let extension = &predicate["https://imagepromoter.dev/promotion/v1"];
    assert_eq!(extension["scan"]["status"], "COMPLETE", "{predicate:#}");
    assert_eq!(extension["scan"]["findings"]["low"], 1, "{predicate:#}");
    assert_eq!(
        extension["ignored"][0]["id"], "CVE-2026-0002",
        "{predicate:#}"
    );
    assert_eq!(
        extension["source"],
        format!("{}@{}", world.source_repository(&source), source.digest)
    );
}
