//! Many images in one run: a few copies in flight at a time over one set of
//! registry clients (one connection pool and one token cache per registry), so
//! a mirror or a release of fifty images pays the start-up, the logins and the
//! TLS handshakes once. Each image is still a whole copy with its own report; a
//! failing image does not stop the others.

use super::report::{CopyReport, TargetFailure};
use super::{CopyOptions, Engine, Target};
use crate::registry::reference::ImageReference;
use futures::StreamExt;
use serde::Serialize;
use std::time::Instant;

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
