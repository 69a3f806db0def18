//! One sync of one mirror — observe, plan, act — shared by
//! `image-promoter mirror` and the controller.
//!
//! Observe lists the source and every target ([`super::inventory`]) and reads
//! (HEAD) only what neither the listing nor the [`Ledger`] vouches for: new
//! tags, floating tags at the source, a rotating sample of
//! [`RECHECKS_PER_SYNC`] known tags, and every tag at a full resync. The plan
//! is [`super::plan::plan`]'s; acting copies each planned tag by digest with
//! the copy engine (every platform, signatures, referrers, the engine's tag
//! locks and write-once check), a few tags at a time, once each planned
//! tag's image passed verification ([`super::verification`]: a tag not
//! checked yet is checked and the sync plans again, so a refused tag spends
//! none of the budget). A tag that fails fails alone, and a tag whose copies
//! keep failing waits out its own backoff. The ledger is updated with
//! everything read, decided or written.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use futures::StreamExt;
use serde::Serialize;

use super::inventory::{self, Listing, ListingError};
use super::ledger::{Evidence, Ledger, RECHECKS_PER_SYNC, SourceRecord, Verdict, rotating_sample};
use super::plan::{
    self, AtTarget, CopyHistory, Decision, Observation, Problem, SelectedTag, TagState,
    Verification,
};
use super::selection::SourceTag;
use super::setup::MirrorSetup;
use crate::api::reasons;
use crate::registry::copy::report::TargetReport;
use crate::registry::{Engine, ImageReference, RegistryClient, RegistryError, Target};

/// Manifest HEADs in flight at once during observation.
const HEADS_AT_ONCE: usize = 8;
/// Tags copied at once.
const COPIES_AT_ONCE: usize = 4;

/// Requests one repository cost during a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRequests {
    /// The repository.
    pub repository: String,
    /// Listing pages (registry requests or API calls).
    pub listing_pages: u32,
    /// Requests sent to the registry while observing (listing pages and
    /// HEADs; not the client's `/v2/` ping and token requests).
    pub registry_requests: u64,
    /// Manifest HEADs while observing.
    pub heads: u32,
}

/// One copy made.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyMade {
    pub tag: String,
    pub digest: String,
    /// Target names.
    pub targets: Vec<String>,
    /// Registry requests of the copy (source and targets).
    pub requests: u64,
    pub bytes_written: u64,
    /// The engine's report per target (same order as `targets`), for metrics.
    #[serde(skip)]
    pub reports: Vec<TargetReport>,
    /// What the image's verification rested on (the scan, the signature
    /// verified and the signature checks), when this process verified it:
    /// for the copy's receipts and its first compliance check.
    #[serde(skip)]
    pub evidence: Option<Evidence>,
}

/// A tag whose image verification refused.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedTag {
    pub tag: String,
    pub digest: String,
    pub problem: Problem,
}

/// What one sync found and did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Target names, in spec order.
    pub targets: Vec<String>,
    /// Number of selected tags.
    pub selected: usize,
    /// Whether every selected tag was read again.
    pub full_resync: bool,
    /// Whether copies were only planned.
    pub dry_run: bool,
    /// Per (tag, target), settled (planned, for a dry run).
    pub decisions: Vec<Decision>,
    /// The copies made.
    pub copies: Vec<CopyMade>,
    /// Tags verification refused in this sync that it had not refused so
    /// before (for one event each).
    pub newly_refused: Vec<RefusedTag>,
    /// Observation cost: the source, then each target.
    pub source_requests: RepositoryRequests,
    pub target_requests: Vec<RepositoryRequests>,
}

impl SyncReport {
    /// True when every selected tag is in sync at every target.
    pub fn in_sync(&self) -> bool {
        self.decisions
            .iter()
            .all(|d| matches!(d.state, TagState::InSync | TagState::DeletedAtSource))
    }

    /// True when a tag failed, drifted or was refused by verification.
    pub fn troubled(&self) -> bool {
        self.decisions.iter().any(|d| {
            matches!(
                d.state,
                TagState::Failed(_) | TagState::Drifted { .. } | TagState::Refused(_)
            )
        })
    }
}

/// Why a sync could not run at all (the source could not be listed, a
/// client could not be made): its reason, and whether waiting helps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", problem.message)]
pub struct SyncFailure {
    pub problem: Problem,
    pub transient: bool,
}

impl SyncFailure {
    fn from_registry(error: &RegistryError) -> Self {
        Self {
            problem: problem_of(error),
            transient: error.is_transient(),
        }
    }

    fn from_listing(error: ListingError) -> Self {
        Self {
            problem: error.problem,
            transient: error.transient,
        }
    }
}

fn problem_of(error: &RegistryError) -> Problem {
    Problem {
        reason: error.reason().to_string(),
        message: error.to_string(),
    }
}

/// How a sync runs.
#[derive(Clone, Copy, Debug)]
pub struct SyncOptions {
    /// Plan only: create and copy nothing.
    pub dry_run: bool,
    /// Now, in seconds since the epoch (decides whether a full resync is due).
    pub now: i64,
}

/// HEADs `tags` in `repository`, a few at a time: tag → digest (None when
/// absent) or the problem.
async fn heads(
    client: &RegistryClient,
    repository: &str,
    tags: Vec<String>,
) -> BTreeMap<String, Result<Option<String>, Problem>> {
    futures::stream::iter(tags)
        .map(|tag| async move {
            let head = client.head_manifest(repository, &tag).await;
            let result = head
                .map(|h| h.map(|h| h.digest.to_string()))
                .map_err(|e| problem_of(&e));
            (tag, result)
        })
        .buffer_unordered(HEADS_AT_ONCE)
        .collect()
        .await
}

/// Runs one sync of `setup` with `engine`, updating `ledger`.
pub async fn sync(
    setup: &MirrorSetup,
    engine: &Engine,
    sdk: &SdkConfig,
    ledger: &mut Ledger,
    options: SyncOptions,
) -> Result<SyncReport, SyncFailure> {
    let source_client = engine
        .client(&setup.source.registry)
        .map_err(|e| SyncFailure::from_registry(&e))?
        .counting();
    let source_listing = inventory::list(&setup.source_listing, &source_client, sdk, &setup.source)
        .await
        .map_err(SyncFailure::from_listing)?
        .ok_or_else(|| SyncFailure {
            problem: Problem {
                reason: reasons::SOURCE_NOT_FOUND.into(),
                message: format!("source repository {} does not exist", setup.source),
            },
            transient: false,
        })?;

    // Select, newest first.
    let listed: Vec<SourceTag> = source_listing
        .tags
        .iter()
        .map(|(tag, l)| SourceTag {
            tag: tag.clone(),
            pushed: l
                .pushed
                .or_else(|| ledger.source.get(tag).and_then(|r| r.pushed)),
        })
        .collect();
    let mut selected = setup.selection.select(&listed);
    setup.selection.newest_first(&mut selected);
    let selected: Vec<SourceTag> = selected.into_iter().cloned().collect();

    let full = ledger.full_resync_due(options.now, setup.full_resync_every.as_secs() as i64);
    let mut names: Vec<&str> = selected.iter().map(|t| t.tag.as_str()).collect();
    names.sort_unstable();
    let sample = if full {
        BTreeSet::new()
    } else {
        let (sample, cursor) = rotating_sample(&names, ledger.recheck_cursor, RECHECKS_PER_SYNC);
        ledger.recheck_cursor = cursor;
        sample
    };

    // The source's digests: the listing's, the ledger's, or a HEAD.
    let to_read: Vec<String> = selected
        .iter()
        .filter(|t| source_listing.tags[&t.tag].digest.is_none())
        .filter(|t| {
            full || setup.selection.is_floating(&t.tag)
                || sample.contains(&t.tag)
                || !ledger.source.contains_key(&t.tag)
        })
        .map(|t| t.tag.clone())
        .collect();
    let source_heads = to_read.len() as u32;
    let mut read = heads(&source_client, &setup.source.name, to_read).await;
    let selected: Vec<SelectedTag> = selected
        .iter()
        .map(|t| {
            let digest = match (
                source_listing.tags[&t.tag].digest.clone(),
                read.remove(&t.tag),
            ) {
                (Some(digest), _) | (None, Some(Ok(Some(digest)))) => Ok(digest),
                (None, Some(Ok(None))) => Err(Problem {
                    reason: reasons::SOURCE_NOT_FOUND.into(),
                    message: format!("{}:{} was listed but is gone", setup.source, t.tag),
                }),
                (None, Some(Err(problem))) => Err(problem),
                (None, None) => Ok(ledger.source[&t.tag].digest.clone()),
            };
            SelectedTag {
                tag: t.tag.clone(),
                digest,
                floating: setup.selection.is_floating(&t.tag),
                verification: Verification::Passed,
                history: CopyHistory::Fresh,
            }
        })
        .collect();
    update_source_ledger(ledger, &source_listing, &selected);
    // A refusal is looked at again once per full resync: a signature may
    // have been pushed since. What was refused before is kept aside, so only
    // a new refusal is announced.
    let earlier_verdicts = if full {
        std::mem::take(&mut ledger.verdicts)
    } else {
        Default::default()
    };
    let digests: BTreeSet<&str> = selected
        .iter()
        .filter_map(|t| t.digest.as_deref().ok())
        .collect();
    ledger
        .verdicts
        .images
        .retain(|digest, _| digests.contains(digest.as_str()));
    ledger
        .verdicts
        .evidence
        .retain(|digest, _| digests.contains(digest.as_str()));
    ledger
        .copy_failures
        .retain(|tag, _| ledger.source.contains_key(tag));
    let selected: Vec<SelectedTag> = selected
        .into_iter()
        .map(|mut t| {
            if let Ok(digest) = &t.digest {
                t.verification = setup
                    .verification
                    .remembered(&ledger.verdicts, &t.tag, digest);
                t.history = ledger.copy_history(&t.tag, digest, options.now);
            }
            t
        })
        .collect();
    let source_requests = RepositoryRequests {
        repository: setup.source.to_string(),
        listing_pages: source_listing.pages,
        registry_requests: source_client.requests(),
        heads: source_heads,
    };

    // Each target.
    let mut observation = Observation {
        targets: setup.targets.iter().map(|t| t.name.clone()).collect(),
        at_targets: vec![Vec::new(); selected.len()],
        ..Observation::default()
    };
    let mut target_requests = Vec::new();
    let mut still_held: BTreeSet<String> = BTreeSet::new();
    for (t, target) in setup.targets.iter().enumerate() {
        let (column, requests, held) = observe_target(
            setup, t, engine, sdk, ledger, &selected, &sample, full, options,
        )
        .await;
        for (row, at) in observation.at_targets.iter_mut().zip(column) {
            row.push(at);
        }
        for tag in held {
            if let Some(entry) = observation.deleted.iter_mut().find(|(d, _)| *d == tag) {
                entry.1.push(t);
            } else {
                observation.deleted.push((tag.clone(), vec![t]));
            }
            still_held.insert(tag);
        }
        target_requests.push(requests);
        let _ = target;
    }
    ledger
        .deleted_at_source
        .retain(|tag| still_held.contains(tag));
    ledger
        .targets
        .retain(|name, _| setup.targets.iter().any(|t| t.name == *name));
    observation.selected = selected;

    // Plan, check what the plan would copy unchecked, and plan again until
    // every planned copy passed: each round decides at least one tag.
    let now = k8s_openapi::jiff::Timestamp::from_second(options.now)
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now());
    let mut newly_refused = Vec::new();
    let mut planned = loop {
        let planned = plan::plan(&observation, setup.max_copies);
        let unchecked: Vec<(String, String)> = planned
            .copies
            .iter()
            .filter(|c| !c.verified)
            .map(|c| (c.tag.clone(), c.digest.clone()))
            .collect();
        if unchecked.is_empty() {
            break planned;
        }
        let checked = super::verification::check(
            &setup.verification,
            &source_client,
            sdk,
            &setup.source,
            &mut ledger.verdicts,
            &unchecked,
            now,
        )
        .await;
        for tag in &mut observation.selected {
            let (Some(verification), Ok(digest)) = (checked.get(&tag.tag), &tag.digest) else {
                continue;
            };
            if let Verification::Refused(problem) = verification {
                let before =
                    earlier_verdicts.get(&setup.verification.fingerprint, digest, &tag.tag);
                if before != Some(&Verdict::Refused(problem.clone())) {
                    newly_refused.push(RefusedTag {
                        tag: tag.tag.clone(),
                        digest: digest.clone(),
                        problem: problem.clone(),
                    });
                }
            }
            tag.verification = verification.clone();
        }
    };
    let source_requests = RepositoryRequests {
        registry_requests: source_client.requests(),
        ..source_requests
    };
    let mut copies = Vec::new();
    if !options.dry_run {
        let source_tags = std::sync::Arc::new(source_listing.tags.keys().cloned().collect());
        let outcomes = act(setup, engine, &planned.copies, source_tags).await;
        let mut by_tag: BTreeMap<(String, usize), Result<(), Problem>> = BTreeMap::new();
        let timing = (
            setup.interval.as_secs() as i64,
            setup.full_resync_every.as_secs() as i64,
        );
        for (job, outcome) in planned.copies.iter().zip(outcomes) {
            let failure = outcome.results.iter().find_map(|r| {
                r.as_ref()
                    .err()
                    .filter(|p| p.reason != reasons::TAG_CONFLICT)
            });
            match failure {
                Some(problem) => {
                    ledger.copy_failed(&job.tag, &job.digest, problem.clone(), options.now, timing)
                }
                None => ledger.copy_succeeded(&job.tag),
            }
            for (t, result) in job.targets.iter().zip(outcome.results) {
                if result.is_ok() {
                    ledger.record_target(&setup.targets[*t].name, &job.tag, &job.digest);
                }
                by_tag.insert((job.tag.clone(), *t), result);
            }
            copies.push(CopyMade {
                tag: job.tag.clone(),
                digest: job.digest.clone(),
                targets: job
                    .targets
                    .iter()
                    .map(|t| setup.targets[*t].name.clone())
                    .collect(),
                requests: outcome.requests,
                bytes_written: outcome.bytes_written,
                reports: outcome.reports,
                evidence: ledger.verdicts.evidence.get(&job.digest).cloned(),
            });
        }
        plan::settle(&mut planned.decisions, |tag, t| {
            by_tag.remove(&(tag.to_string(), t))
        });
        if full {
            ledger.last_full_resync = Some(options.now);
        }
    }
    Ok(SyncReport {
        targets: observation.targets,
        selected: observation.selected.len(),
        full_resync: full,
        dry_run: options.dry_run,
        decisions: planned.decisions,
        copies,
        newly_refused,
        source_requests,
        target_requests,
    })
}

/// Keeps the ledger's source records to the selected tags, and notes tags
/// once selected that the source no longer lists.
fn update_source_ledger(ledger: &mut Ledger, listing: &Listing, selected: &[SelectedTag]) {
    let gone: Vec<String> = ledger
        .source
        .keys()
        .filter(|tag| !listing.tags.contains_key(*tag))
        .cloned()
        .collect();
    ledger.deleted_at_source.extend(gone);
    for tag in listing.tags.keys() {
        ledger.deleted_at_source.remove(tag);
    }
    let mut records = BTreeMap::new();
    for tag in selected {
        let digest = match &tag.digest {
            Ok(digest) => digest.clone(),
            Err(_) => match ledger.source.get(&tag.tag) {
                Some(record) => record.digest.clone(),
                None => continue,
            },
        };
        let pushed = listing.tags.get(&tag.tag).and_then(|l| l.pushed);
        records.insert(tag.tag.clone(), SourceRecord { digest, pushed });
    }
    ledger.source = records;
}

/// What target `t` holds under each selected tag, what observing it cost,
/// and which tags deleted at the source it still holds.
#[allow(clippy::too_many_arguments)]
async fn observe_target(
    setup: &MirrorSetup,
    t: usize,
    engine: &Engine,
    sdk: &SdkConfig,
    ledger: &mut Ledger,
    selected: &[SelectedTag],
    sample: &BTreeSet<String>,
    full: bool,
    options: SyncOptions,
) -> (Vec<AtTarget>, RepositoryRequests, Vec<String>) {
    let target = &setup.targets[t];
    let mut requests = RepositoryRequests {
        repository: target.repository.to_string(),
        ..RepositoryRequests::default()
    };
    let unreadable = |problem: Problem| vec![AtTarget::Unreadable(problem); selected.len()];
    let client = match engine.client(&target.repository.registry) {
        Ok(client) => client.counting(),
        Err(error) => return (unreadable(problem_of(&error)), requests, Vec::new()),
    };
    let listing = match inventory::list(&target.listing, &client, sdk, &target.repository).await {
        Ok(Some(listing)) => listing,
        Ok(None) => {
            if let (Some(create), false) = (&target.create, options.dry_run)
                && let Err(problem) = crate::promotion::run::create_repository(sdk, create).await
            {
                let problem = Problem {
                    reason: problem.reason,
                    message: problem.message,
                };
                requests.registry_requests = client.requests();
                return (unreadable(problem), requests, Vec::new());
            }
            // The one page (or API call) that found no repository.
            Listing {
                pages: 1,
                ..Listing::default()
            }
        }
        Err(error) => {
            requests.registry_requests = client.requests();
            return (unreadable(error.problem), requests, Vec::new());
        }
    };
    requests.listing_pages = listing.pages;
    let known = ledger.targets.entry(target.name.clone()).or_default();
    known.retain(|tag, _| listing.tags.contains_key(tag));
    let to_read: Vec<String> = selected
        .iter()
        .filter_map(|s| {
            let listed = listing.tags.get(&s.tag)?;
            let unknown = listed.digest.is_none()
                && (full || sample.contains(&s.tag) || !known.contains_key(&s.tag));
            unknown.then(|| s.tag.clone())
        })
        .collect();
    requests.heads = to_read.len() as u32;
    let mut read = heads(&client, &target.repository.name, to_read).await;
    let column = selected
        .iter()
        .map(|s| {
            let Some(listed) = listing.tags.get(&s.tag) else {
                return AtTarget::Missing;
            };
            let digest = match (listed.digest.clone(), read.remove(&s.tag)) {
                (Some(digest), _) | (None, Some(Ok(Some(digest)))) => digest,
                (None, Some(Ok(None))) => return AtTarget::Missing,
                (None, Some(Err(problem))) => return AtTarget::Unreadable(problem),
                (None, None) => match known.get(&s.tag) {
                    Some(digest) => digest.clone(),
                    None => return AtTarget::Missing,
                },
            };
            known.insert(s.tag.clone(), digest.clone());
            AtTarget::At(digest)
        })
        .collect();
    let held = ledger
        .deleted_at_source
        .iter()
        .filter(|tag| listing.tags.contains_key(*tag))
        .cloned()
        .collect();
    requests.registry_requests = client.requests();
    (column, requests, held)
}

/// What one copy did at each of its targets.
struct CopyOutcome {
    results: Vec<Result<(), Problem>>,
    requests: u64,
    bytes_written: u64,
    reports: Vec<TargetReport>,
}

/// Copies each job by digest to its targets, a few at a time, in order.
/// `source_tags` is the source's listing of this sync: cosign and referrer
/// fallback tags it lacks are not asked for, one request each per image.
async fn act(
    setup: &MirrorSetup,
    engine: &Engine,
    jobs: &[plan::CopyJob],
    source_tags: std::sync::Arc<BTreeSet<String>>,
) -> Vec<CopyOutcome> {
    let options = crate::registry::CopyOptions {
        source_tags: Some(source_tags),
        ..setup.options.clone()
    };
    futures::stream::iter(0..jobs.len())
        .map(|i| copy_one(setup, engine, &options, &jobs[i]))
        .buffered(COPIES_AT_ONCE)
        .collect()
        .await
}

async fn copy_one(
    setup: &MirrorSetup,
    engine: &Engine,
    options: &crate::registry::CopyOptions,
    job: &plan::CopyJob,
) -> CopyOutcome {
    let fail_all = |problem: Problem| CopyOutcome {
        results: vec![Err(problem); job.targets.len()],
        requests: 0,
        bytes_written: 0,
        reports: Vec::new(),
    };
    let digest = match job.digest.parse() {
        Ok(digest) => digest,
        Err(e) => {
            return fail_all(Problem {
                reason: reasons::SOURCE_NOT_FOUND.into(),
                message: format!(
                    "{} named {:?}, which is not a digest: {e}",
                    setup.source, job.digest
                ),
            });
        }
    };
    let source = ImageReference {
        repository: setup.source.clone(),
        tag: Some(job.tag.clone()),
        digest: Some(digest),
    };
    let targets: Vec<Target> = job
        .targets
        .iter()
        .map(|t| Target {
            repository: setup.targets[*t].repository.clone(),
            tags: vec![job.tag.clone()],
            floating: if job.floating {
                vec![job.tag.clone()]
            } else {
                Vec::new()
            },
        })
        .collect();
    match engine.copy(&source, &targets, options).await {
        Ok(report) => CopyOutcome {
            requests: report.source_requests
                + report.targets.iter().map(|t| t.requests).sum::<u64>(),
            bytes_written: report.targets.iter().map(|t| t.bytes_written).sum(),
            results: report
                .targets
                .iter()
                .map(|t| match &t.error {
                    None => Ok(()),
                    Some(failure) => Err(Problem {
                        reason: failure.reason.clone(),
                        message: failure.message.clone(),
                    }),
                })
                .collect(),
            reports: report.targets,
        },
        Err(error) => fail_all(Problem {
            reason: error.reason().to_string(),
            message: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::inventory::ListedTag;

    fn listing(tags: &[&str]) -> Listing {
        Listing {
            tags: tags
                .iter()
                .map(|t| (t.to_string(), ListedTag::default()))
                .collect(),
            pages: 1,
        }
    }

    fn selected(tag: &str, digest: Result<&str, &str>) -> SelectedTag {
        SelectedTag {
            tag: tag.into(),
            digest: digest.map(str::to_string).map_err(|reason| Problem {
                reason: reason.into(),
                message: String::new(),
            }),
            floating: false,
            verification: Verification::Passed,
            history: CopyHistory::Fresh,
        }
    }

    #[test]
    fn the_source_ledger_keeps_selected_tags_and_notes_deleted_ones() {
        let mut ledger = Ledger::default();
        for (tag, digest) in [("1", "d1"), ("2", "d2"), ("3", "d3"), ("gone", "dg")] {
            ledger.source.insert(
                tag.into(),
                SourceRecord {
                    digest: digest.into(),
                    pushed: None,
                },
            );
        }
        ledger.deleted_at_source.insert("4".into());
        update_source_ledger(
            &mut ledger,
            &listing(&["1", "2", "3", "4", "5"]),
            &[
                selected("1", Ok("d1-new")),
                selected("2", Err("RegistryThrottled")),
                selected("5", Err("RegistryThrottled")),
            ],
        );
        let digests: Vec<(&str, &str)> = ledger
            .source
            .iter()
            .map(|(t, r)| (t.as_str(), r.digest.as_str()))
            .collect();
        assert_eq!(
            digests,
            [("1", "d1-new"), ("2", "d2")],
            "an unreadable tag keeps what was known; an unselected one is dropped"
        );
        let deleted: Vec<&str> = ledger
            .deleted_at_source
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(deleted, ["gone"], "a tag listed again is no longer deleted");
    }
}
