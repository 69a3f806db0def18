//! What this binary is: its version, the revision it was built from and that
//! revision's date (recorded by `build.rs`). Shared by `image-promoter
//! version`, the start-up log line and the `image_promoter_build_info` metric.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Git commit the binary was built from, or `unknown`.
pub const REVISION: &str = env!("IMAGE_PROMOTER_REVISION");

/// The commit date of [`REVISION`] (RFC 3339), or `unknown`.
pub const BUILD_DATE: &str = env!("IMAGE_PROMOTER_BUILD_DATE");

/// The first 12 characters of the revision, for a log line or a user agent.
pub fn short_revision() -> &'static str {
    REVISION.get(..12).unwrap_or(REVISION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_crate_version_and_the_revision_is_a_commit_or_unknown() {
        assert_eq!(VERSION, env!("CARGO_PKG_VERSION"));
        assert!(
            REVISION == "unknown"
                || (REVISION.len() == 40 && REVISION.chars().all(|c| c.is_ascii_hexdigit())),
            "{REVISION}"
        );
        assert!(short_revision().len() <= 12);
    }
}
