//! The RegistryMirror reconciler, through the same [`Context`] as promotions
//! (engine, AWS configuration, recorder, metrics, per-object backoff):
//! set up (pure, [`crate::mirror::setup`]) → one sync with the mirror's
//! ledger ([`crate::mirror::sync`]) → the status, pure
//! ([`crate::mirror::status`]) → one server-side-apply patch of `/status`,
//! skipped when nothing but timestamps would change → an event when Ready
//! flips → the next sync after the jittered `spec.interval`.
//!
//! The ledger of each mirror lives in memory ([`Ledgers`]), keyed by UID: it
//! starts empty at process start (the first sync is a full listing) and the
//! sync itself reads everything again every `spec.fullResyncInterval`.
//! `spec.suspend` stops the syncs; the status keeps the last sync's results and
//! acknowledges the generation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::backoff::jittered;
use super::error::ReconcileError;
use super::events::{self, Notice};
pub use super::promotion::error_policy;
use super::promotion::{apply_status, supervised};
use super::{Context, secrets};
use crate::api::conditions::{READY, find_condition};
use crate::api::{RegistryMirror, RegistryMirrorStatus, SystemClock};
use crate::mirror::status::{SyncSummary, blocked_status, suspended_status, synced_status};
use crate::mirror::{self, Ledger, SyncOptions};
use crate::promotion::SecretAccess;

/// Each mirror's ledger, by UID.
#[derive(Default)]
pub struct Ledgers(Mutex<HashMap<String, Ledger>>);

impl Ledgers {
    fn take(&self, uid: &str) -> Ledger {
        self.0
            .lock()
            .expect("lock never poisoned")
            .remove(uid)
            .unwrap_or_default()
    }

    fn put(&self, uid: &str, ledger: Ledger) {
        self.0
            .lock()
            .expect("lock never poisoned")
            .insert(uid.to_string(), ledger);
    }

    fn forget(&self, uid: &str) {
        self.0.lock().expect("lock never poisoned").remove(uid);
    }
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
        ctx.ledgers.forget(&uid);
        ctx.backoff.reset(&uid);
        return Ok(Action::await_change());
    }
    let generation = object.metadata.generation.unwrap_or(0);
    if object.spec.suspend {
        info!("suspended: no sync until spec.suspend is false");
        let previous = object.status.clone().unwrap_or_default();
        let status = suspended_status(&previous, Some(generation));
        if changed(object.status.as_ref(), &status) {
            apply_status(ctx, object, &status).await?;
        }
        return Ok(Action::await_change());
    }
    if let Some(wait) = ctx.backoff.held(&uid, generation, Instant::now()) {
        return Ok(Action::requeue(wait));
    }
    let previous = object.status.clone().unwrap_or_default();
    let setup = ctx.setup();
    let namespace = object.namespace().unwrap_or_default();
    let prepared = match mirror::setup(object, &setup.config, SecretAccess::Api) {
        Err(e) => Err((e.reason.to_string(), e.message, false)),
        Ok(mirror_setup) => {
            let mut clients = Vec::new();
            let mut failed = None;
            for secret in &mirror_setup.secrets {
                match secrets::registry_client(
                    &ctx.client,
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
    let (status, next) = match prepared {
        Err((reason, message, transient)) => {
            let status = blocked_status(
                &previous,
                Some(generation),
                &reason,
                &message,
                !transient,
                &SystemClock,
            );
            let next = if transient {
                Action::requeue(ctx.backoff.failed(&uid, generation))
            } else {
                ctx.backoff.reset(&uid);
                Action::await_change()
            };
            (status, next)
        }
        Ok((mirror_setup, engine)) => {
            let mut ledger = ctx.ledgers.take(&uid);
            let options = SyncOptions {
                dry_run: false,
                now: k8s_openapi::jiff::Timestamp::now().as_second(),
            };
            let synced = mirror::sync(
                &mirror_setup,
                &engine,
                &setup.shared.sdk,
                &mut ledger,
                options,
            )
            .await;
            ctx.ledgers.put(&uid, ledger);
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
                    ctx.backoff.reset(&uid);
                    let status = synced_status(&previous, &summary, &SystemClock);
                    (
                        status,
                        Action::requeue(jittered(mirror_setup.interval, fastrand::f64())),
                    )
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
                    let next = if failure.transient {
                        Action::requeue(ctx.backoff.failed(&uid, generation))
                    } else {
                        Action::requeue(jittered(mirror_setup.interval, fastrand::f64()))
                    };
                    (status, next)
                }
            }
        }
    };
    if changed(object.status.as_ref(), &status) {
        apply_status(ctx, object, &status).await?;
    }
    if let Some(notice) = transition(&previous, &status) {
        events::publish(&ctx.recorder, object, vec![notice]).await;
    }
    Ok(next)
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
}
