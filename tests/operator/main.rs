//! `image-promoter run` end to end: the real binary runs as a child process
//! of each test, with a ServiceAccount token bound to exactly the rules of
//! deploy/rbac.yaml, against the test world's real apiserver, registries,
//! moto (ECR), the ECR Public stand-in and real cosign signatures.
//!
//! Every test has its own namespace (the operator watches only it), its own
//! repositories and its own operator process, so the tests run in parallel.
//! Nothing sleeps to synchronise: every wait polls with a deadline and fails
//! with the operator's log.

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

#[path = "../verify/keyless_sigstore.rs"]
#[allow(dead_code)]
mod keyless_sigstore;

#[path = "../soak/private.rs"]
#[allow(dead_code)]
mod private;

mod compliance;
mod concurrency;
mod configuration;
mod faults;
mod finished;
mod forged;
mod forgotten;
mod harness;
mod keyless;
mod mirror_trust;
mod mirrored;
mod paced;
mod partition;
mod promoted;
mod receipts;
mod rechecked;
mod refused;
mod replicas;
mod restart;
mod resumed;
mod secrets;
mod shards;
mod tenancy;
mod told;
