//! The copy engine under injected faults: a small proxy (`proxy.rs`) stands in
//! front of the test world's registries and throttles, fails, breaks, shortens
//! or corrupts what passes through it, or speaks ECR's upload dialect. After
//! every fault the copy either succeeded with the right digests, or failed with
//! a clear error and left the target tag untouched — never a tag naming an
//! image with a missing blob. A copy process killed midway completes on the
//! next run, moving only what was missing. Hostile transport: a TLS peer that
//! cannot be trusted is refused for good, a committed upload whose answer is
//! lost is a success, and a stalled body fails after the stall timeout while a
//! slow one goes on.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

#[allow(dead_code)]
#[path = "../registry/fixtures.rs"]
mod fixtures;

mod auth;
mod hostile;
mod killed;
mod proxy;
mod source;
mod target;
mod world;
