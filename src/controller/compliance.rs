//! The controller's side of continuous compliance ([`crate::compliance`]):
//! when a Ready promotion is due for a check (its interval passed, the
//! configuration was reloaded, a referenced Secret changed, or this process
//! has not judged it yet), its published digest is judged again and the
//! `Compliant` condition written with the rest of the status; a flip is a
//! Warning event (or a Normal one on recovery), an ignore entry newly within
//! 14 days of expiry is announced once, and the gauges follow the ledger.
//!
//! A check between runs touches nothing else: no copy, no drift check, no
//! tag written. Ready is never changed by compliance.

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::error::ReconcileError;
use super::events::Notice;
use super::promotion::{prepare, write_status};
use super::schedule::{Due, Outcome};
use super::secrets;
use super::{Context, Setup};
use crate::api::conditions::{
    self, COMPLIANT, SystemClock, is_true, remove_condition, set_condition,
};
use crate::api::{ComplianceSettings, ImagePromotion, ImagePromotionStatus, parse_duration};
use crate::compliance::check::{Checked, Checker, check, signature_key};
use crate::compliance::judge::{self, Judgement, Standing};
use crate::compliance::ledger::{self, jittered};
use crate::promotion::{SecretAccess, plan_with};

/// `--compliance-interval`'s default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// The object's interval: `spec.compliance.interval`, or the operator's.
pub fn interval(ctx: &Context, object: &ImagePromotion) -> Duration {
    interval_of(ctx, object.spec.compliance.as_ref())
}

/// An object's compliance interval from its `spec.compliance` (either
/// kind's), or the operator's `--compliance-interval`.
pub fn interval_of(ctx: &Context, settings: Option<&ComplianceSettings>) -> Duration {
    settings
        .and_then(|c| c.interval.as_deref())
        .and_then(|text| parse_duration(text).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(ctx.compliance_interval)
}

/// Sets the compliance gauges from the ledger.
pub fn publish_tally(ctx: &Context) {
    let (by_reason, expiring) = ctx.compliance.tally();
    ctx.metrics.compliance.set(&by_reason, expiring);
}

/// How long a repository must have been in sync before the migration
/// gauges count its old registry as retirable (`report --in-sync-for`'s default).
pub const RETIREMENT_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

/// Sets the migration gauges from the objects in the controllers' caches
/// (the view `image-promoter report` prints, as metrics for a dashboard).
pub fn publish_migration(
    ctx: &Context,
    promotions: &[kube::runtime::reflector::Store<ImagePromotion>],
    mirrors: &[kube::runtime::reflector::Store<crate::api::RegistryMirror>],
) {
    let promotions: Vec<ImagePromotion> = promotions
        .iter()
        .flat_map(|s| s.state())
        .map(|o| (*o).clone())
        .collect();
    let mirrors: Vec<crate::api::RegistryMirror> = mirrors
        .iter()
        .flat_map(|s| s.state())
        .map(|o| (*o).clone())
        .collect();
    let view = crate::compliance::report::view(
        &promotions,
        &mirrors,
        RETIREMENT_PERIOD,
        k8s_openapi::jiff::Timestamp::now(),
    );
    ctx.metrics.compliance.set_migration(&view);
}

/// The digest published by `object`: the one this process pinned, or after
/// a start the status's source digest when the drift check just confirmed
/// a target holds it.
fn published_digest(ctx: &Context, uid: &str, status: &ImagePromotionStatus) -> Option<String> {
    ctx.promotions
        .with(uid, |m| m.pin.as_ref().map(|p| p.digest.clone()))
        .flatten()
        .or_else(|| {
            let digest = status.source_digest.clone()?;
            status
                .targets
                .iter()
                .any(|t| t.digest.as_deref() == Some(digest.as_str()))
                .then_some(digest)
        })
}

/// Judges `object` (published at `digest`) now, records the judgement and
/// publishes its events; `None` when the check could not run (the last
/// standing is kept, and the check is tried again at the next interval).
async fn judge_now(
    object: &ImagePromotion,
    ctx: &Context,
    setup: &Setup,
    digest: &str,
) -> Option<Standing> {
    let uid = object.uid().unwrap_or_default();
    let now = Instant::now();
    let wait = jittered(interval(ctx, object), fastrand::f64());
    let namespace = object.namespace().unwrap_or_default();
    let key = object
        .spec
        .verify
        .signature
        .as_ref()
        .and_then(|s| s.public_key.as_ref())
        .map(|k| &k.secret_ref);
    let public_key = match key {
        Some(key) => {
            match secrets::public_key(&ctx.secrets, &namespace, &key.name, &key.key).await {
                Ok(pem) => Some(pem),
                Err(error) if !error.is_transient() => {
                    return Some(
                        record(
                            object,
                            ctx,
                            digest,
                            Checked {
                                judgement: Judgement {
                                    standing: judge::key_unreadable(&error.to_string()),
                                    expiring: Vec::new(),
                                },
                                signatures: None,
                            },
                            now,
                            wait,
                        )
                        .await,
                    );
                }
                Err(error) => {
                    return skipped(ctx, &uid, &error.to_string(), now, wait);
                }
            }
        }
        None => None,
    };
    let plan = match plan_with(object, &setup.config, public_key, SecretAccess::Api) {
        Ok(plan) => plan,
        Err(error) => return skipped(ctx, &uid, &error.message, now, wait),
    };
    // The registry is reached (and its credentials read) only when the
    // signatures must be read again: another digest or another key set.
    let signatures_cached = ctx
        .compliance
        .cached_signatures(&uid, &signature_key(&plan, digest))
        .is_some();
    let engine = if plan.verifiers.any() && !signatures_cached {
        match prepare(object, ctx, setup, false).await {
            Ok((_, engine)) => Some(engine),
            Err(problem) => return skipped(ctx, &uid, &problem.message, now, wait),
        }
    } else {
        None
    };
    let checker = Checker {
        shared: &setup.shared,
        config: &setup.config,
        ledger: &ctx.compliance,
        metrics: &ctx.metrics.compliance,
    };
    let checked = check(&checker, &uid, &plan, engine.as_ref(), digest).await;
    Some(record(object, ctx, digest, checked, now, wait).await)
}

/// A check that could not run: the last standing is kept and the check is
/// tried again at the next interval.
fn skipped(ctx: &Context, uid: &str, why: &str, now: Instant, wait: Duration) -> Option<Standing> {
    warn!(%why, "the compliance check cannot run now; tried again at the next interval");
    ctx.metrics.compliance.checked("Skipped");
    ctx.compliance.postpone(uid, ctx.epoch(), now, wait);
    None
}

/// Records what a check found, updates the gauges and publishes the events
/// of a flip and of newly expiring ignore entries; the standing.
async fn record(
    object: &ImagePromotion,
    ctx: &Context,
    digest: &str,
    checked: Checked,
    now: Instant,
    wait: Duration,
) -> Standing {
    let uid = object.uid().unwrap_or_default();
    let epoch = ctx.epoch();
    let standing = checked.judgement.standing.clone();
    ctx.metrics.compliance.checked(standing.reason());
    let changes = ctx.compliance.record(
        &uid,
        epoch,
        digest,
        checked.judgement,
        checked.signatures,
        now,
        wait,
    );
    publish_tally(ctx);
    let mut notices = Vec::new();
    if let Some(before) = changes.flipped {
        match (&before, &standing) {
            (_, Standing::Violated { reason, message }) => {
                warn!(audit = true, event = "PromotionNoncompliant", source_digest = digest, reason, why = %message, "a published digest no longer passes its policy");
                notices.push(Notice {
                    warning: true,
                    reason: reason.to_string(),
                    action: "CheckCompliance".into(),
                    note: message.clone(),
                });
            }
            (Some(Standing::Violated { .. }), Standing::Satisfied) => {
                info!(
                    audit = true,
                    event = "PromotionCompliant",
                    source_digest = digest,
                    "the published digest passes its policy again"
                );
                notices.push(Notice {
                    warning: false,
                    reason: crate::api::reasons::POLICY_SATISFIED.into(),
                    action: "CheckCompliance".into(),
                    note: "the published digest passes every check of the effective policy again"
                        .into(),
                });
            }
            _ => {}
        }
    }
    for entry in changes.newly_expiring {
        notices.push(Notice {
            warning: true,
            reason: "IgnoreExpiring".into(),
            action: "CheckCompliance".into(),
            note: format!(
                "the ignore entry {} expires on {}: renew it with a reason and a new expiry date, \
                 or ship a fixed image",
                entry.id, entry.expires
            ),
        });
    }
    ctx.recorder.publish(object, notices).await;
    standing
}

/// Puts the `Compliant` condition on `status`: the standing when the
/// promotion is Ready, no condition otherwise.
fn project(object: &ImagePromotion, status: &mut ImagePromotionStatus, standing: Option<Standing>) {
    if !is_true(&status.conditions, conditions::READY) {
        remove_condition(&mut status.conditions, COMPLIANT);
        return;
    }
    if let Some(standing) = standing {
        set_condition(
            &mut status.conditions,
            standing.condition().generation(object.metadata.generation),
            &SystemClock,
        );
    }
}

/// After a run that produced `status`: judges the published digest when a
/// check is due (a fresh promotion is judged by its passed verdict, without
/// a request) and puts the condition on `status`. The time until the next
/// check, if the promotion is published.
pub async fn after_run(
    object: &ImagePromotion,
    ctx: &Context,
    setup: &Setup,
    status: &mut ImagePromotionStatus,
    outcome: &Outcome,
    fresh: bool,
) -> Option<Duration> {
    let uid = object.uid().unwrap_or_default();
    let ready = *outcome == Outcome::Done && is_true(&status.conditions, conditions::READY);
    let digest = published_digest(ctx, &uid, status).filter(|_| ready);
    let Some(digest) = digest else {
        if ctx.compliance.standing(&uid).is_some() {
            ctx.compliance.forget(&uid);
            publish_tally(ctx);
        }
        project(object, status, None);
        return None;
    };
    let now = Instant::now();
    let standing = if fresh {
        let wait = jittered(interval(ctx, object), fastrand::f64());
        let judgement = Judgement {
            standing: Standing::Satisfied,
            expiring: Vec::new(),
        };
        ctx.compliance
            .record(&uid, ctx.epoch(), &digest, judgement, None, now, wait);
        publish_tally(ctx);
        Some(Standing::Satisfied)
    } else if let ledger::Due::Now(why) = ctx.compliance.due(&uid, ctx.epoch(), now) {
        tracing::debug!(?why, "compliance check due");
        judge_now(object, ctx, setup, &digest)
            .await
            .or_else(|| ctx.compliance.standing(&uid))
    } else {
        ctx.compliance.standing(&uid)
    };
    project(object, status, standing);
    next_check(ctx, &uid)
}

fn next_check(ctx: &Context, uid: &str) -> Option<Duration> {
    match ctx.compliance.due(uid, ctx.epoch(), Instant::now()) {
        ledger::Due::Now(_) => Some(Duration::from_secs(1)),
        ledger::Due::Later(wait) => Some(wait),
    }
}

/// A wake-up with nothing else due (`fallback` is what it would do): a
/// published promotion due for a check is judged, its status written when
/// the condition changes, and it is requeued for whichever comes first, its
/// next run or its next check.
pub async fn between_runs(
    object: &ImagePromotion,
    ctx: &Context,
    fallback: Action,
) -> Result<Action, ReconcileError> {
    let uid = object.uid().unwrap_or_default();
    let Some(written) = ctx
        .promotions
        .written(&uid)
        .and_then(|w| serde_json::from_value::<ImagePromotionStatus>(w).ok())
    else {
        return Ok(fallback);
    };
    if ctx.compliance.standing(&uid).is_none() {
        return Ok(fallback);
    }
    let run_wait = match ctx.due(&ctx.promotions, &object.metadata) {
        Due::Later(wait) => Some(wait),
        Due::Now(_) => return Ok(fallback),
        Due::OnChange => None,
    };
    if let ledger::Due::Now(_) = ctx.compliance.due(&uid, ctx.epoch(), Instant::now())
        && let Some(digest) = published_digest(ctx, &uid, &written)
    {
        let setup = ctx.setup();
        let standing = judge_now(object, ctx, &setup, &digest).await;
        let mut status = written;
        project(object, &mut status, standing);
        let stored = write_status(ctx, object, &status).await?;
        ctx.promotions.set_written(&uid, stored);
    }
    Ok(sooner(run_wait, next_check(ctx, &uid)))
}

/// Requeues for the sooner of two waits (`None`: on change only).
pub fn sooner(a: Option<Duration>, b: Option<Duration>) -> Action {
    match (a, b) {
        (Some(a), Some(b)) => Action::requeue(a.min(b)),
        (Some(one), None) | (None, Some(one)) => Action::requeue(one),
        (None, None) => Action::await_change(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> ImagePromotion {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "ImagePromotion",
            "metadata": {"name": "app", "namespace": "team", "generation": 3},
            "spec": {"source": {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0.0"},
                     "targets": [{"name": "quay", "repository": "quay.io/acme/app", "tags": ["1.0.0"]}]},
        }))
        .unwrap()
    }

    fn status(ready: bool) -> ImagePromotionStatus {
        let mut status = ImagePromotionStatus::default();
        set_condition(
            &mut status.conditions,
            crate::api::ConditionUpdate::new(conditions::READY, ready, "Promoted"),
            &SystemClock,
        );
        status
    }

    #[test]
    fn the_condition_is_shown_only_on_a_ready_promotion_and_moves_only_on_a_flip() {
        let found = Standing::Violated {
            reason: "VulnerabilitiesFound",
            message: "CVE-1".into(),
        };
        let mut ready = status(true);
        project(&object(), &mut ready, Some(found.clone()));
        let compliant = conditions::find_condition(&ready.conditions, COMPLIANT)
            .unwrap()
            .clone();
        assert_eq!(
            (compliant.status.as_str(), compliant.reason.as_str()),
            ("False", "VulnerabilitiesFound")
        );
        assert_eq!(compliant.observed_generation, Some(3));
        let mut again = ready.clone();
        project(&object(), &mut again, Some(found));
        assert_eq!(again, ready, "the same standing changes nothing");
        project(&object(), &mut again, None);
        assert_eq!(again, ready, "no new judgement keeps the last one");
        let mut failing = ready.clone();
        set_condition(
            &mut failing.conditions,
            crate::api::ConditionUpdate::new(conditions::READY, false, "TagDrifted"),
            &SystemClock,
        );
        project(&object(), &mut failing, Some(Standing::Satisfied));
        assert!(conditions::find_condition(&failing.conditions, COMPLIANT).is_none());
    }

    #[test]
    fn the_sooner_wait_wins() {
        let s = Duration::from_secs;
        assert_eq!(sooner(Some(s(5)), Some(s(3))), Action::requeue(s(3)));
        assert_eq!(sooner(None, Some(s(3))), Action::requeue(s(3)));
        assert_eq!(sooner(Some(s(9)), None), Action::requeue(s(9)));
        assert_eq!(sooner(None, None), Action::await_change());
    }
}
