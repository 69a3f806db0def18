//! The operator's Prometheus metrics (docs/metrics.md): controller-runtime's
//! names where they exist, so dashboards built for Go operators work, and the
//! product's own. Each kind has its own controller-runtime `controller` label
//! (the lowercase kind: `imagepromotion`, `registrymirror`). Counters are
//! registered without `_total` (the encoder adds it; prometheus-client
//! refuses the suffix in debug builds). Per-object series (a mirror's tag
//! counts and last sync) are removed when the object is forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{RegistryMirrorStatus, TagCounts};
use crate::registry::copy::report::TargetReport;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The name of the ImagePromotion controller in controller-runtime's labels.
pub const CONTROLLER: &str = "imagepromotion";
/// The name of the RegistryMirror controller in controller-runtime's labels.
pub const MIRROR_CONTROLLER: &str = "registrymirror";
/// Every controller of the process.
pub const CONTROLLERS: [&str; 2] = [CONTROLLER, MIRROR_CONTROLLER];

/// How one state's count is read from a mirror's `status.tags`.
type TagCount = fn(&TagCounts) -> i32;

/// The `state` label values of `image_promoter_mirror_tags`, with the count
/// each takes from a mirror's `status.tags`.
pub const MIRROR_TAG_STATES: [(&str, TagCount); 6] = [
    ("in_sync", |c| c.in_sync),
    ("pending", |c| c.pending),
    ("drifted", |c| c.drifted),
    ("failed", |c| c.failed),
    ("refused", |c| c.refused),
    // A subset of in_sync (docs/metrics.md).
    ("noncompliant", |c| c.noncompliant),
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn reconcile_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// Every metric, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_time: Histograms,
    active_workers: Family<Labels, Gauge>,
    leader: Family<Labels, Gauge>,
    promotions: Family<Labels, Gauge>,
    bytes_copied: Family<Labels, Counter>,
    blobs: Family<Labels, Counter>,
    verification_failures: Family<Labels, Counter>,
    registry_requests: Family<Labels, Counter>,
    drifted_tags: Gauge,
    drift_check_failures: Family<Labels, Counter>,
    tenancy_open: Gauge,
    mirror_tags: Family<Labels, Gauge>,
    mirror_last_sync: Family<Labels, Gauge>,
    /// The compliance families (docs/compliance.md).
    pub compliance: crate::compliance::ComplianceMetrics,
    /// Per object UID: its state label and drifted tag count.
    objects: Mutex<HashMap<String, (&'static str, i64)>>,
    /// Per mirror UID: the namespace and name its series carry.
    mirrors: Mutex<HashMap<String, (String, String)>>,
}

/// How one reconcile ended, as controller-runtime's `result` label says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Done, nothing queued.
    Success,
    /// Requeued after a delay.
    RequeueAfter,
    /// Failed.
    Error,
}

impl ReconcileResult {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::RequeueAfter => "requeue_after",
            Self::Error => "error",
        }
    }
}

impl Metrics {
    /// Registers every metric; `concurrency` is `--concurrency`.
    pub fn new(concurrency: u16, lease: &str) -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<Labels, Counter>::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        let reconcile_time: Histograms = Family::new_with_constructor(reconcile_buckets);
        let max_concurrent = Family::<Labels, Gauge>::default();
        let active_workers = Family::<Labels, Gauge>::default();
        let leader = Family::<Labels, Gauge>::default();
        let promotions = Family::<Labels, Gauge>::default();
        let bytes_copied = Family::<Labels, Counter>::default();
        let blobs = Family::<Labels, Counter>::default();
        let verification_failures = Family::<Labels, Counter>::default();
        let registry_requests = Family::<Labels, Counter>::default();
        let drifted_tags = Gauge::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconciles.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            max_concurrent.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            active_workers.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
            leader.clone(),
        );
        registry.register(
            "image_promoter_promotions",
            "ImagePromotions by state (Ready, Reconciling, Stalled, Drifted, Pending)",
            promotions.clone(),
        );
        registry.register(
            "image_promoter_bytes_copied",
            "Bytes uploaded to target registries",
            bytes_copied.clone(),
        );
        registry.register(
            "image_promoter_blobs",
            "Blobs handled at target registries by outcome (skipped, mounted, uploaded)",
            blobs.clone(),
        );
        registry.register(
            "image_promoter_verification_failures",
            "Sources refused by verification, by reason",
            verification_failures.clone(),
        );
        registry.register(
            "image_promoter_registry_requests",
            "HTTP requests sent to registries, by registry host, method and status code (0: no answer)",
            registry_requests.clone(),
        );
        registry.register(
            "image_promoter_drifted_tags",
            "Published write-once tags that now point at another digest",
            drifted_tags.clone(),
        );
        let drift_check_failures = Family::<Labels, Counter>::default();
        registry.register(
            "image_promoter_drift_check_failures",
            "Drift checks of finished promotions that could not run, by reason",
            drift_check_failures.clone(),
        );
        let tenancy_open = Gauge::default();
        registry.register(
            "image_promoter_tenancy_open",
            "1 when the configuration has no tenancy section: every watched namespace may use the operator's credentials for anything they reach",
            tenancy_open.clone(),
        );
        let compliance = crate::compliance::ComplianceMetrics::default();
        compliance.register(&mut registry);
        let mirror_tags = Family::<Labels, Gauge>::default();
        registry.register(
            "image_promoter_mirror_tags",
            "Selected tags of each RegistryMirror by state (in_sync, pending, drifted, failed, refused), as its status counts them",
            mirror_tags.clone(),
        );
        let mirror_last_sync = Family::<Labels, Gauge>::default();
        registry.register(
            "image_promoter_mirror_last_sync_timestamp_seconds",
            "When each RegistryMirror's last sync finished, in seconds since the Unix epoch",
            mirror_last_sync.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        registry.register(
            "image_promoter_build_info",
            "Always 1: the version and the revision of the running binary",
            build_info.clone(),
        );
        build_info
            .get_or_create(&labels(&[
                ("version", crate::build_info::VERSION),
                ("revision", crate::build_info::REVISION),
            ]))
            .set(1);
        for controller in CONTROLLERS {
            let controller = labels(&[("controller", controller)]);
            max_concurrent
                .get_or_create(&controller)
                .set(i64::from(concurrency));
            active_workers.get_or_create(&controller).set(0);
        }
        leader.get_or_create(&labels(&[("name", lease)])).set(0);
        for state in ["Ready", "Reconciling", "Stalled", "Drifted", "Pending"] {
            promotions
                .get_or_create(&labels(&[("state", state)]))
                .set(0);
        }
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_time,
            active_workers,
            leader,
            promotions,
            bytes_copied,
            blobs,
            verification_failures,
            registry_requests,
            drifted_tags,
            drift_check_failures,
            tenancy_open,
            mirror_tags,
            mirror_last_sync,
            compliance,
            objects: Mutex::default(),
            mirrors: Mutex::default(),
        }
    }

    /// What counts every request the registry clients of this process send
    /// ([`crate::registry::client::observe_requests`]).
    pub fn request_observer(&self) -> crate::registry::client::RequestObserver {
        let family = self.registry_requests.clone();
        std::sync::Arc::new(move |registry: &str, method: &str, code: u16| {
            family
                .get_or_create(&labels(&[
                    ("registry", registry),
                    ("method", method),
                    ("code", &code.to_string()),
                ]))
                .inc();
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// A reconcile of `controller` started; the returned guard counts it as
    /// active until dropped.
    pub fn worker(&self, controller: &str) -> WorkerGuard<'_> {
        let gauge = self
            .active_workers
            .get_or_create(&labels(&[("controller", controller)]))
            .clone();
        gauge.inc();
        WorkerGuard {
            gauge,
            _metrics: self,
        }
    }

    /// A reconcile of `controller` ended with `result` after `took`.
    pub fn reconciled(&self, controller: &str, result: ReconcileResult, took: Duration) {
        self.reconciles
            .get_or_create(&labels(&[
                ("controller", controller),
                ("result", result.label()),
            ]))
            .inc();
        let controller = labels(&[("controller", controller)]);
        if result == ReconcileResult::Error {
            self.reconcile_errors.get_or_create(&controller).inc();
        }
        self.reconcile_time
            .get_or_create(&controller)
            .observe(took.as_secs_f64());
    }

    /// The mirror `uid` (`namespace`/`name`) now has `status`: its tag
    /// counts and last sync, once it has them.
    pub fn mirror(&self, uid: &str, namespace: &str, name: &str, status: &RegistryMirrorStatus) {
        self.mirrors
            .lock()
            .expect("lock never poisoned")
            .insert(uid.to_string(), (namespace.to_string(), name.to_string()));
        if let Some(tags) = &status.tags {
            for (state, count) in MIRROR_TAG_STATES {
                self.mirror_tags
                    .get_or_create(&labels(&[
                        ("namespace", namespace),
                        ("name", name),
                        ("state", state),
                    ]))
                    .set(i64::from(count(tags)));
            }
        }
        if let Some(synced) = &status.last_sync_time {
            self.mirror_last_sync
                .get_or_create(&labels(&[("namespace", namespace), ("name", name)]))
                .set(synced.0.as_second());
        }
    }

    /// The mirror `uid` is gone: its series go too.
    pub fn forget_mirror(&self, uid: &str) {
        let Some((namespace, name)) = self
            .mirrors
            .lock()
            .expect("lock never poisoned")
            .remove(uid)
        else {
            return;
        };
        let (namespace, name) = (namespace.as_str(), name.as_str());
        for (state, _) in MIRROR_TAG_STATES {
            self.mirror_tags.remove(&labels(&[
                ("namespace", namespace),
                ("name", name),
                ("state", state),
            ]));
        }
        self.mirror_last_sync
            .remove(&labels(&[("namespace", namespace), ("name", name)]));
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.leader
            .get_or_create(&labels(&[("name", lease)]))
            .set(i64::from(leading));
    }

    /// What a copy did at one target of `registry`.
    pub fn copied(&self, registry: &str, report: &TargetReport) {
        self.bytes_copied
            .get_or_create(&labels(&[("registry", registry)]))
            .inc_by(report.bytes_written);
        for (outcome, count) in [
            ("skipped", report.blobs_skipped),
            ("mounted", report.blobs_mounted),
            ("uploaded", report.blobs_uploaded),
        ] {
            self.blobs
                .get_or_create(&labels(&[("registry", registry), ("outcome", outcome)]))
                .inc_by(count);
        }
    }

    /// Verification refused a source for `reason`.
    pub fn verification_failed(&self, reason: &str) {
        self.verification_failures
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// A drift check that could not run, for `reason`.
    pub fn drift_check_failed(&self, reason: &str) {
        self.drift_check_failures
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// Whether the running configuration leaves tenancy open.
    pub fn set_tenancy_open(&self, open: bool) {
        self.tenancy_open.set(i64::from(open));
    }

    /// The object `uid` is now in `state` with `drifted` drifted tags; `None`: it is gone.
    pub fn object(&self, uid: &str, now: Option<(&'static str, i64)>) {
        let mut objects = self.objects.lock().expect("lock never poisoned");
        match now {
            Some(entry) => {
                objects.insert(uid.to_string(), entry);
            }
            None => {
                objects.remove(uid);
            }
        }
        let mut counts: HashMap<&str, i64> = HashMap::new();
        let mut drifted = 0;
        for (state, tags) in objects.values() {
            *counts.entry(state).or_default() += 1;
            drifted += tags;
        }
        for state in ["Ready", "Reconciling", "Stalled", "Drifted", "Pending"] {
            self.promotions
                .get_or_create(&labels(&[("state", state)]))
                .set(counts.get(state).copied().unwrap_or(0));
        }
        self.drifted_tags.set(drifted);
    }
}

/// Counts one active worker while it lives.
pub struct WorkerGuard<'a> {
    gauge: Gauge,
    _metrics: &'a Metrics,
}

impl Drop for WorkerGuard<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_uses_controller_runtimes_names() {
        let metrics = Metrics::new(4, "image-promoter");
        let observe = metrics.request_observer();
        observe("quay.io", "HEAD", 200);
        observe("quay.io", "HEAD", 200);
        observe("quay.io", "PUT", 0);
        {
            let _worker = metrics.worker(CONTROLLER);
            metrics.reconciled(
                CONTROLLER,
                ReconcileResult::Error,
                Duration::from_millis(20),
            );
        }
        metrics.reconciled(
            CONTROLLER,
            ReconcileResult::Success,
            Duration::from_millis(20),
        );
        metrics.reconciled(
            MIRROR_CONTROLLER,
            ReconcileResult::RequeueAfter,
            Duration::from_millis(20),
        );
        metrics.copied(
            "quay.io",
            &TargetReport {
                bytes_written: 1000,
                blobs_uploaded: 2,
                ..TargetReport::default()
            },
        );
        metrics.verification_failed("VulnerabilitiesFound");
        metrics.object("a", Some(("Ready", 0)));
        metrics.object("b", Some(("Drifted", 2)));
        metrics.object("c", Some(("Ready", 0)));
        metrics.object("c", None);
        let text = metrics.encode();
        for line in [
            "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"error\"} 1",
            "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"imagepromotion\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"imagepromotion\"} 2",
            "controller_runtime_max_concurrent_reconciles{controller=\"imagepromotion\"} 4",
            "controller_runtime_active_workers{controller=\"imagepromotion\"} 0",
            "controller_runtime_reconcile_total{controller=\"registrymirror\",result=\"requeue_after\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"registrymirror\"} 1",
            "controller_runtime_max_concurrent_reconciles{controller=\"registrymirror\"} 4",
            "controller_runtime_active_workers{controller=\"registrymirror\"} 0",
            "leader_election_master_status{name=\"image-promoter\"} 0",
            "image_promoter_promotions{state=\"Ready\"} 1",
            "image_promoter_registry_requests_total{registry=\"quay.io\",method=\"HEAD\",code=\"200\"} 2",
            "image_promoter_registry_requests_total{registry=\"quay.io\",method=\"PUT\",code=\"0\"} 1",
            "image_promoter_promotions{state=\"Drifted\"} 1",
            "image_promoter_bytes_copied_total{registry=\"quay.io\"} 1000",
            "image_promoter_blobs_total{registry=\"quay.io\",outcome=\"uploaded\"} 2",
            "image_promoter_verification_failures_total{reason=\"VulnerabilitiesFound\"} 1",
            "image_promoter_drifted_tags 2",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("controller=\"imagepromotion\",result=\"requeue_after\""),
            "a mirror's reconcile is not a promotion's:\n{text}"
        );
        let build = format!(
            "image_promoter_build_info{{version=\"{}\",revision=\"{}\"}} 1",
            crate::build_info::VERSION,
            crate::build_info::REVISION
        );
        assert!(text.contains(&build), "{build} not in\n{text}");
    }

    fn mirror_status(in_sync: i32, drifted: i32, synced_at: i64) -> RegistryMirrorStatus {
        RegistryMirrorStatus {
            tags: Some(TagCounts {
                selected: in_sync + drifted,
                in_sync,
                drifted,
                ..TagCounts::default()
            }),
            last_sync_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(synced_at).unwrap(),
            )),
            ..RegistryMirrorStatus::default()
        }
    }

    #[test]
    fn a_mirrors_series_follow_its_status_and_go_with_it() {
        let metrics = Metrics::new(1, "image-promoter");
        metrics.mirror("u1", "team", "app", &mirror_status(3, 0, 100));
        metrics.mirror("u1", "team", "app", &mirror_status(2, 1, 200));
        metrics.mirror("u2", "team", "other", &mirror_status(5, 0, 300));
        metrics.mirror("u3", "team", "new", &RegistryMirrorStatus::default());
        let text = metrics.encode();
        for line in [
            "image_promoter_mirror_tags{namespace=\"team\",name=\"app\",state=\"in_sync\"} 2",
            "image_promoter_mirror_tags{namespace=\"team\",name=\"app\",state=\"drifted\"} 1",
            "image_promoter_mirror_tags{namespace=\"team\",name=\"app\",state=\"pending\"} 0",
            "image_promoter_mirror_tags{namespace=\"team\",name=\"app\",state=\"failed\"} 0",
            "image_promoter_mirror_tags{namespace=\"team\",name=\"app\",state=\"refused\"} 0",
            "image_promoter_mirror_last_sync_timestamp_seconds{namespace=\"team\",name=\"app\"} 200",
            "image_promoter_mirror_tags{namespace=\"team\",name=\"other\",state=\"in_sync\"} 5",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("name=\"new\""),
            "no sync yet, no series:\n{text}"
        );
        metrics.forget_mirror("u1");
        metrics.forget_mirror("u1");
        let text = metrics.encode();
        assert!(!text.contains("name=\"app\""), "forgotten:\n{text}");
        assert!(text.contains("name=\"other\""), "{text}");
    }
}
