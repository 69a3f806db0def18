//! The compliance metrics (docs/compliance.md, docs/metrics.md): how many
//! published promotions stand violated by reason, how many ignore entries
//! expire soon, what the checks cost (scan reads, signature checks made or
//! taken from the cache) and, for the migration view, how far each tier's
//! repositories are from retiring their old registry.

use std::collections::BTreeMap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The compliance families, registered in the operator's one registry.
#[derive(Clone, Default)]
pub struct ComplianceMetrics {
    noncompliant: Family<Labels, Gauge>,
    ignores_expiring: Gauge,
    checks: Family<Labels, Counter>,
    scan_reads: Counter,
    signature_checks: Family<Labels, Counter>,
    repositories: Family<Labels, Gauge>,
    retirable: Family<Labels, Gauge>,
}

impl ComplianceMetrics {
    /// Registers the families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "image_promoter_noncompliant_promotions",
            "Ready promotions whose published digest no longer passes its effective policy, by reason",
            self.noncompliant.clone(),
        );
        registry.register(
            "image_promoter_ignores_expiring",
            "Ignore entries covering a current finding of a published digest that expire within 14 days",
            self.ignores_expiring.clone(),
        );
        registry.register(
            "image_promoter_compliance_checks",
            "Compliance checks of published promotions, by result (the Compliant reason, or Skipped)",
            self.checks.clone(),
        );
        registry.register(
            "image_promoter_compliance_scan_reads",
            "Scan-findings reads (DescribeImageScanFindings) made by compliance checks",
            self.scan_reads.clone(),
        );
        registry.register(
            "image_promoter_compliance_signature_checks",
            "Signature checks of compliance, by source: registry (read again) or cache (digest and keys unchanged)",
            self.signature_checks.clone(),
        );
        registry.register(
            "image_promoter_published_repositories",
            "Repositories the operator publishes (one per ImagePromotion or RegistryMirror source), by tier (the migration view of image-promoter report)",
            self.repositories.clone(),
        );
        registry.register(
            "image_promoter_retirable_repositories",
            "Published repositories whose old registry can be retired (every selected tag in sync at every target, no drift, Ready for 7 days), by tier",
            self.retirable.clone(),
        );
        for reason in super::judge::NONCOMPLIANT_REASONS {
            self.noncompliant
                .get_or_create(&labels(&[("reason", reason)]))
                .set(0);
        }
    }

    /// Sets the gauges from the ledger's tally.
    pub fn set(&self, by_reason: &BTreeMap<&'static str, i64>, expiring: i64) {
        for (reason, count) in by_reason {
            self.noncompliant
                .get_or_create(&labels(&[("reason", reason)]))
                .set(*count);
        }
        self.ignores_expiring.set(expiring);
    }

    /// Sets the migration gauges from `view`; tiers no longer present go to 0.
    pub fn set_migration(&self, view: &[super::report::TierView]) {
        self.repositories.clear();
        self.retirable.clear();
        for tier in view {
            let tier_label = labels(&[("tier", &tier.tier)]);
            self.repositories
                .get_or_create(&tier_label)
                .set(tier.repositories.len() as i64);
            self.retirable
                .get_or_create(&tier_label)
                .set(tier.retirable as i64);
        }
    }

    /// Counts a check that ended with `result`.
    pub fn checked(&self, result: &str) {
        self.checks
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// Counts a scan-findings read.
    pub fn scan_read(&self) {
        self.scan_reads.inc();
    }

    /// Counts a signature check, from the registry or the cache.
    pub fn signature_check(&self, cached: bool) {
        let source = if cached { "cache" } else { "registry" };
        self.signature_checks
            .get_or_create(&labels(&[("source", source)]))
            .inc();
    }
}
