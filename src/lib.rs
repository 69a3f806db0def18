//! image-promoter: a Kubernetes operator that promotes container images from an
//! internal Amazon ECR registry to public registries (ECR Public, Quay.io, any
//! OCI registry) and keeps repositories mirrored during a registry migration.
//!
//! The crate is a library with a thin binary (`src/main.rs`). Modules follow the
//! domain: `api` (custom resources), `registry` (OCI distribution client and the
//! copy engine), `aws` (ECR and ECR Public), `verify` (policy and signatures),
//! `promotion` (one ImagePromotion run, shared by the CLI and the controller),
//! `config` (the configuration file), `tenancy` (which namespace may use which
//! repositories), `mirror` (RegistryMirror's pure decisions), `cli` (the
//! commands), `controller` (the operator: reconcilers, events, metrics,
//! health), `logging` (the log lines' shape and filter) and `allocator` (when
//! freed memory goes back to the kernel).
// `deny`, not `forbid`: src/allocator.rs is the one module allowed unsafe code.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
pub mod allocator;
pub mod api;
pub mod aws;
pub mod build_info;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod controller;
pub mod logging;
pub mod mirror;
pub mod promotion;
pub mod receipt;
pub mod registry;
pub mod tenancy;
pub mod verify;
