//! `image-promoter mirror -f MIRROR.yaml`: one sync of one RegistryMirror,
//! without a cluster; `image-promoter mirror report`: which source
//! repositories are fully mirrored, by tier, from the cluster's mirrors.
//!
//! The object is read and validated as the apiserver would; the sync is
//! [`crate::mirror::sync`]'s, the same the controller runs. `--state FILE`
//! keeps the mirror's ledger between runs ([`crate::mirror::state`]), so
//! successive runs cost what the operator's successive intervals cost.

pub mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::credentials::{AuthfileArgs, ClientCredentials};
use super::exit::{FAILED, Outcome, exit};
use super::output::{OutputArgs, OutputFormat, emit};
use super::promote::{input, read_public_key};
use super::usage_error;
use crate::api::{RegistryMirror, RegistryMirrorStatus, SystemClock};
use crate::config::Config;
use crate::mirror::plan::TagState;
use crate::mirror::state::{self, MirrorIdentity};
use crate::mirror::status::{SyncSummary, blocked_status, synced_status};
use crate::mirror::sync::{RepositoryRequests, SyncReport};
use crate::mirror::{self, Ledger, MirrorSetup, SyncOptions};
use crate::promotion::{SecretAccess, Shared};

const AFTER_HELP: &str = "\
One run is one interval of the operator: list the source and every target,
read (HEAD) only new and floating tags and a rotating sample of 4 known tags
(every tag on the first run and every fullResyncInterval), then copy at most
spec.maxCopiesPerSync missing tags, newest first, by digest with every
platform, signatures and referrers. A write-once tag that points elsewhere at
a target is reported as drifted and left alone; a tag deleted at the source is
reported and kept at the targets.

--state FILE keeps what the run learnt (tag -> digest at the source and each
target, the rotating check's position, the last full resync) for the next run;
without it every run starts from a full listing. The file is written
atomically with mode 0600 and belongs to one mirror.

Verification: as for `promote`, each tag's image must satisfy spec.verify
raised to the --config file's floor before it is copied; a tag that fails is
reported as refused (VerificationFailed) and not copied. The PEM key of
spec.verify.signature.publicKey is given with --public-key. Verdicts are kept
in the --state file under a fingerprint of the policy, the floor and the keys.

Credentials: as for `promote`, from the --config file's entries, the
environment's AWS identity for ECR and ECR Public hosts it does not list, or
the docker client's login (--authfile, REGISTRY_AUTH_FILE, DOCKER_CONFIG,
~/.docker/config.json) for any other host; Secrets are not read.

A mirror with spec.suspend: true is not synced (exit 0, nothing read or written).

Exit status: 0 no selected tag failed or drifted (all in sync, or phase
Backfilling or waiting for a scan: the next runs copy the rest; with --dry-run:
the plan was printed); 1 a tag failed, drifted or was refused, the sync could
not run for good, or the configuration refuses the object; 2 bad usage, an
invalid object or an unusable --state file; 3 try again later: the sync could
not run for a reason that may pass (registry unavailable, throttling).";

/// Arguments of `mirror`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct MirrorArgs {
    #[command(subcommand)]
    pub command: Option<MirrorCommand>,
    /// The RegistryMirror, as YAML for `kubectl apply` (`-`: standard input).
    #[arg(short = 'f', long = "filename", value_name = "MIRROR.yaml")]
    pub file: Option<PathBuf>,
    /// Registry configuration (auth, CAs, limits, tenancy); see docs/config.md.
    #[arg(long, value_name = "FILE", env = "IMAGE_PROMOTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// PEM cosign public key standing in for the Secret that
    /// spec.verify.signature.publicKey names.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// The mirror's ledger, loaded before the sync and saved after it.
    #[arg(long, value_name = "STATE.json")]
    pub state: Option<PathBuf>,
    /// List and plan only: create and copy nothing (the state file is not written).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub auth: AuthfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Deprecated spelling of `-o json`.
    #[arg(long, hide = true, conflicts_with = "output")]
    pub json: bool,
}

impl MirrorArgs {
    /// The output format, `--json` included.
    fn format(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else {
            self.output.output
        }
    }
}

/// Subcommands of `mirror`.
#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Print, by tier, which source repositories the cluster's RegistryMirrors
    /// mirror fully with no drift: the repositories a migration can retire.
    Report(report::ReportArgs),
}

/// The report of `-o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    mirror: &'a MirrorIdentity,
    dry_run: bool,
    full_resync: bool,
    selected: usize,
    /// Registry requests of the observation (listings and HEADs), all repositories.
    observe_requests: u64,
    /// Registry requests of the copies.
    copy_requests: u64,
    source: &'a RepositoryRequests,
    targets: &'a [RepositoryRequests],
    copies: &'a [mirror::sync::CopyMade],
    decisions: &'a [mirror::plan::Decision],
    newly_refused: &'a [mirror::sync::RefusedTag],
    status: &'a RegistryMirrorStatus,
}

/// Runs `mirror`.
pub fn run(args: MirrorArgs) -> ExitCode {
    if let Some(MirrorCommand::Report(report)) = args.command {
        return report::run(report);
    }
    let format = args.format();
    let Some(file) = args.file.clone() else {
        return usage_error("mirror needs -f MIRROR.yaml (or the subcommand `report`)");
    };
    let object: RegistryMirror = match input::read_as(&file, "RegistryMirror") {
        Ok(object) => object,
        Err(error) => return usage_error(error),
    };
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => return usage_error(error),
        },
        None => Config::default(),
    };
    let public_key = match args.public_key.as_deref().map(read_public_key).transpose() {
        Ok(key) => key,
        Err(error) => return usage_error(error),
    };
    let logins = match ClientCredentials::load(&args.auth) {
        Ok(logins) => logins,
        Err(error) => return usage_error(error),
    };
    let setup = match mirror::setup(&object, &config, SecretAccess::None, public_key) {
        Ok(setup) => setup,
        Err(e) if e.is_refusal() => {
            eprintln!("image-promoter: {}: {}: {e}", file.display(), e.reason);
            return ExitCode::from(FAILED);
        }
        Err(e) => return usage_error(format!("{}: {}: {e}", file.display(), e.reason)),
    };
    let identity = MirrorIdentity {
        namespace: setup.namespace.clone(),
        name: setup.name.clone(),
        source: setup.source.to_string(),
    };
    if setup.suspend {
        let suspended = serde_json::json!({"mirror": identity, "suspended": true});
        let printed = emit(format, &suspended, |_| {
            format!(
                "RegistryMirror {identity}: suspended (spec.suspend is true); nothing was done\n"
            )
        });
        return exit(&[if printed.is_ok() {
            Outcome::Done
        } else {
            Outcome::Failed
        }]);
    }
    let mut ledger = match &args.state {
        Some(path) => match state::load(path, &identity) {
            Ok(ledger) => ledger.unwrap_or_default(),
            Err(error) => return usage_error(error),
        },
        None => Ledger::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let synced = match runtime.block_on(sync_once(
        &setup,
        &config,
        &logins,
        &mut ledger,
        args.dry_run,
    )) {
        Ok(synced) => synced,
        Err(message) => return usage_error(message),
    };
    let report = match synced {
        Ok(report) => report,
        Err(failure) => {
            let status = blocked_status(
                &RegistryMirrorStatus::default(),
                setup.generation,
                &failure.problem.reason,
                &failure.problem.message,
                !failure.transient,
                &SystemClock,
            );
            if format != OutputFormat::Text {
                let _ = emit(format, &status, |_| String::new());
            }
            eprintln!(
                "image-promoter: RegistryMirror {identity}: {}: {}",
                failure.problem.reason, failure.problem.message
            );
            return exit(&[Outcome::failure(failure.transient)]);
        }
    };
    if let (Some(path), false) = (&args.state, args.dry_run)
        && let Err(error) = state::save(path, &identity, &ledger)
    {
        eprintln!("image-promoter: {error}");
        return ExitCode::from(FAILED);
    }
    let summary = SyncSummary {
        generation: setup.generation,
        targets: &report.targets,
        selected: report.selected,
        decisions: &report.decisions,
        full_resync: report.full_resync && !report.dry_run,
    };
    let status = synced_status(&RegistryMirrorStatus::default(), &summary, &SystemClock);
    let all = |r: &[RepositoryRequests]| r.iter().map(|r| r.registry_requests).sum::<u64>();
    let full = JsonReport {
        mirror: &identity,
        dry_run: report.dry_run,
        full_resync: report.full_resync,
        selected: report.selected,
        observe_requests: report.source_requests.registry_requests + all(&report.target_requests),
        copy_requests: report.copies.iter().map(|c| c.requests).sum(),
        source: &report.source_requests,
        targets: &report.target_requests,
        copies: &report.copies,
        decisions: &report.decisions,
        newly_refused: &report.newly_refused,
        status: &status,
    };
    let mut outcomes = tag_outcomes(&report);
    if emit(format, &full, |_| text(&identity, &report, &status)).is_err() {
        outcomes.push(Outcome::Failed);
    }
    exit(&outcomes)
}

/// How each selected tag ended at each target. Pending and waiting tags are
/// the next runs' work (the mirror is backfilling), not a failure; a failed
/// tag counts as failed whatever its cause (the ledger retries it with
/// backoff, so a run that only finds it failing again is no news to wait for).
fn tag_outcomes(report: &SyncReport) -> Vec<Outcome> {
    report
        .decisions
        .iter()
        .map(|decision| match &decision.state {
            TagState::Drifted { .. } | TagState::Refused(_) => Outcome::Refused,
            TagState::Failed(_) => Outcome::Failed,
            _ => Outcome::Done,
        })
        .collect()
}

/// Loads the shared context and runs one sync; Err for an unusable configuration.
async fn sync_once(
    setup: &MirrorSetup,
    config: &Config,
    logins: &ClientCredentials,
    ledger: &mut Ledger,
    dry_run: bool,
) -> Result<Result<SyncReport, mirror::SyncFailure>, String> {
    let shared = Shared::load(config).await.map_err(|e| e.to_string())?;
    let hosts = std::iter::once(setup.source.registry.as_str())
        .chain(setup.targets.iter().map(|t| t.repository.registry.as_str()));
    let declared = |host: &str| {
        config.registry(host).is_some() || setup.inferred.iter().any(|i| i.host() == host)
    };
    let clients = logins.clients(&shared.engine, hosts, declared)?;
    let engine = shared
        .engine_with(&setup.inferred, clients)
        .map_err(|e| e.to_string())?;
    let options = SyncOptions {
        dry_run,
        now: k8s_openapi::jiff::Timestamp::now().as_second(),
    };
    Ok(mirror::sync(setup, &engine, &shared.sdk, ledger, options).await)
}

/// The sync for a person: what changed, then a table of the targets.
fn text(identity: &MirrorIdentity, report: &SyncReport, status: &RegistryMirrorStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verb = if report.dry_run {
        "would copy"
    } else {
        "copied"
    };
    let _ = writeln!(
        out,
        "RegistryMirror {identity}: {} selected tags{}{}",
        report.selected,
        if report.full_resync {
            ", full resync"
        } else {
            ""
        },
        if report.dry_run { ", dry run" } else { "" }
    );
    for decision in &report.decisions {
        let line = match &decision.state {
            TagState::InSync => continue,
            TagState::Copy => format!("{verb:<10} {} -> {}", decision.tag, decision.target_name),
            TagState::Move { from } => format!(
                "{:<10} {} -> {} (was {from})",
                if report.dry_run {
                    "would move"
                } else {
                    "moved"
                },
                decision.tag,
                decision.target_name
            ),
            TagState::Pending => format!(
                "{:<10} {} -> {}",
                "pending", decision.tag, decision.target_name
            ),
            TagState::Drifted { message } => {
                format!(
                    "{:<10} {} at {}: {message}",
                    "drifted", decision.tag, decision.target_name
                )
            }
            TagState::Failed(problem) => format!(
                "{:<10} {} at {}: {}: {}",
                "failed", decision.tag, decision.target_name, problem.reason, problem.message
            ),
            TagState::Refused(problem) => format!(
                "{:<10} {} for {}: {}: {}",
                "refused", decision.tag, decision.target_name, problem.reason, problem.message
            ),
            TagState::Waiting(problem) => format!(
                "{:<10} {} for {}: {}: {}",
                "waiting", decision.tag, decision.target_name, problem.reason, problem.message
            ),
            TagState::DeletedAtSource => format!(
                "{:<10} {} still at {} (kept)",
                "deleted", decision.tag, decision.target_name
            ),
        };
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "TARGET", "SELECTED", "IN SYNC", "PENDING", "DRIFTED", "FAILED", "REFUSED"
    );
    for target in &status.targets {
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            target.name,
            target.selected,
            target.in_sync,
            target.pending,
            target.drifted,
            target.failed,
            target.refused
        );
    }
    let requests = |r: &RepositoryRequests| {
        format!(
            "{}: {} requests ({} listing pages, {} HEADs)",
            r.repository, r.registry_requests, r.listing_pages, r.heads
        )
    };
    let _ = writeln!(out, "observed {}", requests(&report.source_requests));
    for target in &report.target_requests {
        let _ = writeln!(out, "observed {}", requests(target));
    }
    if let Some(ready) = crate::api::conditions::find_condition(&status.conditions, "Ready") {
        let _ = writeln!(
            out,
            "phase {}; Ready={} {}: {}",
            status.phase.map_or("-".to_string(), |p| format!("{p:?}")),
            ready.status,
            ready.reason,
            ready.message
        );
    }
    out
}
