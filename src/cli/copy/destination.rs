//! Targets as skopeo and crane users type them: `copy SRC DST:TAG` means
//! "publish TAG in DST", the same as `copy SRC DST --tag TAG` for that target.
//!
//! The rule, decided here without I/O so it can be table-tested:
//! - a target without a tag gets the `--tag` values, or by default the
//!   source's tag (none for a source by digest: the image is copied by digest);
//! - a target with a tag gets that tag; the same repository given several
//!   times (`r/app:v1 r/app:latest`) is one target with all its tags;
//! - a tag on a target and `--tag` together are refused: it would be unclear
//!   whether `--tag` adds to the target's tag or replaces it;
//! - a digest on a target is refused: the digest is always the source's.

use crate::registry::reference::ImageReference;

/// One target repository and the tags to publish in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetTags {
    /// The repository as typed, without its tag.
    pub repository: String,
    pub tags: Vec<String>,
}

/// Splits the targets as typed into repositories and their tags, or `None`
/// when no target names a tag (then `--tag` applies to every target as it
/// always has).
pub fn target_tags(
    targets: &[String],
    source_tag: Option<&str>,
    tags: &[String],
) -> Result<Option<Vec<TargetTags>>, String> {
    let mut typed = Vec::with_capacity(targets.len());
    for text in targets {
        let image = ImageReference::parse_any(text).map_err(|e| format!("target: {e}"))?;
        if image.digest.is_some() {
            return Err(format!(
                "target {text} names a digest: a target is a repository, optionally with a tag \
                 (REPOSITORY:TAG); the digest is always the source's"
            ));
        }
        typed.push((text, image));
    }
    let Some((text, tag)) = typed
        .iter()
        .find_map(|(text, image)| image.tag.as_ref().map(|tag| (text, tag)))
    else {
        return Ok(None);
    };
    if !tags.is_empty() {
        return Err(format!(
            "target {text} names the tag {tag:?} and --tag is given too: write the tags either \
             on the targets (TARGET:TAG, repeat a target for more tags) or with --tag for every \
             target, not both"
        ));
    }
    let mut grouped: Vec<TargetTags> = Vec::new();
    for (_, image) in typed {
        let tag = image.tag.as_deref().or(source_tag);
        let repository = image.repository.to_string();
        let index = match grouped.iter().position(|g| g.repository == repository) {
            Some(index) => index,
            None => {
                grouped.push(TargetTags {
                    repository,
                    tags: Vec::new(),
                });
                grouped.len() - 1
            }
        };
        let group = &mut grouped[index];
        if let Some(tag) = tag
            && !group.tags.iter().any(|t| t == tag)
        {
            group.tags.push(tag.to_string());
        }
    }
    Ok(Some(grouped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Targets as typed, the source's tag, and what they become.
    type Split<'a> = (&'a [&'a str], Option<&'a str>, Option<Vec<TargetTags>>);
    /// Targets as typed, the source's tag, `--tag`, and what the error says.
    type Refused<'a> = (&'a [&'a str], Option<&'a str>, &'a [&'a str], &'a str);

    fn target(repository: &str, tags: &[&str]) -> TargetTags {
        TargetTags {
            repository: repository.into(),
            tags: strings(tags),
        }
    }

    #[test]
    fn splits_tags_off_targets() {
        let cases: [Split<'_>; 8] = [
            // No target names a tag: --tag (or the default) applies as before.
            (&["r.io/x/app"], Some("v1"), None),
            (&["r.io/x/app", "q.io/y/app"], None, None),
            (
                &["r.io/x/app:v2"],
                Some("v1"),
                Some(vec![target("r.io/x/app", &["v2"])]),
            ),
            (
                &["r.io/x/app:v2"],
                None,
                Some(vec![target("r.io/x/app", &["v2"])]),
            ),
            // A target without a tag next to one with a tag: the source's tag.
            (
                &["r.io/x/app:v2", "q.io/y/app"],
                Some("v1"),
                Some(vec![
                    target("r.io/x/app", &["v2"]),
                    target("q.io/y/app", &["v1"]),
                ]),
            ),
            // A source by digest has no tag to give: copied by digest only.
            (
                &["r.io/x/app:v2", "q.io/y/app"],
                None,
                Some(vec![
                    target("r.io/x/app", &["v2"]),
                    target("q.io/y/app", &[]),
                ]),
            ),
            // One repository typed twice is one target with both tags, once each.
            (
                &["r.io/x/app:v1", "r.io/x/app:latest", "r.io/x/app:v1"],
                None,
                Some(vec![target("r.io/x/app", &["v1", "latest"])]),
            ),
            // A registry port is not a tag.
            (
                &["127.0.0.1:5000/x/app:v3"],
                None,
                Some(vec![target("127.0.0.1:5000/x/app", &["v3"])]),
            ),
        ];
        for (targets, source_tag, expected) in cases {
            assert_eq!(
                target_tags(&strings(targets), source_tag, &[]),
                Ok(expected),
                "{targets:?}"
            );
        }
    }

    #[test]
    fn refuses_what_is_ambiguous() {
        let cases: [Refused<'_>; 3] = [
            (
                &["r.io/x/app:v2"],
                Some("v1"),
                &["v3"],
                "names the tag \"v2\" and --tag is given too",
            ),
            (
                &[
                    "r.io/x/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                ],
                Some("v1"),
                &[],
                "names a digest",
            ),
            (&["r.io/x/App:v2"], None, &[], "target: image reference"),
        ];
        for (targets, source_tag, tags, message) in cases {
            let err =
                target_tags(&strings(targets), source_tag, &strings(tags)).expect_err("refused");
            assert!(err.contains(message), "{targets:?}: {err}");
        }
    }
}
