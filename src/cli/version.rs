//! `image-promoter version [-o text|json|yaml]`: what this binary is, from
//! [`crate::build_info`] — the version, the commit it was built from and that
//! commit's date — for a bug report or a pipeline that checks what it runs.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::exit::{DONE, FAILED};
use super::output::{OutputArgs, emit};
use crate::build_info;

/// Arguments of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `version` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The crate version.
    pub version: &'static str,
    /// The Git commit the binary was built from, or `unknown`.
    pub commit: &'static str,
    /// The commit's date (RFC 3339), or `unknown`.
    pub build_date: &'static str,
}

impl VersionInfo {
    /// This binary's.
    pub fn current() -> Self {
        Self {
            version: build_info::VERSION,
            commit: build_info::REVISION,
            build_date: build_info::BUILD_DATE,
        }
    }

    /// One line for a person.
    pub fn text(&self) -> String {
        format!(
            "image-promoter {} (commit {}, built {})\n",
            self.version, self.commit, self.build_date
        )
    }
}

/// Runs `version`.
pub fn run(args: VersionArgs) -> ExitCode {
    match emit(
        args.output.output,
        &VersionInfo::current(),
        VersionInfo::text,
    ) {
        Ok(()) => ExitCode::from(DONE),
        Err(_) => ExitCode::from(FAILED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::output::{OutputFormat, render};

    #[test]
    fn names_the_version_the_commit_and_the_date() {
        let info = VersionInfo {
            version: "1.2.3",
            commit: "0123456789abcdef0123456789abcdef01234567",
            build_date: "2026-12-07T03:00:00Z",
        };
        assert_eq!(
            info.text(),
            "image-promoter 1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, built 2026-12-07T03:00:00Z)\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &info, VersionInfo::text)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "1.2.3",
                "commit": "0123456789abcdef0123456789abcdef01234567",
                "buildDate": "2026-12-07T03:00:00Z",
            })
        );
        assert_eq!(VersionInfo::current().version, env!("CARGO_PKG_VERSION"));
    }
}
