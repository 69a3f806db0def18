//! Many images in one run (`Engine::copy_batch`): every image arrives, and
//! images copied side by side that share a layer upload it once.

use crate::fixtures::{self, engine, repository};
use crate::support::{TestEnv, unique_name};
use image_promoter::registry::copy::batch::CopyJob;
use image_promoter::registry::{CopyOptions, ImageReference, Target};

#[tokio::test]
async fn a_batch_copies_every_image_and_uploads_a_shared_layer_once() {
    let env = TestEnv::load();
    let tags = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    let family = fixtures::family(&env, "batch", &tags, 1 << 20).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let mirror = unique_name("mirror/batch");
    let jobs: Vec<CopyJob> = family
        .images
        .iter()
        .map(|(tag, _)| CopyJob {
            source: ImageReference::parse_image(&format!("{quay}/{}:{tag}", family.repository))
                .unwrap(),
            targets: vec![Target {
                repository: repository(ecr, &mirror),
                tags: vec![tag.clone()],
                floating: Vec::new(),
            }],
        })
        .collect();

    // All eight in flight at once: each wants the base layer at the same time.
    let report = engine(&env)
        .await
        .copy_batch(&jobs, &CopyOptions::default(), tags.len())
        .await;

    assert_eq!((report.succeeded, report.failed), (tags.len(), 0));
    let copies: Vec<_> = report
        .images
        .iter()
        .map(|i| i.report.as_ref().expect("every source is readable"))
        .collect();
    let uploaded: u64 = copies.iter().map(|c| c.targets[0].blobs_uploaded).sum();
    let skipped: u64 = copies.iter().map(|c| c.targets[0].blobs_skipped).sum();
    assert_eq!(
        (uploaded, skipped),
        (family.distinct_blobs, tags.len() as u64 - 1),
        "each distinct blob uploaded once; the base found present by all but one image"
    );
    let read: u64 = copies.iter().map(|c| c.source_bytes_read).sum();
    assert!(
        read < 2 << 20,
        "the 1 MiB base is read from the source once (read {read} bytes)"
    );
    let target = fixtures::ecr(&env).await;
    for ((tag, digest), image) in family.images.iter().zip(&report.images) {
        assert!(image.source.ends_with(&format!(":{tag}")), "order kept");
        assert_eq!(
            target.manifest_digest(&mirror, tag).await.as_deref(),
            Ok(digest.as_str())
        );
    }
    assert!(
        target.pull_blob(&mirror, &family.base).await.is_ok(),
        "the base is there"
    );
}
