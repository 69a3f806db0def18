//! The operator's floor requiring keyless identities, through `image-promoter
//! promote` and its configuration file: `verify.signature.keyless` with a
//! `trustedRoot` file, read at start-up. An image signed by a floor identity
//! (real `cosign`, private Sigstore) is promoted without any signature policy
//! of its own; with a floor that names another subject it is refused, the
//! message naming the subject found and the floor as what required it.

use std::path::PathBuf;

use serde_json::json;

use crate::keyless_sigstore::{Entry, GITHUB, Sigstore, WORKFLOW};
use crate::support::unique_name;
use crate::world::{GOOD, TAG, World, condition, expect_condition, promotion, quay_target};

/// The test world's configuration with a floor of keyless identities.
fn floor_config(world: &World, sigstore: &Sigstore, subject_reg_exp: &str) -> PathBuf {
    let text = std::fs::read_to_string(world.env.get("PROMOTER_TEST_CONFIG")).unwrap();
    let mut config: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    config["verify"] = json!({"signature": {
        "keyless": [{"issuer": GITHUB, "subjectRegExp": subject_reg_exp}],
        "trustedRoot": sigstore.path("trusted_root.json"),
    }});
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.yaml", unique_name("keyless-floor")));
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn a_floor_of_keyless_identities_promotes_their_images_and_refuses_others() {
    let world = World::new().await;
    let sigstore = Sigstore::new(&world.env);
    sigstore.certificate("ci", "trusted", GITHUB, WORKFLOW);
    let source = world.source("keyless-floor", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    sigstore.sign(
        &format!("{}@{}", world.source_repository(&source), source.digest),
        "ci",
        Entry::By("log"),
    );
    let (quay_name, quay_repository) = world.quay_target("keyless-floor");
    let object = promotion(
        &world,
        &source,
        json!({}),
        json!([quay_target("quay", &quay_repository)]),
    );
    let text = serde_yaml_ng::to_string(&object).unwrap();

    let other = floor_config(&world, &sigstore, r"^https://github\.com/acme/other/");
    let refused = world.promote_configured(&other, &text, &[]);
    refused.expect_exit(1);
    let message = expect_condition(&refused.status(), "Verified", ("False", "SignatureInvalid"));
    for part in [
        format!("names subject {WORKFLOW}"),
        "not matching /^https://github\\.com/acme/other//".to_string(),
        "the operator's floor".to_string(),
    ] {
        assert!(message.contains(&part), "{message:?} lacks {part:?}");
    }
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "nothing copied"
    );

    let ours = floor_config(&world, &sigstore, r"^https://github\.com/acme/app/");
    let promoted = world.promote_configured(&ours, &text, &[]);
    promoted.expect_exit(0);
    let status = promoted.status();
    expect_condition(&status, "Ready", ("True", "Promoted"));
    assert_eq!(
        status
            .verification
            .and_then(|v| v.signature)
            .map(|s| s.key_id),
        Some(format!("{GITHUB} {WORKFLOW}")),
        "{:?}",
        condition(&promoted.status(), "Verified")
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
}
