//! The product as people get it: the operator's image (`make image`) installed
//! with the Helm chart on the test world's node, two replicas, used with
//! `kubectl apply`, then upgraded and uninstalled with helm; and a release
//! published by `make release` installed as the README's quick start says.
//!
//! The image is the one `make test` built and pushed to the world's "internal
//! ECR" just before ($PROMOTER_TEST_OPERATOR_IMAGE); the values are
//! tests/chart/testworld-values.yaml filled from the world's env by
//! tests/chart/testworld_values.py, as `make demo` fills them. Pods run in the
//! node's network namespace (the world's services listen on 127.0.0.1).

#[path = "../support/mod.rs"]
mod support;

#[path = "../smoke/oci.rs"]
mod oci;

#[path = "../promote/world.rs"]
#[allow(dead_code)]
mod world;

#[path = "../api/cluster.rs"]
#[allow(dead_code)]
mod cluster;

mod release;

mod installed;
mod published;
