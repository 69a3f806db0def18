//! Which source tags a mirror copies: `spec.tags` applied to a listing of the
//! source repository, pure.
//!
//! A tag is selected when it matches an include pattern (or there are none),
//! matches no exclude pattern, satisfies the semver range (if given) and is
//! among the newest N (if given). Tags of artifacts attached to an image
//! (cosign's `sha256-<hex>.sig` / `.att` / `.sbom`, the referrers fallback
//! `sha256-<hex>`) are never selected: they travel with their image.
//!
//! Newest N orders by semantic version when a range is given or when the
//! listing has no push times (tags that are not versions rank below every
//! version, by name); otherwise by push time, newest first, then by name.

use regex::{Regex, RegexBuilder};

use super::semver::{Range, RangeError, Version};
use crate::api::TagSelector;

/// Compiled patterns are limited in size, so a hostile one cannot take the
/// operator's memory.
const MAX_COMPILED_PATTERN: usize = 1 << 20;

/// One tag of the source repository as a listing gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceTag {
    pub tag: String,
    /// When it was pushed (seconds since the epoch), where the registry's API says.
    pub pushed: Option<i64>,
}

/// Why a selector cannot be used; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("spec.tags.{field}[{index}]: {message}")]
    Pattern {
        field: &'static str,
        index: usize,
        message: String,
    },
    #[error("spec.tags.semver: {0}")]
    Range(#[from] RangeError),
    #[error("spec.tags.newest must be at least 1")]
    Newest,
}

impl SelectionError {
    /// `InvalidTagFilter`: the object must change.
    pub fn reason(&self) -> &'static str {
        crate::api::reasons::INVALID_TAG_FILTER
    }
}

/// `spec.tags`, compiled.
#[derive(Clone, Debug)]
pub struct TagSelection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    floating: Vec<Regex>,
    range: Option<Range>,
    newest: Option<usize>,
}

fn compile(field: &'static str, patterns: &[String]) -> Result<Vec<Regex>, SelectionError> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, pattern)| {
            RegexBuilder::new(pattern)
                .size_limit(MAX_COMPILED_PATTERN)
                .build()
                .map_err(|e| SelectionError::Pattern {
                    field,
                    index,
                    message: e.to_string(),
                })
        })
        .collect()
}

/// A tag that names an artifact attached to an image rather than an image.
pub fn is_attached_artifact(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && (suffix.is_empty() || suffix.starts_with('.'))
}

impl TagSelection {
    pub fn new(selector: &TagSelector) -> Result<Self, SelectionError> {
        let newest = match selector.newest {
            Some(n) if n < 1 => return Err(SelectionError::Newest),
            Some(n) => Some(n as usize),
            None => None,
        };
        Ok(Self {
            include: compile("include", &selector.include)?,
            exclude: compile("exclude", &selector.exclude)?,
            floating: compile("floating", &selector.floating)?,
            range: selector.semver.as_deref().map(Range::parse).transpose()?,
            newest,
        })
    }

    /// Whether `tag` may move at the targets.
    pub fn is_floating(&self, tag: &str) -> bool {
        self.floating.iter().any(|p| p.is_match(tag))
    }

    fn candidate(&self, tag: &str) -> bool {
        !is_attached_artifact(tag)
            && (self.include.is_empty() || self.include.iter().any(|p| p.is_match(tag)))
            && !self.exclude.iter().any(|p| p.is_match(tag))
            && self.range.as_ref().is_none_or(|range| {
                Version::parse_tag(tag).is_some_and(|version| range.matches(&version))
            })
    }

    /// The selected tags, newest first when `newest` limits them, otherwise
    /// in the listing's order.
    pub fn select<'a>(&self, tags: &'a [SourceTag]) -> Vec<&'a SourceTag> {
        let mut selected: Vec<&SourceTag> =
            tags.iter().filter(|t| self.candidate(&t.tag)).collect();
        let Some(newest) = self.newest else {
            return selected;
        };
        self.newest_first(&mut selected);
        selected.truncate(newest);
        selected
    }

    /// Orders `tags` newest first: by push time when no range is given and
    /// every tag has one, otherwise by version (tags that are not versions
    /// last, by name). Backfills copy in this order.
    pub fn newest_first(&self, tags: &mut [&SourceTag]) {
        let by_push_time = self.range.is_none() && tags.iter().all(|t| t.pushed.is_some());
        if by_push_time {
            tags.sort_by(|a, b| b.pushed.cmp(&a.pushed).then_with(|| a.tag.cmp(&b.tag)));
        } else {
            tags.sort_by(|a, b| {
                let (va, vb) = (Version::parse_tag(&a.tag), Version::parse_tag(&b.tag));
                vb.cmp(&va).then_with(|| a.tag.cmp(&b.tag))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig";

    fn listing(tags: &[&str]) -> Vec<SourceTag> {
        tags.iter()
            .map(|t| SourceTag {
                tag: t.to_string(),
                pushed: None,
            })
            .collect()
    }

    fn selector(yaml: &str) -> TagSelector {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn selected(yaml: &str, tags: &[SourceTag]) -> Vec<String> {
        TagSelection::new(&selector(yaml))
            .unwrap()
            .select(tags)
            .into_iter()
            .map(|t| t.tag.clone())
            .collect()
    }

    #[test]
    fn selectors_pick_exactly_their_tags() {
        let tags = listing(&[
            "1.0.0",
            "1.1.0",
            "1.2.0-rc.1",
            "1.2.0",
            "2.0.0",
            "v2.1.0",
            "latest",
            "1234567",
            "a1b2c3d",
            "1.2",
            SIG,
            "main-2026-11-01",
        ]);
        let cases: &[(&str, &[&str])] = &[
            (
                "{}",
                &[
                    "1.0.0",
                    "1.1.0",
                    "1.2.0-rc.1",
                    "1.2.0",
                    "2.0.0",
                    "v2.1.0",
                    "latest",
                    "1234567",
                    "a1b2c3d",
                    "1.2",
                    "main-2026-11-01",
                ],
            ),
            ("{semver: '^1'}", &["1.0.0", "1.1.0", "1.2.0"]),
            ("{semver: '>=1.2.0-rc.0 <2'}", &["1.2.0-rc.1", "1.2.0"]),
            ("{semver: '^2 || ~1.1'}", &["1.1.0", "2.0.0", "v2.1.0"]),
            (
                "{include: ['^v?[0-9]+\\.[0-9]+\\.[0-9]+$']}",
                &["1.0.0", "1.1.0", "1.2.0", "2.0.0", "v2.1.0"],
            ),
            (
                "{exclude: ['-rc', '^[0-9a-f]{7}$', '^main-']}",
                &[
                    "1.0.0", "1.1.0", "1.2.0", "2.0.0", "v2.1.0", "latest", "1.2",
                ],
            ),
            (
                "{include: ['^latest$', '^main-']}",
                &["latest", "main-2026-11-01"],
            ),
            ("{semver: '*', newest: 2}", &["v2.1.0", "2.0.0"]),
            ("{newest: 3}", &["v2.1.0", "2.0.0", "1.2.0"]),
            ("{include: ['^1\\.'], newest: 1}", &["1.2.0"]),
        ];
        for (yaml, expected) in cases {
            assert_eq!(selected(yaml, &tags), *expected, "{yaml}");
        }
    }

    #[test]
    fn newest_uses_push_times_when_the_registry_gives_them() {
        let tags = vec![
            SourceTag {
                tag: "b".into(),
                pushed: Some(300),
            },
            SourceTag {
                tag: "a".into(),
                pushed: Some(100),
            },
            SourceTag {
                tag: "c".into(),
                pushed: Some(200),
            },
        ];
        assert_eq!(selected("{newest: 2}", &tags), ["b", "c"]);
        let mut partly = tags.clone();
        partly[0].pushed = None;
        assert_eq!(
            selected("{newest: 2}", &partly),
            ["a", "b"],
            "no times for all: by name below versions"
        );
    }

    #[test]
    fn attached_artifacts_are_never_tags() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for tag in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}.sbom"),
        ] {
            assert!(is_attached_artifact(&tag), "{tag}");
        }
        for tag in [
            "sha256-abc.sig",
            "sha256",
            "latest",
            &format!("sha256-{hex}x"),
        ] {
            assert!(!is_attached_artifact(tag), "{tag}");
        }
    }

    #[test]
    fn floating_patterns() {
        let selection =
            TagSelection::new(&selector("{floating: ['^latest$', '^[0-9]+$']}")).unwrap();
        assert!(selection.is_floating("latest"));
        assert!(selection.is_floating("17"));
        assert!(!selection.is_floating("17.2.1"));
    }

    #[test]
    fn bad_selectors_are_invalid_tag_filters_that_name_the_field() {
        let cases = [
            ("{include: ['(']}", "spec.tags.include[0]"),
            ("{exclude: ['ok', '[z-a]']}", "spec.tags.exclude[1]"),
            ("{floating: ['*']}", "spec.tags.floating[0]"),
            ("{semver: 'latest'}", "spec.tags.semver"),
            ("{newest: 0}", "at least 1"),
            ("{include: ['(a{1000}){1000}']}", "spec.tags.include[0]"),
        ];
        for (yaml, expected) in cases {
            let err = TagSelection::new(&selector(yaml)).unwrap_err();
            assert_eq!(err.reason(), "InvalidTagFilter");
            assert!(err.to_string().contains(expected), "{yaml}: {err}");
        }
    }
}
