//! `ImagePromotion`: promote one image, once, safely.
//!
//! The source is an image in internal ECR, named by tag, digest or both. The
//! controller resolves a tag to a digest once, pins it in status, and from
//! then on works by digest: it verifies the image against the policy, copies it
//! byte for byte to every target and publishes the requested tags, never
//! moving a write-once tag. A promotion whose targets are all promoted is done;
//! later reconciles only check each target for drift.
//!
//! The same type is the input of the one-shot `image-promoter promote` command,
//! so nothing here assumes a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalog::EcrPublicRepository;
use super::credentials::RegistryCredentials;
use super::rules;
use super::verify::{VerificationEvidence, VerificationPolicy};

/// Which image to promote, what it must satisfy, and where to publish it.
// Each printcolumn(...) repeats type_ and json_path, which the lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "imagepromoter.dev",
    version = "v1alpha1",
    kind = "ImagePromotion",
    plural = "imagepromotions",
    singular = "imagepromotion",
    shortname = "promotion",
    shortname = "promotions",
    category = "imagepromoter",
    namespaced,
    status = "ImagePromotionStatus",
    derive = "PartialEq",
    doc = "Promote one container image from internal Amazon ECR to public registries: \
           verify it once, copy it by digest, publish its tags without moving any write-once tag.",
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.image",
        priority = 1,
        description = "The source image"
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.sourceDigest",
        priority = 1,
        description = "The pinned digest of the source image"
    ),
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".status.targetsReady",
        description = "Targets promoted / targets"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every target is promoted"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Compliant\")].status",
        description = "Whether the published digest still passes its effective policy"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.summary",
        description = "The Ready condition in short (the full message is in the condition)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::unique_target_repositories())]
#[x_kube(validation = rules::promotion_target_is_not_source())]
#[x_kube(validation = rules::untagged_source_needs_target_tags())]
pub struct ImagePromotionSpec {
    /// The image to promote. Immutable: to promote another image, create
    /// another ImagePromotion.
    #[x_kube(validation = rules::immutable(
        "spec.source is immutable: create a new ImagePromotion to promote another image"
    ))]
    pub source: SourceImage,
    /// What the source image must satisfy before it is copied. Every setting is
    /// raised to the operator's cluster-wide floor when that is stricter.
    #[serde(default)]
    pub verify: VerificationPolicy,
    /// Where to publish the image (1 to 16 targets, distinct names and repositories).
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub targets: Vec<PromotionTarget>,
    /// What to copy along with the image.
    #[serde(default)]
    pub copy: CopyOptions,
    /// How the published digest is watched once the promotion is Ready
    /// (docs/compliance.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceSettings>,
}

/// How often a Ready promotion's published digest is judged again against
/// its effective policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceSettings {
    /// The interval between checks (a duration such as 30m or 6h, at least
    /// 1s; jittered by 10 %). Absent: the operator's --compliance-interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = rules::compliance_interval())]
    pub interval: Option<String>,
}

/// The image a promotion starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::source_digest_agrees())]
pub struct SourceImage {
    /// Full image reference in internal ECR with a tag, a digest or both, e.g.
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2.3`. A tag is
    /// resolved to a digest once and pinned in `status.sourceDigest`; with
    /// `:tag@digest` the tag must resolve to that digest.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = rules::image_reference())]
    pub image: String,
    /// The digest the image must have (`sha256:…`). An alternative to an
    /// `@digest` suffix on image, for tools that write the digest separately;
    /// when both are given they must be equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 135))]
    #[x_kube(validation = rules::digest())]
    pub digest: Option<String>,
    /// How to pull the source. Default: the operator's AWS identity for an
    /// Amazon ECR host, anonymous otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RegistryCredentials>,
}

/// One place an image is published to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::floating_tags_are_tags())]
#[x_kube(validation = rules::create_repository_needs_ecr_public())]
pub struct PromotionTarget {
    /// Name of the target, unique within the promotion (a DNS label such as
    /// `ecr-public` or `quay`); status reports results under this name.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = rules::dns_label())]
    pub name: String,
    /// Repository to publish to, with its registry host and without tag, e.g.
    /// `public.ecr.aws/acme/app` or `quay.io/acme/app`.
    #[schemars(length(min = 1, max = 384))]
    #[x_kube(validation = rules::repository_reference())]
    pub repository: String,
    /// Tags to publish. Default: the source image's tag (a source named only
    /// by digest needs explicit tags). Every tag not listed in floatingTags is
    /// write-once: if it already points at another digest the target fails
    /// with reason TagConflict and nothing is overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), inner(length(max = 128)))]
    #[x_kube(validation = rules::tags())]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub tags: Option<Vec<String>>,
    /// Tags that may be moved to this image when they point at another one,
    /// such as `latest` or `17`. Each must also be listed in tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 128)))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub floating_tags: Vec<String>,
    /// How to push. Default: the operator's AWS identity for `public.ecr.aws`
    /// and Amazon ECR hosts; other registries need a secretRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RegistryCredentials>,
    /// Create the repository with this catalog data when it does not exist.
    /// ECR Public targets only. Absent: a missing repository fails the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_repository: Option<EcrPublicRepository>,
}

/// What is copied along with the image manifest and its blobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyOptions {
    /// Copy the image's cosign signatures (the `sha256-<digest>.sig` tag) too.
    #[serde(default = "default_true")]
    pub signatures: bool,
    /// Copy the image's OCI 1.1 referrers (SBOMs, attestations) too.
    #[serde(default = "default_true")]
    pub referrers: bool,
    /// Platforms to copy from a multi-platform image, as `os/arch` or
    /// `os/arch/variant`. Empty (the default): every platform, and the index is
    /// copied byte for byte. When set, only these platforms are copied and the
    /// targets receive a new index listing just them: its digest differs from
    /// the source's, and status.targets[].digest records it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 64)))]
    #[x_kube(validation = rules::platforms())]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub platforms: Vec<String>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            signatures: true,
            referrers: true,
            platforms: Vec::new(),
        }
    }
}

/// What the controller observed and did, written only by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePromotionStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Verified, Reconciling and Stalled (see docs/api.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The Ready condition in at most 48 characters, for `kubectl get`: its
    /// message, after its reason when Ready is not True, cut at a word with
    /// `…`. The full message is in the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The digest the source resolved to, pinned at the first resolution; every
    /// later step works from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
    /// Targets promoted out of all targets, e.g. `2/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_ready: Option<String>,
    /// One result per target, by target name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub targets: Vec<TargetResult>,
    /// What verification found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationEvidence>,
    /// The value of the annotation `imagepromoter.dev/reconcile-requested-at`
    /// that the last reconcile handled (`image-promoter reconcile` waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// The outcome of one target of a promotion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    /// The target's name from spec.targets.
    pub name: String,
    /// Digest of the image at the target: the source digest, or the digest of
    /// the filtered index when copy.platforms is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Tags that point at the digest at the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where the target stands: Pending, Copying, Promoted, Conflict or Failed.
    #[serde(default)]
    pub state: TargetState,
    /// Details of the state, e.g. which tag conflicts with which digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bytes uploaded to the target.
    #[serde(default)]
    pub bytes_copied: i64,
    /// Blobs uploaded to the target.
    #[serde(default)]
    pub blobs_copied: i32,
    /// Blobs the target already had.
    #[serde(default)]
    pub blobs_skipped: i32,
    /// Blobs mounted from another repository of the same registry instead of uploaded.
    #[serde(default)]
    pub blobs_mounted: i32,
    /// Digest of the promotion receipt the operator signed for this target
    /// (a DSSE envelope in the `sha256-<hex>.att` manifest next to the image,
    /// checked with `cosign verify-attestation`); set when the operator runs
    /// with `--attestation-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// When the state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Where one target of a promotion stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TargetState {
    /// Not started: waiting for the source to be resolved and verified.
    #[default]
    Pending,
    /// The copy is under way.
    Copying,
    /// The image and every requested tag are at the target.
    Promoted,
    /// A write-once tag points at another digest; nothing was overwritten.
    Conflict,
    /// The copy failed; the message says why and whether it is retried.
    Failed,
}

fn default_true() -> bool {
    true
}
