//! Amazon ECR and ECR Public, through the AWS SDK.
//!
//! Internal ECR has what the public side lacks — immutable tags, KMS
//! encryption, image scanning — so before an image leaves it the promoter
//! reads those facts here: which digest a tag names, how the repository is
//! configured, what the last scan found. ECR Public is the other end: an
//! authorization token for the registry client, and the repository a target
//! may ask to be created with its gallery catalog data.
//!
//! The split follows the house style: the facts are plain data
//! ([`RepositorySettings`], [`ScanReport`], [`EcrRegistry`]) built by pure,
//! table-tested functions from what the SDK returns; [`EcrInspector`] and
//! [`EcrPublic`] only make the calls. Whether the facts are good enough is
//! not decided here but in [`crate::verify`].
//!
//! Clients are built from an [`aws_config::SdkConfig`] the caller loads with
//! the default chain (IRSA web identity, EKS Pod Identity, environment), plus
//! an optional endpoint URL for stand-ins and VPC endpoints. Nothing here
//! reads a configuration file. Retries of throttling, 5xx and connection
//! errors are the SDK's standard retry mode; what still fails is classified
//! by [`AwsFailure`] as transient (retry later) or permanent.

mod catalog;
mod ecr;
mod error;
mod host;
pub mod permissions;
mod public;
mod registry_auth;
mod repository;
mod scan;
mod token;

pub use catalog::{CatalogData, catalog_update};
pub use ecr::{EcrError, EcrInspector, TaggedImage};
pub use error::{AwsErrorKind, AwsFailure, classify};
pub use host::{
    ECR_PUBLIC_HOST, EcrRegistry, EcrRegistryError, parse_ecr_host, resolve_ecr_registry,
};
pub use public::{
    CatalogChange, EcrPublic, EcrPublicError, PublicRepository, RepositoryCreation,
    RepositoryEnsured,
};
pub use registry_auth::{EcrPublicTokenSource, EcrTokenSource};
pub use repository::{
    Encryption, EncryptionType, RepositorySettings, SIGNATURE_TAG_PREFIX, TagMutability,
    signature_only,
};
pub use scan::{Finding, ScanReport, ScanStatus};
pub use token::{RegistryToken, TokenError};
