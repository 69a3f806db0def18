//! How an ECR repository is configured: tag mutability and encryption at rest.
//!
//! Tag mutability decides whether the source tag can be pointed at another
//! image after it was verified. ECR has four settings: `IMMUTABLE`, `MUTABLE`,
//! and two with exclusion filters (wildcard patterns) that flip the setting
//! for the tags they match. [`RepositorySettings::tag_is_immutable`] answers
//! for one tag; it is pure and table-tested.
//!
//! cosign writes its signatures, attestations and SBOMs as tags named after
//! the image's digest (`sha256-<hex>.sig`, `.att`, `.sbom`) and rewrites them
//! when it adds a signature, so an `IMMUTABLE` repository cannot hold a second
//! signature. `IMMUTABLE_WITH_EXCLUSION` with the filter `sha256-*` is the
//! setting for that: release tags stay immutable, signature tags do not.
//! [`signature_only`] tells such a filter from one that frees other tags.

use aws_sdk_ecr::types::{
    EncryptionType as SdkEncryptionType, ImageTagMutability, Repository as SdkRepository,
};

/// A repository's tag mutability setting, as ECR reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagMutability {
    /// No tag can be overwritten.
    Immutable,
    /// Every tag can be overwritten.
    Mutable,
    /// Tags are immutable except those matching an exclusion filter.
    ImmutableWithExclusion,
    /// Tags are mutable except those matching an exclusion filter.
    MutableWithExclusion,
    /// A setting this version does not know; treated as mutable.
    Other(String),
}

impl TagMutability {
    /// The name ECR uses.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Immutable => "IMMUTABLE",
            Self::Mutable => "MUTABLE",
            Self::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            Self::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
            Self::Other(other) => other,
        }
    }
}

/// The encryption type of a repository, as ECR reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptionType {
    /// Amazon S3 managed keys.
    Aes256,
    /// An AWS KMS key.
    Kms,
    /// Dual-layer encryption with an AWS KMS key.
    KmsDsse,
    /// A type this version does not know; satisfies no requirement but `Any`.
    Other(String),
}

impl EncryptionType {
    /// The name ECR uses.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Aes256 => "AES256",
            Self::Kms => "KMS",
            Self::KmsDsse => "KMS_DSSE",
            Self::Other(other) => other,
        }
    }
}

/// Encryption at rest of a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// The encryption type.
    pub kind: EncryptionType,
    /// The KMS key ARN, for the KMS types.
    pub kms_key: Option<String>,
}

/// What verification needs to know about a source repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositorySettings {
    /// The repository name, e.g. `team/app`.
    pub name: String,
    /// The tag mutability setting.
    pub tag_mutability: TagMutability,
    /// The wildcard exclusion filters of the `*_WITH_EXCLUSION` settings.
    pub exclusion_filters: Vec<String>,
    /// Encryption at rest.
    pub encryption: Encryption,
}

impl RepositorySettings {
    /// Reads the settings from a DescribeRepositories result. A repository
    /// without encryption configuration is AES256, ECR's default.
    pub fn from_sdk(repository: &SdkRepository) -> Self {
        let tag_mutability = match repository.image_tag_mutability() {
            Some(ImageTagMutability::Immutable) => TagMutability::Immutable,
            Some(ImageTagMutability::Mutable) | None => TagMutability::Mutable,
            Some(ImageTagMutability::ImmutableWithExclusion) => {
                TagMutability::ImmutableWithExclusion
            }
            Some(ImageTagMutability::MutableWithExclusion) => TagMutability::MutableWithExclusion,
            Some(other) => TagMutability::Other(other.as_str().to_string()),
        };
        let encryption = match repository.encryption_configuration() {
            None => Encryption {
                kind: EncryptionType::Aes256,
                kms_key: None,
            },
            Some(config) => Encryption {
                kind: match config.encryption_type() {
                    SdkEncryptionType::Aes256 => EncryptionType::Aes256,
                    SdkEncryptionType::Kms => EncryptionType::Kms,
                    SdkEncryptionType::KmsDsse => EncryptionType::KmsDsse,
                    other => EncryptionType::Other(other.as_str().to_string()),
                },
                kms_key: config.kms_key().map(str::to_string),
            },
        };
        Self {
            name: repository.repository_name().unwrap_or_default().to_string(),
            tag_mutability,
            exclusion_filters: repository
                .image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect(),
            encryption,
        }
    }

    /// The first exclusion filter matching `tag`.
    pub fn exclusion_for(&self, tag: &str) -> Option<&str> {
        self.exclusion_filters
            .iter()
            .map(String::as_str)
            .find(|filter| wildcard_matches(filter, tag))
    }

    /// The first exclusion filter that can match more than signature tags
    /// ([`signature_only`]), e.g. `latest`, `dev-*`, `*`.
    pub fn release_tag_exclusion(&self) -> Option<&str> {
        self.exclusion_filters
            .iter()
            .map(String::as_str)
            .find(|filter| !signature_only(filter))
    }

    /// Whether `tag` cannot be moved to another image. Without a tag (a
    /// source named by digest only) the question is about the repository:
    /// `IMMUTABLE`, or `IMMUTABLE_WITH_EXCLUSION` whose filters cover only
    /// signature tags (any other filter could free the image's release tags).
    pub fn tag_is_immutable(&self, tag: Option<&str>) -> bool {
        match (&self.tag_mutability, tag) {
            (TagMutability::Immutable, _) => true,
            (TagMutability::ImmutableWithExclusion, None) => self.release_tag_exclusion().is_none(),
            (TagMutability::ImmutableWithExclusion, Some(tag)) => self.exclusion_for(tag).is_none(),
            (TagMutability::MutableWithExclusion, Some(tag)) => self.exclusion_for(tag).is_some(),
            (TagMutability::MutableWithExclusion, None) => false,
            (TagMutability::Mutable | TagMutability::Other(_), _) => false,
        }
    }
}

/// What every tag cosign writes next to an image starts with: the digest's
/// algorithm, then `-` (`sha256-<hex>.sig`, `.att`, `.sbom`).
pub const SIGNATURE_TAG_PREFIX: &str = "sha256-";

/// Whether the exclusion filter `filter` can match only cosign's signature,
/// attestation and SBOM tags: everything before its first `*` starts with
/// [`SIGNATURE_TAG_PREFIX`] (`sha256-*`, `sha256-*.sig`), so no release tag
/// can match it (pure).
pub fn signature_only(filter: &str) -> bool {
    filter
        .split('*')
        .next()
        .is_some_and(|literal| literal.starts_with(SIGNATURE_TAG_PREFIX))
}

/// ECR's `WILDCARD` exclusion filter: `*` matches any run of characters
/// (including none); everything else matches itself.
fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mutability: TagMutability, filters: &[&str]) -> RepositorySettings {
        RepositorySettings {
            name: "team/app".into(),
            tag_mutability: mutability,
            exclusion_filters: filters.iter().map(|f| f.to_string()).collect(),
            encryption: Encryption {
                kind: EncryptionType::Aes256,
                kms_key: None,
            },
        }
    }

    #[test]
    fn wildcards_match_like_ecr_exclusion_filters() {
        let cases = [
            ("latest", "latest", true),
            ("latest", "latest2", false),
            ("dev-*", "dev-123", true),
            ("dev-*", "dev-", true),
            ("dev-*", "prod-1", false),
            ("*-rc*", "1.2.0-rc1", true),
            ("*-rc*", "1.2.0", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXcYYb", false),
            ("1.*.0", "1.22.0", true),
            ("1.*.0", "1.22.1", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                wildcard_matches(pattern, text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn only_filters_under_the_signature_prefix_are_signature_only() {
        let cases = [
            ("sha256-*", true),
            ("sha256-*.sig", true),
            ("sha256-*.att", true),
            ("sha256-abc*", true),
            ("sha256-", true),
            ("sha256*", false),
            ("sha*-*.sig", false),
            ("*.sig", false),
            ("*", false),
            ("latest", false),
            ("dev-*", false),
            ("", false),
        ];
        for (filter, expected) in cases {
            assert_eq!(signature_only(filter), expected, "{filter}");
        }
        let repo = settings(
            TagMutability::ImmutableWithExclusion,
            &["sha256-*", "v*", "latest"],
        );
        assert_eq!(repo.release_tag_exclusion(), Some("v*"));
        let signatures = settings(TagMutability::ImmutableWithExclusion, &["sha256-*"]);
        assert_eq!(signatures.release_tag_exclusion(), None);
    }

    #[test]
    fn tag_immutability_for_every_setting() {
        use TagMutability::*;
        let cases = [
            (Immutable, &[][..], Some("1.0"), true),
            (Immutable, &[][..], None, true),
            (Mutable, &[][..], Some("1.0"), false),
            (Mutable, &[][..], None, false),
            (
                ImmutableWithExclusion,
                &["latest", "dev-*"][..],
                Some("1.0"),
                true,
            ),
            (
                ImmutableWithExclusion,
                &["latest", "dev-*"][..],
                Some("dev-7"),
                false,
            ),
            (
                ImmutableWithExclusion,
                &["latest", "dev-*"][..],
                Some("latest"),
                false,
            ),
            (ImmutableWithExclusion, &["latest"][..], None, false),
            (ImmutableWithExclusion, &["sha256-*"][..], None, true),
            (
                ImmutableWithExclusion,
                &["sha256-*.sig", "sha256-*.att"][..],
                None,
                true,
            ),
            (ImmutableWithExclusion, &["sha256-*", "*"][..], None, false),
            (ImmutableWithExclusion, &["sha256-*"][..], Some("1.0"), true),
            (
                ImmutableWithExclusion,
                &["sha256-*"][..],
                Some("sha256-abc.sig"),
                false,
            ),
            (MutableWithExclusion, &["v*"][..], Some("v1.0"), true),
            (MutableWithExclusion, &["v*"][..], Some("latest"), false),
            (MutableWithExclusion, &["v*"][..], None, false),
            (Other("FUTURE".into()), &[][..], Some("1.0"), false),
        ];
        for (mutability, filters, tag, expected) in cases {
            let repo = settings(mutability.clone(), filters);
            assert_eq!(
                repo.tag_is_immutable(tag),
                expected,
                "{} {filters:?} {tag:?}",
                mutability.as_str()
            );
        }
    }

    #[test]
    fn settings_are_read_from_describe_repositories() {
        use aws_sdk_ecr::types::{
            EncryptionConfiguration, ImageTagMutabilityExclusionFilter,
            ImageTagMutabilityExclusionFilterType,
        };
        let repository = SdkRepository::builder()
            .repository_name("team/app")
            .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
            .image_tag_mutability_exclusion_filters(
                ImageTagMutabilityExclusionFilter::builder()
                    .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                    .filter("latest")
                    .build()
                    .unwrap(),
            )
            .encryption_configuration(
                EncryptionConfiguration::builder()
                    .encryption_type(SdkEncryptionType::KmsDsse)
                    .kms_key("arn:aws:kms:us-east-1:123456789012:key/k")
                    .build()
                    .unwrap(),
            )
            .build();
        let settings = RepositorySettings::from_sdk(&repository);
        assert_eq!(settings.name, "team/app");
        assert_eq!(
            settings.tag_mutability,
            TagMutability::ImmutableWithExclusion
        );
        assert_eq!(settings.exclusion_filters, ["latest"]);
        assert_eq!(settings.encryption.kind.as_str(), "KMS_DSSE");
        assert_eq!(
            settings.encryption.kms_key.as_deref(),
            Some("arn:aws:kms:us-east-1:123456789012:key/k")
        );

        let bare = RepositorySettings::from_sdk(&SdkRepository::builder().build());
        assert_eq!(bare.tag_mutability, TagMutability::Mutable);
        assert_eq!(bare.encryption.kind, EncryptionType::Aes256);
    }
}
