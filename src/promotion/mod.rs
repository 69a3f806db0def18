//! One run of an ImagePromotion, in the house order: plan without I/O
//! ([`mod@plan`]); observe the source ([`observe`]: tag → digest, ECR settings
//! and scan, signatures); decide with [`crate::verify::evaluate`]; unless
//! refused, waiting or a dry run, create the ECR Public repositories asked
//! for and copy with the engine ([`run`]); then the status, pure
//! ([`status`]). `image-promoter promote` drives it once; the controller
//! will drive it on every reconcile.

pub mod observe;
pub mod plan;
pub mod registries;
pub mod run;
pub mod status;

pub use plan::{PromotionPlan, SecretAccess, SecretCredentials, plan, plan_with};
pub use run::{RunOptions, Shared, execute, execute_with};
