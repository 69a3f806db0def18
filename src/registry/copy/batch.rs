//! Many images in one run: a few copies in flight at a time over one set of
//! registry clients (one connection pool and one token cache per registry), so
//! a mirror or a release of fifty images pays the start-up, the logins and the
//! TLS handshakes once. Each image is still a whole copy with its own report; a
//! failing image does not stop the others.

use super::report::{CopyReport, TargetFailure};
use super::{CopyOptions, Engine, Target};
use crate::registry::reference::ImageReference;
use crate::registry::reference::{Repository, is_valid_tag};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// Why a copy request cannot be run as asked (checked before any request,
/// for the command line and the controller alike).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The source is not an image reference.
    #[error("source: {0}")]
    Source(String),
    /// A tag is not a valid tag.
    #[error("tag {0:?} is invalid (letters, digits, '_', '.', '-'; at most 128)")]
    InvalidTag(String),
    /// A floating tag is not published.
    #[error("floating tag {tag} is not among the tags to publish ({tags})")]
    StrayFloating {
        /// The floating tag.
        tag: String,
        /// The tags to publish, comma-separated.
        tags: String,
    },
    /// A target is not a repository reference.
    #[error("target: {0}")]
    Target(String),
    /// A target is the source repository.
    #[error("target {0} is the source repository")]
    TargetIsSource(String),
    /// Two images of a batch would write one tag.
    #[error(
        "images[{first}] ({first_source}) and images[{second}] ({second_source}) both publish \
         {tag}; a tag can name one image"
    )]
    SharedTag {
        /// The first image's index and source.
        first: usize,
        first_source: String,
        /// The second image's index and source.
        second: usize,
        second_source: String,
        /// `repository:tag`.
        tag: String,
    },
}

impl CopyJob {
    /// One image's copy, checked: a valid source, valid tags (default: the
    /// source's tag), floating tags among them, targets that are repositories
    /// other than the source.
    pub fn new(
        source: &str,
        targets: &[String],
        tags: &[String],
        floating: &[String],
    ) -> Result<Self, JobError> {
        let source =
            ImageReference::parse_image(source).map_err(|e| JobError::Source(e.to_string()))?;
        let tags: Vec<String> = if tags.is_empty() {
            source.tag.iter().cloned().collect()
        } else {
            tags.to_vec()
        };
        if let Some(bad) = tags.iter().chain(floating).find(|t| !is_valid_tag(t)) {
            return Err(JobError::InvalidTag(bad.clone()));
        }
        if let Some(stray) = floating.iter().find(|f| !tags.contains(f)) {
            return Err(JobError::StrayFloating {
                tag: stray.clone(),
                tags: tags.join(", "),
            });
        }
        let targets = targets
            .iter()
            .map(|text| {
                let repository: Repository =
                    text.parse()
                        .map_err(|e: crate::registry::reference::ReferenceError| {
                            JobError::Target(e.to_string())
                        })?;
                if repository == source.repository {
                    return Err(JobError::TargetIsSource(repository.to_string()));
                }
                Ok(Target {
                    repository,
                    tags: tags.clone(),
                    floating: floating.to_vec(),
                })
            })
            .collect::<Result<Vec<_>, JobError>>()?;
        Ok(Self { source, targets })
    }
}

/// One writer per tag: two different images of one batch writing the same
/// tag would race for it.
pub fn check_one_writer_per_tag(jobs: &[CopyJob]) -> Result<(), JobError> {
    let mut writers: HashMap<String, usize> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        for target in &job.targets {
            for tag in &target.tags {
                let name = format!("{}:{tag}", target.repository);
                if let Some(first) = writers.insert(name.clone(), i)
                    && jobs[first].source != job.source
                {
                    return Err(JobError::SharedTag {
                        first,
                        first_source: jobs[first].source.to_string(),
                        second: i,
                        second_source: job.source.to_string(),
                        tag: name,
                    });
                }
            }
        }
    }
    Ok(())
}

/// One image of a batch: a source and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyJob {
    pub source: ImageReference,
    pub targets: Vec<Target>,
}

/// What a batch did, image by image in the order given.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReport {
    pub images: Vec<ImageOutcome>,
    /// Images copied to every target.
    pub succeeded: usize,
    /// Images with at least one failed target, or whose source could not be read.
    pub failed: usize,
    pub duration_ms: u64,
}

/// One image of a batch: its report, or why its source could not be read.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageOutcome {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<CopyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TargetFailure>,
}

impl ImageOutcome {
    pub fn succeeded(&self) -> bool {
        self.report.as_ref().is_some_and(CopyReport::succeeded)
    }
}

impl BatchReport {
    pub fn succeeded(&self) -> bool {
        self.failed == 0
    }
}

impl Engine {
    /// Copies every job, at most `parallel` images at a time.
    pub async fn copy_batch(
        &self,
        jobs: &[CopyJob],
        options: &CopyOptions,
        parallel: usize,
    ) -> BatchReport {
        let started = Instant::now();
        // Unordered, so a slow image does not hold a slot after the others finish;
        // the report puts them back in the order given.
        let mut done: Vec<(usize, ImageOutcome)> = futures::stream::iter(
            jobs.iter()
                .enumerate()
                .map(|(index, job)| async move { (index, self.copy_image(job, options).await) }),
        )
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
        done.sort_unstable_by_key(|(index, _)| *index);
        let images: Vec<ImageOutcome> = done.into_iter().map(|(_, image)| image).collect();
        let succeeded = images.iter().filter(|i| i.succeeded()).count();
        BatchReport {
            failed: images.len() - succeeded,
            succeeded,
            images,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }

    async fn copy_image(&self, job: &CopyJob, options: &CopyOptions) -> ImageOutcome {
        let source = job.source.to_string();
        match self.copy(&job.source, &job.targets, options).await {
            Ok(report) => ImageOutcome {
                source,
                report: Some(report),
                error: None,
            },
            Err(error) => ImageOutcome {
                source,
                report: None,
                error: Some(TargetFailure {
                    reason: error.reason().into(),
                    message: error.to_string(),
                    transient: error.is_transient(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_copy_request_is_checked_before_any_request() {
        let ok = CopyJob::new("r.io/a/b:v1", &strings(&["q.io/a/b"]), &[], &[]).unwrap();
        assert_eq!(ok.targets[0].tags, ["v1"], "the source tag by default");
        let cases = [
            (
                "r.io/a/b:v1",
                vec!["q.io/a/b"],
                vec!["bad tag"],
                vec![],
                "is invalid",
            ),
            (
                "r.io/a/b:v1",
                vec!["q.io/a/b"],
                vec!["v1"],
                vec!["latest"],
                "not among",
            ),
            (
                "r.io/a/b:v1",
                vec!["r.io/a/b"],
                vec![],
                vec![],
                "is the source repository",
            ),
            (
                "r.io/a/b:v1",
                vec!["q.io/a/b:v1"],
                vec![],
                vec![],
                "target:",
            ),
            ("", vec!["q.io/a/b"], vec![], vec![], "source:"),
        ];
        for (source, targets, tags, floating, expected) in cases {
            let error = CopyJob::new(
                source,
                &strings(&targets),
                &strings(&tags),
                &strings(&floating),
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains(expected), "{expected:?} not in {error}");
        }
    }

    #[test]
    fn one_writer_per_tag_in_a_batch() {
        let job = |source: &str| {
            CopyJob::new(source, &strings(&["q.io/a/b"]), &strings(&["v1"]), &[]).unwrap()
        };
        assert_eq!(
            check_one_writer_per_tag(&[job("r.io/a/b:v1"), job("r.io/a/b:v1")]),
            Ok(())
        );
        let error =
            check_one_writer_per_tag(&[job("r.io/a/b:v1"), job("r.io/a/c:v1")]).unwrap_err();
        assert!(
            error.to_string().contains("both publish q.io/a/b:v1"),
            "{error}"
        );
    }
}
