//! The soak: the operator correct over time (`make soak`: 10 minutes, 1,000
//! promotions, 20 mirrors, against a release build; under `cargo test` a
//! 2-minute variant with 100 promotions and 4 mirrors).
//!
//! Replicas of the binary under test run as child processes with
//! `--leader-elect` against a private control plane ([`private`]): its own
//! apiserver, so that restarting it disturbs no other test, and its own ECR
//! Public, so that taking it down does not either. Internal ECR (moto and its
//! registry) and Quay are the shared world's. Every target registry is reached
//! through a recording proxy, so each manifest write is seen with its time and
//! digest.
//!
//! The run ([`plan`]): a base population is created and promoted; then churn
//! waves, each created, worked and deleted in its share of the time, with the
//! leader killed (SIGKILL, a standby running) in the first, the apiserver
//! restarted in the middle one and ECR Public down for 30 s (scaled with the
//! run) in a later one; the base mirrors' sources gain a tag and move `latest`
//! every wave. At the end ([`checks`]): every surviving object Ready with the
//! exact digests at its targets, no tag written for a deleted object after its
//! deletion, the gauges equal to what exists, peak RSS ≤ 128 MiB and the
//! leader's RSS after the churn within 10 % of before, no floating tag moved
//! back. A replica that exits on its own is replaced and reported. The report
//! goes to standard error and, with `SOAK_REPORT=<file>`, into that file's
//! `soak` section (`make soak`: docs/benchmarks-operator.md). Any failed check
//! fails the test, after the report is written.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

#[path = "../promote/world.rs"]
#[allow(dead_code)]
mod world;

#[path = "../faults/proxy.rs"]
#[allow(dead_code)]
mod proxy;

#[path = "../api/cluster.rs"]
#[allow(dead_code)]
mod cluster;

#[path = "../operator/harness.rs"]
#[allow(dead_code)]
mod harness;

mod checks;
mod plan;
mod private;
mod replicas;
mod report;
mod run;
