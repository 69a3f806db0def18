//! The ImagePromotion reconciler, in the house order: observe (the previous
//! status, the object's Secrets, the registries) → decide, pure
//! ([`super::decision`]) → act (verify and copy with the shared engine via
//! [`crate::promotion::execute_with`], or only check a finished promotion
//! for drift) → the status, pure ([`super::status`]) → one server-side-apply
//! patch of `/status`, skipped when nothing but timestamps would change →
//! events on transitions → the next time it is due ([`super::schedule`]).
//!
//! A wake-up works only when something is due (the spec changed, a reconcile
//! was requested, the configuration or a Secret changed, the resync or a
//! backoff came due); the verdict, the pin and what was published are kept
//! in the process's record ([`super::decision::PromotionMemory`]), never
//! read back from the status.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, debug, error, info, warn};

use super::decision;
use super::error::ReconcileError;
use super::events;
use super::metrics::ReconcileResult;
use super::records::Records;
use super::schedule::{Due, Outcome};
use super::secrets;
use super::status::{Drift, after_drift_check, carry, changed, summary, with_drift_check};
use super::{Context, Setup};
use crate::api::conditions::{self, ConditionUpdate, SystemClock, find_condition, set_condition};
use crate::api::{ImagePromotion, ImagePromotionStatus, TargetState, reasons};
use crate::promotion::status::{Audience, Problem, Progress, Run, promotion_status_for};
use crate::promotion::{PromotionPlan, SecretAccess, execute_with, plan_with};
use crate::receipt::promotion as receipt;
use crate::registry::Engine;
use crate::verify::fingerprint;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "image-promoter";

/// Reconciles one ImagePromotion; a panic inside is caught, reported on the
/// object and retried with backoff, and never reaches the other objects.
pub async fn reconcile(
    object: Arc<ImagePromotion>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let work = reconcile_object(&object, &ctx).boxed();
    supervised(&ctx, &*object, work, || report_panic(&object, &ctx).boxed()).await
}

/// The name of the controller of `K` in metrics and logs, as
/// controller-runtime names it: the lowercase kind (`imagepromotion`,
/// `registrymirror`).
pub fn controller_name<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).to_ascii_lowercase()
}

/// Runs one reconcile's `work` on `object` in a span of its own
/// ([`crate::logging::reconcile_span`]): a panic inside is caught (then
/// `on_panic` runs, to report it on the object) and becomes an error retried
/// with backoff; the outcome and its duration are counted in the metrics
/// under the kind's controller.
pub async fn supervised<K, P>(
    ctx: &Context,
    object: &K,
    work: futures::future::BoxFuture<'_, Result<Action, ReconcileError>>,
    on_panic: impl FnOnce() -> P,
) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()>,
    P: Future<Output = ()>,
{
    let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
    let controller = controller_name::<K>();
    let span = crate::logging::reconcile_span(
        &controller,
        &K::group(&()),
        &K::kind(&()),
        &namespace,
        &name,
    );
    // One of the process's --concurrency permits, whatever the kind or namespace.
    let _permit = ctx.permit().await;
    let started = Instant::now();
    let _worker = ctx.metrics.worker(&controller);
    let result = match caught(work.instrument(span.clone())).await {
        Ok(result) => result,
        Err(message) => {
            span.in_scope(|| error!(%message, "the reconcile panicked; reported on the object, retried with backoff"));
            on_panic().instrument(span).await;
            Err(ReconcileError::Panicked {
                object: format!("{namespace}/{name}"),
                message,
            })
        }
    };
    let label = match &result {
        Ok(action) if *action == Action::await_change() => ReconcileResult::Success,
        Ok(_) => ReconcileResult::RequeueAfter,
        Err(_) => ReconcileResult::Error,
    };
    ctx.metrics
        .reconciled(&controller, label, started.elapsed());
    result
}

/// Runs `work`; a panic inside becomes its message instead of unwinding
/// into the controller (which would stop every other object's reconciles).
pub async fn caught<T>(work: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into())
        })
}

/// What `error_policy` does with a failed reconcile: retry with the object's backoff,
/// or wait for a change when a retry cannot help.
pub fn error_policy<K>(object: Arc<K>, error: &ReconcileError, ctx: Arc<Context>) -> Action
where
    K: kube::Resource<DynamicType = ()>,
{
    let uid = object.uid().unwrap_or_default();
    error!(
        controller = %controller_name::<K>(),
        namespace = %object.namespace().unwrap_or_default(),
        name = %object.name_any(),
        reason = error.reason(),
        %error,
        "reconcile failed"
    );
    let outcome = if error.is_transient() {
        Outcome::Retry
    } else {
        Outcome::Stalled(error.reason().to_string())
    };
    let generation = object.meta().generation.unwrap_or(0);
    let requested = requested_at(object.meta()).map(str::to_string);
    match ctx.schedule(K::kind(&()).as_ref(), &uid, generation, requested, &outcome) {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    }
}

/// The value of the reconcile-requested-at annotation, if any.
pub fn requested_at(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(conditions::RECONCILE_REQUESTED_AT))
        .map(String::as_str)
}

/// Whether a wake-up of `uid` works now. When it does not, the status the
/// operator last wrote is written again if somebody else changed it (the
/// status is the operator's output), and the wake-up is requeued for the
/// time left.
pub async fn due_or_wait<K, T>(
    ctx: &Context,
    records: &Records<T>,
    object: &K,
) -> Result<Option<Action>, ReconcileError>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    T: Default,
{
    let uid = object.uid().unwrap_or_default();
    let wait = match ctx.due(records, object.meta()) {
        Due::Now(why) => {
            debug!(?why, "due");
            return Ok(None);
        }
        Due::Later(wait) => Action::requeue(wait),
        Due::OnChange => Action::await_change(),
    };
    if let Some(written) = records.written(&uid) {
        let now = serde_json::to_value(object)
            .ok()
            .and_then(|mut o| o.get_mut("status").map(serde_json::Value::take))
            .unwrap_or(serde_json::Value::Null);
        if now != written {
            warn!("the status was changed by someone else; the operator's is written again");
            let stored = apply_status(ctx, object, &written).await?;
            records.set_written(&uid, status_value(&stored));
        }
    }
    Ok(Some(wait))
}

/// The status of `object` as JSON (`null` when it has none).
pub fn status_value<K: serde::Serialize>(object: &K) -> serde_json::Value {
    serde_json::to_value(object)
        .ok()
        .and_then(|mut o| o.get_mut("status").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null)
}

async fn reconcile_object(
    object: &ImagePromotion,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let uid = object.uid().unwrap_or_default();
    if object.metadata.deletion_timestamp.is_some() {
        ctx.forget_promotion(&uid);
        return Ok(Action::await_change());
    }
    if let Some(wait) = due_or_wait(ctx, &ctx.promotions, object).await? {
        return super::compliance::between_runs(object, ctx, wait).await;
    }
    let generation = object.metadata.generation.unwrap_or(0);
    let requested = requested_at(&object.metadata).map(str::to_string);
    let cancelled = ctx.promotions.begin(&uid);
    let memory = ctx.promotions.with(&uid, |m| m.clone()).unwrap_or_default();
    let previous = ctx
        .promotions
        .written(&uid)
        .and_then(|w| serde_json::from_value(w).ok())
        .unwrap_or_else(|| decision::previous(object));
    let setup = ctx.setup();
    let mut done = decision::done_by_status(object, &memory, &previous);
    let mut prepared = prepare(object, ctx, &setup, done).boxed().await;
    if done
        && let Ok((plan, _)) = &prepared
        && !decision::finished(generation, &memory, &previous, plan)
    {
        // Not finished after all (a tag was added, say): plan with everything
        // verification needs.
        done = false;
        prepared = prepare(object, ctx, &setup, false).boxed().await;
    }
    let mut receipts_for = None;
    let (mut status, outcome, drifted) = match prepared {
        Err(problem) if done => {
            warn!(reason = %problem.reason, message = %problem.message, "the drift check cannot run now; checked again at the next resync");
            ctx.metrics.drift_check_failed(&problem.reason);
            let status = with_drift_check(
                previous.clone(),
                Some((&problem.reason, &problem.message)),
                generation,
                &SystemClock,
            );
            (status, Outcome::Done, 0)
        }
        Err(problem) => {
            let run = Run {
                generation,
                targets: object.spec.targets.iter().map(|t| t.name.clone()).collect(),
                digest: previous.source_digest.clone(),
                verdict: None,
                progress: Progress::Blocked(problem),
            };
            let fresh = promotion_status_for(&run, &SystemClock, Audience::Cluster);
            (carry(&previous, fresh), decision::next(&run), 0)
        }
        Ok((plan, engine)) if done => {
            let checked = check_drift(&plan, &engine, &previous).boxed().await;
            for drift in &checked.drifts {
                warn!(audit = true, target = %drift.target, tag = %drift.tag, found = ?drift.found, promoted = %drift.promoted, "a published tag drifted; it is not rewritten");
            }
            if let Some(problem) = &checked.unchecked {
                ctx.metrics.drift_check_failed(&problem.reason);
            }
            let status = after_drift_check(&previous, &checked.drifts, generation, &SystemClock);
            let unchecked = checked
                .unchecked
                .as_ref()
                .map(|p| (p.reason.as_str(), p.message.as_str()));
            let status = with_drift_check(status, unchecked, generation, &SystemClock);
            let kept = memory
                .verdict
                .as_ref()
                .filter(|k| {
                    k.generation == generation
                        && previous.source_digest.as_deref() == Some(k.digest.as_str())
                })
                .map(|k| (k.policy.as_str(), &k.verdict));
            receipts_for = Some((receipt::for_drift_check(object, &plan, kept), engine));
            (status, Outcome::Done, checked.drifts.len() as i64)
        }
        Ok((plan, engine)) => {
            let verifiers = [
                plan.verifiers.object.as_ref(),
                plan.verifiers.floor.as_ref(),
            ];
            let policy = fingerprint(
                &plan.policy,
                &setup.config.verify,
                verifiers.into_iter().flatten(),
            );
            let (options, plan) = decision::resume(object, &memory, &previous, &plan, &policy);
            let run = execute_with(&setup.shared, &engine, &plan, &setup.config, options).boxed();
            let run = tokio::select! {
                run = run => run,
                () = cancelled.wait() => {
                    info!("the object was deleted during its reconcile: the copy was cancelled");
                    return Ok(Action::await_change());
                }
            };
            ctx.promotions.with(&uid, |m| {
                decision::remember(m, object, &plan, &policy, &run)
            });
            account(ctx, &plan, &run);
            receipts_for = Some((receipt::for_run(object, &plan, &policy, &run), engine));
            let fresh = promotion_status_for(&run, &SystemClock, Audience::Cluster);
            let status = with_drift_check(carry(&previous, fresh), None, generation, &SystemClock);
            (status, decision::next(&run), 0)
        }
    };
    if let (Some(receipts), Some(((promotion, verdict), engine))) = (&ctx.receipts, receipts_for) {
        receipt::settle(receipts, &engine, &promotion, verdict.as_ref(), &mut status)
            .boxed()
            .await;
    }
    status.last_handled_reconcile_at = requested
        .clone()
        .or_else(|| previous.last_handled_reconcile_at.clone());
    let next_check =
        super::compliance::after_run(object, ctx, &setup, &mut status, &outcome, !done).await;
    status.summary = summary(&status.conditions);
    let handled = ctx.schedule(
        &ImagePromotion::kind(&()),
        &uid,
        generation,
        requested,
        &outcome,
    );
    let stored = write_status(ctx, object, &status).boxed().await?;
    ctx.promotions.set_written(&uid, stored);
    let notices = events::transitions(&previous, &status);
    if notices.iter().any(|n| n.reason == "VerificationFailed")
        && let Some(verified) = find_condition(&status.conditions, conditions::VERIFIED)
    {
        ctx.metrics.verification_failed(&verified.reason);
    }
    audit(&status, &notices);
    ctx.recorder.publish(object, notices).boxed().await;
    if ctx.promotions.with(&uid, |_| ()).is_some() {
        ctx.metrics
            .object(&uid, Some((decision::state_of(&status), drifted)));
    }
    Ok(super::compliance::sooner(handled, next_check))
}

/// Reads the object's Secrets and plans the run with them; the engine view
/// reaches each registry with the credentials the plan names.
pub(super) async fn prepare(
    object: &ImagePromotion,
    ctx: &Context,
    setup: &Setup,
    done: bool,
) -> Result<(PromotionPlan, Engine), Problem> {
    // A done promotion is only checked for drift: no signature is verified,
    // so its public key Secret is not needed (and may be gone).
    let unverified;
    let object = if done && object.spec.verify.signature.is_some() {
        let mut copy = object.clone();
        copy.spec.verify.signature = None;
        unverified = copy;
        &unverified
    } else {
        object
    };
    let namespace = object.namespace().unwrap_or_default();
    let secret_problem = |error: secrets::SecretError| Problem {
        reason: error.reason().to_string(),
        message: error.to_string(),
        transient: error.is_transient(),
    };
    let key_ref = object
        .spec
        .verify
        .signature
        .as_ref()
        .and_then(|s| s.public_key.as_ref())
        .map(|k| &k.secret_ref);
    let public_key = match key_ref {
        Some(key) => Some(
            secrets::public_key(&ctx.secrets, &namespace, &key.name, &key.key)
                .await
                .map_err(secret_problem)?,
        ),
        None => None,
    };
    let trusted_root = match object
        .spec
        .verify
        .signature
        .as_ref()
        .and_then(|s| s.keyless.as_ref())
        .and_then(|k| k.trusted_root.as_ref())
    {
        Some(reference) => Some(
            secrets::trusted_root(&ctx.secrets, &namespace, reference)
                .await
                .map_err(secret_problem)?,
        ),
        None => None,
    };
    let material = crate::promotion::plan::SignatureMaterial {
        public_key,
        trusted_root,
    };
    let plan =
        plan_with(object, &setup.config, material, SecretAccess::Api).map_err(|e| Problem {
            reason: e.reason.to_string(),
            message: e.message,
            transient: false,
        })?;
    let clients = secrets::registry_clients(
        &ctx.secrets,
        &setup.shared.engine,
        &namespace,
        &plan.secrets,
    )
    .await
    .map_err(secret_problem)?;
    let engine = setup
        .shared
        .engine_for(&plan, clients)
        .map_err(|e| Problem {
            reason: reasons::INVALID_SPEC.to_string(),
            message: e.to_string(),
            transient: false,
        })?;
    Ok((plan, engine))
}

/// What a drift check found: the tags that moved, and why it could not
/// look at some tag, if it could not.
struct DriftCheck {
    drifts: Vec<Drift>,
    unchecked: Option<Problem>,
}

/// HEADs every write-once tag of every promoted target: one request per
/// (target, tag). A tag that cannot be read is reported (`unchecked`) and
/// checked again at the next resync.
async fn check_drift(
    plan: &PromotionPlan,
    engine: &Engine,
    previous: &ImagePromotionStatus,
) -> DriftCheck {
    let mut drifts = Vec::new();
    let mut unchecked = None;
    for target in &plan.targets {
        let Some(digest) = previous
            .targets
            .iter()
            .find(|r| r.name == target.name && r.state == TargetState::Promoted)
            .and_then(|r| r.digest.clone())
        else {
            continue;
        };
        let repository = &target.target.repository;
        let client = match engine.client(&repository.registry) {
            Ok(client) => client,
            Err(error) => {
                warn!(target = %target.name, %error, "no client for the drift check");
                unchecked.get_or_insert(Problem {
                    reason: error.reason().to_string(),
                    message: format!("{}: {error}", target.name),
                    transient: error.is_transient(),
                });
                continue;
            }
        };
        let write_once = target
            .target
            .tags
            .iter()
            .filter(|t| !target.target.floating.contains(t));
        for tag in write_once {
            match client.head_manifest(&repository.name, tag).await {
                Ok(Some(head)) if head.digest.to_string() == digest => {}
                Ok(found) => drifts.push(Drift {
                    target: target.name.clone(),
                    tag: tag.clone(),
                    promoted: digest.clone(),
                    found: found.map(|h| h.digest.to_string()),
                }),
                Err(error) => {
                    warn!(target = %target.name, %tag, %error, "the drift check could not read a tag; checked again at the next resync");
                    unchecked.get_or_insert(Problem {
                        reason: crate::promotion::status::target_reason(
                            error.reason(),
                            error.is_transient(),
                        ),
                        message: format!("{}: tag {tag}: {error}", target.name),
                        transient: error.is_transient(),
                    });
                }
            }
        }
    }
    DriftCheck { drifts, unchecked }
}

/// Counts what the run copied.
fn account(ctx: &Context, plan: &PromotionPlan, run: &Run) {
    if let Progress::Copied(outcomes) = &run.progress {
        for (target, outcome) in plan.targets.iter().zip(outcomes) {
            if let Some(report) = &outcome.report {
                ctx.metrics
                    .copied(&target.target.repository.registry, report);
            }
        }
    }
}

/// One JSON line per event worth auditing, with what it rests on.
fn audit(status: &ImagePromotionStatus, notices: &[events::Notice]) {
    let evidence = status
        .verification
        .as_ref()
        .and_then(|e| serde_json::to_string(e).ok())
        .unwrap_or_default();
    let digest = status.source_digest.as_deref().unwrap_or_default();
    for notice in notices {
        match notice.reason.as_str() {
            "Verified" => {
                info!(audit = true, event = "PromotionVerified", source_digest = digest, %evidence, "the source passed verification")
            }
            "VerificationFailed" => {
                warn!(audit = true, event = "PromotionRefused", source_digest = digest, %evidence, why = %notice.note, "the source was refused")
            }
            "Promoted" => {
                let target = notice.action.trim_start_matches("Promote/");
                let tags = status
                    .targets
                    .iter()
                    .find(|t| t.name == target)
                    .map(|t| t.tags.join(","))
                    .unwrap_or_default();
                info!(audit = true, event = "PromotionPublished", source_digest = digest, target, tags = %tags, %evidence, "published")
            }
            reason => info!(event = reason, note = %notice.note, "transition"),
        }
    }
}

/// Writes `status` with server-side apply, unless it changes nothing; the
/// status the apiserver holds afterwards.
pub(super) async fn write_status(
    ctx: &Context,
    object: &ImagePromotion,
    status: &ImagePromotionStatus,
) -> Result<serde_json::Value, ReconcileError> {
    if !changed(object.status.as_ref(), status) {
        return Ok(status_value(object));
    }
    apply_status(ctx, object, status)
        .await
        .map(|stored| status_value(&stored))
}

/// Writes the `/status` of `object` with server-side apply, as
/// [`FIELD_MANAGER`]; the object as stored.
pub async fn apply_status<K>(
    ctx: &Context,
    object: &K,
    status: &impl serde::Serialize,
) -> Result<K, ReconcileError>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| ReconcileError::PatchStatus {
        object: format!("{namespace}/{name}"),
        source,
    })
}

/// Marks the object as failing unexpectedly (Ready=False, Reconciling=True).
async fn report_panic(object: &ImagePromotion, ctx: &Context) {
    let mut status = decision::previous(object);
    let generation = object.metadata.generation;
    let message = "the operator failed unexpectedly on this object (a bug; its log has the \
                   details); retried with backoff";
    for type_ in [conditions::READY, conditions::RECONCILING] {
        let state = type_ == conditions::RECONCILING;
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(type_, state, reasons::RECONCILE_PANICKED)
                .message(message)
                .generation(generation),
            &SystemClock,
        );
    }
    conditions::remove_condition(&mut status.conditions, conditions::STALLED);
    status.summary = summary(&status.conditions);
    if let Err(error) = write_status(ctx, object, &status).await {
        error!(%error, "reporting the panic on the object failed");
    }
    let notice = events::Notice {
        warning: true,
        reason: "ReconcilePanicked".into(),
        action: "Reconcile".into(),
        note: message.into(),
    };
    ctx.recorder.publish(object, vec![notice]).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_message_and_other_work_goes_on() {
        let panicking: Result<u8, String> = caught(async { panic!("boom at {}", 42) }).await;
        assert_eq!(panicking, Err("boom at 42".to_string()));
        assert_eq!(caught(async { 7 }).await, Ok(7));
        let literal: Result<(), String> = caught(async { std::panic::panic_any("static") }).await;
        assert_eq!(literal, Err("static".to_string()));
    }
}
