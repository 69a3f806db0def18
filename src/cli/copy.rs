//! `image-promoter copy SRC DST…`: copy one image to one or more repositories
//! with the same engine the operator uses, and print what it did; or, with
//! `--batch FILE`, many images in one run (`batch`).

mod batch;
mod destination;

use super::credentials::{AuthfileArgs, ClientCredentials};
use super::exit::{Outcome, exit};
use super::output::{OutputArgs, OutputFormat, emit};
use super::usage_error;
use crate::config::Config;
use crate::registry::copy::batch::{BatchReport, CopyJob, JobError};
use crate::registry::copy::report::CopyReport;
use crate::registry::reference::ImageReference;
use crate::registry::{CopyOptions, Engine, Platforms};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Batch file (--batch, YAML or JSON, `-` for standard input):
  images:
    - source: quay.io/team/app:v1.2.0
      targets: [public.ecr.aws/team/app]
      tags: [v1.2.0, latest]     # optional; default: the source's tag
      floatingTags: [latest]     # optional
--platform, --signatures and --referrers apply to every image.

Credentials: hosts the --config file declares authenticate as it says; any
other host with the docker client's login: --authfile, else REGISTRY_AUTH_FILE,
else $DOCKER_CONFIG/config.json, else ~/.docker/config.json (auths, credHelpers,
credsStore); else anonymous.

Exit status: 0 every image copied to every target; 1 a copy failed or a
write-once tag would move; 2 bad usage or input (nothing was copied); 3 every
failure was one that may pass later (registry unavailable or throttling,
network): try again.";

/// Images of a batch copied at the same time unless `--parallel` says otherwise.
const DEFAULT_PARALLEL: u16 = 8;

/// Arguments of `copy`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CopyArgs {
    /// The source image: `registry/repository:tag` or `…@sha256:…`.
    #[arg(required_unless_present = "batch")]
    pub source: Option<String>,
    /// Target repositories (`registry/repository`), each optionally with the tag to
    /// publish there (`registry/repository:tag`, instead of --tag).
    #[arg(required_unless_present = "batch")]
    pub targets: Vec<String>,
    /// Copy the images a file lists (see below) instead of SOURCE TARGETS.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["source", "targets", "tags", "floating"])]
    pub batch: Option<PathBuf>,
    /// With --batch: images copied at the same time [default: 8].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: Option<u16>,
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
    #[command(flatten)]
    pub auth: AuthfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The validated request: one image, or a batch.
struct Request {
    jobs: Vec<CopyJob>,
    batch: bool,
    options: CopyOptions,
}

/// One image's copy from the command line: targets may carry their tags
/// (`DST:TAG`, see [`destination`]); each target is then checked by the
/// library like any other.
fn single_job(
    source: &str,
    targets: &[String],
    tags: &[String],
    floating: &[String],
) -> Result<CopyJob, String> {
    let source_tag = ImageReference::parse_image(source)
        .ok()
        .and_then(|image| image.tag);
    let Some(targets) = destination::target_tags(targets, source_tag.as_deref(), tags)? else {
        return job(source, targets, tags, floating);
    };
    let mut copy: Option<CopyJob> = None;
    for target in targets {
        let floating: Vec<String> = floating
            .iter()
            .filter(|f| target.tags.contains(f))
            .cloned()
            .collect();
        let one = job(source, &[target.repository], &target.tags, &floating)?;
        match &mut copy {
            Some(copy) => copy.targets.extend(one.targets),
            None => copy = Some(one),
        }
    }
    let copy = copy.expect("clap requires a target");
    let published = |tag: &String| copy.targets.iter().any(|t| t.tags.contains(tag));
    if let Some(stray) = floating.iter().find(|f| !published(f)) {
        let mut tags: Vec<&str> = Vec::new();
        for tag in copy.targets.iter().flat_map(|t| &t.tags) {
            if !tags.contains(&tag.as_str()) {
                tags.push(tag);
            }
        }
        return Err(JobError::StrayFloating {
            tag: stray.clone(),
            tags: tags.join(", "),
        }
        .to_string());
    }
    Ok(copy)
}

/// One image's copy, checked by the library ([`CopyJob::new`]).
fn job(
    source: &str,
    targets: &[String],
    tags: &[String],
    floating: &[String],
) -> Result<CopyJob, String> {
    CopyJob::new(source, targets, tags, floating).map_err(|e| e.to_string())
}

fn request(args: &CopyArgs) -> Result<Request, String> {
    if args.parallel.is_some() && args.batch.is_none() {
        return Err("--parallel applies to --batch only".into());
    }
    let (jobs, batch) = match &args.batch {
        Some(path) => (read_batch(path)?, true),
        None => {
            let source = args.source.as_deref().unwrap_or_default();
            (
                vec![single_job(
                    source,
                    &args.targets,
                    &args.tags,
                    &args.floating,
                )?],
                false,
            )
        }
    };
    let platforms = if args.platforms.is_empty() {
        Platforms::All
    } else {
        Platforms::Only(args.platforms.clone())
    };
    Ok(Request {
        jobs,
        batch,
        options: CopyOptions {
            platforms,
            signatures: args.signatures,
            referrers: args.referrers,
            ..CopyOptions::default()
        },
    })
}

fn read_batch(path: &std::path::Path) -> Result<Vec<CopyJob>, String> {
    let shown = path.display();
    let text = if path.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("batch file (standard input): {e}"))?;
        text
    } else {
        std::fs::read(path).map_err(|e| format!("batch file {shown}: {e}"))?
    };
    batch::parse(&text).map_err(|e| format!("batch file {shown}: {e}"))
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
    let logins = match ClientCredentials::load(&args.auth) {
        Ok(logins) => logins,
        Err(error) => return usage_error(error),
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
    let hosts = request.jobs.iter().flat_map(|job| {
        std::iter::once(job.source.repository.registry.as_str())
            .chain(job.targets.iter().map(|t| t.repository.registry.as_str()))
    });
    let engine = match logins.clients(&engine, hosts, |host| config.registry(host).is_some()) {
        Ok(clients) if clients.is_empty() => engine,
        Ok(clients) => engine.with_clients(clients),
        Err(error) => return usage_error(error),
    };
    let format = args.output.output;
    if request.batch {
        let report = runtime.block_on(engine.copy_batch(
            &request.jobs,
            &request.options,
            usize::from(args.parallel.unwrap_or(DEFAULT_PARALLEL)),
        ));
        let mut outcomes = batch_outcomes(&report);
        if emit(format, &report, human_batch).is_err() {
            outcomes.push(Outcome::Failed);
        }
        return exit(&outcomes);
    }
    let job = &request.jobs[0];
    let result = runtime.block_on(engine.copy(&job.source, &job.targets, &request.options));
    match result {
        Ok(report) => {
            let mut outcomes = target_outcomes(&report);
            if emit(format, &report, human).is_err() {
                outcomes.push(Outcome::Failed);
            }
            exit(&outcomes)
        }
        Err(error) => {
            eprintln!("image-promoter: {error} [{}]", error.reason());
            if format != OutputFormat::Text {
                let failure = serde_json::json!({
                    "source": job.source.to_string(),
                    "error": {
                        "reason": error.reason(),
                        "message": error.to_string(),
                        "transient": error.is_transient(),
                    },
                });
                let _ = emit(format, &failure, |_| String::new());
            }
            exit(&[Outcome::failure(error.is_transient())])
        }
    }
}

/// How each target of one copy ended.
fn target_outcomes(report: &CopyReport) -> Vec<Outcome> {
    report
        .targets
        .iter()
        .map(|target| match &target.error {
            None => Outcome::Done,
            Some(failure) if failure.reason == "TagConflict" => Outcome::Refused,
            Some(failure) => Outcome::failure(failure.transient),
        })
        .collect()
}

/// How each image (and each of its targets) of a batch ended.
fn batch_outcomes(report: &BatchReport) -> Vec<Outcome> {
    report
        .images
        .iter()
        .flat_map(|image| match (&image.report, &image.error) {
            (Some(copy), _) => target_outcomes(copy),
            (None, Some(failure)) => vec![Outcome::failure(failure.transient)],
            (None, None) => vec![Outcome::Failed],
        })
        .collect()
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

/// A batch's reports for a person, image by image, then the totals.
pub fn human_batch(report: &BatchReport) -> String {
    let mut out = String::new();
    for image in &report.images {
        match (&image.report, &image.error) {
            (Some(copy), _) => out.push_str(&human(copy)),
            (None, Some(failure)) => out.push_str(&format!(
                "source  {}: FAILED {}: {}\n",
                image.source, failure.reason, failure.message
            )),
            (None, None) => unreachable!("an image has a report or an error"),
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "batch   {} images: {} copied, {} failed; {} ms\n",
        report.images.len(),
        report.succeeded,
        report.failed,
        report.duration_ms
    ));
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

    fn single(argv: &[&str]) -> Result<CopyJob, String> {
        parse(argv).map(|r| r.jobs.into_iter().next().expect("one job"))
    }

    #[test]
    fn builds_requests_and_refuses_bad_input() {
        let ok = single(&[
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
        let default_tag = single(&["quay.io/a/b:v2", "r.io/x/b"]).unwrap();
        assert_eq!(default_tag.targets[0].tags, ["v2"]);

        let cases = [
            (
                vec!["quay.io/a/b:v1", "r.io/x/b:v1", "--tag", "v1"],
                "--tag is given too",
            ),
            (
                vec!["quay.io/a/b:v1", "r.io/x/b:v2", "--floating-tag", "latest"],
                "floating tag latest is not among the tags to publish (v2)",
            ),
            (vec!["quay.io/a/b:v1", "r.io/x/b:-v2"], "is invalid"),
            (
                vec!["quay.io/a/b:v1", "quay.io/a/b:v2"],
                "is the source repository",
            ),
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

    #[test]
    fn a_tag_on_a_target_is_the_tag_published_there() {
        let tags = |job: &CopyJob| -> Vec<(String, Vec<String>, Vec<String>)> {
            job.targets
                .iter()
                .map(|t| (t.repository.to_string(), t.tags.clone(), t.floating.clone()))
                .collect()
        };
        let owned = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (repository, tags, floating tags) per target.
        type Expected<'a> = Vec<(&'a str, &'a [&'a str], &'a [&'a str])>;
        let cases: [(&[&str], Expected<'_>); 4] = [
            (
                &["quay.io/a/b:v1", "r.io/x/b:v1.0.0"],
                vec![("r.io/x/b", &["v1.0.0"], &[])],
            ),
            // skopeo/crane style for two tags in one repository, one of them floating.
            (
                &[
                    "quay.io/a/b:v1",
                    "r.io/x/b:v1.0.0",
                    "r.io/x/b:latest",
                    "--floating-tag",
                    "latest",
                ],
                vec![("r.io/x/b", &["v1.0.0", "latest"], &["latest"])],
            ),
            // A target without a tag beside one with a tag gets the source's tag;
            // a floating tag applies where it is published.
            (
                &[
                    "quay.io/a/b:v1",
                    "r.io/x/b:latest",
                    "q.io/y/b",
                    "--floating-tag",
                    "latest",
                ],
                vec![
                    ("r.io/x/b", &["latest"], &["latest"]),
                    ("q.io/y/b", &["v1"], &[]),
                ],
            ),
            // A source by digest: a target without a tag is written by digest only.
            (
                &[
                    "quay.io/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    "r.io/x/b:v9",
                    "q.io/y/b",
                ],
                vec![("r.io/x/b", &["v9"], &[]), ("q.io/y/b", &[], &[])],
            ),
        ];
        for (argv, expected) in cases {
            let job = single(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(r, t, f)| (r.to_string(), owned(t), owned(f)))
                .collect();
            assert_eq!(tags(&job), expected, "{argv:?}");
        }
    }

    #[test]
    fn batch_excludes_the_single_image_arguments() {
        let cases = [
            (
                vec!["--batch", "b.yaml", "quay.io/a/b:v1"],
                "cannot be used with",
            ),
            (
                vec!["--batch", "b.yaml", "--tag", "v1"],
                "cannot be used with",
            ),
            (
                vec!["quay.io/a/b:v1", "r.io/x/b", "--parallel", "2"],
                "--batch",
            ),
            (
                vec!["--batch", "b.yaml", "--parallel", "0"],
                "not in 1..=64",
            ),
            (
                vec!["--batch", "/nonexistent/b.yaml"],
                "batch file /nonexistent/b.yaml:",
            ),
            (vec![], "required"),
        ];
        for (argv, message) in cases {
            let err = parse(&argv).err().unwrap_or_default();
            assert!(err.contains(message), "{argv:?}: {err}");
        }
    }
}
