//! Write-once tags under concurrency: copies of one process that race for the
//! same tag cannot both win.

use crate::fixtures::{self, engine, repository};
use crate::support::{TestEnv, unique_name};
use image_promoter::registry::{CopyOptions, ImageReference, Target};

#[tokio::test]
async fn two_copies_of_different_images_to_one_write_once_tag_leave_one_winner() {
    let env = TestEnv::load();
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let first = fixtures::single(&env, "race-a", "v1", &[64 << 10]).await;
    let second = fixtures::single(&env, "race-b", "v1", &[64 << 10]).await;
    let published = unique_name("race/published");
    let target = || Target {
        repository: repository(ecr, &published),
        tags: vec!["1.0".into()],
        floating: Vec::new(),
    };
    let source = |seeded: &fixtures::Seeded| {
        ImageReference::parse_image(&format!("{quay}/{}:v1", seeded.repository)).unwrap()
    };
    let engine = engine(&env).await;
    let options = CopyOptions::default();
    let (a, b) = (source(&first), source(&second));
    let (targets_a, targets_b) = ([target()], [target()]);

    // Both look at the tag before either writes it: neither sees the other.
    let (report_a, report_b) = tokio::join!(
        engine.copy(&a, &targets_a, &options),
        engine.copy(&b, &targets_b, &options),
    );

    let outcomes = [report_a.unwrap(), report_b.unwrap()];
    let winners: Vec<_> = outcomes.iter().filter(|r| r.succeeded()).collect();
    let losers: Vec<_> = outcomes.iter().filter(|r| !r.succeeded()).collect();
    assert_eq!(
        (winners.len(), losers.len()),
        (1, 1),
        "exactly one copy publishes the write-once tag: {outcomes:#?}"
    );
    let failure = losers[0].targets[0].error.as_ref().unwrap();
    assert_eq!(failure.reason, "TagConflict", "{failure:?}");
    assert!(losers[0].targets[0].tags_written.is_empty());
    let at_target = fixtures::ecr(&env)
        .await
        .manifest_digest(&published, "1.0")
        .await
        .unwrap();
    assert_eq!(
        at_target,
        winners[0].digest.to_string(),
        "the tag names the winner"
    );
}
