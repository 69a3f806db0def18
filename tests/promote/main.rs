//! `image-promoter promote` end to end: the real binary runs ImagePromotion
//! objects against the test world — sources in the internal ECR registry
//! with their facts in moto (tag mutability, encryption, injected scan
//! findings), signed by the real `cosign` — and copies to the Quay registry
//! and the ECR Public stand-in. Each test checks the printed status, the exit
//! code and what the registries hold afterwards.
//!
//! Every test uses repositories of its own (`unique_name`), so the tests run
//! in parallel and again without cleaning up. A missing test world is a
//! failure that says how to start it, never a skip.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

#[path = "../verify/keyless_sigstore.rs"]
#[allow(dead_code)]
mod keyless_sigstore;

mod invalid;
mod keyless;
mod promoted;
mod refused;
mod standin;
mod subset;
mod tenancy;
mod world;
