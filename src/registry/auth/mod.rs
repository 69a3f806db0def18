//! Authentication to registries: challenges, credentials and their sources,
//! dockerconfigjson documents and docker credential helpers, and the per-registry session that turns them into
//! `Authorization` headers (basic, or bearer tokens per scope).

pub mod challenge;
pub mod credentials;
pub mod dockerconfig;
pub mod helpers;
pub mod session;

pub use credentials::{
    Credential, CredentialError, CredentialSource, Lease, RealmRule, Secret, SharedSource,
    StaticCredential,
};
pub use session::{AuthSession, Clock, Scope, SystemClock};
