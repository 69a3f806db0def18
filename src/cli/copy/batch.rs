//! The batch file of `copy --batch`: which images go where, read and checked
//! in full before anything is copied.
//!
//! ```yaml
//! images:
//!   - source: quay.io/team/app:v1.2.0
//!     targets: [public.ecr.aws/team/app]
//!     tags: [v1.2.0, latest]     # optional; default: the source's tag
//!     floatingTags: [latest]     # optional
//! ```

use super::job;
use crate::registry::copy::batch::{CopyJob, check_one_writer_per_tag};
use serde::Deserialize;

/// The largest batch file read (a file of 10,000 images is about 2 MiB).
const MAX_FILE_BYTES: usize = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFile {
    images: Vec<BatchImage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BatchImage {
    source: String,
    targets: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    floating_tags: Vec<String>,
}

/// Parses and checks a batch file's text (YAML, or JSON, which is YAML).
pub fn parse(text: &[u8]) -> Result<Vec<CopyJob>, String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!(
            "is {} bytes; at most {MAX_FILE_BYTES} are read (split the batch)",
            text.len()
        ));
    }
    let file: BatchFile = serde_yaml_ng::from_slice(text).map_err(|e| {
        format!("{e} (expected `images:` with a list of {{source, targets, tags, floatingTags}})")
    })?;
    if file.images.is_empty() {
        return Err("lists no images".into());
    }
    let jobs = file
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            if image.targets.is_empty() {
                return Err(format!("images[{i}] ({}): no targets", image.source));
            }
            job(
                &image.source,
                &image.targets,
                &image.tags,
                &image.floating_tags,
            )
            .map_err(|e| format!("images[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_one_writer_per_tag(&jobs).map_err(|e| e.to_string())?;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_images_with_their_defaults() {
        let jobs = parse(
            br#"
images:
  - source: quay.io/team/app:v1
    targets: [public.ecr.aws/team/app, r.io/mirror/app]
  - source: quay.io/team/tool@sha256:0000000000000000000000000000000000000000000000000000000000000000
    targets: [r.io/mirror/tool]
    tags: [v2, latest]
    floatingTags: [latest]
"#,
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].targets.len(), 2);
        assert_eq!(jobs[0].targets[1].tags, ["v1"]);
        assert_eq!(jobs[1].targets[0].tags, ["v2", "latest"]);
        assert_eq!(jobs[1].targets[0].floating, ["latest"]);
    }

    #[test]
    fn refuses_bad_files_saying_where() {
        let cases: [(&str, &str); 7] = [
            ("images: []", "lists no images"),
            ("imgs: []", "unknown field `imgs`"),
            (
                "images: [{source: q.io/a:v1, targets: [r.io/a], tag: [x]}]",
                "unknown field `tag`",
            ),
            (
                "images: [{source: q.io/a:v1, targets: []}]",
                "images[0] (q.io/a:v1): no targets",
            ),
            (
                "images: [{source: q.io/a:v1, targets: [r.io/a]}, {source: 'q.io/b', targets: [r.io/b]}]",
                "images[1]: source",
            ),
            (
                "images: [{source: q.io/a:v1, targets: [r.io/a:v1]}]",
                "images[0]: target",
            ),
            (
                "images: [{source: q.io/a:v1, targets: [r.io/m]}, {source: q.io/b:v1, targets: [r.io/m]}]",
                "both publish r.io/m:v1",
            ),
        ];
        for (text, message) in cases {
            let err = parse(text.as_bytes()).err().unwrap_or_default();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn the_same_image_twice_is_not_a_conflict() {
        let jobs = parse(
            b"images: [{source: q.io/a:v1, targets: [r.io/m]}, {source: q.io/a:v1, targets: [r.io/m]}]",
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
    }
}
