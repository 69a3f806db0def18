//! An Amazon ECR source is listed through DescribeImages (moto): tags come
//! with their digests, so no manifest is read at the source before copying.

use serde_json::json;

use crate::promote_world::{GOOD, TAG, World};
use crate::world::{mirror, quay_target, run, world_config};

#[tokio::test]
async fn an_ecr_source_is_listed_with_digests_and_read_only_to_copy() {
    let world = World::new().await;
    let env = &world.env;
    let source = world.source("mirror-ecr", GOOD).await;
    let (quay_name, quay) = quay_target(env, "from-ecr");
    let object = mirror(
        &format!("{}/{}", env.get("PROMOTER_TEST_ECR_REGISTRY"), source.name),
        &[("quay", &quay)],
        json!({}),
    );
    let synced = run(&world_config(env), &object, &[]);
    synced.expect_exit(0);
    let report = synced.report();
    assert_eq!(report["source"]["listingPages"], 1, "{report}");
    assert_eq!(report["source"]["heads"], 0, "the listing gave the digest");
    assert_eq!(report["selected"], 1);
    assert_eq!(report["copies"][0]["tag"], TAG);
    assert_eq!(report["copies"][0]["digest"], source.digest.as_str());
    assert_eq!(
        world.quay.manifest_digest(&quay_name, TAG).await.unwrap(),
        source.digest
    );
}
