//! The `image-promoter` binary: a thin command line over the library.
//!
//! Subcommands arrive with the issues that build them: `run` (the operator),
//! `promote` / `mirror` / `copy` (one-shot engine runs for CI pipelines) and
//! `crds` (print the custom resource definitions).

use clap::Parser;

/// Promote container images from internal Amazon ECR to public registries.
#[derive(Debug, Parser)]
#[command(name = "image-promoter", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
