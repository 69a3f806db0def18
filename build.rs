//! Build script: records the revision the binary is built from and that
//! revision's commit date (not the time of the build, so two builds of one
//! commit are byte for byte the same), for `image-promoter version`, the
//! `image_promoter_build_info` metric and the start-up log line.
//!
//! Outside a Git checkout (a source tarball) `IMAGE_PROMOTER_REVISION` and
//! `IMAGE_PROMOTER_BUILD_DATE` may say it; otherwise both are `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=IMAGE_PROMOTER_REVISION");
    println!("cargo:rerun-if-env-changed=IMAGE_PROMOTER_BUILD_DATE");
    // Rebuild when HEAD moves: HEAD itself and the ref it names.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &reference])
    {
        println!("cargo:rerun-if-changed={path}");
    }
    let revision = std::env::var("IMAGE_PROMOTER_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let date = std::env::var("IMAGE_PROMOTER_BUILD_DATE")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%cI", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=IMAGE_PROMOTER_REVISION={revision}");
    println!("cargo:rustc-env=IMAGE_PROMOTER_BUILD_DATE={date}");
}
