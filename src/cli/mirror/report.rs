//! `image-promoter mirror report [-n NS | -A]`: reads the cluster's
//! RegistryMirrors and prints, by tier (Bronze, Silver, Gold, then others),
//! which source repositories are fully mirrored with no drift — the list a
//! release engineer retires repositories from. The grouping is pure
//! ([`migration_view`]).

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::super::exit::{Outcome, exit};
use super::super::output::{OutputArgs, emit};
use super::super::usage_error;
use crate::api::conditions::{READY, is_true};
use crate::api::{RegistryMirror, TagCounts};

/// Arguments of `mirror report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The namespace to read (default: the kubeconfig context's).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Read every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One tier of the migration view, as `-o json|yaml` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierView {
    pub tier: String,
    /// Source repositories of the tier fully mirrored with no drift.
    pub retirable: usize,
    pub sources: Vec<SourceRow>,
}

/// One source repository in the migration view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRow {
    pub source: String,
    /// `namespace/name` of the mirrors of it.
    pub mirrors: Vec<String>,
    /// Every mirror of it Ready at its generation, nothing pending, drifted or failed.
    pub retirable: bool,
    /// What keeps it from being retirable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
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

fn why_not(mirror: &RegistryMirror) -> Option<String> {
    let Some(status) = &mirror.status else {
        return Some("not synced yet".into());
    };
    if status.observed_generation != mirror.metadata.generation {
        return Some("its last sync was of an older spec".into());
    }
    let counts = status.tags.clone().unwrap_or_default();
    let TagCounts {
        pending,
        drifted,
        failed,
        refused,
        ..
    } = counts;
    if pending + drifted + failed + refused > 0 {
        let refused = match refused {
            0 => String::new(),
            n => format!(", {n} refused by verification"),
        };
        return Some(format!(
            "{pending} pending, {drifted} drifted, {failed} failed{refused}"
        ));
    }
    if !is_true(&status.conditions, READY) {
        return Some("not Ready".into());
    }
    None
}

/// Mirrors grouped by tier, then by source repository.
pub fn migration_view(mirrors: &[RegistryMirror]) -> Vec<(String, Vec<SourceRow>)> {
    let mut tiers: BTreeMap<(u8, String), BTreeMap<String, SourceRow>> = BTreeMap::new();
    for mirror in mirrors {
        let tier = mirror.spec.tier.clone().unwrap_or_default();
        let source = mirror.spec.source.repository.clone();
        let name = format!(
            "{}/{}",
            mirror.metadata.namespace.as_deref().unwrap_or_default(),
            mirror.metadata.name.as_deref().unwrap_or_default()
        );
        let row = tiers
            .entry(tier_rank(&tier))
            .or_default()
            .entry(source.clone())
            .or_insert_with(|| SourceRow {
                source,
                mirrors: Vec::new(),
                retirable: true,
                why_not: None,
            });
        if let Some(reason) = why_not(mirror) {
            row.retirable = false;
            row.why_not.get_or_insert(format!("{name}: {reason}"));
        }
        row.mirrors.push(name);
    }
    tiers
        .into_iter()
        .map(|((rank, other), rows)| {
            let label = match rank {
                0 => "Bronze".to_string(),
                1 => "Silver".to_string(),
                2 => "Gold".to_string(),
                3 => other,
                _ => "(no tier)".to_string(),
            };
            (label, rows.into_values().collect())
        })
        .collect()
}

/// The view as text.
pub fn render(view: &[(String, Vec<SourceRow>)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if view.is_empty() {
        out.push_str("no RegistryMirrors found\n");
    }
    for (tier, rows) in view {
        let ready = rows.iter().filter(|r| r.retirable).count();
        let _ = writeln!(
            out,
            "Tier {tier}: {ready} of {} source repositories fully mirrored with no drift",
            rows.len()
        );
        for row in rows {
            let _ = match &row.why_not {
                None => writeln!(
                    out,
                    "  retirable      {}  ({})",
                    row.source,
                    row.mirrors.join(", ")
                ),
                Some(why) => writeln!(out, "  not retirable  {}  ({why})", row.source),
            };
        }
    }
    out
}

/// The view as `-o json|yaml` prints it: `{"tiers": [...]}`.
#[derive(Serialize)]
struct Report {
    tiers: Vec<TierView>,
}

fn report_of(view: Vec<(String, Vec<SourceRow>)>) -> Report {
    Report {
        tiers: view
            .into_iter()
            .map(|(tier, sources)| TierView {
                tier,
                retirable: sources.iter().filter(|r| r.retirable).count(),
                sources,
            })
            .collect(),
    }
}

/// Whether listing again later may succeed: the apiserver unreachable,
/// throttling or failing (429, 5xx), versus a refusal (403, 404: the CRD or
/// the permission is missing).
fn listing_outcome(error: &kube::Error) -> Outcome {
    match error {
        kube::Error::Api(status) => Outcome::failure(status.code == 429 || status.code >= 500),
        kube::Error::HyperError(_) | kube::Error::Service(_) => Outcome::Transient,
        _ => Outcome::Failed,
    }
}

/// Runs `mirror report`.
pub fn run(args: ReportArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let client = match runtime.block_on(kube::Client::try_default()) {
        Ok(client) => client,
        Err(e) => {
            return usage_error(format!(
                "connecting to the cluster (KUBECONFIG or in-cluster): {e}"
            ));
        }
    };
    let api: Api<RegistryMirror> = match (&args.namespace, args.all_namespaces) {
        (_, true) => Api::all(client),
        (Some(namespace), false) => Api::namespaced(client, namespace),
        (None, false) => Api::default_namespaced(client),
    };
    match runtime.block_on(api.list(&ListParams::default())) {
        Ok(list) => {
            let view = migration_view(&list.items);
            let printed = emit(args.output.output, &report_of(view), |r| {
                let view: Vec<_> = r
                    .tiers
                    .iter()
                    .map(|t| (t.tier.clone(), t.sources.clone()))
                    .collect();
                render(&view)
            });
            exit(&[if printed.is_ok() {
                Outcome::Done
            } else {
                Outcome::Failed
            }])
        }
        Err(e) => {
            eprintln!("image-promoter: listing RegistryMirrors: {e}");
            exit(&[listing_outcome(&e)])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConditionUpdate, RegistryMirrorStatus, set_condition};

    fn mirror(
        name: &str,
        tier: Option<&str>,
        source: &str,
        ready: bool,
        drifted: i32,
    ) -> RegistryMirror {
        let mut object: RegistryMirror = serde_yaml_ng::from_str(&format!(
            "apiVersion: imagepromoter.dev/v1alpha1\nkind: RegistryMirror\nmetadata: {{name: {name}, namespace: team, generation: 1}}\n\
             spec: {{source: {{repository: {source}}}, targets: [{{name: t, repository: public.ecr.aws/a/{name}}}]}}"
        ))
        .unwrap();
        object.spec.tier = tier.map(str::to_string);
        let mut status = RegistryMirrorStatus {
            observed_generation: Some(1),
            tags: Some(TagCounts {
                selected: 3,
                in_sync: 3 - drifted,
                drifted,
                ..TagCounts::default()
            }),
            ..RegistryMirrorStatus::default()
        };
        let reason = if ready { "InSync" } else { "TagsDrifted" };
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(READY, ready, reason),
            &crate::api::SystemClock,
        );
        object.status = Some(status);
        object
    }

    #[test]
    fn groups_sources_by_tier_in_retirement_order() {
        let mirrors = vec![
            mirror("g", Some("Gold"), "quay.io/acme/g", true, 0),
            mirror("b1", Some("Bronze"), "quay.io/acme/b1", true, 0),
            mirror("b2", Some("Bronze"), "quay.io/acme/b2", false, 1),
            mirror("s", Some("Silver"), "quay.io/acme/s", true, 0),
            mirror("x", None, "quay.io/acme/x", true, 0),
            mirror("b1-again", Some("Bronze"), "quay.io/acme/b1", true, 0),
        ];
        let view = migration_view(&mirrors);
        let tiers: Vec<&str> = view.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tiers, ["Bronze", "Silver", "Gold", "(no tier)"]);
        let bronze: Vec<(&str, bool)> = view[0]
            .1
            .iter()
            .map(|r| (r.source.as_str(), r.retirable))
            .collect();
        assert_eq!(
            bronze,
            [("quay.io/acme/b1", true), ("quay.io/acme/b2", false)]
        );
        assert_eq!(view[0].1[0].mirrors, ["team/b1", "team/b1-again"]);
        let text = render(&view);
        assert!(
            text.contains("Tier Bronze: 1 of 2 source repositories"),
            "{text}"
        );
        assert!(
            text.contains(
                "not retirable  quay.io/acme/b2  (team/b2: 0 pending, 1 drifted, 0 failed)"
            ),
            "{text}"
        );
    }
}
