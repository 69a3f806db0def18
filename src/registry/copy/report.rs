//! What a copy did, per target and for the source: the numbers a user, a status
//! and a benchmark read.

use super::plan::TagConflict;
use crate::registry::digest::Digest;
use serde::Serialize;

/// The result of one copy: one source, every target.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// The source as given.
    pub source: String,
    /// The pinned digest of what was copied.
    pub digest: Digest,
    pub media_type: String,
    /// Bytes read from the source registry (blobs and manifests).
    pub source_bytes_read: u64,
    pub source_requests: u64,
    pub targets: Vec<TargetReport>,
    pub duration_ms: u64,
}

/// What happened at one target.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub repository: String,
    /// The digest now at the target (None when nothing was written).
    pub digest: Option<Digest>,
    pub tags_written: Vec<String>,
    /// Tags that already pointed at the digest.
    pub tags_present: Vec<String>,
    pub bytes_written: u64,
    pub blobs_skipped: u64,
    pub blobs_mounted: u64,
    pub blobs_uploaded: u64,
    pub manifests_written: u64,
    /// cosign signature images (`.sig`) copied along.
    pub signatures_copied: u64,
    /// Referrers and cosign attestations / SBOMs copied along.
    pub referrers_copied: u64,
    pub requests: u64,
    pub duration_ms: u64,
    /// What the copy could not take along though asked to, and what to do
    /// about it (e.g. an index signature a platform subset does not carry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TargetFailure>,
}

/// Why a target failed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetFailure {
    /// PascalCase reason (`TagConflict`, `RegistryUnauthorized`, …).
    pub reason: String,
    pub message: String,
    /// True when retrying later may succeed without a change.
    pub transient: bool,
}

impl TargetFailure {
    pub fn conflict(conflicts: &[TagConflict]) -> Self {
        let list = conflicts
            .iter()
            .map(|c| {
                format!(
                    "tag {:?} points at {} (wanted {})",
                    c.tag, c.existing, c.wanted
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            reason: "TagConflict".into(),
            message: format!("write-once tags would move, nothing was written: {list}"),
            transient: false,
        }
    }

    pub fn from_error(error: &crate::registry::error::RegistryError) -> Self {
        Self {
            reason: error.reason().into(),
            message: error.to_string(),
            transient: error.is_transient(),
        }
    }
}

impl CopyReport {
    /// True when every target holds the image with all its tags.
    pub fn succeeded(&self) -> bool {
        self.targets.iter().all(|t| t.error.is_none())
    }
}
