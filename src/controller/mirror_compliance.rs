//! The controller's side of a RegistryMirror's continuous compliance
//! ([`crate::compliance::mirror`]): after a sync, and on a wake-up between
//! syncs when its compliance interval has passed, the source digest of each
//! in-sync tag is judged again with the promotion's own check
//! ([`check_subject`]): one scan-findings read per digest, the signatures
//! read again only when the digest or the keys changed (the ledger caches
//! them per digest and key set, so a pass with nothing changed makes no
//! registry request). A digest this process's sync just copied, verified a
//! moment before, is compliant without a request, and the signature checks
//! of that verification are kept for its next check.
//!
//! Nothing is copied and no tag is moved. The judgements stay in the
//! mirror's record in the process ([`MirrorMemory`]); the status shows them
//! ([`crate::compliance::mirror::project`]) and a change of the noncompliant
//! tags is one event.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use tracing::{debug, info, warn};

use super::events::Notice;
use super::mirror::MirrorMemory;
use super::{Context, Setup};
use crate::api::conditions::SystemClock;
use crate::api::{RegistryMirror, RegistryMirrorStatus};
use crate::aws::EcrInspector;
use crate::compliance::Ledger;
use crate::compliance::check::{Checked, Checker, Subject, check_subject};
use crate::compliance::judge::{Judgement, Standing};
use crate::compliance::ledger::{Due, SignatureKey, jittered};
use crate::compliance::mirror::{self, SCHEDULE, Transition};
use crate::mirror::MirrorSetup;
use crate::promotion::observe::{ObserveError, check_signatures};
use crate::registry::{Engine, RegistryClient};
use crate::verify::SignatureChecks;
use crate::verify::cosign::Verifier;

/// Digests judged at once.
const CHECKS_AT_ONCE: usize = 4;

/// The mirror's interval: `spec.compliance.interval`, or the operator's.
pub fn interval(ctx: &Context, object: &RegistryMirror) -> Duration {
    super::compliance::interval_of(ctx, object.spec.compliance.as_ref())
}

/// The mirror's ledger and in-sync tags, from its record.
fn memory(ctx: &Context, uid: &str) -> Option<(Arc<Ledger>, BTreeMap<String, String>)> {
    ctx.mirrors.with(uid, |m: &mut MirrorMemory| {
        (m.compliance.clone(), m.in_sync.clone())
    })
}

/// Each digest's standing in `ledger`.
fn standings(ledger: &Ledger, in_sync: &BTreeMap<String, String>) -> BTreeMap<String, Standing> {
    in_sync
        .values()
        .filter_map(|digest| Some((digest.clone(), ledger.standing(digest)?)))
        .collect()
}

/// The key set the signature checks of `digest` are made for.
fn signature_key(setup: &MirrorSetup, digest: &str) -> SignatureKey {
    let trusted = |v: &Option<Verifier>| v.as_ref().map(Verifier::trusted).unwrap_or_default();
    SignatureKey {
        digest: digest.to_string(),
        object: trusted(&setup.verification.verifiers.object),
        floor: trusted(&setup.verification.verifiers.floor),
    }
}

/// Judges the in-sync digests that are due (all of them when the mirror's
/// interval passed, else those not judged yet; `verified`: digests this
/// process's sync copied, with the signature checks their verification
/// made, which the ledger keeps so the next check reads no signature) and
/// records the judgements; the event of a change of the noncompliant tags.
/// A mirror that applies no verification forgets its judgements.
pub async fn judge_due(
    object: &RegistryMirror,
    ctx: &Context,
    setup: &Setup,
    mirror_setup: &MirrorSetup,
    engine: &Engine,
    verified: &BTreeMap<String, Option<SignatureChecks>>,
) -> Vec<Notice> {
    let uid = object.uid().unwrap_or_default();
    let Some((ledger, in_sync)) = memory(ctx, &uid) else {
        return Vec::new();
    };
    if !mirror_setup.verification.checks_anything() {
        ledger.retain(&HashSet::new());
        return Vec::new();
    }
    let epoch = ctx.epoch();
    let now = Instant::now();
    let due = matches!(ledger.due(SCHEDULE, epoch, now), Due::Now(_));
    let before = mirror::noncompliant(&in_sync, &standings(&ledger, &in_sync));
    let judged: BTreeSet<String> = in_sync
        .values()
        .filter(|d| ledger.standing(d).is_some())
        .cloned()
        .collect();
    let copied: BTreeSet<String> = verified.keys().cloned().collect();
    let plan = mirror::plan_checks(&in_sync, due, &judged, &copied);
    let wait = || jittered(interval(ctx, object), fastrand::f64());
    for digest in &plan.fresh {
        let fresh = Judgement {
            standing: Standing::Satisfied,
            expiring: Vec::new(),
        };
        let signatures = verified
            .get(digest)
            .cloned()
            .flatten()
            .filter(|_| mirror_setup.verification.verifiers.any())
            .map(|checks| (signature_key(mirror_setup, digest), checks));
        ledger.record(digest, epoch, digest, fresh, signatures, now, wait());
    }
    if !plan.now.is_empty() {
        debug!(
            digests = plan.now.len(),
            due, "judging the mirror's in-sync digests"
        );
    }
    let checker = Checker {
        shared: &setup.shared,
        config: &setup.config,
        ledger: &ledger,
        metrics: &ctx.metrics.compliance,
    };
    let policy = &mirror_setup.verification;
    let scans = policy
        .ecr
        .as_ref()
        .filter(|_| policy.reads_scan())
        .map(|ecr| {
            EcrInspector::new(
                &setup.shared.sdk,
                ecr.registry.clone(),
                ecr.endpoint.as_deref(),
            )
        });
    let client = engine.client(&mirror_setup.source.registry).ok();
    let checks: Vec<(String, Checked)> = futures::stream::iter(plan.now.clone())
        .map(|digest| {
            check_digest(
                &checker,
                mirror_setup,
                scans.clone(),
                client.clone(),
                digest,
            )
        })
        .buffer_unordered(CHECKS_AT_ONCE)
        .collect()
        .await;
    let mut expiring = BTreeSet::new();
    for (digest, checked) in checks {
        ctx.metrics
            .compliance
            .checked(checked.judgement.standing.reason());
        let changes = ledger.record(
            &digest,
            epoch,
            &digest,
            checked.judgement,
            checked.signatures,
            Instant::now(),
            wait(),
        );
        expiring.extend(changes.newly_expiring);
    }
    if due {
        ledger.postpone(SCHEDULE, epoch, Instant::now(), wait());
    }
    let mut keep: HashSet<String> = in_sync.values().cloned().collect();
    keep.insert(SCHEDULE.to_string());
    ledger.retain(&keep);
    let after = mirror::noncompliant(&in_sync, &standings(&ledger, &in_sync));
    let mut notices: Vec<Notice> = mirror::transition(&before, &after)
        .into_iter()
        .map(|t| notice(&t))
        .collect();
    for entry in expiring {
        notices.push(Notice {
            warning: true,
            reason: "IgnoreExpiring".into(),
            action: "CheckCompliance".into(),
            note: format!(
                "the ignore entry {} expires on {}: renew it with a reason and a new expiry \
                 date, or ship a fixed image",
                entry.id, entry.expires
            ),
        });
    }
    notices
}

/// Judges `digest` of the mirror's source: its scan read with `scans`, its
/// signatures read with `client` unless the ledger holds them.
async fn check_digest(
    checker: &Checker<'_>,
    setup: &MirrorSetup,
    scans: Option<EcrInspector>,
    client: Option<RegistryClient>,
    digest: String,
) -> (String, Checked) {
    let policy = &setup.verification;
    let subject = Subject {
        repository: setup.source.to_string(),
        repository_name: setup.source.name.clone(),
        tag: None,
        scans,
        policy: policy.policy.as_ref(),
        signed: policy.verifiers.any(),
        key: signature_key(setup, &digest),
    };
    let read = client.map(|client| {
        let digest = digest.clone();
        move || signatures(client, setup, digest)
    });
    let checked = check_subject(checker, &digest, &subject, &digest, read).await;
    (digest, checked)
}

/// The signature checks of `digest` of the mirror's source.
async fn signatures(
    client: RegistryClient,
    setup: &MirrorSetup,
    digest: String,
) -> Result<SignatureChecks, ObserveError> {
    let signed = [(None, digest)];
    check_signatures(
        client,
        &setup.source,
        &setup.verification.verifiers,
        &signed,
    )
    .await
}

fn notice(transition: &Transition) -> Notice {
    if transition.warning {
        warn!(audit = true, event = "MirrorTagsNoncompliant", reason = transition.reason, why = %transition.note, "mirrored tags no longer pass their policy");
    } else {
        info!(
            audit = true,
            event = "MirrorTagsCompliant",
            "every mirrored tag passes its policy again"
        );
    }
    Notice {
        warning: transition.warning,
        reason: transition.reason.to_string(),
        action: "CheckCompliance".into(),
        note: transition.note.clone(),
    }
}

/// Puts the mirror's compliance, as its record holds it, on `status`.
pub fn project(
    ctx: &Context,
    object: &RegistryMirror,
    applies: bool,
    status: &mut RegistryMirrorStatus,
) {
    let uid = object.uid().unwrap_or_default();
    let (ledger, in_sync) = memory(ctx, &uid).unwrap_or_default();
    let standings = standings(&ledger, &in_sync);
    mirror::project(status, applies, &in_sync, &standings, &SystemClock);
}

/// Whether the mirror is due for a compliance pass now, else the time
/// until it is (`None`: it has no in-sync tag to judge).
pub fn next_check(ctx: &Context, uid: &str) -> Option<Duration> {
    let (ledger, in_sync) = memory(ctx, uid)?;
    if in_sync.is_empty() || !ledger.contains(SCHEDULE) {
        return None;
    }
    match ledger.due(SCHEDULE, ctx.epoch(), Instant::now()) {
        Due::Now(_) => Some(Duration::ZERO),
        Due::Later(wait) => Some(wait),
    }
}
