//! The operator's Prometheus metrics (docs/metrics.md): controller-runtime's
//! names where they exist, so dashboards built for Go operators work, and the
//! product's own. Counters are registered without `_total` (the encoder adds
//! it; prometheus-client refuses the suffix in debug builds).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::registry::copy::report::TargetReport;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The name of the promotion controller in controller-runtime's labels.
pub const CONTROLLER: &str = "imagepromotion";

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
    /// The compliance families (docs/compliance.md).
    pub compliance: crate::compliance::ComplianceMetrics,
    /// Per object UID: its state label and drifted tag count.
    objects: Mutex<HashMap<String, (&'static str, i64)>>,
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
        let controller = labels(&[("controller", CONTROLLER)]);
        max_concurrent
            .get_or_create(&controller)
            .set(i64::from(concurrency));
        active_workers.get_or_create(&controller).set(0);
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
            compliance,
            objects: Mutex::default(),
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

    /// A reconcile started; the returned guard counts it as active until dropped.
    pub fn worker(&self) -> WorkerGuard<'_> {
        let gauge = self
            .active_workers
            .get_or_create(&labels(&[("controller", CONTROLLER)]))
            .clone();
        gauge.inc();
        WorkerGuard {
            gauge,
            _metrics: self,
        }
    }

    /// A reconcile ended with `result` after `took`.
    pub fn reconciled(&self, result: ReconcileResult, took: Duration) {
        let controller = labels(&[("controller", CONTROLLER)]);
        self.reconciles
            .get_or_create(&labels(&[
                ("controller", CONTROLLER),
                ("result", result.label()),
            ]))
            .inc();
        if result == ReconcileResult::Error {
            self.reconcile_errors.get_or_create(&controller).inc();
        }
        self.reconcile_time
            .get_or_create(&controller)
            .observe(took.as_secs_f64());
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
            let _worker = metrics.worker();
            metrics.reconciled(ReconcileResult::Error, Duration::from_millis(20));
        }
        metrics.reconciled(ReconcileResult::Success, Duration::from_millis(20));
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
    }
}
