//! The API against the real apiserver of the test world: the generated CRDs
//! install, the examples are accepted, invalid objects are refused with a
//! message that names the field and what is allowed, status goes through the
//! status subresource with server-side apply, and `kubectl get` prints the
//! documented columns, and the chart's aggregated roles give people what
//! `view` and `edit` promise and never `/status`.
//!
//! Every test works in a namespace of its own, so the tests run in parallel
//! and again without cleaning up. The CRDs are cluster-wide: every test
//! applies them (an idempotent server-side apply) and waits until they are
//! established.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod examples;
mod fixtures;
mod install;
mod invalid;
mod printing;
mod rbac;
mod status;
