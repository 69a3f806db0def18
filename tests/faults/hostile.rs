//! Hostile transport: a registry whose certificate nobody vouches for is
//! refused for good (TLSError, not retried as if unreachable); a closing `PUT`
//! the registry committed but whose answer was lost or replaced by a 5xx is a
//! success, not a failure or a "not found"; a blob body that stalls fails after
//! the registry's stall timeout and is resumed, while a slow but steady body
//! takes as long as it needs.

use crate::proxy::{Fault, Proxy, Rule};
use crate::support::TestEnv;
use crate::world::{self, Kind, Outcome, Upstream};
use image_promoter::registry::auth::{Credential, StaticCredential};
use image_promoter::registry::copy::report::CopyReport;
use image_promoter::registry::{ClientSettings, CopyOptions, Digest, RegistryClient, Target};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// Sets `stallTimeoutSeconds` on every proxy entry (the plain-HTTP ones) of a
/// case's configuration file.
fn with_stall_timeout(path: PathBuf, seconds: u64) -> PathBuf {
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    for entry in config["registries"].as_sequence_mut().unwrap() {
        if entry["plainHttp"].as_bool() == Some(true) {
            entry["stallTimeoutSeconds"] = seconds.into();
        }
    }
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    path
}

async fn copy(
    config: &Path,
    source_host: &str,
    seeded: &crate::fixtures::Seeded,
    target: &Target,
) -> CopyReport {
    world::engine(config)
        .await
        .copy(
            &world::source(source_host, seeded),
            std::slice::from_ref(target),
            &CopyOptions::default(),
        )
        .await
        .expect("the source is readable")
}

#[tokio::test]
async fn a_registry_whose_certificate_nobody_vouches_for_is_refused_for_good() {
    let env = TestEnv::load();
    // The system's roots only: the test world's CA is not among them.
    let client = RegistryClient::new(
        Upstream::Ecr.host(&env),
        Arc::new(StaticCredential(Credential::Anonymous)),
        ClientSettings::default(),
    )
    .unwrap();
    let digest = Digest::sha256_of(b"anything");
    let error = client.blob_size("team/app", &digest).await.unwrap_err();
    assert_eq!(error.reason(), "TLSError", "{error}");
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

/// The closing `PUT`s of uploads (with the `digest` query), in the order they finished.
fn closing_puts(proxy: &Proxy) -> Vec<crate::proxy::Exchange> {
    proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "PUT" && e.path.contains("/blobs/uploads/"))
        .collect()
}

#[tokio::test]
async fn a_committed_chunked_upload_whose_answer_was_lost_is_a_success() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "lost-answer", &[6 * MIB]).await;
    let proxy = world::proxy(
        &env,
        Upstream::Ecr,
        vec![Rule::new("PUT", r"/blobs/uploads/", Fault::LoseAnswer).times(1)],
    )
    .await;
    let config = world::config_file(
        &env,
        &[(
            &proxy,
            Upstream::Ecr,
            Kind::Ecr {
                chunk_bytes: Some(5 * MIB as u64),
            },
        )],
    );
    let target = world::target(&proxy.host(), "lost-answer");
    let report = copy(&config, Upstream::Quay.host(&env), &seeded, &target).await;
    assert!(
        report.succeeded(),
        "{:?}\n{}",
        report.targets[0].error,
        proxy.summary()
    );
    let puts = closing_puts(&proxy);
    let lost = puts
        .iter()
        .find(|e| e.fault == Some(Fault::LoseAnswer))
        .unwrap_or_else(|| panic!("no answer was lost:\n{}", proxy.summary()));
    assert_eq!(lost.upstream_status, Some(201), "the registry committed it");
    let upload = lost.upload_id().unwrap().to_string();
    assert_eq!(
        puts.iter()
            .filter(|e| e.upload_id() == Some(upload.as_str()))
            .count(),
        1,
        "the committed session is not closed twice:\n{}",
        proxy.summary()
    );
    assert!(
        proxy.exchanges().iter().any(|e| e.method == "HEAD"
            && e.path.contains("/blobs/sha256:")
            && e.received > lost.received
            && e.status == 200),
        "the client asked whether the blob is there:\n{}",
        proxy.summary()
    );
    let registry = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&registry, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}

#[tokio::test]
async fn a_committed_monolithic_upload_answered_with_a_5xx_is_not_sent_again() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "replaced-answer", &[300_000]).await;
    let proxy = world::proxy(
        &env,
        Upstream::Ecr,
        vec![Rule::new("PUT", r"/blobs/uploads/", Fault::ReplaceStatus(500)).times(1)],
    )
    .await;
    let config = world::config_file(&env, &[(&proxy, Upstream::Ecr, Kind::Generic)]);
    let target = world::target(&proxy.host(), "replaced-answer");
    let report = copy(&config, Upstream::Quay.host(&env), &seeded, &target).await;
    assert!(
        report.succeeded(),
        "{:?}\n{}",
        report.targets[0].error,
        proxy.summary()
    );
    let puts = closing_puts(&proxy);
    assert_eq!(
        puts.len(),
        seeded.blobs.len(),
        "one upload per blob, none sent again:\n{}",
        proxy.summary()
    );
    assert!(
        puts.iter()
            .any(|e| e.status == 500 && e.upstream_status == Some(201))
    );
    let registry = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&registry, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}

#[tokio::test]
async fn a_stalled_blob_read_fails_after_the_stall_timeout_and_resumes() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "stall", &[3 * MIB]).await;
    let large = seeded
        .blobs
        .iter()
        .find(|(_, size)| *size == 3 * MIB as u64)
        .unwrap()
        .0
        .clone();
    let proxy = world::proxy(
        &env,
        Upstream::Quay,
        vec![
            Rule::new(
                "GET",
                &format!("/blobs/{}$", regex::escape(&large)),
                Fault::StallAfter(MIB as u64),
            )
            .times(1),
        ],
    )
    .await;
    let config = with_stall_timeout(
        world::config_file(&env, &[(&proxy, Upstream::Quay, Kind::Generic)]),
        1,
    );
    let target = world::target(Upstream::Ecr.host(&env), "stall");
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        copy(&config, &proxy.host(), &seeded, &target),
    )
    .await
    .expect("the stall timeout (1 s) ends the stalled read long before this");
    assert!(
        report.succeeded(),
        "{:?}\n{}",
        report.targets[0].error,
        proxy.summary()
    );
    let reads: Vec<_> = proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "GET" && e.path.ends_with(&large))
        .collect();
    assert_eq!(reads.len(), 2, "{}", proxy.summary());
    assert_eq!(reads[1].range.as_deref(), Some("bytes=1048576-"));
    let registry = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&registry, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}

#[tokio::test]
async fn a_slow_but_steady_blob_read_outlasts_the_stall_timeout() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "trickle", &[MIB]).await;
    let large = seeded
        .blobs
        .iter()
        .find(|(_, size)| *size == MIB as u64)
        .unwrap()
        .0
        .clone();
    let proxy = world::proxy(
        &env,
        Upstream::Quay,
        vec![Rule::new(
            "GET",
            &format!("/blobs/{}$", regex::escape(&large)),
            Fault::Trickle {
                piece: 64 << 10,
                every: Duration::from_millis(150),
            },
        )],
    )
    .await;
    let config = with_stall_timeout(
        world::config_file(&env, &[(&proxy, Upstream::Quay, Kind::Generic)]),
        1,
    );
    let target = world::target(Upstream::Ecr.host(&env), "trickle");
    let started = std::time::Instant::now();
    let report = copy(&config, &proxy.host(), &seeded, &target).await;
    assert!(
        report.succeeded(),
        "{:?}\n{}",
        report.targets[0].error,
        proxy.summary()
    );
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the body took longer than the stall timeout"
    );
    let reads = proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "GET" && e.path.ends_with(&large))
        .count();
    assert_eq!(reads, 1, "read once, never cut off:\n{}", proxy.summary());
}
