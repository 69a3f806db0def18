//! Faults on the source side: a proxy in front of the Quay registry throttles,
//! fails, breaks, shortens or corrupts what the engine reads. Each image goes
//! to two targets at once — the ECR registry (chunked uploads) and another Quay
//! repository (one streamed PUT) — so both upload paths face every fault.

use crate::fixtures::Seeded;
use crate::proxy::{Exchange, Fault, Proxy, RetryAfter, Rule};
use crate::support::TestEnv;
use crate::world::{self, Kind, Outcome, Upstream};
use image_promoter::registry::copy::report::CopyReport;
use image_promoter::registry::{CopyOptions, Target};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A source proxy, an image behind it, and one ECR and one Quay target.
struct Case {
    env: TestEnv,
    proxy: Proxy,
    seeded: Seeded,
    targets: Vec<Target>,
}

impl Case {
    /// Seeds `layers` and starts a proxy whose rules `rules` builds from the
    /// seeded image's blob digests (config first, then layers).
    async fn new(name: &str, layers: &[usize], rules: impl FnOnce(&[String]) -> Vec<Rule>) -> Self {
        let env = TestEnv::load();
        let seeded = world::seed(&env, name, layers).await;
        let digests: Vec<String> = seeded.blobs.iter().map(|(d, _)| d.clone()).collect();
        let proxy = world::proxy(&env, Upstream::Quay, rules(&digests)).await;
        let targets = vec![
            world::target(Upstream::Ecr.host(&env), name),
            world::target(Upstream::Quay.host(&env), name),
        ];
        Self {
            env,
            proxy,
            seeded,
            targets,
        }
    }

    async fn copy(&self) -> CopyReport {
        let config = world::config_file(&self.env, &[(&self.proxy, Upstream::Quay, Kind::Generic)]);
        world::engine(&config)
            .await
            .copy(
                &world::source(&self.proxy.host(), &self.seeded),
                &self.targets,
                &CopyOptions::default(),
            )
            .await
            .unwrap_or_else(|error| panic!("the source could not be read: {error}"))
    }

    /// The invariant at every target; what each holds.
    async fn outcomes(&self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for (target, upstream) in self.targets.iter().zip([Upstream::Ecr, Upstream::Quay]) {
            let registry = upstream.client(&self.env).await;
            outcomes.push(
                world::assert_consistent(&registry, &target.repository.name, &self.seeded).await,
            );
        }
        outcomes
    }

    /// Asserts the copy succeeded everywhere and every target is complete.
    async fn assert_copied(&self, report: &CopyReport) {
        assert!(
            report.succeeded(),
            "the copy failed: {report:#?}\nthe proxy saw:\n{}",
            self.proxy.summary()
        );
        assert_eq!(report.digest.to_string(), self.seeded.digest);
        assert_eq!(
            self.outcomes().await,
            [Outcome::Complete, Outcome::Complete]
        );
    }

    /// Asserts every target failed with `reason`, holds no tag and lacks `blob`.
    async fn assert_refused(&self, report: &CopyReport, reason: &str, blob: &str) {
        for target in &report.targets {
            let error = target
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("{} should have failed: {report:#?}", target.repository));
            assert_eq!(error.reason, reason, "{error:?}");
            assert!(
                error.message.contains(blob) && error.message.contains("nothing was committed"),
                "the message names the blob and says nothing was committed: {}",
                error.message
            );
            assert!(target.tags_written.is_empty(), "{target:?}");
        }
        assert_eq!(
            self.outcomes().await,
            [Outcome::Untouched, Outcome::Untouched]
        );
        for (target, upstream) in self.targets.iter().zip([Upstream::Ecr, Upstream::Quay]) {
            let registry = upstream.client(&self.env).await;
            assert!(
                !world::has_blob(&registry, &target.repository.name, blob).await,
                "{}: the bad blob {blob} was committed",
                target.repository
            );
        }
    }
}

fn blob_path(digest: &str) -> String {
    format!("/blobs/{}$", regex::escape(digest))
}

/// The first request after `faulted` for the same method and path.
fn retry_of<'a>(log: &'a [Exchange], faulted: &Exchange) -> &'a Exchange {
    log.iter()
        .filter(|e| {
            e.method == faulted.method && e.path == faulted.path && e.received > faulted.received
        })
        .min_by_key(|e| e.received)
        .unwrap_or_else(|| panic!("{} {} was never retried", faulted.method, faulted.path))
}

#[tokio::test]
async fn throttled_reads_wait_as_long_as_retry_after_says() {
    let case = Case::new("throttled", &[300_000], |blobs| {
        vec![
            Rule::new(
                "GET",
                "/manifests/",
                Fault::Status {
                    status: 429,
                    retry_after: Some(RetryAfter::Seconds(1)),
                },
            )
            .times(1),
            Rule::new(
                "GET",
                &blob_path(&blobs[1]),
                Fault::Status {
                    status: 429,
                    retry_after: Some(RetryAfter::DateIn(Duration::from_secs(3))),
                },
            )
            .times(1),
        ]
    })
    .await;
    let report = case.copy().await;
    case.assert_copied(&report).await;

    let log = case.proxy.exchanges();
    let throttled = case.proxy.faulted();
    assert_eq!(throttled.len(), 2, "{}", case.proxy.summary());
    for (faulted, at_least) in throttled.iter().zip(expected_waits(&throttled)) {
        let retry = retry_of(&log, faulted);
        let waited = retry.received - faulted.received;
        assert!(
            waited >= at_least,
            "{} {} was retried {waited:?} after a 429 asking for {at_least:?}",
            faulted.method,
            faulted.path
        );
        // Honouring it, not backing off for much longer.
        assert!(
            waited < at_least + Duration::from_secs(3),
            "waited {waited:?}"
        );
    }
}

/// The least each throttled request must have waited: 1 s for the seconds form;
/// for the date form 3 s ahead, rounded down to the second, so more than 2 s.
fn expected_waits(throttled: &[Exchange]) -> Vec<Duration> {
    throttled
        .iter()
        .map(|e| match &e.fault {
            Some(Fault::Status {
                retry_after: Some(RetryAfter::Seconds(s)),
                ..
            }) => Duration::from_secs(*s),
            Some(Fault::Status {
                retry_after: Some(RetryAfter::DateIn(_)),
                ..
            }) => Duration::from_secs(2),
            other => panic!("unexpected fault {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn bursts_of_503_on_both_sides_are_retried() {
    let env = TestEnv::load();
    let seeded = world::seed(&env, "burst", &[200_000, 9 * MIB]).await;
    let unavailable = || Fault::Status {
        status: 503,
        retry_after: None,
    };
    let source = world::proxy(
        &env,
        Upstream::Quay,
        vec![
            Rule::new("GET", "/manifests/", unavailable()).times(3),
            Rule::new("GET", "/blobs/", unavailable()).times(4),
        ],
    )
    .await;
    let target_proxy = world::proxy(
        &env,
        Upstream::Ecr,
        vec![
            Rule::new("HEAD", "/manifests/", unavailable()).times(2),
            Rule::new("HEAD", "/blobs/", unavailable()).times(2),
            Rule::new("POST", "/blobs/uploads/$", unavailable()).times(2),
            // The closing PUT of a chunked upload has no body: it can be replayed.
            Rule::new("PUT", "/blobs/uploads/.", unavailable()).times(1),
            Rule::new("PUT", "/manifests/", unavailable()).times(2),
        ],
    )
    .await;
    let config = world::config_file(
        &env,
        &[
            (&source, Upstream::Quay, Kind::Generic),
            (
                &target_proxy,
                Upstream::Ecr,
                Kind::Ecr { chunk_bytes: None },
            ),
        ],
    );
    let target = world::target(&target_proxy.host(), "burst");
    let report = world::engine(&config)
        .await
        .copy(
            &world::source(&source.host(), &seeded),
            std::slice::from_ref(&target),
            &CopyOptions::default(),
        )
        .await
        .expect("the source is read despite the 503s");
    assert!(
        report.succeeded(),
        "{report:#?}\nsource:\n{}target:\n{}",
        source.summary(),
        target_proxy.summary()
    );
    assert_eq!(source.faulted().len(), 7, "{}", source.summary());
    assert_eq!(
        target_proxy.faulted().len(),
        9,
        "{}",
        target_proxy.summary()
    );
    let ecr = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&ecr, &target.repository.name, &seeded).await,
        Outcome::Complete
    );
}

/// A blob read that breaks off midway is resumed with a Range request.
async fn resumes_after(name: &str, fault: Fault) {
    let case = Case::new(name, &[50_000, 4 * MIB], |blobs| {
        vec![Rule::new("GET", &blob_path(&blobs[2]), fault).times(1)]
    })
    .await;
    let report = case.copy().await;
    case.assert_copied(&report).await;

    let log = case.proxy.exchanges();
    let broken = &case.proxy.faulted()[0];
    assert!(
        broken.response_bytes > 0,
        "the fault cut the body after some bytes"
    );
    let resumed = retry_of(&log, broken);
    let offset: u64 = resumed
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("the blob was read again without a Range: {resumed:?}"));
    assert!(
        offset > 0 && offset <= broken.response_bytes,
        "resumed at {offset} after receiving at most {} bytes",
        broken.response_bytes
    );
    assert_eq!(resumed.status, 206, "{resumed:?}");
    let blob_size = case.seeded.blobs[2].1;
    let blob_reads: u64 = log
        .iter()
        .filter(|e| e.method == "GET" && e.path == broken.path)
        .map(|e| e.response_bytes)
        .sum();
    assert!(
        blob_reads < blob_size + broken.response_bytes + 1,
        "the blob was read once plus the broken part, not again from the start: {blob_reads}"
    );
}

#[tokio::test]
async fn connection_reset_mid_blob_resumes_with_a_range_request() {
    resumes_after("reset", Fault::ResetAfter(MIB as u64)).await;
}

#[tokio::test]
async fn body_cut_short_by_a_closed_connection_resumes_with_a_range_request() {
    resumes_after("truncated", Fault::CloseAfter(MIB as u64 + 12_345)).await;
}

#[tokio::test]
async fn connection_reset_mid_manifest_is_retried() {
    let case = Case::new("manifest-reset", &[50_000], |_| {
        vec![Rule::new("GET", "/manifests/", Fault::ResetAfter(100)).times(1)]
    })
    .await;
    let report = case.copy().await;
    case.assert_copied(&report).await;
    let broken = &case.proxy.faulted()[0];
    retry_of(&case.proxy.exchanges(), broken);
}

#[tokio::test]
async fn a_complete_but_short_body_is_never_committed() {
    let case = Case::new("short", &[9 * MIB], |blobs| {
        vec![Rule::new(
            "GET",
            &blob_path(&blobs[1]),
            Fault::Shorten(1000),
        )]
    })
    .await;
    let report = case.copy().await;
    let blob = case.seeded.blobs[1].0.clone();
    case.assert_refused(&report, "SizeMismatch", &blob).await;
}

#[tokio::test]
async fn a_body_with_the_wrong_digest_is_never_committed() {
    let case = Case::new("corrupt", &[9 * MIB], |blobs| {
        vec![Rule::new("GET", &blob_path(&blobs[1]), Fault::Corrupt)]
    })
    .await;
    let report = case.copy().await;
    let blob = case.seeded.blobs[1].0.clone();
    case.assert_refused(&report, "DigestMismatch", &blob).await;
    for target in &report.targets {
        assert!(!target.error.as_ref().unwrap().transient, "{target:?}");
    }
    let reads = case
        .proxy
        .exchanges()
        .iter()
        .filter(|e| e.method == "GET" && e.path.ends_with(&blob))
        .count();
    assert_eq!(reads, 3, "read a bounded number of times, then final");
}

#[tokio::test]
async fn a_blob_read_with_the_wrong_digest_once_is_read_again() {
    let case = Case::new("corrupt-once", &[2 * MIB], |blobs| {
        vec![Rule::new("GET", &blob_path(&blobs[1]), Fault::Corrupt).times(1)]
    })
    .await;
    let report = case.copy().await;
    case.assert_copied(&report).await;
    assert_eq!(case.proxy.faulted().len(), 1);
}
