//! RegistryMirror: keep selected tags of one repository the same in other
//! registries, at a cost that does not grow with the repository.
//!
//! Pure decisions: which tags ([`selection`], with version ranges in
//! [`semver`]), how to reach and list each repository ([`setup`]), what to
//! do per (tag, target) ([`plan`]) and the status that results ([`status`]).
//! Before a tag is copied its image passes the promotion's verification
//! ([`verification`]).
//! I/O: the listings ([`inventory`]) and one sync ([`sync`]), remembering
//! what it learnt in a [`ledger`] kept in memory by the controller or in a
//! file by the command line ([`state`]).

pub mod inventory;
pub mod ledger;
pub mod plan;
pub mod selection;
pub mod semver;
pub mod setup;
pub mod state;
pub mod status;
pub mod sync;
pub mod verification;

pub use ledger::Ledger;
pub use selection::{SelectionError, SourceTag, TagSelection};
pub use semver::{Range, Version};
pub use setup::{MirrorSetup, setup};
pub use sync::{SyncFailure, SyncOptions, SyncReport, sync};
