//! The command line as users of skopeo, crane and regctl drive it, with the
//! real binary against the test world: `docker login` credentials and
//! credential helpers for hosts no `--config` declares, one `-o
//! text|json|yaml` for every command, exit codes a pipeline can act on
//! (0 done, 1 refused or failed, 2 bad input, 3 try again later), `version`
//! and `completion`.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

#[allow(dead_code)]
#[path = "../registry/fixtures.rs"]
mod fixtures;

mod logins;
mod shape;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{TestEnv, unique_name};

/// A directory of this test's own under the target's temporary directory.
pub fn scratch(prefix: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// `image-promoter ARGS` with no configuration and no login but what `home`
/// and the caller add: HOME is `home`, the world's CA is trusted, and
/// IMAGE_PROMOTER_CONFIG, REGISTRY_AUTH_FILE and DOCKER_CONFIG are unset.
pub fn image_promoter(env: &TestEnv, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-promoter"));
    command
        .env_remove("IMAGE_PROMOTER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env("HOME", home)
        .env("SSL_CERT_FILE", env.get("PROMOTER_TEST_CA"));
    command
}

/// Standard output and error of a run, for assertion messages.
pub fn shown(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
