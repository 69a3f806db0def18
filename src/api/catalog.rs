//! What to create when an ECR Public target repository does not exist yet.
//!
//! ECR Public shows a repository's catalog data on gallery.ecr.aws, so a
//! repository created by the promoter should arrive with its description and
//! usage text rather than empty. The limits below are ECR Public's own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Create the ECR Public repository if it is missing, with this catalog data.
/// An existing repository is used as it is; its catalog data is not changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcrPublicRepository {
    /// Short description shown in the ECR Public Gallery (at most 1024 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Longer "About" text, in Markdown (at most 25600 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 25600))]
    pub about_text: Option<String>,
    /// "Usage" text, in Markdown: how to pull and run the image (at most 25600 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 25600))]
    pub usage_text: Option<String>,
    /// Architectures the gallery lists for the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub architectures: Vec<Architecture>,
    /// Operating systems the gallery lists for the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub operating_systems: Vec<OperatingSystem>,
}

/// An architecture label of the ECR Public Gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Architecture {
    /// 32-bit ARM.
    #[serde(rename = "ARM")]
    Arm,
    /// 64-bit ARM (arm64, aarch64).
    #[serde(rename = "ARM 64")]
    Arm64,
    /// 32-bit x86.
    #[serde(rename = "x86")]
    X86,
    /// 64-bit x86 (amd64).
    #[serde(rename = "x86-64")]
    X86_64,
}

/// An operating system label of the ECR Public Gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OperatingSystem {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
}
