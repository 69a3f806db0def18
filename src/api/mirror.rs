//! `RegistryMirror`: keep selected tags of one repository the same in others.
//!
//! During the migration away from Quay.io, a mirror first backfills the
//! history of a repository (which ECR's own replication does not do) and then
//! keeps up on an interval, at a cost proportional to what changed. It follows
//! the promotion's write-once rule: a target tag that points at another digest
//! than the source's is reported as drift, not overwritten, unless it matches a
//! floating pattern.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalog::EcrPublicRepository;
use super::credentials::RegistryCredentials;
use super::promotion::ComplianceSettings;
use super::rules;
use super::verify::VerificationPolicy;

/// Which repository to mirror, which of its tags, where to, and how often.
// Each printcolumn(...) repeats type_ and json_path, which the lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "imagepromoter.dev",
    version = "v1alpha1",
    kind = "RegistryMirror",
    plural = "registrymirrors",
    singular = "registrymirror",
    shortname = "mirror",
    shortname = "mirrors",
    category = "imagepromoter",
    namespaced,
    status = "RegistryMirrorStatus",
    derive = "PartialEq",
    doc = "Keep selected tags of one repository identical in other registries: backfill \
           history, then follow new tags on an interval, reporting drift instead of overwriting it.",
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.repository",
        priority = 1,
        description = "The source repository"
    ),
    printcolumn(
        name = "Tier",
        type_ = "string",
        json_path = ".spec.tier",
        priority = 1,
        description = "Migration tier"
    ),
    printcolumn(
        name = "In Sync",
        type_ = "integer",
        json_path = ".status.tags.inSync",
        description = "Selected tags identical at every target"
    ),
    printcolumn(
        name = "Drifted",
        type_ = "integer",
        json_path = ".status.tags.drifted",
        description = "Selected tags that point elsewhere at a target"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the last sync left every selected tag in sync"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.summary",
        description = "The Ready condition in short (the full message is in the condition)"
    ),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        description = "Whether syncs are stopped (spec.suspend)"
    ),
    printcolumn(
        name = "Last Sync",
        type_ = "date",
        json_path = ".status.lastSyncTime",
        priority = 1,
        description = "When the last sync finished"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::unique_target_repositories())]
#[x_kube(validation = rules::mirror_target_is_not_source())]
pub struct RegistryMirrorSpec {
    /// The repository to mirror.
    pub source: SourceRepository,
    /// Where to mirror it (1 to 16 targets, distinct names and repositories).
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub targets: Vec<MirrorTarget>,
    /// Which tags to mirror. Default: every tag.
    #[serde(default)]
    pub tags: TagSelector,
    /// How often to look for new and changed tags, as a duration such as `10m`
    /// or `1h` (at least 1m).
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = rules::mirror_interval())]
    pub interval: String,
    /// Stop syncing, keeping status as it is, until set back to false.
    #[serde(default)]
    pub suspend: bool,
    /// The most tags copied in one sync (default 50), newest first: a long
    /// backfill proceeds over several intervals without starving other objects.
    #[serde(default = "default_max_copies_per_sync")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_copies_per_sync: i32,
    /// How often every selected tag is read again at the source and each
    /// target, as a duration such as `24h` (default, at least 1m). Between
    /// these full resyncs a sync lists tags and reads only new and floating
    /// tags and a small rotating sample of the others.
    #[serde(default = "default_full_resync_interval")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = rules::mirror_interval())]
    pub full_resync_interval: String,
    /// What each tag's image must satisfy before it is copied, raised to the
    /// operator's floor (docs/config.md): the same schema as an
    /// ImagePromotion's `spec.verify`. Tag immutability, encryption and scan
    /// rules need a source in Amazon ECR (a source elsewhere fails a rule that
    /// requires them, saying so); signatures are checked wherever the source
    /// is. A tag that fails is not copied and is reported with reason
    /// `VerificationFailed`. Absent: only the floor applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerificationPolicy>,
    /// How often each in-sync tag's image is judged again against the
    /// effective policy once the mirror applies verification (spec.verify or
    /// the operator's floor): its current ECR scan findings, its ignore
    /// entries' dates, its signature against the keys as they are now. Tags
    /// are never copied or moved by this check; a tag that no longer passes
    /// is counted in `status.tags.noncompliant` and listed in
    /// `status.noncompliantTags` (docs/compliance.md). Absent: the
    /// operator's --compliance-interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceSettings>,
    /// Migration tier of the repository, for the migration plan and for
    /// filtering: by convention `Gold`, `Silver` or `Bronze`, but any label
    /// value is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = rules::tier())]
    pub tier: Option<String>,
}

/// The repository a mirror copies from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRepository {
    /// Repository with its registry host and without tag, e.g. `quay.io/acme/app`.
    #[schemars(length(min = 1, max = 384))]
    #[x_kube(validation = rules::repository_reference())]
    pub repository: String,
    /// How to pull. Default: the operator's AWS identity for Amazon ECR and
    /// ECR Public hosts, anonymous otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RegistryCredentials>,
}

/// One repository a mirror keeps in sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::create_repository_needs_ecr_public())]
pub struct MirrorTarget {
    /// Name of the target, unique within the mirror (a DNS label such as `ecr-public`).
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = rules::dns_label())]
    pub name: String,
    /// Repository to mirror to, with its registry host and without tag, e.g.
    /// `public.ecr.aws/acme/app`.
    #[schemars(length(min = 1, max = 384))]
    #[x_kube(validation = rules::repository_reference())]
    pub repository: String,
    /// How to push. Default: the operator's AWS identity for `public.ecr.aws`
    /// and Amazon ECR hosts; other registries need a secretRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RegistryCredentials>,
    /// Create the repository with this catalog data when it does not exist.
    /// ECR Public targets only. Absent: a missing repository fails the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_repository: Option<EcrPublicRepository>,
}

/// Which source tags a mirror copies. A tag is selected when it matches an
/// include pattern (or there are none), matches no exclude pattern, satisfies
/// the semver range (if given) and is among the newest N (if given).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagSelector {
    /// Regular expressions (RE2 syntax, unanchored: add `^` and `$`); a tag
    /// matching any of them is a candidate. Empty: every tag is a candidate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 512)))]
    #[x_kube(validation = rules::non_empty_patterns())]
    pub include: Vec<String>,
    /// Regular expressions (RE2 syntax, unanchored); a tag matching any of them
    /// is never mirrored, e.g. `-rc[0-9]*$`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 512)))]
    #[x_kube(validation = rules::non_empty_patterns())]
    pub exclude: Vec<String>,
    /// Only tags that are full semantic versions (`1.2.3`, a leading `v`
    /// allowed) and satisfy this range, written as Flux and Helm users write
    /// them: `^2.1`, `~1.4`, `1.2.x`, `>=1.0.0 <3.0.0` (or with a comma),
    /// `1.2 - 1.4`, `^1 || ^3`. Pre-releases match only a range that names a
    /// pre-release of the same version; `latest` or a commit hash never match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub semver: Option<String>,
    /// Only the newest N selected tags: by semantic version when semver is
    /// set, otherwise by the image's creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub newest: Option<i32>,
    /// Regular expressions (RE2 syntax, unanchored) for tags that may move at
    /// the targets, such as `^latest$` or `^[0-9]+$`. Every other tag is
    /// write-once: when it points elsewhere at a target it is reported as
    /// drifted and left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 512)))]
    #[x_kube(validation = rules::non_empty_patterns())]
    pub floating: Vec<String>,
}

/// What the controller observed and did, written only by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryMirrorStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled (see docs/api.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The Ready condition in at most 48 characters, for `kubectl get`: its
    /// message, after its reason when Ready is not True, cut at a word with
    /// `…`. The full message is in the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// `Backfilling` while selected tags are still to be copied, `Synced`
    /// once none is pending (drifted or failed tags may remain: see the counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MirrorPhase>,
    /// Selected tags by state, counted over all targets' worst state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagCounts>,
    /// Selected tags by state at each target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub targets: Vec<TargetTagCounts>,
    /// The first tags that drifted, failed or were refused by verification,
    /// with reasons (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<TagFailure>,
    /// In-sync tags whose image no longer passes the effective policy at
    /// the last compliance check, by tag (at most 10; `tags.noncompliant`
    /// counts them all). The tags stay where they are: nothing is copied or
    /// moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncompliant_tags: Vec<TagCompliance>,
    /// The latest receipts this operator process wrote or found for the
    /// mirror's copies, newest first (at most 10; written only with
    /// `--attestation-key`). A mirror may hold thousands of tags, so the
    /// status names only the latest: every mirrored digest's receipt is at
    /// its target in cosign's `.att` layout, where `cosign
    /// verify-attestation --type https://slsa.dev/verification_summary/v1`
    /// finds it (docs/verification.md). After a restart the list starts
    /// again with the next copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<MirrorReceipt>,
    /// When the last sync that changed the status finished (a status write
    /// is skipped when only timestamps would change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When every selected tag was last read again at the source and each target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_resync_time: Option<Time>,
    /// The value of the annotation `imagepromoter.dev/reconcile-requested-at`
    /// that the last sync handled (`image-promoter reconcile` waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Where a mirror is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MirrorPhase {
    /// Selected tags remain to be copied; each sync copies at most
    /// spec.maxCopiesPerSync of them, newest first.
    Backfilling,
    /// No selected tag is waiting to be copied.
    Synced,
}

/// Selected tags by state at one target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetTagCounts {
    /// The target's name from spec.targets.
    pub name: String,
    /// Tags the selector picked at the source.
    #[serde(default)]
    pub selected: i32,
    /// Tags identical at this target.
    #[serde(default)]
    pub in_sync: i32,
    /// Tags not yet copied to this target.
    #[serde(default)]
    pub pending: i32,
    /// Tags that point at another digest at this target and were left alone.
    #[serde(default)]
    pub drifted: i32,
    /// Tags whose copy to this target failed.
    #[serde(default)]
    pub failed: i32,
    /// Tags not copied to this target because their image fails verification.
    #[serde(default)]
    pub refused: i32,
}

/// Number of selected tags in each state. A tag counts once, in the worst
/// state it has at any target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagCounts {
    /// Tags the selector picked at the source.
    #[serde(default)]
    pub selected: i32,
    /// Tags identical at every target.
    #[serde(default)]
    pub in_sync: i32,
    /// Tags not yet copied to every target.
    #[serde(default)]
    pub pending: i32,
    /// Tags that point at another digest at some target and were left alone.
    #[serde(default)]
    pub drifted: i32,
    /// Tags whose copy failed at some target.
    #[serde(default)]
    pub failed: i32,
    /// Tags not copied because their image fails verification (spec.verify
    /// raised to the operator's floor).
    #[serde(default)]
    pub refused: i32,
    /// In-sync tags whose image no longer passes the effective policy at the
    /// last compliance check (new findings, an expired ignore entry, a
    /// revoked key). Also counted in inSync: the tags are where they should
    /// be, and are never moved for this.
    #[serde(default)]
    pub noncompliant: i32,
}

/// An in-sync tag whose image no longer passes the effective policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagCompliance {
    /// The tag.
    pub tag: String,
    /// The source digest it names (the same at every target).
    pub digest: String,
    /// VulnerabilitiesFound, IgnoreExpired, SignatureInvalid or ScanUnavailable.
    pub reason: String,
    /// What is wrong: the CVEs, the expired ignore entries or the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The receipt of one mirrored tag at one target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorReceipt {
    /// The tag copied.
    pub tag: String,
    /// The target's name from spec.targets.
    pub target: String,
    /// The digest at the target the receipt is about.
    pub digest: String,
    /// The receipt's digest (the DSSE envelope's layer in the target's
    /// `sha256-<digest>.att` manifest).
    pub receipt: String,
}

/// One tag that failed or drifted at one target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagFailure {
    /// The tag.
    pub tag: String,
    /// The target's name from spec.targets.
    pub target: String,
    /// PascalCase reason, e.g. TagDrifted, VerificationFailed or RegistryUnavailable.
    pub reason: String,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn default_interval() -> String {
    "10m".to_string()
}

fn default_max_copies_per_sync() -> i32 {
    50
}

fn default_full_resync_interval() -> String {
    "24h".to_string()
}
