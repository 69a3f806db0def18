//! Verification against the real components of the test world: ECR facts
//! from moto (repositories, images with their real digests, scans with
//! injected findings), ECR Public repositories from the stand-in, and
//! cosign signatures made by the real `cosign` binary in the Quay registry,
//! fetched over HTTP and checked by the product's verifier.
//!
//! Every test works in repositories of its own (`unique_name`), so the tests
//! run in parallel and again without cleaning up. A missing test world is a
//! failure that says how to start it, never a skip.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

mod cosign;
mod ecr;
mod keyless;
mod keyless_sigstore;
mod public;
mod store;
mod world;
