//! Observe, decide, and (unless refused, waiting or a dry run) promote: the
//! I/O half of a run, from a plan to the [`Run`] the status is built from.

use aws_config::{BehaviorVersion, SdkConfig};
use k8s_openapi::jiff::Timestamp;

use super::plan::{PromotionPlan, PublicRepositoryPlan};
use super::status::{Problem, Progress, Run, TargetOutcome};
use super::{observe, registries, status};
use crate::aws::{EcrInspector, EcrPublic, EcrPublicError, RepositoryCreation};
use crate::config::{Config, ConfigError};
use crate::registry::{Engine, ImageReference, Registries};
use crate::verify::evaluate;

/// Observes, decides, and (unless refused, waiting or a dry run) promotes.
pub async fn execute(
    plan: &PromotionPlan,
    config: &Config,
    dry_run: bool,
) -> Result<Run, ConfigError> {
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let registries = registries::registries(config, &plan.inferred, &sdk).await?;
    let inspector = EcrInspector::new(
        &sdk,
        plan.source.ecr.clone(),
        plan.source.ecr_endpoint.as_deref(),
    );
    let observed = observe::observe(plan, &inspector, &registries).await;
    let (verdict, progress) = match observed.outcome {
        Err(error) => {
            let problem = Problem {
                reason: error.reason(),
                message: error.to_string(),
                transient: error.is_transient(),
            };
            (None, Progress::Blocked(problem))
        }
        Ok(observations) => {
            let verdict = evaluate(
                &plan.policy,
                &config.verify,
                &observations,
                Timestamp::now(),
            );
            let progress = if verdict.refused() {
                Progress::Refused
            } else if verdict.waiting() {
                Progress::Waiting
            } else if dry_run {
                Progress::DryRun
            } else {
                Progress::Copied(promote(plan, &sdk, registries, &observations.digest).await)
            };
            (Some(verdict), progress)
        }
    };
    Ok(Run {
        generation: plan.generation,
        targets: plan.targets.iter().map(|t| t.name.clone()).collect(),
        digest: observed.digest,
        verdict,
        progress,
    })
}

/// Creates the ECR Public repositories asked for, then copies the pinned
/// digest to every target whose repository is ready; one outcome per target.
async fn promote(
    plan: &PromotionPlan,
    sdk: &SdkConfig,
    registries: Registries,
    digest: &str,
) -> Vec<TargetOutcome> {
    let mut outcomes: Vec<Option<TargetOutcome>> = vec![None; plan.targets.len()];
    let mut notes: Vec<Option<String>> = vec![None; plan.targets.len()];
    for (i, target) in plan.targets.iter().enumerate() {
        if let Some(create) = &target.create {
            match create_repository(sdk, create).await {
                Ok(note) => notes[i] = note,
                Err(problem) => outcomes[i] = Some(TargetOutcome::failed(problem)),
            }
        }
    }
    let ready: Vec<usize> = (0..plan.targets.len())
        .filter(|i| outcomes[*i].is_none())
        .collect();
    let targets: Vec<_> = ready
        .iter()
        .map(|i| plan.targets[*i].target.clone())
        .collect();
    if !targets.is_empty() {
        let copied = copy(plan, registries, digest, &targets).await;
        match copied {
            Ok(reports) => {
                for (i, report) in ready.iter().zip(reports) {
                    outcomes[*i] = Some(TargetOutcome::from_report(report, notes[*i].take()));
                }
            }
            Err(problem) => {
                for i in &ready {
                    outcomes[*i] = Some(TargetOutcome::failed(problem.clone()));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every target has an outcome"))
        .collect()
}

/// Copies the source, pinned to `digest`, with the engine.
async fn copy(
    plan: &PromotionPlan,
    registries: Registries,
    digest: &str,
    targets: &[crate::registry::Target],
) -> Result<Vec<crate::registry::copy::report::TargetReport>, Problem> {
    let pinned = digest.parse().map_err(|e| Problem {
        reason: crate::api::reasons::SOURCE_NOT_FOUND.into(),
        message: format!("ECR named {digest:?} as the source digest, which is not a digest: {e}"),
        transient: false,
    })?;
    let source = ImageReference {
        digest: Some(pinned),
        ..plan.source.image.clone()
    };
    let engine = Engine::new(registries);
    match engine.copy(&source, targets, &plan.options).await {
        Ok(report) => Ok(report.targets),
        Err(error) => Err(Problem {
            reason: status::source_reason(error.reason(), error.is_transient()),
            message: error.to_string(),
            transient: error.is_transient(),
        }),
    }
}

/// Creates the ECR Public repository when it is missing. An existing one is
/// used as it is: its catalog data is left alone (docs/api.md).
async fn create_repository(
    sdk: &SdkConfig,
    plan: &PublicRepositoryPlan,
) -> Result<Option<String>, Problem> {
    let public = EcrPublic::new(sdk, plan.endpoint.as_deref());
    let problem = |error: EcrPublicError| Problem {
        reason: error.reason().to_string(),
        message: error.to_string(),
        transient: error.is_transient(),
    };
    if public
        .repository(&plan.name)
        .await
        .map_err(problem)?
        .is_some()
    {
        return Ok(None);
    }
    let created = public
        .create_repository(&plan.name, &plan.catalog)
        .await
        .map_err(problem)?;
    Ok(match created {
        RepositoryCreation::Created(_) => Some(format!(
            "created ECR Public repository {} with its catalog data",
            plan.name
        )),
        RepositoryCreation::AlreadyExists => None,
    })
}
