//! Smoke suite: proves each component of the test world is real and reachable the
//! way the product will use it. It needs `make env-up`; a missing component is a
//! failure with the command to run, never a skip.

#[path = "../support/mod.rs"]
mod support;

mod aws;
mod cosign;
mod kubernetes;
mod node;
mod oci;
mod registries;
