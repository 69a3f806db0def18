//! `image-promoter mirror` end to end: the real binary syncs RegistryMirror
//! objects from the test world's Quay registry to a Quay repository and to
//! the ECR Public stand-in (listed through its DescribeImageTags), run after
//! run with a `--state` file as the operator's intervals would.
//!
//! A source of about 300 small tags sharing one layer (semver releases,
//! release candidates, commit-hash tags, `latest`, cosign signature tags) is
//! seeded once per run of this binary; each test mirrors into repositories of
//! its own (`unique_name`), so the tests run in parallel. Requests are counted
//! at the registry side by the fault proxy of `tests/faults/` standing in
//! front of the Quay registry. A missing test world is a failure that says
//! how to start it, never a skip.

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

#[allow(dead_code)]
#[path = "../registry/fixtures.rs"]
mod fixtures;

#[allow(dead_code)]
#[path = "../faults/proxy.rs"]
mod proxy;

#[allow(dead_code)]
#[path = "../faults/world.rs"]
mod faults_world;

#[allow(dead_code)]
#[path = "../promote/world.rs"]
mod promote_world;

#[allow(dead_code)]
#[path = "../promote/standin.rs"]
mod standin;

mod aliases;
mod backoff;
mod ecr;
mod filters;
mod floor;
mod follow;
mod throttled;
mod world;
