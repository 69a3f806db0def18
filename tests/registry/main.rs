//! The copy engine against the test world's real registries: single images,
//! multi-arch indexes, platform subsets, re-copies, mounts, write-once tags,
//! fan-out to several targets, batches, each way of authenticating, and the
//! `copy` command line.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

mod attached;
mod auth;
mod batch;
mod cli;
mod copy;
mod fixtures;
mod modes;
mod origins;
mod races;
