//! `image-promoter promote -f PROMOTION.yaml`: run one ImagePromotion once,
//! without a cluster, and print the status the object would get.
//!
//! The object is read and validated as the apiserver would ([`input`]); the
//! run itself is [`crate::promotion`]'s, the same steps the controller takes.
//! Exit 0 when every target is promoted (or a dry run verified), 1 when
//! verification or a target failed, 2 on bad usage or an invalid object.

pub mod input;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{FAILED, usage_error};
use crate::api::{ImagePromotionStatus, SystemClock};
use crate::config::Config;
use crate::promotion::{self, PromotionPlan, status};
use crate::verify::cosign::PublicKey;

const AFTER_HELP: &str = "\
Credentials: the command line reads no Kubernetes Secrets. Each registry's
credentials come from its entry in the --config file, whatever the object's
`credentials` say; a source or target with credentials.secretRef needs an entry
for its host (auth.dockerConfig or auth.basic). ECR and ECR Public hosts the
file does not list use the environment's AWS identity (GetAuthorizationToken).
The PEM key of spec.verify.signature.publicKey is given with --public-key.

Tenancy: when the object names metadata.namespace, the configuration's tenancy
rules apply as in the cluster (RepositoryNotAllowed); the operator's AWS
identity goes only to ECR / ECR Public hosts or hosts the file declares with
kind: ecr / ecrPublic (CredentialsNotAllowed). Both are checked before any request.

Exit status: 0 every target promoted (with --dry-run: the source verified);
1 verification refused the source or waits for its scan, a target failed, or
the configuration refuses the object (CredentialsNotAllowed, RepositoryNotAllowed);
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
        Err(Unusable::Usage(message)) => return usage_error(message),
        Err(Unusable::Refused(message)) => {
            eprintln!("image-promoter: {message}");
            return ExitCode::from(FAILED);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let run = match runtime.block_on(promotion::execute(&plan, &config, args.dry_run)) {
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
