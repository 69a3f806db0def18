//! `image-promoter copy SRC DST…`: copy one image to one or more repositories
//! with the same engine the operator uses, and print what it did.

use super::{FAILED, usage_error};
use crate::config::Config;
use crate::registry::copy::report::CopyReport;
use crate::registry::{CopyOptions, Engine, ImageReference, Platforms, Repository, Target};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The source image: `registry/repository:tag` or `…@sha256:…`.
    pub source: String,
    /// Target repositories (`registry/repository`, no tag).
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Tag to publish in every target (repeatable). Default: the source's tag.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// A tag allowed to move to the new digest (repeatable); every other tag is write-once.
    #[arg(long = "floating-tag", value_name = "TAG")]
    pub floating: Vec<String>,
    /// Copy every platform of an index (the default).
    #[arg(long, conflicts_with = "platforms")]
    pub all_platforms: bool,
    /// Copy only this platform (`os/arch[/variant]`, repeatable); writes a new index.
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,
    /// Copy cosign signatures (`sha256-<hex>.sig`) of the image and its platforms.
    #[arg(long)]
    pub signatures: bool,
    /// Copy OCI 1.1 referrers (SBOMs, attestations) and cosign attestations.
    #[arg(long)]
    pub referrers: bool,
    /// Registry configuration (auth, CAs, limits); see docs/config.md.
    #[arg(long, value_name = "FILE", env = "IMAGE_PROMOTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// How the report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

/// The validated request.
struct Request {
    source: ImageReference,
    targets: Vec<Target>,
    options: CopyOptions,
}

fn request(args: &CopyArgs) -> Result<Request, String> {
    let source = ImageReference::parse_image(&args.source).map_err(|e| format!("source: {e}"))?;
    let tags = if args.tags.is_empty() {
        source.tag.iter().cloned().collect()
    } else {
        args.tags.clone()
    };
    for tag in tags.iter().chain(&args.floating) {
        if !crate::registry::reference::is_valid_tag(tag) {
            return Err(format!(
                "tag {tag:?} is invalid (letters, digits, '_', '.', '-'; at most 128)"
            ));
        }
    }
    if let Some(stray) = args.floating.iter().find(|f| !tags.contains(f)) {
        return Err(format!(
            "--floating-tag {stray} is not among the tags to publish ({})",
            tags.join(", ")
        ));
    }
    let targets = args
        .targets
        .iter()
        .map(|text| {
            let repository: Repository = text.parse().map_err(|e| format!("target: {e}"))?;
            if repository == source.repository {
                return Err(format!("target {repository} is the source repository"));
            }
            Ok(Target {
                repository,
                tags: tags.clone(),
                floating: args.floating.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let platforms = if args.platforms.is_empty() {
        Platforms::All
    } else {
        Platforms::Only(args.platforms.clone())
    };
    Ok(Request {
        source,
        targets,
        options: CopyOptions {
            platforms,
            signatures: args.signatures,
            referrers: args.referrers,
            ..CopyOptions::default()
        },
    })
}

/// Runs `copy`.
pub fn run(args: CopyArgs) -> ExitCode {
    let request = match request(&args) {
        Ok(request) => request,
        Err(message) => return usage_error(message),
    };
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => return usage_error(error),
        },
        None => Config::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let registries = match runtime.block_on(config.registries()) {
        Ok(registries) => registries,
        Err(error) => return usage_error(error),
    };
    let engine = Engine::new(registries);
    let result = runtime.block_on(engine.copy(&request.source, &request.targets, &request.options));
    match result {
        Ok(report) => {
            match args.output {
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serialises")
                ),
                Output::Human => print!("{}", human(&report)),
            }
            if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(FAILED)
            }
        }
        Err(error) => {
            eprintln!("image-promoter: {error} [{}]", error.reason());
            ExitCode::from(FAILED)
        }
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The report for a person.
pub fn human(report: &CopyReport) -> String {
    let mut out = format!(
        "source  {}\ndigest  {} ({})\nread    {} from the source in {} requests, {} ms\n",
        report.source,
        report.digest,
        report.media_type,
        mebibytes(report.source_bytes_read),
        report.source_requests,
        report.duration_ms
    );
    for target in &report.targets {
        let result = match &target.error {
            Some(failure) => format!("FAILED {}: {}", failure.reason, failure.message),
            None if target.tags_written.is_empty()
                && target.blobs_uploaded == 0
                && target.manifests_written == 0 =>
            {
                "up to date".to_string()
            }
            None => "copied".to_string(),
        };
        out.push_str(&format!(
            "target  {}: {result}\n        tags written [{}] present [{}]; blobs uploaded {} mounted {} skipped {}; signatures {} referrers {}; {} written; {} requests; {} ms\n",
            target.repository,
            target.tags_written.join(", "),
            target.tags_present.join(", "),
            target.blobs_uploaded,
            target.blobs_mounted,
            target.blobs_skipped,
            target.signatures_copied,
            target.referrers_copied,
            mebibytes(target.bytes_written),
            target.requests,
            target.duration_ms,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: CopyArgs,
    }

    fn parse(argv: &[&str]) -> Result<Request, String> {
        let harness = Harness::try_parse_from(std::iter::once("copy").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        request(&harness.args)
    }

    #[test]
    fn builds_requests_and_refuses_bad_input() {
        let ok = parse(&[
            "quay.io/a/b:v1",
            "public.ecr.aws/x/b",
            "--tag",
            "v1",
            "--tag",
            "latest",
            "--floating-tag",
            "latest",
        ])
        .unwrap();
        assert_eq!(ok.targets[0].tags, ["v1", "latest"]);
        assert_eq!(ok.targets[0].floating, ["latest"]);
        let default_tag = parse(&["quay.io/a/b:v2", "r.io/x/b"]).unwrap();
        assert_eq!(default_tag.targets[0].tags, ["v2"]);

        let cases = [
            (vec!["quay.io/a/b:v1", "r.io/x/b:v1"], "repository only"),
            (vec!["quay.io/a/b", "r.io/x/b"], "tag or digest"),
            (
                vec!["quay.io/a/b:v1", "quay.io/a/b"],
                "is the source repository",
            ),
            (
                vec!["quay.io/a/b:v1", "r.io/x/b", "--floating-tag", "latest"],
                "not among the tags",
            ),
            (vec!["quay.io/a/b:v1", "r.io/x/b", "--tag=-bad"], "invalid"),
        ];
        for (argv, message) in cases {
            let err = parse(&argv).err().unwrap_or_default();
            assert!(err.contains(message), "{argv:?}: {err}");
        }
    }
}
