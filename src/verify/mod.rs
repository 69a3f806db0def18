//! Verification: may an image leave internal ECR?
//!
//! ECR Public has no tag immutability and no scanning, so the promoter is the
//! only gate. This module holds the decision and the signature checks, both
//! free of I/O:
//!
//! - [`policy`]: [`evaluate`] the object's `spec.verify`, raised to the
//!   operator's [`VerificationFloor`], against what was observed about the
//!   source (ECR facts from [`crate::aws`], signature outcomes from
//!   [`cosign`]); the [`Verdict`] says passed, waiting (scan pending) or
//!   refused, with a PascalCase reason per failure;
//! - [`floor`]: the operator-wide floor, embedded in the configuration file;
//! - [`bundle`]: the Sigstore bundle format, read and written (shared with
//!   the receipts);
//! - [`cosign`]: cosign signatures — gathering candidates through the
//!   registry client ([`cosign::SignatureStore`]) and verifying them.
//!
//! The controller (and the one-shot CLI) observe, call [`evaluate`], and act
//! on the verdict: copy only when it passed.

pub mod bundle;
pub mod cosign;
pub mod fingerprint;
pub mod floor;
pub mod keyless;
pub mod policy;

pub use fingerprint::fingerprint;
pub use floor::{FloorError, ScanFloor, SignatureFloor, VerificationFloor};
pub use policy::{
    Failure, Observations, RequiredBy, SignatureChecks, Verdict, evaluate, evaluate_with,
};
