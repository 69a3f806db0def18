//! Continuous compliance of published digests (issue 21): a Ready promotion
//! is judged again at its compliance interval (seconds here) against the
//! scan as ECR (moto) reports it now, its ignore entries' dates and the keys
//! as the Secret holds them now. It flips `Compliant` (never Ready), with an
//! event and the metric, writes nothing to any registry, and reads no
//! signature again while the digest and keys are unchanged. `report` shows
//! the objects with their compliance.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{Span, Timestamp, tz::TimeZone};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, events, is, metric, public_key_secret};
use crate::world::{
    GOOD, Key, TAG, World, promotion, public_key_file, quay_target, signed_kms_policy,
};
use image_promoter::api::ImagePromotionStatus;

/// The sum of every `image_promoter_registry_requests_total` line whose
/// labels contain all of `with`.
fn registry_requests(text: &str, with: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("image_promoter_registry_requests_total{"))
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Requests that write to a registry.
fn writes(text: &str) -> f64 {
    ["PUT", "POST", "PATCH", "DELETE"]
        .iter()
        .map(|m| registry_requests(text, &[&format!("method=\"{m}\"")]))
        .sum()
}

fn message(status: &ImagePromotionStatus, type_: &str) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn day(offset_days: i64) -> String {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    today
        .checked_add(Span::new().days(offset_days))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_new_critical_finding_flips_compliant_and_a_fix_flips_it_back() {
    let world = World::new().await;
    let cluster = Cluster::start("op-comply").await;
    let mut operator =
        Operator::start(&cluster, Rbac::Full, &["--compliance-interval", "2s"]).await;
    let source = world.source("op-comply", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (quay_name, quay_repository) = world.quay_target("op-comply");
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
    let promoted = operator
        .wait_status(&cluster, &name, "Ready and Compliant", |s| {
            is(s, "Ready", ("True", "Promoted")) && is(s, "Compliant", ("True", "PolicySatisfied"))
        })
        .await;
    assert!(is(&promoted, "Verified", ("True", "PolicySatisfied")));
    let before = operator.metrics().await;
    let written_before = writes(&before);

    // ECR reports a new CRITICAL finding for the published digest.
    world
        .rescan(&source, "COMPLETE", &[("CVE-2026-7777", "CRITICAL")])
        .await;
    let flipped = operator
        .wait_status(
            &cluster,
            &name,
            "Compliant=False VulnerabilitiesFound",
            |s| is(s, "Compliant", ("False", "VulnerabilitiesFound")),
        )
        .await;
    assert!(
        is(&flipped, "Ready", ("True", "Promoted")),
        "Ready stays True: {flipped:#?}"
    );
    assert!(
        message(&flipped, "Compliant").contains("CVE-2026-7777"),
        "{}",
        message(&flipped, "Compliant")
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone()),
        "the tag did not move"
    );
    let seen = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        seen.iter().any(|(r, a, n)| r == "VulnerabilitiesFound"
            && a == "CheckCompliance"
            && n.contains("CVE-2026-7777")),
        "{seen:?}"
    );
    let text = operator.metrics().await;
    assert_eq!(
        metric(
            &text,
            "image_promoter_noncompliant_promotions{reason=\"VulnerabilitiesFound\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(writes(&text), written_before, "no registry write: {text}");

    // The fix: the image is scanned clean again.
    world.rescan(&source, "COMPLETE", &[]).await;
    operator
        .wait_status(&cluster, &name, "Compliant=True again", |s| {
            is(s, "Compliant", ("True", "PolicySatisfied")) && is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    let text = operator.metrics().await;
    assert_eq!(
        metric(
            &text,
            "image_promoter_noncompliant_promotions{reason=\"VulnerabilitiesFound\"}"
        ),
        Some(0.0),
        "{text}"
    );
    let seen = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        seen.iter()
            .any(|(r, a, _)| r == "PolicySatisfied" && a == "CheckCompliance"),
        "{seen:?}"
    );
    assert_eq!(writes(&text), written_before, "no registry write: {text}");
}

#[tokio::test]
async fn an_expired_ignore_entry_flips_to_ignore_expired_and_a_new_one_fixes_it() {
    let world = World::new().await;
    let cluster = Cluster::start("op-expired").await;
    let mut operator =
        Operator::start(&cluster, Rbac::Full, &["--compliance-interval", "2s"]).await;
    let source = world.source("op-expired", GOOD).await;
    // CVE-2026-0101 is accepted for a week; CVE-2026-0202's entry expired yesterday.
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-0101", "CRITICAL")])
        .await;
    let (_, quay_repository) = world.quay_target("op-expired");
    let yesterday = day(-1);
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS", "scan": {"ignore": [
                {"id": "CVE-2026-0101", "reason": "not reachable", "expires": day(7)},
                {"id": "CVE-2026-0202", "reason": "was not reachable", "expires": yesterday},
            ]}}),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    operator
        .wait_status(&cluster, &name, "Ready and Compliant", |s| {
            is(s, "Ready", ("True", "Promoted")) && is(s, "Compliant", ("True", "PolicySatisfied"))
        })
        .await;
    // The entry expiring within 14 days is announced, and counted.
    operator
        .wait_metric("image_promoter_ignores_expiring", 1.0)
        .await;
    let seen = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        seen.iter()
            .any(|(r, _, n)| r == "IgnoreExpiring" && n.contains("CVE-2026-0101")),
        "{seen:?}"
    );

    // The finding whose entry has expired shows up again in the scan.
    world
        .rescan(
            &source,
            "COMPLETE",
            &[("CVE-2026-0101", "CRITICAL"), ("CVE-2026-0202", "HIGH")],
        )
        .await;
    let expired = operator
        .wait_status(&cluster, &name, "Compliant=False IgnoreExpired", |s| {
            is(s, "Compliant", ("False", "IgnoreExpired"))
        })
        .await;
    assert!(is(&expired, "Ready", ("True", "Promoted")));
    let why = message(&expired, "Compliant");
    assert!(
        why.contains(&format!("CVE-2026-0202 (expired on {yesterday})")),
        "{why}"
    );
    assert!(
        !why.contains("CVE-2026-0101 ("),
        "only the expired entry is named: {why}"
    );
    operator
        .wait_metric(
            "image_promoter_noncompliant_promotions{reason=\"IgnoreExpired\"}",
            1.0,
        )
        .await;

    // The release engineer renews the entry with a reason: compliant again.
    let api: Api<image_promoter::api::ImagePromotion> = cluster.typed();
    let renewed = json!({"spec": {"verify": {"scan": {"ignore": [
        {"id": "CVE-2026-0101", "reason": "not reachable", "expires": day(7)},
        {"id": "CVE-2026-0202", "reason": "still not reachable, fix scheduled", "expires": day(60)},
    ]}}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&renewed))
        .await
        .expect("renewing the ignore entry");
    operator
        .wait_status(&cluster, &name, "Compliant=True after renewal", |s| {
            s.observed_generation == Some(2)
                && is(s, "Compliant", ("True", "PolicySatisfied"))
                && is(s, "Ready", ("True", "Promoted"))
        })
        .await;
}

#[tokio::test]
async fn a_key_removed_from_the_secret_flips_to_signature_invalid_and_unchanged_keys_cost_nothing()
{
    let world = World::new().await;
    let cluster = Cluster::start("op-revoked").await;
    let mut operator =
        Operator::start(&cluster, Rbac::Full, &["--compliance-interval", "1s"]).await;
    let source = world.source("op-revoked", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (_, quay_repository) = world.quay_target("op-revoked");
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
    operator
        .wait_status(&cluster, &name, "Ready and Compliant", |s| {
            is(s, "Ready", ("True", "Promoted")) && is(s, "Compliant", ("True", "PolicySatisfied"))
        })
        .await;
    // The first interval check reads the signatures once; later ones use the cache.
    operator
        .wait_metric_at_least(
            "image_promoter_compliance_signature_checks_total{source=\"cache\"}",
            1.0,
        )
        .await;
    let settled = operator.metrics().await;
    let requests = registry_requests(&settled, &[]);
    let checks = metric(
        &settled,
        "image_promoter_compliance_checks_total{result=\"PolicySatisfied\"}",
    )
    .unwrap_or(0.0);
    operator
        .wait_metric_at_least(
            "image_promoter_compliance_checks_total{result=\"PolicySatisfied\"}",
            checks + 2.0,
        )
        .await;
    let later = operator.metrics().await;
    assert_eq!(
        registry_requests(&later, &[]),
        requests,
        "checks with the same digest and keys send no registry request: {later}"
    );

    // The signer's key is removed from the Secret (replaced by another key).
    let other = std::fs::read_to_string(public_key_file(&world.env, Key::Other)).unwrap();
    let secrets: Api<Secret> = cluster.typed();
    secrets
        .patch(
            "cosign-public-key",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"cosign.pub": other}})),
        )
        .await
        .expect("replacing the key");
    let revoked = operator
        .wait_status(&cluster, &name, "Compliant=False SignatureInvalid", |s| {
            is(s, "Compliant", ("False", "SignatureInvalid"))
        })
        .await;
    assert!(is(&revoked, "Ready", ("True", "Promoted")));
    let why = message(&revoked, "Compliant");
    assert!(
        why.contains(&crate::world::key_id(&world.env, Key::Other)),
        "names the key: {why}"
    );
    operator
        .wait_metric(
            "image_promoter_noncompliant_promotions{reason=\"SignatureInvalid\"}",
            1.0,
        )
        .await;
}

#[tokio::test]
async fn report_prints_each_promotion_with_its_targets_digest_and_compliance() {
    let world = World::new().await;
    let cluster = Cluster::start("op-report").await;
    let mut operator =
        Operator::start(&cluster, Rbac::Full, &["--compliance-interval", "2s"]).await;
    let source = world.source("op-report", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-3131", "CRITICAL")])
        .await;
    let (_, quay_repository) = world.quay_target("op-report");
    let mut object = promotion(
        &world,
        &source,
        json!({"encryption": "KMS", "scan": {"ignore": [
            {"id": "CVE-2026-3131", "reason": "demo", "expires": day(30)},
        ]}}),
        json!([quay_target("quay", &quay_repository)]),
    );
    object["metadata"]["labels"] = json!({"imagepromoter.dev/tier": "Bronze"});
    let name = create(&cluster, object).await;
    operator
        .wait_status(&cluster, &name, "Ready and Compliant", |s| {
            is(s, "Ready", ("True", "Promoted")) && is(s, "Compliant", ("True", "PolicySatisfied"))
        })
        .await;
    let run = |format: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_image-promoter"))
            .args([
                "report",
                "-n",
                &cluster.namespace,
                "-o",
                format,
                "--in-sync-for",
                "0s",
            ])
            .env("KUBECONFIG", cluster.env.get("KUBECONFIG"))
            .output()
            .expect("running image-promoter report");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let text = run("text");
    assert!(
        text.contains("Tier Bronze: 1 of 1 repositories can retire their old registry"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{}/{name}", cluster.namespace)))
        .unwrap_or_else(|| panic!("no row for the promotion: {text}"));
    assert!(line.contains("quay"), "{line}");
    assert!(line.contains(" yes "), "{line}");
    assert!(line.contains("True"), "{line}");
    assert!(line.contains(&source.digest), "{line}");
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let row = &json[0]["repositories"][0];
    assert_eq!(row["kind"], "ImagePromotion");
    assert_eq!(row["compliance"], "True");
    assert_eq!(row["targets"][0]["digests"][0], source.digest.as_str());
    assert_eq!(row["retirable"], true);

    // The same view as metrics (refreshed every minute): published, and not
    // retirable before a week in sync.
    operator
        .wait_metric(
            "image_promoter_published_repositories{tier=\"Bronze\"}",
            1.0,
        )
        .await;
    let text = operator.metrics().await;
    assert_eq!(
        metric(
            &text,
            "image_promoter_retirable_repositories{tier=\"Bronze\"}"
        ),
        Some(0.0),
        "{text}"
    );
}
