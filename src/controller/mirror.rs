//! The RegistryMirror reconciler, through the same [`Context`] as promotions
//! (engine, AWS configuration, recorder, metrics, the process's records):
//! set up (pure, [`crate::mirror::setup`]) → one sync with the mirror's
//! ledger ([`crate::mirror::sync`]) → the status, pure
//! ([`crate::mirror::status`]) → one server-side-apply patch of `/status`,
//! skipped when nothing but timestamps would change → an event when Ready
//! flips → the next sync after the jittered `spec.interval`.
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

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::error::ReconcileError;
use super::events::{self, Notice};
pub use super::promotion::error_policy;
use super::promotion::{apply_status, due_or_wait, requested_at, status_value, supervised};
use super::schedule::Outcome;
use super::{Context, secrets};
use crate::api::conditions::{READY, find_condition};
use crate::api::{RegistryMirror, RegistryMirrorStatus, SystemClock};
use crate::mirror::status::{SyncSummary, blocked_status, suspended_status, synced_status};
use crate::mirror::{self, Ledger, SyncOptions};
use crate::promotion::SecretAccess;

/// What the process keeps of one mirror between its syncs.
#[derive(Default)]
pub struct MirrorMemory {
    /// The ledger, and the spec generation it was built for.
    ledger: Option<(i64, Ledger)>,
    /// `spec.interval`, once set up.
    pub interval: Option<Duration>,
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
        .and_then(|s| s.public_key.as_ref())
        .is_some_and(|k| k.secret_ref.name == name);
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

/// The event for a flip of Ready, if any.
pub fn transition(previous: &RegistryMirrorStatus, new: &RegistryMirrorStatus) -> Option<Notice> {
    let before =
        find_condition(&previous.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
    let after = find_condition(&new.conditions, READY)?;
    if before.as_ref() == Some(&(after.status.clone(), after.reason.clone())) {
        return None;
    }
    let reason: &'static str = match after.reason.as_str() {
        "InSync" => "Synced",
        "Backfilling" => "Backfilling",
        "TagsDrifted" => "TagsDrifted",
        "TagsFailed" => "TagsFailed",
        _ => "SyncBlocked",
    };
    Some(Notice {
        warning: after.status != "True" && reason != "Backfilling",
        reason,
        action: "Sync".into(),
        note: after.message.clone(),
    })
}

/// Reconciles one RegistryMirror; a panic inside is caught and retried with backoff.
pub async fn reconcile(
    object: Arc<RegistryMirror>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let span = tracing::info_span!("reconcile", mirror = %key);
    let work = reconcile_mirror(&object, &ctx).boxed();
    supervised(&ctx, key, span, work, || futures::future::ready(())).await
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
        return Ok(wait);
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
    let namespace = object.namespace().unwrap_or_default();
    let prepared = match mirror_public_key(object, ctx, &namespace)
        .await
        .and_then(|key| {
            mirror::setup(object, &setup.config, SecretAccess::Api, key)
                .map_err(|e| (e.reason.to_string(), e.message, false))
        }) {
        Err(e) => Err(e),
        Ok(mirror_setup) => {
            ctx.mirrors
                .with(&uid, |m| m.interval = Some(mirror_setup.interval));
            let mut clients = Vec::new();
            let mut failed = None;
            for secret in &mirror_setup.secrets {
                match secrets::registry_client(
                    &ctx.secrets,
                    &setup.shared.engine,
                    &namespace,
                    &secret.secret,
                    &secret.host,
                )
                .await
                {
                    Ok(client) => clients.push((secret.host.clone(), client)),
                    Err(e) => {
                        failed = Some((e.reason().to_string(), e.to_string(), e.is_transient()));
                        break;
                    }
                }
            }
            match failed {
                Some(problem) => Err(problem),
                None => setup
                    .shared
                    .engine_with(&mirror_setup.inferred, clients)
                    .map(|engine| (mirror_setup, engine))
                    .map_err(|e| ("InvalidSpec".to_string(), e.to_string(), false)),
            }
        }
    };
    let mut refusals = Vec::new();
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
                            reason: crate::api::reasons::VERIFICATION_FAILED,
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
    let status = handled_request(status);
    let next = ctx.schedule(
        &RegistryMirror::kind(&()),
        &uid,
        generation,
        requested,
        &outcome,
    );
    write(ctx, object, &uid, &status).await?;
    if let Some(notice) = transition(&previous, &status) {
        events::publish(&ctx.recorder, object, vec![notice]).await;
    }
    if !refusals.is_empty() {
        events::publish(&ctx.recorder, object, refusals).await;
    }
    Ok(match next {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

/// Writes `status` unless only timestamps changed, and remembers what the
/// apiserver holds.
async fn write(
    ctx: &Context,
    object: &RegistryMirror,
    uid: &str,
    status: &RegistryMirrorStatus,
) -> Result<(), ReconcileError> {
    let stored = if changed(object.status.as_ref(), status) {
        status_value(&apply_status(ctx, object, status).await?)
    } else {
        status_value(object)
    };
    ctx.mirrors.set_written(uid, stored);
    Ok(())
}

/// The key of `spec.verify.signature.publicKey`, read from its Secret.
async fn mirror_public_key(
    object: &RegistryMirror,
    ctx: &Context,
    namespace: &str,
) -> Result<Option<crate::verify::cosign::PublicKey>, (String, String, bool)> {
    let key = object
        .spec
        .verify
        .as_ref()
        .and_then(|v| v.signature.as_ref())
        .and_then(|s| s.public_key.as_ref());
    let Some(key) = key.map(|k| &k.secret_ref) else {
        return Ok(None);
    };
    secrets::public_key(&ctx.secrets, namespace, &key.name, &key.key)
        .await
        .map(Some)
        .map_err(|e| (e.reason().to_string(), e.to_string(), e.is_transient()))
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn only_timestamps_changing_writes_nothing_and_events_come_on_flips() {
        let a = with_ready(true, "InSync", 10);
        let mut b = a.clone();
        b.last_sync_time = Some(Time(Timestamp::from_second(20).unwrap()));
        assert!(!changed(Some(&a), &b));
        assert!(changed(None, &b));
        assert!(transition(&a, &b).is_none());
        let drifted = with_ready(false, "TagsDrifted", 30);
        assert!(changed(Some(&a), &drifted));
        let notice = transition(&a, &drifted).unwrap();
        assert_eq!((notice.reason, notice.warning), ("TagsDrifted", true));
        assert_eq!(transition(&drifted, &a).unwrap().reason, "Synced");
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
