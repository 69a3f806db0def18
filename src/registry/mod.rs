//! The OCI registry side: references, digests, manifests, authentication, a
//! retrying streaming client, and the copy engine built on them. Nothing here
//! knows about Kubernetes.

pub mod auth;
pub mod bounded;
pub mod client;
pub mod copy;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod reference;
pub mod registries;
pub mod retry;

pub use client::{ClientSettings, RegistryClient, UploadMode};
pub use copy::{CopyOptions, Engine, Platforms, Target};
pub use digest::Digest;
pub use error::RegistryError;
pub use reference::{ImageReference, Repository};
pub use registries::{CredentialOrigin, Registries};
