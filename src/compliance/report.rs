//! The migration view, pure: for every repository the operator publishes (a
//! promotion's source, a mirror's source), its tier, each target, the digests
//! live there with their compliance, which targets are in sync, and by tier
//! (Bronze → Silver → Gold, the retirement order) whether the repository's
//! old registry can be retired: every selected tag in sync at every new
//! target, with no drift, for at least the chosen period.
//!
//! Built from the objects' statuses as `image-promoter report` reads them
//! from the cluster (a user's view, like `kubectl get`), never used by the
//! operator to decide anything.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::api::conditions::{COMPLIANT, READY, find_condition};
use crate::api::{ImagePromotion, RegistryMirror, TagCompliance, TargetState};

/// One target of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRow {
    /// The target's name in its object.
    pub name: String,
    /// The target repository.
    pub repository: String,
    /// The digests live there from this object.
    pub digests: Vec<String>,
    /// Whether everything the object selects is there.
    pub in_sync: bool,
}

/// One published repository (one object's source).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRow {
    /// `ImagePromotion` or `RegistryMirror`.
    pub kind: &'static str,
    /// `namespace/name`.
    pub object: String,
    /// The tier label; empty when none.
    pub tier: String,
    /// The source repository (the old registry).
    pub source: String,
    /// The targets.
    pub targets: Vec<TargetRow>,
    /// `True`, `False` (with the reason; for a mirror, how many of its
    /// in-sync tags) or `Unknown` when not judged.
    pub compliance: String,
    /// A mirror's in-sync tags that no longer pass its policy, as its
    /// status lists them (the first 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub noncompliant_tags: Vec<TagCompliance>,
    /// Whether the old registry can be retired for this object.
    pub retirable: bool,
    /// What keeps it from being retirable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

/// One tier's rows and how many are retirable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierView {
    /// The tier (`(no tier)` for objects without one).
    pub tier: String,
    /// Rows retirable.
    pub retirable: usize,
    /// The rows, by source then object.
    pub repositories: Vec<RepositoryRow>,
}

/// Tiers in retirement order; other labels follow alphabetically, untiered last.
fn tier_rank(tier: &str) -> (u8, String) {
    match tier {
        "Bronze" => (0, String::new()),
        "Silver" => (1, String::new()),
        "Gold" => (2, String::new()),
        "" => (4, String::new()),
        other => (3, other.to_string()),
    }
}

fn object_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn compliance(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> String {
    match find_condition(conditions, COMPLIANT) {
        Some(c) if c.status == "True" => "True".into(),
        Some(c) if c.status == "False" => format!("False ({})", c.reason),
        _ => "Unknown".into(),
    }
}

/// Why the object is not retirable yet: not Ready at its generation, not
/// Ready for `period` yet (as of `now`), or not compliant.
fn readiness(
    generation: Option<i64>,
    observed: Option<i64>,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    period: Duration,
    now: Timestamp,
) -> Option<String> {
    if observed != generation {
        return Some("its status is of an older spec".into());
    }
    let Some(ready) = find_condition(conditions, READY).filter(|c| c.status == "True") else {
        return Some("not Ready".into());
    };
    let since = ready.last_transition_time.0;
    let needed = k8s_openapi::jiff::SignedDuration::try_from(period).unwrap_or_default();
    if now.duration_since(since) < needed {
        return Some(format!("in sync only since {since}"));
    }
    None
}

fn promotion_row(p: &ImagePromotion, period: Duration, now: Timestamp) -> RepositoryRow {
    let status = p.status.clone().unwrap_or_default();
    let source = p
        .spec
        .source
        .image
        .rsplit_once(':')
        .filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty())
        .map_or(p.spec.source.image.clone(), |(repo, _)| repo.to_string());
    let targets: Vec<TargetRow> = p
        .spec
        .targets
        .iter()
        .map(|t| {
            let result = status.targets.iter().find(|r| r.name == t.name);
            let promoted = result.is_some_and(|r| r.state == TargetState::Promoted);
            TargetRow {
                name: t.name.clone(),
                repository: t.repository.clone(),
                digests: result.and_then(|r| r.digest.clone()).into_iter().collect(),
                in_sync: promoted,
            }
        })
        .collect();
    let mut why_not = readiness(
        p.metadata.generation,
        status.observed_generation,
        &status.conditions,
        period,
        now,
    );
    if why_not.is_none() && targets.iter().any(|t| !t.in_sync) {
        why_not = Some("a target is not promoted".into());
    }
    RepositoryRow {
        kind: "ImagePromotion",
        object: object_name(&p.metadata),
        tier: p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("imagepromoter.dev/tier"))
            .cloned()
            .unwrap_or_default(),
        source,
        targets,
        compliance: compliance(&status.conditions),
        noncompliant_tags: Vec::new(),
        retirable: why_not.is_none(),
        why_not,
    }
}

fn mirror_row(m: &RegistryMirror, period: Duration, now: Timestamp) -> RepositoryRow {
    let status = m.status.clone().unwrap_or_default();
    let counts = status.tags.clone().unwrap_or_default();
    let targets: Vec<TargetRow> = m
        .spec
        .targets
        .iter()
        .map(|t| {
            let per = status.targets.iter().find(|c| c.name == t.name);
            let in_sync = per.map_or(
                counts.selected > 0 && counts.in_sync == counts.selected,
                |c| c.selected == c.in_sync,
            );
            TargetRow {
                name: t.name.clone(),
                repository: t.repository.clone(),
                digests: Vec::new(),
                in_sync,
            }
        })
        .collect();
    let mut why_not = if counts.pending + counts.drifted + counts.failed + counts.refused > 0 {
        Some(format!(
            "{} pending, {} drifted, {} failed, {} refused",
            counts.pending, counts.drifted, counts.failed, counts.refused
        ))
    } else {
        None
    };
    if why_not.is_none() {
        why_not = readiness(
            m.metadata.generation,
            status.observed_generation,
            &status.conditions,
            period,
            now,
        );
    }
    RepositoryRow {
        kind: "RegistryMirror",
        object: object_name(&m.metadata),
        tier: m.spec.tier.clone().unwrap_or_default(),
        source: m.spec.source.repository.clone(),
        targets,
        compliance: match compliance(&status.conditions) {
            text if counts.noncompliant > 0 => format!(
                "{}, {} of {} tags)",
                text.trim_end_matches(')'),
                counts.noncompliant,
                counts.in_sync
            ),
            text => text,
        },
        noncompliant_tags: status.noncompliant_tags.clone(),
        retirable: why_not.is_none(),
        why_not,
    }
}

/// The view of `promotions` and `mirrors` at `now`, retirable after `period` in sync.
pub fn view(
    promotions: &[ImagePromotion],
    mirrors: &[RegistryMirror],
    period: Duration,
    now: Timestamp,
) -> Vec<TierView> {
    let mut tiers: BTreeMap<(u8, String), Vec<RepositoryRow>> = BTreeMap::new();
    let rows = promotions
        .iter()
        .map(|p| promotion_row(p, period, now))
        .chain(mirrors.iter().map(|m| mirror_row(m, period, now)));
    for row in rows {
        tiers.entry(tier_rank(&row.tier)).or_default().push(row);
    }
    tiers
        .into_iter()
        .map(|((rank, other), mut rows)| {
            rows.sort_by(|a, b| (&a.source, &a.object).cmp(&(&b.source, &b.object)));
            let tier = match rank {
                0 => "Bronze".to_string(),
                1 => "Silver".to_string(),
                2 => "Gold".to_string(),
                3 => other,
                _ => "(no tier)".to_string(),
            };
            TierView {
                tier,
                retirable: rows.iter().filter(|r| r.retirable).count(),
                repositories: rows,
            }
        })
        .collect()
}

const HEADER: [&str; 7] = [
    "KIND",
    "OBJECT",
    "SOURCE",
    "TARGET",
    "IN-SYNC",
    "COMPLIANT",
    "DIGEST",
];

/// The view as a text table.
pub fn render(view: &[TierView]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if view.is_empty() {
        out.push_str("no ImagePromotions or RegistryMirrors found\n");
    }
    for tier in view {
        let _ = writeln!(
            out,
            "Tier {}: {} of {} repositories can retire their old registry",
            tier.tier,
            tier.retirable,
            tier.repositories.len()
        );
        let [kind, object, source, target, in_sync, compliant, digest] = HEADER;
        let _ = writeln!(
            out,
            "  {kind:<16} {object:<32} {source:<40} {target:<20} {in_sync:<8} {compliant:<10} {digest}"
        );
        for row in &tier.repositories {
            for (i, target) in row.targets.iter().enumerate() {
                let (kind, object, source) = if i == 0 {
                    (row.kind, row.object.as_str(), row.source.as_str())
                } else {
                    ("", "", "")
                };
                let _ = writeln!(
                    out,
                    "  {:<16} {:<32} {:<40} {:<20} {:<8} {:<10} {}",
                    kind,
                    object,
                    source,
                    target.name,
                    if target.in_sync { "yes" } else { "no" },
                    if i == 0 { row.compliance.as_str() } else { "" },
                    target.digests.join(",")
                );
            }
            let _ = match &row.why_not {
                None => writeln!(out, "  -> retirable"),
                Some(why) => writeln!(out, "  -> not retirable: {why}"),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ConditionUpdate, ImagePromotionStatus, SystemClock, TargetResult, set_condition,
    };

    fn promotion(
        name: &str,
        tier: Option<&str>,
        compliant: Option<(bool, &str)>,
    ) -> ImagePromotion {
        let mut object: ImagePromotion = serde_yaml_ng::from_str(&format!(
            "apiVersion: imagepromoter.dev/v1alpha1\nkind: ImagePromotion\n\
             metadata: {{name: {name}, namespace: team, generation: 1}}\n\
             spec: {{source: {{image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/team/{name}:1.0.0'}}, \
             targets: [{{name: public, repository: public.ecr.aws/acme/{name}, tags: ['1.0.0']}}]}}"
        ))
        .unwrap();
        if let Some(tier) = tier {
            object.metadata.labels =
                Some([("imagepromoter.dev/tier".to_string(), tier.to_string())].into());
        }
        let mut status = ImagePromotionStatus {
            observed_generation: Some(1),
            targets: vec![TargetResult {
                name: "public".into(),
                digest: Some("sha256:aa".into()),
                state: TargetState::Promoted,
                ..TargetResult::default()
            }],
            ..ImagePromotionStatus::default()
        };
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(READY, true, "Promoted"),
            &SystemClock,
        );
        if let Some((ok, reason)) = compliant {
            set_condition(
                &mut status.conditions,
                ConditionUpdate::new(COMPLIANT, ok, reason),
                &SystemClock,
            );
        }
        object.status = Some(status);
        object
    }

    #[test]
    fn rows_by_tier_with_targets_digests_compliance_and_retirement() {
        let now = Timestamp::now();
        let promotions = vec![
            promotion(
                "gold-app",
                Some("Gold"),
                Some((false, "VulnerabilitiesFound")),
            ),
            promotion(
                "bronze-app",
                Some("Bronze"),
                Some((true, "PolicySatisfied")),
            ),
            promotion("plain", None, None),
        ];
        let view = view(&promotions, &[], Duration::ZERO, now);
        let tiers: Vec<&str> = view.iter().map(|t| t.tier.as_str()).collect();
        assert_eq!(tiers, ["Bronze", "Gold", "(no tier)"]);
        let gold = &view[1].repositories[0];
        assert_eq!(
            gold.source,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/gold-app"
        );
        assert_eq!(gold.compliance, "False (VulnerabilitiesFound)");
        assert_eq!(gold.targets[0].digests, ["sha256:aa"]);
        assert!(gold.targets[0].in_sync && gold.retirable);
        let text = render(&view);
        assert!(text.contains("Tier Bronze: 1 of 1 repositories"), "{text}");
        assert!(text.contains("team/plain"), "{text}");
        // Ready for a moment only: not yet for a week.
        let week = view_after(&promotions, Duration::from_secs(7 * 86400), now);
        assert!(week.iter().all(|t| t.retirable == 0));
        assert!(
            week[0].repositories[0]
                .why_not
                .as_deref()
                .unwrap()
                .starts_with("in sync only since"),
            "{week:?}"
        );
    }

    #[test]
    fn a_mirror_shows_how_many_of_its_tags_are_noncompliant() {
        let mut mirror: RegistryMirror = serde_yaml_ng::from_str(
            "apiVersion: imagepromoter.dev/v1alpha1\nkind: RegistryMirror\n\
             metadata: {name: m, namespace: team, generation: 1}\n\
             spec: {source: {repository: quay.io/acme/app}, targets: [{name: t, repository: public.ecr.aws/acme/app}]}",
        )
        .unwrap();
        let mut status = crate::api::RegistryMirrorStatus {
            observed_generation: Some(1),
            tags: Some(crate::api::TagCounts {
                selected: 3,
                in_sync: 3,
                noncompliant: 1,
                ..Default::default()
            }),
            noncompliant_tags: vec![TagCompliance {
                tag: "1.0".into(),
                digest: "sha256:aa".into(),
                reason: "VulnerabilitiesFound".into(),
                message: Some("CVE-1".into()),
            }],
            ..Default::default()
        };
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(READY, true, "InSync"),
            &SystemClock,
        );
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(COMPLIANT, false, "VulnerabilitiesFound"),
            &SystemClock,
        );
        mirror.status = Some(status);
        let view = view(&[], &[mirror], Duration::ZERO, Timestamp::now());
        let row = &view[0].repositories[0];
        assert_eq!(row.compliance, "False (VulnerabilitiesFound, 1 of 3 tags)");
        assert_eq!(row.noncompliant_tags[0].tag, "1.0");
        let json = serde_json::to_value(row).unwrap();
        assert_eq!(
            json["noncompliantTags"][0]["reason"],
            "VulnerabilitiesFound"
        );
    }

    fn view_after(p: &[ImagePromotion], period: Duration, now: Timestamp) -> Vec<TierView> {
        view(p, &[], period, now)
    }
}
