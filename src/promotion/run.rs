//! Observe, decide, and (unless refused, waiting or a dry run) promote: the
//! I/O half of a run, from a plan to the [`Run`] the status is built from.
//!
//! What runs share lives in [`Shared`]: one AWS configuration (its
//! credential cache), one copy [`Engine`] (registry clients, connection
//! pools, token caches, limits, blob locations) and the token clients of the
//! ECR / ECR Public hosts the configuration does not list. The command line
//! makes one for its single run; the controller makes one per process.

use std::sync::Mutex;
use std::time::Instant;

use aws_config::{BehaviorVersion, SdkConfig};
use k8s_openapi::jiff::Timestamp;

use super::plan::{InferredCredentials, PromotionPlan, PublicRepositoryPlan};
use super::status::{Problem, Progress, Run, TargetOutcome};
use super::{observe, registries, status};
use crate::aws::{EcrInspector, EcrPublic, EcrPublicError, RepositoryCreation};
use crate::config::{Config, ConfigError};
use crate::registry::bounded::BoundedCache;
use crate::registry::copy::report::TargetReport;
use crate::registry::registries::KEEP_IDLE;
use crate::registry::{Engine, ImageReference, RegistryClient};
use crate::verify::{Verdict, evaluate};

/// What every run of a process shares.
pub struct Shared {
    /// The AWS configuration, loaded once.
    pub sdk: SdkConfig,
    /// The engine of the configuration file's registries.
    pub engine: Engine,
    /// Token clients of hosts the configuration does not list, by host and
    /// what the token is for; objects choose the hosts, so it is bounded.
    inferred: Mutex<BoundedCache<String, RegistryClient>>,
}

/// Token clients of inferred hosts kept at most.
pub const MAX_INFERRED: usize = 256;

impl Shared {
    /// Loads the AWS configuration once and builds the configuration file's
    /// clients with it (their files are read off the async threads).
    pub async fn load(config: &Config) -> Result<Self, ConfigError> {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let (file, for_clients) = (config.clone(), sdk.clone());
        let registries =
            tokio::task::spawn_blocking(move || file.registries_with(Some(&for_clients)))
                .await
                .expect("building the registry clients does not panic")?;
        Ok(Self {
            sdk,
            engine: Engine::new(registries),
            inferred: Mutex::new(BoundedCache::new(MAX_INFERRED, KEEP_IDLE)),
        })
    }

    /// Loads a changed configuration: new clients, but the per-tag write
    /// locks and blob gates of `running`, so a copy that started before the
    /// reload and one that starts after it still take turns on a tag.
    pub async fn reload(config: &Config, running: &Shared) -> Result<Self, ConfigError> {
        let mut shared = Self::load(config).await?;
        shared.engine = shared.engine.sharing_locks_of(&running.engine);
        Ok(shared)
    }

    /// The engine a plan copies with: the shared one, reaching the plan's
    /// inferred hosts with the shared token clients and the hosts of
    /// `clients` (an object's own Secrets) with those.
    pub fn engine_for(
        &self,
        plan: &PromotionPlan,
        clients: impl IntoIterator<Item = (String, RegistryClient)>,
    ) -> Result<Engine, ConfigError> {
        self.engine_with(&plan.inferred, clients)
    }

    /// The engine an object copies with: the shared one, reaching `inferred`
    /// hosts with the shared token clients and the hosts of `clients` with those.
    pub fn engine_with(
        &self,
        inferred: &[InferredCredentials],
        clients: impl IntoIterator<Item = (String, RegistryClient)>,
    ) -> Result<Engine, ConfigError> {
        let mut views = Vec::new();
        for credentials in inferred {
            views.push((credentials.host().to_string(), self.inferred(credentials)?));
        }
        views.extend(clients);
        Ok(if views.is_empty() {
            self.engine.clone()
        } else {
            self.engine.with_clients(views)
        })
    }

    fn inferred(&self, credentials: &InferredCredentials) -> Result<RegistryClient, ConfigError> {
        let mut clients = self.inferred.lock().expect("lock never poisoned");
        // Keyed by host and by what the token is for (one ECR registry per host).
        let key = match credentials {
            InferredCredentials::Ecr { host, registry } => {
                format!("{host} ecr {} {}", registry.registry_id, registry.region)
            }
            InferredCredentials::EcrPublic { host } => format!("{host} ecr-public"),
        };
        let now = Instant::now();
        if let Some(client) = clients.get(&key, now) {
            return Ok(client);
        }
        let client = registries::token_client(credentials, &self.sdk)?;
        clients.insert(key, client.clone(), now);
        Ok(client)
    }
}

/// How a run starts.
#[derive(Default)]
pub struct RunOptions {
    /// Resolve and verify only.
    pub dry_run: bool,
    /// The digest an earlier run of this process pinned: the tag is not resolved again.
    pub pinned: Option<String>,
    /// The digest the previous status claims was pinned (not trusted: the tag
    /// is resolved again and must agree, or the run is refused).
    pub claimed: Option<String>,
    /// The verdict an earlier run recorded for this generation and digest:
    /// the source is not verified again.
    pub verified: Option<Verdict>,
    /// Targets (by index into the plan) already promoted: not copied again.
    pub done: Vec<(usize, TargetReport)>,
}

/// Observes, decides, and (unless refused, waiting or a dry run) promotes,
/// with clients made for this one run (the command line).
pub async fn execute(
    plan: &PromotionPlan,
    config: &Config,
    dry_run: bool,
) -> Result<Run, ConfigError> {
    let shared = Shared::load(config).await?;
    let engine = shared.engine_for(plan, [])?;
    let options = RunOptions {
        dry_run,
        ..RunOptions::default()
    };
    Ok(execute_with(&shared, &engine, plan, config, options).await)
}

/// Observes, decides, and (unless refused, waiting or a dry run) promotes
/// with the shared context and `engine` (from [`Shared::engine_for`]).
pub async fn execute_with(
    shared: &Shared,
    engine: &Engine,
    plan: &PromotionPlan,
    config: &Config,
    options: RunOptions,
) -> Run {
    let inspector = EcrInspector::new(
        &shared.sdk,
        plan.source.ecr.clone(),
        plan.source.ecr_endpoint.as_deref(),
    );
    let (digest, decided) = match (options.pinned.clone(), options.verified) {
        (Some(digest), Some(verdict)) => (Some(digest.clone()), Ok((digest, verdict))),
        (pinned, _) => {
            let observed = observe::observe(
                plan,
                &inspector,
                engine,
                pinned.as_deref(),
                options.claimed.as_deref(),
            )
            .await;
            let decided = observed.outcome.map(|observations| {
                let verdict = evaluate(
                    &plan.policy,
                    &config.verify,
                    &observations,
                    Timestamp::now(),
                );
                (observations.digest, verdict)
            });
            (observed.digest, decided)
        }
    };
    let (verdict, progress) = match decided {
        Err(error) => {
            let problem = Problem {
                reason: error.reason(),
                message: error.to_string(),
                transient: error.is_transient(),
            };
            (None, Progress::Blocked(problem))
        }
        Ok((digest, verdict)) => {
            let progress = if verdict.refused() {
                Progress::Refused
            } else if verdict.waiting() {
                Progress::Waiting
            } else if options.dry_run {
                Progress::DryRun
            } else {
                Progress::Copied(promote(plan, &shared.sdk, engine, &digest, options.done).await)
            };
            (Some(verdict), progress)
        }
    };
    Run {
        generation: plan.generation,
        targets: plan.targets.iter().map(|t| t.name.clone()).collect(),
        digest,
        verdict,
        progress,
    }
}

/// Creates the ECR Public repositories asked for, then copies the pinned
/// digest to every target whose repository is ready; one outcome per target.
async fn promote(
    plan: &PromotionPlan,
    sdk: &SdkConfig,
    engine: &Engine,
    digest: &str,
    done: Vec<(usize, TargetReport)>,
) -> Vec<TargetOutcome> {
    let mut outcomes: Vec<Option<TargetOutcome>> = vec![None; plan.targets.len()];
    let mut notes: Vec<Option<String>> = vec![None; plan.targets.len()];
    for (i, report) in done {
        if let Some(outcome) = outcomes.get_mut(i) {
            *outcome = Some(TargetOutcome::from_report(report, None));
        }
    }
    for (i, target) in plan.targets.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
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
        let copied = copy(plan, engine, digest, &targets).await;
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
    engine: &Engine,
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
/// used as it is: its catalog data is left alone (docs/api.md). The API
/// reaches only the operator's own registry, so a repository under another
/// account's alias is refused before anything is asked about it
/// ([`foreign_alias`]).
pub(crate) async fn create_repository(
    sdk: &SdkConfig,
    plan: &PublicRepositoryPlan,
) -> Result<Option<String>, Problem> {
    let public = EcrPublic::new(sdk, plan.endpoint.as_deref());
    let problem = |error: EcrPublicError| Problem {
        reason: error.reason().to_string(),
        message: error.to_string(),
        transient: error.is_transient(),
    };
    let own = public.own_aliases().await.map_err(problem)?;
    if let Some(refusal) = foreign_alias(plan, &own) {
        return Err(refusal);
    }
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

/// The refusal of `createRepository` under an alias that is not one of
/// `own` (the operator's registry aliases): the API would create the name in
/// the operator's own registry instead (pure).
pub(crate) fn foreign_alias(plan: &PublicRepositoryPlan, own: &[String]) -> Option<Problem> {
    if own.contains(&plan.alias) {
        return None;
    }
    let own = if own.is_empty() {
        "none".to_string()
    } else {
        own.join(", ")
    };
    Some(Problem {
        reason: crate::tenancy::REPOSITORY_NOT_ALLOWED.to_string(),
        message: format!(
            "createRepository: ECR Public alias {:?} is not one of the operator's own registry \
             aliases ({own}); the operator's AWS identity creates repositories only in its own \
             registry, so {}/{} is created by the account that owns that alias: create it \
             there, or remove createRepository",
            plan.alias, plan.alias, plan.name
        ),
        transient: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_repository_only_under_the_operators_own_aliases() {
        let plan = |alias: &str| PublicRepositoryPlan {
            alias: alias.into(),
            name: "app".into(),
            catalog: Default::default(),
            endpoint: None,
        };
        let own = ["acme".to_string(), "acme-labs".to_string()];
        let cases = [
            ("acme", &own[..], false),
            ("acme-labs", &own[..], false),
            ("other-org", &own[..], true),
            ("acm", &own[..], true),
            ("acme", &[][..], true),
        ];
        for (alias, own, refused) in cases {
            let refusal = foreign_alias(&plan(alias), own);
            assert_eq!(refusal.is_some(), refused, "{alias} among {own:?}");
            if let Some(problem) = refusal {
                assert_eq!(problem.reason, "RepositoryNotAllowed");
                assert!(!problem.transient);
                assert!(
                    problem.message.contains(&format!("{alias:?}")),
                    "{}",
                    problem.message
                );
            }
        }
    }
}
