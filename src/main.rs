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

/// mimalloc, not glibc's allocator: with glibc's per-thread arenas a
/// long-running operator kept memory it had freed (its RSS grew by 45 % over
/// a 10-minute soak that ended with the objects it began with).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let json = matches!(&cli.command, Command::Run(args) if args.log_format == LogFormat::Json);
    logging(json, matches!(cli.command, Command::Run(_)));
    match cli.command {
        Command::Crds => print(&image_promoter::api::crds_yaml()),
        Command::Copy(args) => image_promoter::cli::copy::run(args),
        Command::Promote(args) => image_promoter::cli::promote::run(args),
        Command::Mirror(args) => image_promoter::cli::mirror::run(args),
        Command::Reconcile(args) => image_promoter::cli::reconcile::run(args),
        Command::Run(args) => image_promoter::cli::run::run(args),
        Command::Version(args) => image_promoter::cli::version::run(args),
        Command::Completion(args) => image_promoter::cli::completion::run(args, Cli::command()),
    }
}

/// Logs to standard error, filtered by IMAGE_PROMOTER_LOG (default: info for
/// the operator, warnings for the one-shot commands); JSON lines carry the
/// fields of the current span (the object a reconcile is about).
fn logging(json: bool, operator: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("IMAGE_PROMOTER_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if operator { "info" } else { "warn" })
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
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
