//! The `image-promoter` binary: a thin command line over the library.
//!
//! Subcommands arrive with the issues that build them: `run` (the operator),
//! `promote` / `mirror` / `copy` (one-shot engine runs for CI pipelines) and
//! `crds` (print the custom resource definitions).

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env(
            "IMAGE_PROMOTER_LOG",
        ))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Crds => print(&image_promoter::api::crds_yaml()),
        Command::Copy(args) => image_promoter::cli::copy::run(args),
        Command::Promote(args) => image_promoter::cli::promote::run(args),
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
