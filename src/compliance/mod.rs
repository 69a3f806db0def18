//! Continuous compliance: a Ready promotion's published digest is judged
//! again against its effective policy (the object's `spec.verify` raised to
//! the operator's floor) at the compliance interval, and at once when the
//! floor or a referenced Secret changes. New findings, expired ignore
//! entries and revoked keys show as the `Compliant` condition; nothing is
//! copied and no tag is moved (docs/compliance.md).
//!
//! - [`judge`]: the decision, pure — what the checks that can change after
//!   publication say, named with one of the condition's reasons;
//! - [`ledger`]: the process's memory of each promotion's compliance (when
//!   checked and next due, the judgement, the signature checks cached per
//!   digest and key set), never read back from the status;
//! - [`check`]: one check's I/O (one scan read; signatures only when the
//!   digest or the keys changed);
//! - [`mirror`]: a RegistryMirror's in-sync tags, judged the same way per
//!   source digest, and how that shows in its status (pure);
//! - [`metrics`]: the gauges and counters;
//! - [`report`]: the migration view — what is live where, in sync and
//!   compliant, and which tier's old registry can be retired.

pub mod check;
pub mod judge;
pub mod ledger;
pub mod metrics;
pub mod mirror;
pub mod report;

pub use judge::{COMPLIANT, Judgement, Standing, judge};
pub use ledger::Ledger;
pub use metrics::ComplianceMetrics;
