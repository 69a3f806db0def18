//! ECR Public Gallery catalog data, and whether a repository's needs updating.
//!
//! A target's `createRepository` says what the gallery should show. The
//! promoter writes it only when it differs from what the repository already
//! has, so a second run — and every later reconcile — makes no write. Fields
//! the target leaves out keep the repository's values: the promoter never
//! clears what someone else wrote.

use aws_sdk_ecrpublic::types::{RepositoryCatalogData, RepositoryCatalogDataInput};

use crate::api::{Architecture, EcrPublicRepository, OperatingSystem};

/// The catalog data the promoter manages, as ECR Public stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogData {
    /// Short description.
    pub description: Option<String>,
    /// "About" text (Markdown).
    pub about_text: Option<String>,
    /// "Usage" text (Markdown).
    pub usage_text: Option<String>,
    /// Architecture labels, e.g. `x86-64`, `ARM 64`.
    pub architectures: Vec<String>,
    /// Operating system labels, e.g. `Linux`.
    pub operating_systems: Vec<String>,
}

impl CatalogData {
    /// What a target asks for; unset fields stay unset.
    pub fn wanted(spec: &EcrPublicRepository) -> Self {
        Self {
            description: spec.description.clone(),
            about_text: spec.about_text.clone(),
            usage_text: spec.usage_text.clone(),
            architectures: spec
                .architectures
                .iter()
                .map(|a| architecture(*a).to_string())
                .collect(),
            operating_systems: spec
                .operating_systems
                .iter()
                .map(|o| operating_system(*o).to_string())
                .collect(),
        }
    }

    /// What GetRepositoryCatalogData returned.
    pub fn from_sdk(data: &RepositoryCatalogData) -> Self {
        Self {
            description: data.description().map(str::to_string),
            about_text: data.about_text().map(str::to_string),
            usage_text: data.usage_text().map(str::to_string),
            architectures: data.architectures().to_vec(),
            operating_systems: data.operating_systems().to_vec(),
        }
    }

    /// The input of CreateRepository / PutRepositoryCatalogData.
    pub fn to_input(&self) -> RepositoryCatalogDataInput {
        RepositoryCatalogDataInput::builder()
            .set_description(self.description.clone())
            .set_about_text(self.about_text.clone())
            .set_usage_text(self.usage_text.clone())
            .set_architectures(non_empty(&self.architectures))
            .set_operating_systems(non_empty(&self.operating_systems))
            .build()
    }
}

/// The catalog data to write so `current` shows what `wanted` asks, or
/// `None` when it already does. Unset wanted fields keep the current value;
/// label lists compare as sets.
pub fn catalog_update(current: &CatalogData, wanted: &CatalogData) -> Option<CatalogData> {
    let merged = CatalogData {
        description: wanted.description.clone().or(current.description.clone()),
        about_text: wanted.about_text.clone().or(current.about_text.clone()),
        usage_text: wanted.usage_text.clone().or(current.usage_text.clone()),
        architectures: pick_labels(&current.architectures, &wanted.architectures),
        operating_systems: pick_labels(&current.operating_systems, &wanted.operating_systems),
    };
    (merged != *current).then_some(merged)
}

fn pick_labels(current: &[String], wanted: &[String]) -> Vec<String> {
    let as_set = |labels: &[String]| {
        labels
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    if wanted.is_empty() || as_set(current) == as_set(wanted) {
        current.to_vec()
    } else {
        wanted.to_vec()
    }
}

fn non_empty(labels: &[String]) -> Option<Vec<String>> {
    (!labels.is_empty()).then(|| labels.to_vec())
}

/// The gallery's label for an architecture.
fn architecture(architecture: Architecture) -> &'static str {
    match architecture {
        Architecture::Arm => "ARM",
        Architecture::Arm64 => "ARM 64",
        Architecture::X86 => "x86",
        Architecture::X86_64 => "x86-64",
    }
}

/// The gallery's label for an operating system.
fn operating_system(os: OperatingSystem) -> &'static str {
    match os {
        OperatingSystem::Linux => "Linux",
        OperatingSystem::Windows => "Windows",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(description: Option<&str>, architectures: &[&str]) -> CatalogData {
        CatalogData {
            description: description.map(str::to_string),
            architectures: architectures.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn labels_are_the_ones_the_api_serializes() {
        for a in [
            Architecture::Arm,
            Architecture::Arm64,
            Architecture::X86,
            Architecture::X86_64,
        ] {
            assert_eq!(serde_json::to_value(a).unwrap(), architecture(a));
        }
        for o in [OperatingSystem::Linux, OperatingSystem::Windows] {
            assert_eq!(serde_json::to_value(o).unwrap(), operating_system(o));
        }
    }

    #[test]
    fn only_a_difference_is_written_and_unset_fields_are_kept() {
        let cases = [
            // (current, wanted, expected write)
            (
                data(Some("a"), &["x86-64"]),
                data(Some("a"), &["x86-64"]),
                None,
            ),
            (
                data(Some("a"), &["x86-64", "ARM 64"]),
                data(Some("a"), &["ARM 64", "x86-64"]),
                None,
            ),
            (data(Some("a"), &["x86-64"]), data(None, &[]), None),
            (
                data(Some("a"), &["x86-64"]),
                data(Some("b"), &[]),
                Some(data(Some("b"), &["x86-64"])),
            ),
            (
                data(Some("a"), &["x86-64"]),
                data(None, &["ARM 64"]),
                Some(data(Some("a"), &["ARM 64"])),
            ),
            (
                data(None, &[]),
                data(Some("new"), &[]),
                Some(data(Some("new"), &[])),
            ),
        ];
        for (current, wanted, expected) in cases {
            assert_eq!(
                catalog_update(&current, &wanted),
                expected,
                "{current:?} {wanted:?}"
            );
        }
    }

    #[test]
    fn a_target_spec_becomes_gallery_labels() {
        let spec = EcrPublicRepository {
            description: Some("d".into()),
            about_text: Some("# About".into()),
            usage_text: None,
            architectures: vec![Architecture::X86_64, Architecture::Arm64],
            operating_systems: vec![OperatingSystem::Linux],
        };
        let wanted = CatalogData::wanted(&spec);
        assert_eq!(wanted.architectures, ["x86-64", "ARM 64"]);
        assert_eq!(wanted.operating_systems, ["Linux"]);
        let input = wanted.to_input();
        assert_eq!(input.description(), Some("d"));
        assert_eq!(input.usage_text(), None);
        assert_eq!(input.architectures(), ["x86-64", "ARM 64"]);
    }
}
