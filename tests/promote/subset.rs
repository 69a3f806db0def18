//! Platform subsets under a signature policy: the new index they publish is
//! covered by no signature of the source's index, so every copied platform
//! manifest must carry a verified signature of its own.

use reqwest::StatusCode;
use serde_json::json;

use crate::world::{
    Key, TAG, World, expect_condition, promotion, public_key_file, quay_target, signed_kms_policy,
};

async fn subset_of_signed_index(recursive: bool) -> (World, crate::world::Promoted, String) {
    let world = World::new().await;
    let source = world.index_source("subset").await;
    world.scan(&source, "COMPLETE", &[]).await;
    if recursive {
        world.sign_recursively(&source, Key::Signer);
    } else {
        world.sign(&source, Key::Signer);
    }
    let (quay_name, quay_repository) = world.quay_target("subset");
    let mut object = promotion(
        &world,
        &source,
        signed_kms_policy(),
        json!([quay_target("quay", &quay_repository)]),
    );
    object["spec"]["copy"] = json!({"platforms": ["linux/arm64"]});
    let key = public_key_file(&world.env, Key::Signer);
    let run = world.promote(&object, &["--public-key", key.to_str().unwrap()]);
    (world, run, quay_name)
}

#[tokio::test]
async fn a_subset_whose_platforms_are_unsigned_is_refused() {
    let (world, run, quay_name) = subset_of_signed_index(false).await;

    run.expect_exit(1);
    let status = run.status();
    let message = expect_condition(&status, "Verified", ("False", "SignatureInvalid"));
    assert!(
        message.contains("platform linux/arm64 has no signature")
            && message.contains("cosign sign --recursive"),
        "{message}"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(StatusCode::NOT_FOUND),
        "no index that nothing verifies is published"
    );
}

#[tokio::test]
async fn a_subset_of_signed_platforms_is_promoted_and_says_what_stayed_behind() {
    let (world, run, quay_name) = subset_of_signed_index(true).await;

    run.expect_exit(0);
    let status = run.status();
    expect_condition(&status, "Ready", ("True", "Promoted"));
    let target = &status.targets[0];
    let message = target.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("cosign signatures of the source index")
            && message.contains("did not travel"),
        "{target:?}"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await.as_deref(),
        Ok(target.digest.as_deref().unwrap())
    );
}
