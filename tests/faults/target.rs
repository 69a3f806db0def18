//! Faults on the target side: a proxy in front of the ECR registry speaks ECR's
//! upload dialect (201 for a `PATCH` part, small parts refused unless last) or
//! fails an upload that cannot be replayed.

use crate::fixtures::Seeded;
use crate::proxy::{EcrUploads, Exchange, Fault, Proxy, Rule};
use crate::support::TestEnv;
use crate::world::{self, Kind, Outcome, Upstream};
use image_promoter::registry::copy::report::CopyReport;
use image_promoter::registry::{CopyOptions, Target};
use std::collections::BTreeMap;

const MIB: u64 = 1 << 20;

/// Copies `seeded` from the Quay registry itself to a fresh repository behind `proxy`.
async fn copy_through(
    env: &TestEnv,
    proxy: &Proxy,
    kind: Kind,
    seeded: &Seeded,
    target: &Target,
) -> CopyReport {
    let config = world::config_file(env, &[(proxy, Upstream::Ecr, kind)]);
    world::engine(&config)
        .await
        .copy(
            &world::source(Upstream::Quay.host(env), seeded),
            std::slice::from_ref(target),
            &CopyOptions::default(),
        )
        .await
        .expect("the source is readable")
}

/// The `PATCH` parts of each upload session, in order.
fn parts_by_upload(log: &[Exchange]) -> BTreeMap<String, Vec<&Exchange>> {
    let mut uploads: BTreeMap<String, Vec<&Exchange>> = BTreeMap::new();
    let mut patches: Vec<&Exchange> = log.iter().filter(|e| e.method == "PATCH").collect();
    patches.sort_by_key(|e| e.received);
    for patch in patches {
        let id = patch.upload_id().expect("PATCH goes to an upload session");
        uploads.entry(id.to_string()).or_default().push(patch);
    }
    uploads
}

#[tokio::test]
async fn ecr_like_target_gets_parts_of_8_mib_and_its_201_is_accepted() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "ecr-parts", &[(20 * MIB) as usize, 100_000]).await;
    let proxy = crate::proxy::Proxy::ecr_like(
        Upstream::Ecr.host(&env),
        &env.ca_pem(),
        EcrUploads { min_part: 5 * MIB },
        Vec::new(),
    )
    .await;
    let target = world::target(&proxy.host(), "ecr-parts");
    let report = copy_through(
        &env,
        &proxy,
        Kind::Ecr { chunk_bytes: None },
        &seeded,
        &target,
    )
    .await;
    assert!(
        report.succeeded(),
        "{report:#?}\nthe proxy saw:\n{}",
        proxy.summary()
    );
    assert_eq!(report.targets[0].blobs_uploaded, 3);

    let log = proxy.exchanges();
    let uploads = parts_by_upload(&log);
    assert_eq!(uploads.len(), 3, "one upload per blob: {}", proxy.summary());
    let mut sizes: Vec<Vec<u64>> = Vec::new();
    for parts in uploads.values() {
        let mut next = 0u64;
        for part in parts {
            assert_eq!(part.status, 201, "{part:?}");
            assert_eq!(part.upstream_status, Some(202), "{part:?}");
            let expected_range = format!("{next}-{}", next + part.request_bytes - 1);
            assert_eq!(part.content_range.as_deref(), Some(expected_range.as_str()));
            next += part.request_bytes;
        }
        sizes.push(parts.iter().map(|p| p.request_bytes).collect());
    }
    sizes.sort();
    let config_size = seeded.blobs[0].1;
    assert_eq!(
        sizes,
        [
            vec![config_size],
            vec![100_000],
            vec![8 * MIB, 8 * MIB, 4 * MIB],
        ],
        "every part but the last is 8 MiB"
    );
    let ecr = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&ecr, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}

#[tokio::test]
async fn ecr_like_target_refusing_the_part_size_fails_the_copy_clearly() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "ecr-small", &[(12 * MIB) as usize]).await;
    // A registry asking for 8 MiB parts, and an engine configured for 5 MiB.
    let proxy = crate::proxy::Proxy::ecr_like(
        Upstream::Ecr.host(&env),
        &env.ca_pem(),
        EcrUploads { min_part: 8 * MIB },
        Vec::new(),
    )
    .await;
    let target = world::target(&proxy.host(), "ecr-small");
    let report = copy_through(
        &env,
        &proxy,
        Kind::Ecr {
            chunk_bytes: Some(5 * MIB),
        },
        &seeded,
        &target,
    )
    .await;
    let failure = report.targets[0]
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("the copy should fail: {report:#?}"));
    assert_eq!(failure.reason, "RegistryError", "{failure:?}");
    assert!(
        failure.message.contains("PATCH blob")
            && failure.message.contains("400")
            && failure.message.contains("Layer part size must be at least"),
        "the message says which request the registry refused and why: {}",
        failure.message
    );
    assert!(!failure.transient, "{failure:?}");
    assert!(report.targets[0].tags_written.is_empty());

    let ecr = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&ecr, &target.repository.name, &seeded).await,
        Outcome::Untouched
    );
    let layer = &seeded.blobs[1].0;
    assert!(!world::has_blob(&ecr, &target.repository.name, layer).await);
}

#[tokio::test]
async fn a_failed_upload_is_reported_and_the_next_run_moves_only_what_is_missing() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "upload-503", &[100_000, (6 * MIB) as usize]).await;
    // One blob's only part is refused; its body cannot be replayed without
    // reading the source again.
    let proxy = world::proxy(
        &env,
        Upstream::Ecr,
        vec![
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                Fault::Status {
                    status: 503,
                    retry_after: None,
                },
            )
            .times(1),
        ],
    )
    .await;
    let target = world::target(&proxy.host(), "upload-503");
    let config = world::config_file(
        &env,
        &[(&proxy, Upstream::Ecr, Kind::Ecr { chunk_bytes: None })],
    );
    let options = CopyOptions::default();
    let first = world::engine(&config)
        .await
        .copy(
            &world::source(Upstream::Quay.host(&env), &seeded),
            std::slice::from_ref(&target),
            &options,
        )
        .await
        .expect("the source is readable");
    let ecr = Upstream::Ecr.client(&env).await;
    let outcome = world::assert_consistent(&ecr, &target.repository.name, &seeded).await;
    let refused = proxy.faulted();
    assert_eq!(refused.len(), 1, "{}", proxy.summary());
    let failed_blobs = match &first.targets[0].error {
        None => {
            assert_eq!(outcome, Outcome::Complete);
            0
        }
        Some(failure) => {
            assert_eq!(outcome, Outcome::Untouched);
            assert!(
                failure.message.contains("503") && failure.transient,
                "a refused upload is a transient failure that says so: {failure:?}"
            );
            3 - first.targets[0].blobs_uploaded
        }
    };

    let second = world::engine(&config)
        .await
        .copy(
            &world::source(Upstream::Quay.host(&env), &seeded),
            std::slice::from_ref(&target),
            &options,
        )
        .await
        .expect("the source is readable");
    assert!(second.succeeded(), "{second:#?}");
    assert_eq!(
        second.targets[0].blobs_uploaded, failed_blobs,
        "{second:#?}"
    );
    assert_eq!(second.targets[0].blobs_skipped, 3 - failed_blobs);
    assert_eq!(
        world::assert_consistent(&ecr, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}
