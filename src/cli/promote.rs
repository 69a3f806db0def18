//! `image-promoter promote -f PROMOTION.yaml`: run one ImagePromotion once,
//! without a cluster, and print the status the object would get.
//!
//! The steps are the controller's, in the house order: read and validate the
//! object as the apiserver would ([`input`]); plan the run without I/O
//! ([`plan`]); observe the source ([`observe`]: tag → digest, ECR settings
//! and scan, signatures); decide with [`crate::verify::evaluate`]; unless
//! refused, waiting or a dry run, create the ECR Public repositories asked
//! for and copy with the engine; then build the status, pure ([`status`]),
//! and print it. Exit 0 when every target is promoted (or a dry run
//! verified), 1 when verification or a target failed, 2 on bad usage or an
//! invalid object.

mod cel;
pub mod input;
pub mod observe;
pub mod plan;
mod registries;
mod schema;
pub mod signatures;
pub mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_config::{BehaviorVersion, SdkConfig};
use clap::{Args, ValueEnum};
use k8s_openapi::jiff::Timestamp;

use super::{FAILED, usage_error};
use crate::api::{ImagePromotionStatus, SystemClock};
use crate::aws::{EcrInspector, EcrPublic, EcrPublicError, RepositoryCreation};
use crate::config::{Config, ConfigError};
use crate::registry::{Engine, ImageReference, Registries};
use crate::verify::cosign::PublicKey;
use crate::verify::evaluate;
use plan::{PromotionPlan, PublicRepositoryPlan};
use status::{Problem, Progress, Run, TargetOutcome};

const AFTER_HELP: &str = "\
Credentials: the command line reads no Kubernetes Secrets. Each registry's
credentials come from its entry in the --config file, whatever the object's
`credentials` say; a source or target with credentials.secretRef needs an entry
for its host (auth.dockerConfig or auth.basic). ECR and ECR Public hosts the
file does not list use the environment's AWS identity (GetAuthorizationToken).
The PEM key of spec.verify.signature.publicKey is given with --public-key.

Exit status: 0 every target promoted (with --dry-run: the source verified);
1 verification refused the source or waits for its scan, or a target failed;
2 bad usage or an invalid object.";

/// Arguments of `promote`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PromoteArgs {
    /// The ImagePromotion, as YAML for `kubectl apply` (`-`: standard input).
    #[arg(short = 'f', long = "filename", value_name = "PROMOTION.yaml")]
    pub file: PathBuf,
    /// Registry configuration (auth, CAs, limits, verification floor); see docs/config.md.
    #[arg(long, value_name = "FILE", env = "IMAGE_PROMOTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// PEM cosign public key standing in for the Secret that
    /// spec.verify.signature.publicKey names.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// Resolve and verify only: create no repository and copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Format of the printed status.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
}

/// How the status is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

/// Runs `promote`.
pub fn run(args: PromoteArgs) -> ExitCode {
    let (plan, config) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(message) => return usage_error(message),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let run = match runtime.block_on(execute(&plan, &config, args.dry_run)) {
        Ok(run) => run,
        Err(error) => return usage_error(error),
    };
    let status = status::promotion_status(&run, &SystemClock);
    if let Err(error) = print(&status, args.output) {
        eprintln!("image-promoter: writing the status to stdout: {error}");
        return ExitCode::from(FAILED);
    }
    summarize(&plan.name, &status);
    if run.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// Everything that can fail as bad usage: the object, the files, the plan.
fn prepare(args: &PromoteArgs) -> Result<(PromotionPlan, Config), String> {
    let promotion = input::read(&args.file).map_err(|e| e.to_string())?;
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let public_key = args
        .public_key
        .as_deref()
        .map(read_public_key)
        .transpose()?;
    let plan = plan::plan(&promotion, &config, public_key)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    Ok((plan, config))
}

fn read_public_key(path: &Path) -> Result<PublicKey, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--public-key {}: {e}", path.display()))?;
    PublicKey::from_pem(&pem).map_err(|e| {
        format!(
            "--public-key {}: {e} (expected a PEM public key as `cosign generate-key-pair` writes to cosign.pub)",
            path.display()
        )
    })
}

/// Observes, decides, and (unless refused, waiting or a dry run) promotes.
async fn execute(plan: &PromotionPlan, config: &Config, dry_run: bool) -> Result<Run, ConfigError> {
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

fn print(status: &ImagePromotionStatus, output: Output) -> std::io::Result<()> {
    use std::io::Write;
    let text = match output {
        Output::Yaml => serde_yaml_ng::to_string(status).expect("a status serializes"),
        Output::Json => {
            let mut json = serde_json::to_string_pretty(status).expect("a status serializes");
            json.push('\n');
            json
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// One line on standard error: the Ready condition.
fn summarize(name: &str, status: &ImagePromotionStatus) {
    if let Some(ready) = status::ready(status) {
        eprintln!(
            "image-promoter: ImagePromotion {name}: Ready={} {}: {}",
            ready.status, ready.reason, ready.message
        );
    }
}
