//! GitOps for real: Argo CD (its application controller, repo server and API
//! server, built from its module by `make tools` and started by
//! `make env-up-argocd`) syncs ImagePromotions and RegistryMirrors from a Git
//! repository into the test world, and the operator (the real binary, as in
//! tests/operator) works on them.
//!
//! Each test has its own Git repository (a bare repository read through a
//! file:// URL), its own Application, its own namespace and its own operator
//! process, so the tests run in parallel. The resource customizations are
//! installed the way docs/argocd.md tells users to. A world without Argo CD is
//! a failure that says how to start one, never a skip. Nothing sleeps to
//! synchronise: every wait polls with a deadline.

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

mod actions;
mod argocd;
mod synced;
