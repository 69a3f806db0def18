//! The `image-promoter` binary: a thin command line over the library.
//!
//! Subcommands: `run` (the operator),
//! `promote` / `mirror` / `copy` (one-shot engine runs for CI pipelines),
//! `crds` (print the custom resource definitions), `version` and
//! `completion` (shell completion scripts).

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use image_promoter::cli::run::LogFormat;

/// Promote container images from internal Amazon ECR to public registries.
#[derive(Debug, Parser)]
#[command(name = "image-promoter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the ImagePromotion and RegistryMirror CustomResourceDefinitions
    /// as one YAML stream (`image-promoter crds | kubectl apply -f -`).
    Crds,
    /// Copy one image, by digest with every platform, to one or more repositories.
    Copy(image_promoter::cli::copy::CopyArgs),
    /// Run one ImagePromotion without a cluster: verify its source, copy it to
    /// every target, and print the status the object would get.
    Promote(image_promoter::cli::promote::PromoteArgs),
    /// Run one sync of a RegistryMirror without a cluster and print the plan
    /// or the result; `mirror report` prints which source repositories the
    /// cluster's mirrors have fully mirrored, by tier.
    Mirror(image_promoter::cli::mirror::MirrorArgs),
    /// Print the migration view: every published repository by tier, its targets,
    /// the digests live there with their compliance, which targets are in sync,
    /// and whether the old registry can be retired.
    Report(image_promoter::cli::report::ReportArgs),
    /// Ask the operator to reconcile one ImagePromotion or RegistryMirror now
    /// (sets imagepromoter.dev/reconcile-requested-at) and wait for the result.
    Reconcile(image_promoter::cli::reconcile::ReconcileArgs),
    /// Run the operator: reconcile ImagePromotions in the cluster of
    /// KUBECONFIG or the pod's ServiceAccount.
    Run(image_promoter::cli::run::RunArgs),
    /// Print the version, the commit it was built from and the build date.
    Version(image_promoter::cli::version::VersionArgs),
    /// Print a shell completion script (`source <(image-promoter completion bash)`).
    Completion(image_promoter::cli::completion::CompletionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run(args) => {
            let level = args.log_level.as_deref().unwrap_or("info");
            let filter = image_promoter::logging::filter(level)
                .expect("--log-level was validated when parsed");
            image_promoter::logging::init(args.log_format == LogFormat::Json, filter);
        }
        _ => one_shot_logging(),
    }
    match cli.command {
        Command::Crds => print(&image_promoter::api::crds_yaml()),
        Command::Copy(args) => image_promoter::cli::copy::run(args),
        Command::Promote(args) => image_promoter::cli::promote::run(args),
        Command::Mirror(args) => image_promoter::cli::mirror::run(args),
        Command::Reconcile(args) => image_promoter::cli::reconcile::run(args),
        Command::Report(args) => image_promoter::cli::report::run(args),
        Command::Run(args) => image_promoter::cli::run::run(args),
        Command::Version(args) => image_promoter::cli::version::run(args),
        Command::Completion(args) => image_promoter::cli::completion::run(args, Cli::command()),
    }
}

/// The one-shot commands log warnings to standard error as text, filtered by
/// IMAGE_PROMOTER_LOG when it is set and valid. (The operator's logging
/// follows `run --log-level` and `--log-format`.)
fn one_shot_logging() {
    let filter = std::env::var("IMAGE_PROMOTER_LOG")
        .ok()
        .and_then(|text| image_promoter::logging::filter(&text).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    image_promoter::logging::init(false, filter);
}

fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("image-promoter: writing to stdout: {err}");
            ExitCode::FAILURE
        }
    }
}
