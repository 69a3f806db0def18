//! RegistryMirror's decisions, pure: which source tags a mirror selects
//! ([`selection`], with version ranges in [`semver`]). The inventories, the
//! plan per (tag, target) and the controller build on these.

pub mod selection;
pub mod semver;

pub use selection::{SelectionError, SourceTag, TagSelection};
pub use semver::{Range, Version};
