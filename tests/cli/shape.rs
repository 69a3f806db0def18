//! What every command has in common: `-o text|json|yaml`, exit codes, and
//! the `version` and `completion` commands.

use serde_json::json;

use crate::support::{TestEnv, unique_name};
use crate::{fixtures, image_promoter, scratch, shown};

#[test]
fn version_prints_the_version_the_commit_and_the_build_date() {
    let env = TestEnv::load();
    let home = scratch("home");
    let json = image_promoter(&env, &home)
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(0), "{}", shown(&json));
    let info: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let commit = info["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    let date = info["buildDate"].as_str().unwrap();
    assert!(date == "unknown" || date.len() >= 20, "{date}");

    let yaml = image_promoter(&env, &home)
        .args(["version", "-o", "yaml"])
        .output()
        .unwrap();
    let parsed: serde_json::Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(parsed, info);
    let text = image_promoter(&env, &home).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&text.stdout),
        format!(
            "image-promoter {} (commit {commit}, built {date})\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn completion_scripts_know_every_command() {
    let env = TestEnv::load();
    let home = scratch("home");
    for shell in ["bash", "zsh", "fish"] {
        let output = image_promoter(&env, &home)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", shown(&output));
        let script = String::from_utf8(output.stdout).unwrap();
        for word in [
            "copy",
            "promote",
            "mirror",
            "version",
            "completion",
            "authfile",
        ] {
            assert!(script.contains(word), "{shell}: no {word} in\n{script}");
        }
        if shell == "bash" {
            let path = home.join("image-promoter.bash");
            std::fs::write(&path, &script).unwrap();
            let checked = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(checked.status.success(), "bash -n: {}", shown(&checked));
        }
    }
    let unknown = image_promoter(&env, &home)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", shown(&unknown));
}

#[tokio::test]
async fn copy_prints_yaml() {
    let env = TestEnv::load();
    let home = scratch("home");
    let seeded = fixtures::single(&env, "yaml", "v1", &[10_000]).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let target = format!("{quay}/{}", unique_name("cli/yaml-target"));
    let source = format!("{quay}/{}:v1", seeded.repository);

    let yaml = image_promoter(&env, &home)
        .args(["copy", &source, &target, "-o", "yaml"])
        .args(["--config", env.get("PROMOTER_TEST_CONFIG")])
        .output()
        .unwrap();
    assert_eq!(yaml.status.code(), Some(0), "{}", shown(&yaml));
    let report: serde_json::Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(report["digest"], seeded.digest.as_str(), "{}", shown(&yaml));
}

#[test]
fn a_registry_that_cannot_be_reached_means_try_again() {
    let env = TestEnv::load();
    let home = scratch("home");
    let target = format!(
        "{}/{}",
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        unique_name("cli/unreachable-target")
    );
    // Nothing listens on port 1: the registry is unavailable, not wrong.
    let unreachable = image_promoter(&env, &home)
        .args([
            "copy",
            "127.0.0.1:1/team/app:v1",
            &target,
            "--output",
            "json",
        ])
        .args(["--config", env.get("PROMOTER_TEST_CONFIG")])
        .output()
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(3),
        "{}",
        shown(&unreachable)
    );
    let failure: serde_json::Value = serde_json::from_slice(&unreachable.stdout).unwrap();
    assert_eq!(
        failure["error"]["transient"],
        true,
        "{}",
        shown(&unreachable)
    );
    assert_eq!(failure["error"]["reason"], "RegistryUnreachable");
}

#[test]
fn mirror_and_mirror_report_take_the_same_output_flag() {
    let env = TestEnv::load();
    let home = scratch("home");
    let object = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": "paused", "namespace": "team"},
        "spec": {
            "source": {"repository": "quay.io/acme/app"},
            "targets": [{"name": "public", "repository": "public.ecr.aws/acme/app"}],
            "suspend": true,
        },
    });
    let path = home.join("mirror.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&object).unwrap()).unwrap();
    let suspended = image_promoter(&env, &home)
        .args(["mirror", "-f", path.to_str().unwrap(), "-o", "yaml"])
        .output()
        .unwrap();
    assert_eq!(suspended.status.code(), Some(0), "{}", shown(&suspended));
    let printed: serde_json::Value = serde_yaml_ng::from_slice(&suspended.stdout).unwrap();
    assert_eq!(printed["suspended"], true, "{}", shown(&suspended));
    assert_eq!(printed["mirror"]["name"], "paused", "{}", shown(&suspended));

    let namespace = unique_name("cli-report");
    let report = image_promoter(&env, &home)
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .args(["mirror", "report", "-n", &namespace, "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(0), "{}", shown(&report));
    let view: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(view, json!({"tiers": []}), "{}", shown(&report));

    let refused = image_promoter(&env, &home)
        .args(["mirror", "-f", path.to_str().unwrap(), "-o", "xml"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", shown(&refused));
}
