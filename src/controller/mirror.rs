//! The RegistryMirror reconciler, through the same [`Context`] as promotions
//! (engine, AWS configuration, recorder, metrics, the process's records):
//! set up (pure, [`crate::mirror::setup`]) → one sync with the mirror's
//! ledger ([`crate::mirror::sync`]) → the status, pure
//! ([`crate::mirror::status`]) → one server-side-apply patch of `/status`,
//! skipped when nothing but timestamps would change → an event on each
//! transition of Ready, with the condition's own reason
//! ([`events::ready_transition`]) → the next sync after the jittered
//! `spec.interval`.
//!
//! A mirror syncs once per interval, plus once per spec change, requested
//! reconcile, configuration reload or change of a Secret it names
//! ([`super::schedule`]); its own status writes wake it but start nothing,
//! so `maxCopiesPerSync` paces a backfill. Its ledger lives in the process's
//! record of it ([`MirrorMemory`]), for the spec generation it was built
//! for: a new source, target or selector starts from a full listing. The
//! record goes when the mirror is deleted, which cancels a sync in flight.
//! `spec.suspend` stops the syncs; the status keeps the last sync's results and
//! acknowledges the generation.
//!
//! A mirror that applies verification also has its in-sync tags judged again
//! at the compliance interval ([`super::mirror_compliance`]): after a sync,
//! and on a wake-up between syncs when a check is due (nothing is listed,
//! read or copied then); its record keeps the in-sync tags, their judgements
//! and the latest receipts, which the status shows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::compliance::sooner;
use super::error::ReconcileError;
use super::events::{self, Notice};
use super::mirror_compliance;
pub use super::promotion::error_policy;
use super::promotion::{apply_status, due_or_wait, requested_at, status_value, supervised};
use super::schedule::{Due, Outcome};
use super::{Context, Setup, secrets};
use crate::api::conditions::COMPLIANT;
use crate::api::{MirrorReceipt, RegistryMirror, RegistryMirrorStatus, SystemClock};
use crate::mirror::status::{SyncSummary, blocked_status, suspended_status, synced_status};
use crate::mirror::{self, Ledger, MirrorSetup, SyncOptions};
use crate::promotion::SecretAccess;
use crate::registry::Engine;
use crate::verify::SignatureChecks;

/// What the process keeps of one mirror between its syncs.
#[derive(Default)]
pub struct MirrorMemory {
    /// The ledger, and the spec generation it was built for.
    ledger: Option<(i64, Ledger)>,
    /// `spec.interval`, once set up.
    pub interval: Option<Duration>,
    /// The tags in sync at every target after the last sync, with their
    /// source digests: what compliance judges.
    pub in_sync: BTreeMap<String, String>,
    /// The compliance of those digests, and the mirror's compliance
    /// schedule ([`crate::compliance::mirror`]).
    pub compliance: Arc<crate::compliance::Ledger>,
    /// The latest receipts written or found for its copies, newest first.
    pub receipts: Vec<MirrorReceipt>,
}

/// Receipts listed in a mirror's status.
pub const LISTED_RECEIPTS: usize = 10;

impl MirrorMemory {
    /// Puts `newest` (one sync's receipts, in the order of its copies:
    /// newest tag first) before the ones kept, keeping [`LISTED_RECEIPTS`].
    fn remember_receipts(&mut self, newest: Vec<MirrorReceipt>) {
        let mut receipts = newest;
        receipts.extend(std::mem::take(&mut self.receipts));
        receipts.truncate(LISTED_RECEIPTS);
        self.receipts = receipts;
    }
}

impl MirrorMemory {
    /// The ledger for `generation`: the one kept if it was built for it,
    /// else an empty one (a full listing).
    fn take_ledger(&mut self, generation: i64) -> Ledger {
        match self.ledger.take() {
            Some((built_for, ledger)) if built_for == generation => ledger,
            _ => Ledger::default(),
        }
    }
}

/// Whether `mirror` names the Secret `name` (of its own namespace).
pub fn references_secret(mirror: &RegistryMirror, name: &str) -> bool {
    let spec = &mirror.spec;
    let credentials = std::iter::once(spec.source.credentials.as_ref())
        .chain(spec.targets.iter().map(|t| t.credentials.as_ref()))
        .flatten()
        .filter_map(|c| c.secret_ref.as_ref())
        .any(|s| s.name == name);
    let key = spec
        .verify
        .as_ref()
        .and_then(|v| v.signature.as_ref())
        .is_some_and(|s| s.names_secret(name));
    credentials || key
}

/// Whether writing `new` changes more than timestamps.
pub fn changed(previous: Option<&RegistryMirrorStatus>, new: &RegistryMirrorStatus) -> bool {
    let strip = |status: &RegistryMirrorStatus| RegistryMirrorStatus {
        last_sync_time: None,
        last_full_resync_time: None,
        ..status.clone()
    };
    previous.map(strip) != Some(strip(new))
}

/// Reconciles one RegistryMirror; a panic inside is caught and retried with backoff.
pub async fn reconcile(
    object: Arc<RegistryMirror>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let work = reconcile_mirror(&object, &ctx).boxed();
    supervised(&ctx, &*object, work, || futures::future::ready(())).await
}

async fn reconcile_mirror(
    object: &RegistryMirror,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let uid = object.uid().unwrap_or_default();
    if object.metadata.deletion_timestamp.is_some() {
        ctx.forget_mirror(&uid);
        return Ok(Action::await_change());
    }
    if let Some(wait) = due_or_wait(ctx, &ctx.mirrors, object).await? {
        return between_syncs(object, ctx, wait).await;
    }
    let generation = object.metadata.generation.unwrap_or(0);
    let requested = requested_at(&object.metadata).map(str::to_string);
    let cancelled = ctx.mirrors.begin(&uid);
    let previous = ctx
        .mirrors
        .written(&uid)
        .and_then(|w| serde_json::from_value(w).ok())
        .unwrap_or_else(|| object.status.clone().unwrap_or_default());
    let handled_request = |mut status: RegistryMirrorStatus| {
        status.last_handled_reconcile_at = requested
            .clone()
            .or_else(|| previous.last_handled_reconcile_at.clone());
        status
    };
    if object.spec.suspend {
        info!("suspended: no sync until spec.suspend is false");
        let status = handled_request(suspended_status(&previous, Some(generation)));
        ctx.schedule(
            &RegistryMirror::kind(&()),
            &uid,
            generation,
            requested.clone(),
            &Outcome::Suspended,
        );
        write(ctx, object, &uid, &status).await?;
        return Ok(Action::await_change());
    }
    let setup = ctx.setup();
    let prepared = prepare(object, ctx, &setup).await;
    let mut refusals = Vec::new();
    let mut compliance_notices = Vec::new();
    let mut applies = None;
    let (status, outcome) = match prepared {
        Err((reason, message, transient)) => {
            let status = blocked_status(
                &previous,
                Some(generation),
                &reason,
                &message,
                !transient,
                &SystemClock,
            );
            let outcome = if transient {
                Outcome::Retry
            } else {
                Outcome::Stalled(reason)
            };
            (status, outcome)
        }
        Ok((mirror_setup, engine)) => {
            let mut ledger = ctx
                .mirrors
                .with(&uid, |m| m.take_ledger(generation))
                .unwrap_or_default();
            let options = SyncOptions {
                dry_run: false,
                now: k8s_openapi::jiff::Timestamp::now().as_second(),
            };
            let sync = mirror::sync(
                &mirror_setup,
                &engine,
                &setup.shared.sdk,
                &mut ledger,
                options,
            );
            let synced = tokio::select! {
                synced = sync => synced,
                () = cancelled.wait() => {
                    info!("the mirror was deleted during its sync: the sync was cancelled");
                    return Ok(Action::await_change());
                }
            };
            ctx.mirrors
                .with(&uid, |m| m.ledger = Some((generation, ledger)));
            match synced {
                Ok(report) => {
                    if let Some(receipts) = &ctx.receipts {
                        let made = crate::receipt::mirror::after_sync(
                            receipts,
                            &engine,
                            object,
                            &mirror_setup,
                            &report.copies,
                        )
                        .boxed()
                        .await;
                        ctx.mirrors.with(&uid, |m| m.remember_receipts(made));
                    }
                    let in_sync = crate::compliance::mirror::in_sync_tags(
                        &report.decisions,
                        report.targets.len(),
                    );
                    ctx.mirrors.with(&uid, |m| m.in_sync = in_sync);
                    let verified: BTreeMap<String, Option<SignatureChecks>> = report
                        .copies
                        .iter()
                        .map(|c| {
                            let checks = c.evidence.as_ref().map(|e| e.signatures.clone());
                            (c.digest.clone(), checks)
                        })
                        .collect();
                    compliance_notices = mirror_compliance::judge_due(
                        object,
                        ctx,
                        &setup,
                        &mirror_setup,
                        &engine,
                        &verified,
                    )
                    .boxed()
                    .await;
                    applies = Some(mirror_setup.verification.checks_anything());
                    let summary = SyncSummary {
                        generation: Some(generation),
                        targets: &report.targets,
                        selected: report.selected,
                        decisions: &report.decisions,
                        full_resync: report.full_resync,
                    };
                    for decision in report
                        .decisions
                        .iter()
                        .filter(|d| matches!(d.state, mirror::plan::TagState::Drifted { .. }))
                    {
                        warn!(audit = true, tag = %decision.tag, target = %decision.target_name, "a mirrored tag drifted at a target; it is not rewritten");
                    }
                    for copy in &report.copies {
                        for (name, target_report) in copy.targets.iter().zip(&copy.reports) {
                            if let Some(target) =
                                mirror_setup.targets.iter().find(|t| t.name == *name)
                            {
                                ctx.metrics
                                    .copied(&target.repository.registry, target_report);
                            }
                        }
                    }
                    refusals = report
                        .newly_refused
                        .iter()
                        .map(|r| Notice {
                            warning: true,
                            reason: crate::api::reasons::VERIFICATION_FAILED.into(),
                            action: format!(
                                "Verify/{}",
                                r.tag.chars().take(120).collect::<String>()
                            ),
                            note: format!("{}: {}: {}", r.tag, r.problem.reason, r.problem.message),
                        })
                        .collect();
                    let status = synced_status(&previous, &summary, &SystemClock);
                    (status, Outcome::Done)
                }
                Err(failure) => {
                    let status = blocked_status(
                        &previous,
                        Some(generation),
                        &failure.problem.reason,
                        &failure.problem.message,
                        !failure.transient,
                        &SystemClock,
                    );
                    let outcome = if failure.transient {
                        Outcome::Retry
                    } else {
                        Outcome::Stalled(failure.problem.reason.clone())
                    };
                    (status, outcome)
                }
            }
        }
    };
    let mut status = handled_request(status);
    // A sync that did not run leaves the compliance as the last pass left it.
    let applies = applies.unwrap_or_else(|| {
        crate::api::conditions::find_condition(&previous.conditions, COMPLIANT).is_some()
    });
    project(ctx, object, applies, &mut status);
    let next = ctx.schedule(
        &RegistryMirror::kind(&()),
        &uid,
        generation,
        requested,
        &outcome,
    );
    write(ctx, object, &uid, &status).await?;
    if let Some(notice) = events::ready_transition(&previous.conditions, &status.conditions) {
        ctx.recorder.publish(object, vec![notice]).await;
    }
    if !refusals.is_empty() {
        ctx.recorder.publish(object, refusals).await;
    }
    if !compliance_notices.is_empty() {
        ctx.recorder.publish(object, compliance_notices).await;
    }
    Ok(sooner(next, mirror_compliance::next_check(ctx, &uid)))
}

/// Puts what the process holds of the mirror's compliance and receipts on
/// `status` (`applies`: whether the mirror applies verification).
fn project(
    ctx: &Context,
    object: &RegistryMirror,
    applies: bool,
    status: &mut RegistryMirrorStatus,
) {
    let uid = object.uid().unwrap_or_default();
    mirror_compliance::project(ctx, object, applies, status);
    status.receipts = ctx
        .mirrors
        .with(&uid, |m| m.receipts.clone())
        .unwrap_or_default();
}

/// A wake-up with no sync due (`wait` is what it would do): a mirror whose
/// compliance pass is due has its in-sync tags judged (nothing copied, no
/// tag read), its status written when that changes it, and it is requeued
/// for the sooner of its next sync and its next pass.
async fn between_syncs(
    object: &RegistryMirror,
    ctx: &Context,
    wait: Action,
) -> Result<Action, ReconcileError> {
    let uid = object.uid().unwrap_or_default();
    let Some(next_pass) = mirror_compliance::next_check(ctx, &uid) else {
        return Ok(wait);
    };
    if object.spec.suspend {
        return Ok(wait);
    }
    let sync_wait = match ctx.due(&ctx.mirrors, &object.metadata) {
        Due::Later(wait) => Some(wait),
        Due::Now(_) => return Ok(wait),
        Due::OnChange => None,
    };
    if !next_pass.is_zero() {
        return Ok(sooner(sync_wait, Some(next_pass)));
    }
    let Some(written) = ctx
        .mirrors
        .written(&uid)
        .and_then(|w| serde_json::from_value::<RegistryMirrorStatus>(w).ok())
    else {
        return Ok(wait);
    };
    let setup = ctx.setup();
    match prepare(object, ctx, &setup).await {
        Ok((mirror_setup, engine)) => {
            let notices = mirror_compliance::judge_due(
                object,
                ctx,
                &setup,
                &mirror_setup,
                &engine,
                &BTreeMap::new(),
            )
            .boxed()
            .await;
            let mut status = written;
            project(
                ctx,
                object,
                mirror_setup.verification.checks_anything(),
                &mut status,
            );
            write(ctx, object, &uid, &status).await?;
            if !notices.is_empty() {
                ctx.recorder.publish(object, notices).await;
            }
        }
        Err((_, why, _)) => {
            // The next sync says what is wrong; the pass waits for it.
            warn!(%why, "the compliance pass cannot run now; tried again at the next sync");
            return Ok(wait);
        }
    }
    Ok(sooner(sync_wait, mirror_compliance::next_check(ctx, &uid)))
}

/// Reads what the mirror's setup needs (its key material, its credentials'
/// Secrets) and sets it up: the setup and the engine with its clients, or
/// the reason, message and whether it is transient.
async fn prepare(
    object: &RegistryMirror,
    ctx: &Context,
    setup: &Setup,
) -> Result<(MirrorSetup, Engine), (String, String, bool)> {
    let uid = object.uid().unwrap_or_default();
    let namespace = object.namespace().unwrap_or_default();
    let key = mirror_public_key(object, ctx, &namespace).await?;
    let mirror_setup = mirror::setup(object, &setup.config, SecretAccess::Api, key)
        .map_err(|e| (e.reason.to_string(), e.message, false))?;
    ctx.mirrors
        .with(&uid, |m| m.interval = Some(mirror_setup.interval));
    let clients = secrets::registry_clients(
        &ctx.secrets,
        &setup.shared.engine,
        &namespace,
        &mirror_setup.secrets,
    )
    .await
    .map_err(|e| (e.reason().to_string(), e.to_string(), e.is_transient()))?;
    let engine = setup
        .shared
        .engine_with(&mirror_setup.inferred, clients)
        .map_err(|e| ("InvalidSpec".to_string(), e.to_string(), false))?;
    Ok((mirror_setup, engine))
}

/// Writes `status` unless only timestamps changed, and remembers what the
/// apiserver holds.
async fn write(
    ctx: &Context,
    object: &RegistryMirror,
    uid: &str,
    status: &RegistryMirrorStatus,
) -> Result<(), ReconcileError> {
    let status = &RegistryMirrorStatus {
        summary: super::status::summary(&status.conditions),
        ..status.clone()
    };
    let stored = if changed(object.status.as_ref(), status) {
        status_value(&apply_status(ctx, object, status).await?)
    } else {
        status_value(object)
    };
    ctx.mirrors.set_written(uid, stored);
    // Not for a mirror deleted meanwhile: its series are gone with it.
    if ctx.mirrors.with(uid, |_| ()).is_some() {
        let namespace = object.namespace().unwrap_or_default();
        ctx.metrics
            .mirror(uid, &namespace, &object.name_any(), status);
    }
    Ok(())
}

/// The key of `spec.verify.signature.publicKey`, read from its Secret, and
/// the root of `keyless.trustedRoot`, from its Secret or ConfigMap.
async fn mirror_public_key(
    object: &RegistryMirror,
    ctx: &Context,
    namespace: &str,
) -> Result<crate::promotion::plan::SignatureMaterial, (String, String, bool)> {
    let problem =
        |e: secrets::SecretError| (e.reason().to_string(), e.to_string(), e.is_transient());
    let signature = object
        .spec
        .verify
        .as_ref()
        .and_then(|v| v.signature.as_ref());
    let mut material = crate::promotion::plan::SignatureMaterial::default();
    if let Some(key) = signature
        .and_then(|s| s.public_key.as_ref())
        .map(|k| &k.secret_ref)
    {
        material.public_key = Some(
            secrets::public_key(&ctx.secrets, namespace, &key.name, &key.key)
                .await
                .map_err(problem)?,
        );
    }
    if let Some(reference) = signature
        .and_then(|s| s.keyless.as_ref())
        .and_then(|k| k.trusted_root.as_ref())
    {
        material.trusted_root = Some(
            secrets::trusted_root(&ctx.secrets, namespace, reference)
                .await
                .map_err(problem)?,
        );
    }
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::READY;
    use crate::api::{ConditionUpdate, set_condition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn with_ready(ready: bool, reason: &str, synced_at: i64) -> RegistryMirrorStatus {
        let mut status = RegistryMirrorStatus {
            last_sync_time: Some(Time(Timestamp::from_second(synced_at).unwrap())),
            ..RegistryMirrorStatus::default()
        };
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(READY, ready, reason),
            &SystemClock,
        );
        status
    }

    #[test]
    fn only_timestamps_changing_writes_nothing_and_events_come_on_transitions() {
        let a = with_ready(true, "InSync", 10);
        let mut b = a.clone();
        b.last_sync_time = Some(Time(Timestamp::from_second(20).unwrap()));
        assert!(!changed(Some(&a), &b));
        assert!(changed(None, &b));
        let transition = |before: &RegistryMirrorStatus, after: &RegistryMirrorStatus| {
            events::ready_transition(&before.conditions, &after.conditions)
        };
        assert!(transition(&a, &b).is_none());
        let drifted = with_ready(false, "TagsDrifted", 30);
        assert!(changed(Some(&a), &drifted));
        let notice = transition(&a, &drifted).unwrap();
        assert_eq!(
            (notice.reason.as_str(), notice.warning),
            ("TagsDrifted", true)
        );
        assert_eq!(transition(&drifted, &a).unwrap().reason, "InSync");
    }

    #[test]
    fn the_status_lists_the_latest_receipts_newest_first() {
        let receipt = |tag: &str| MirrorReceipt {
            tag: tag.into(),
            target: "t".into(),
            digest: "sha256:aa".into(),
            receipt: format!("sha256:{tag}"),
        };
        let mut memory = MirrorMemory::default();
        memory.remember_receipts((0..8).map(|i| receipt(&format!("a{i}"))).collect());
        memory.remember_receipts((0..4).map(|i| receipt(&format!("b{i}"))).collect());
        let tags: Vec<&str> = memory.receipts.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(
            tags,
            ["b0", "b1", "b2", "b3", "a0", "a1", "a2", "a3", "a4", "a5"]
        );
    }

    #[test]
    fn a_mirror_references_its_credentials_and_its_key_secrets() {
        let mirror: RegistryMirror = serde_yaml_ng::from_str(
            r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: RegistryMirror
metadata: {name: m, namespace: team}
spec:
  source: {repository: quay.io/acme/app, credentials: {secretRef: {name: source}}}
  targets:
    - {name: a, repository: public.ecr.aws/acme/app, credentials: {secretRef: {name: target}}}
  verify: {signature: {publicKey: {secretRef: {name: key}}}}
"#,
        )
        .unwrap();
        for (name, expected) in [
            ("source", true),
            ("target", true),
            ("key", true),
            ("other", false),
        ] {
            assert_eq!(references_secret(&mirror, name), expected, "{name}");
        }
    }
}
