//! `image-promoter promote -f PROMOTION.yaml`: run one ImagePromotion once,
//! without a cluster, and print the status the object would get.
//!
//! The object is read and validated as the apiserver would ([`input`]); the
//! run itself is [`crate::promotion`]'s, the same steps the controller takes.
//! Exit 0 when every target is promoted (or a dry run verified), 1 when
//! verification refused the image or a target failed, 2 on bad usage or an
//! invalid object, 3 when only waiting is needed (a scan still running, a
//! registry unavailable): [`super::exit`].

pub mod input;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::credentials::{AuthfileArgs, ClientCredentials};
use super::exit::{FAILED, Outcome, exit};
use super::output::{OutputArgs, emit};
use super::usage_error;
use crate::api::{ImagePromotionStatus, SystemClock};
use crate::config::Config;
use crate::promotion::status::{Progress, Run};
use crate::promotion::{self, PromotionPlan, RunOptions, Shared, status};
use crate::verify::cosign::PublicKey;

const AFTER_HELP: &str = "\
Credentials: the command line reads no Kubernetes Secrets. Each registry's
credentials come from its entry in the --config file, whatever the object's
`credentials` say; a source or target with credentials.secretRef needs an entry
for its host (auth.dockerConfig or auth.basic). ECR and ECR Public hosts the
file does not list use the environment's AWS identity (GetAuthorizationToken).
Any other host authenticates with the docker client's login (--authfile, else
REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json),
else anonymously. The PEM key of spec.verify.signature.publicKey is given with
--public-key.

Tenancy: when the object names metadata.namespace, the configuration's tenancy
rules apply as in the cluster (RepositoryNotAllowed); the operator's AWS
identity goes only to ECR / ECR Public hosts or hosts the file declares with
kind: ecr / ecrPublic (CredentialsNotAllowed). Both are checked before any request.

Exit status: 0 every target promoted (with --dry-run: the source verified);
1 verification refused the source, a target failed, or the configuration
refuses the object (CredentialsNotAllowed, RepositoryNotAllowed); 2 bad usage or
an invalid object; 3 try again later: the scan is still running, or every
failure may pass by itself (RegistryUnavailable, throttling).";

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
    #[command(flatten)]
    pub auth: AuthfileArgs,
    /// The status the object would get: yaml or json as `kubectl get -o`
    /// prints it, or text (its conditions and targets, one line each).
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `promote`.
pub fn run(args: PromoteArgs) -> ExitCode {
    let (plan, config) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(Unusable::Usage(message)) => return usage_error(message),
        Err(Unusable::Refused(message)) => {
            eprintln!("image-promoter: {message}");
            return ExitCode::from(FAILED);
        }
    };
    let logins = match ClientCredentials::load(&args.auth) {
        Ok(logins) => logins,
        Err(error) => return usage_error(error),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let run = match runtime.block_on(execute(&plan, &config, &logins, args.dry_run)) {
        Ok(run) => run,
        Err(error) => return usage_error(error),
    };
    let status = status::promotion_status(&run, &SystemClock);
    let mut outcomes = outcomes(&run);
    if emit(args.output.output, &status, text).is_err() {
        outcomes.push(Outcome::Failed);
    }
    summarize(&plan.name, &status);
    exit(&outcomes)
}

/// Runs the plan as [`promotion::execute`] does, reaching the hosts the
/// configuration does not declare (nor infers AWS tokens for) with the
/// docker client's login.
async fn execute(
    plan: &PromotionPlan,
    config: &Config,
    logins: &ClientCredentials,
    dry_run: bool,
) -> Result<Run, String> {
    let shared = Shared::load(config).await.map_err(|e| e.to_string())?;
    let hosts = std::iter::once(plan.source.image.repository.registry.as_str()).chain(
        plan.targets
            .iter()
            .map(|t| t.target.repository.registry.as_str()),
    );
    let declared = |host: &str| {
        config.registry(host).is_some() || plan.inferred.iter().any(|i| i.host() == host)
    };
    let clients = logins.clients(&shared.engine, hosts, declared)?;
    let engine = shared
        .engine_for(plan, clients)
        .map_err(|e| e.to_string())?;
    let options = RunOptions {
        dry_run,
        ..RunOptions::default()
    };
    Ok(promotion::execute_with(&shared, &engine, plan, config, options).await)
}

/// How the run ended, part by part: verification, then each target.
fn outcomes(run: &Run) -> Vec<Outcome> {
    match &run.progress {
        Progress::Blocked(problem) => vec![Outcome::failure(problem.transient)],
        Progress::Refused => vec![Outcome::Refused],
        Progress::Waiting => vec![Outcome::Waiting],
        Progress::DryRun => vec![Outcome::Done],
        Progress::Copied(targets) => targets
            .iter()
            .map(|target| match &target.failure {
                None => Outcome::Done,
                Some(problem) => Outcome::failure(problem.transient),
            })
            .collect(),
    }
}

/// Why nothing was run: bad usage or input (exit 2), or an object the
/// operator's configuration refuses (its credentials or tenancy rules; exit 1).
enum Unusable {
    Usage(String),
    Refused(String),
}

impl From<String> for Unusable {
    fn from(message: String) -> Self {
        Self::Usage(message)
    }
}

/// Everything that can fail before a request: the object, the files, the plan.
fn prepare(args: &PromoteArgs) -> Result<(PromotionPlan, Config), Unusable> {
    let object = input::read(&args.file).map_err(|e| e.to_string())?;
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let public_key = args
        .public_key
        .as_deref()
        .map(read_public_key)
        .transpose()?;
    let plan = promotion::plan(&object, &config, public_key).map_err(|e| {
        let message = format!("{}: {}: {e}", args.file.display(), e.reason);
        if e.is_refusal() {
            Unusable::Refused(message)
        } else {
            Unusable::Usage(message)
        }
    })?;
    Ok((plan, config))
}

/// The PEM key of `--public-key`, shared by `promote` and `mirror`.
pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--public-key {}: {e}", path.display()))?;
    PublicKey::from_pem(&pem).map_err(|e| {
        format!(
            "--public-key {}: {e} (expected a PEM public key as `cosign generate-key-pair` writes to cosign.pub)",
            path.display()
        )
    })
}

/// The status for a person: the conditions, then one line per target.
fn text(status: &ImagePromotionStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(digest) = &status.source_digest {
        let _ = writeln!(out, "source digest  {digest}");
    }
    for condition in &status.conditions {
        let _ = writeln!(
            out,
            "{:<14} {} {}: {}",
            condition.type_, condition.status, condition.reason, condition.message
        );
    }
    for target in &status.targets {
        let _ = writeln!(
            out,
            "target {:<7} {:?} [{}]{}",
            target.name,
            target.state,
            target.tags.join(", "),
            target
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::status::{Problem, TargetOutcome};

    fn run(progress: Progress) -> Run {
        Run {
            generation: 1,
            targets: vec!["quay".into(), "public".into()],
            digest: None,
            verdict: None,
            progress,
        }
    }

    fn problem(transient: bool) -> Problem {
        Problem {
            reason: "RegistryUnavailable".into(),
            message: "503".into(),
            transient,
        }
    }

    fn target(failure: Option<Problem>) -> TargetOutcome {
        TargetOutcome {
            failure,
            ..TargetOutcome::default()
        }
    }

    #[test]
    fn a_run_ends_in_the_exit_code_its_parts_call_for() {
        use crate::cli::exit::{DONE, FAILED, TRY_LATER, exit_code};
        let cases = [
            (Progress::DryRun, DONE),
            (Progress::Waiting, TRY_LATER),
            (Progress::Refused, FAILED),
            (Progress::Blocked(problem(true)), TRY_LATER),
            (Progress::Blocked(problem(false)), FAILED),
            (Progress::Copied(vec![target(None), target(None)]), DONE),
            (
                Progress::Copied(vec![target(None), target(Some(problem(true)))]),
                TRY_LATER,
            ),
            (
                Progress::Copied(vec![
                    target(Some(problem(false))),
                    target(Some(problem(true))),
                ]),
                FAILED,
            ),
        ];
        for (progress, code) in cases {
            let shown = format!("{progress:?}");
            assert_eq!(exit_code(&outcomes(&run(progress))), code, "{shown}");
        }
    }

    #[test]
    fn the_text_status_has_a_line_per_condition_and_target() {
        let status: ImagePromotionStatus = serde_yaml_ng::from_str(
            "sourceDigest: sha256:abc\n\
             conditions:\n\
             - {type: Ready, status: 'False', reason: TagConflict, message: 1/2 targets promoted, lastTransitionTime: '2026-12-07T04:00:00Z'}\n\
             targets:\n\
             - {name: quay, tags: [v1], state: Promoted}\n\
             - {name: public, tags: [v1, latest], state: Conflict, message: v1 points elsewhere}\n",
        )
        .unwrap();
        assert_eq!(
            text(&status),
            "source digest  sha256:abc\n\
             Ready          False TagConflict: 1/2 targets promoted\n\
             target quay    Promoted [v1]\n\
             target public  Conflict [v1, latest]: v1 points elsewhere\n"
        );
    }
}
