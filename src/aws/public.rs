//! ECR Public: the registry token and the target repositories.
//!
//! ECR Public's API lives in us-east-1 whatever the operator's region, so the
//! client always uses it. [`EcrPublic`] hands the registry client its login
//! (GetAuthorizationToken), tells whether a target repository exists, creates
//! it with its gallery catalog data when a target asks, and brings the
//! catalog data in line only when it differs ([`super::catalog_update`]), so
//! a repository that already matches sees no write at all.
//!
//! The API addresses only the operator's own registry: a repository under
//! another account's alias (`public.ecr.aws/<their-alias>/app`) is never
//! listed, described or created through it ([`EcrPublic::own_aliases`]
//! tells which aliases are the operator's).
//!
//! The IAM actions each call needs, and which kinds need them, are in
//! [`super::permissions`]; a denied call names its action.

use std::time::SystemTime;

use aws_config::SdkConfig;

use super::catalog::{CatalogData, catalog_update};
use super::ecr::TaggedImage;
use super::error::{AwsErrorKind, AwsFailure};
use super::permissions::{self, denied_hint};
use super::token::{RegistryToken, TokenError};
use crate::api::{EcrPublicRepository, reasons};

/// A failed ECR Public call: one variant per operation, with its context.
#[derive(Debug, thiserror::Error)]
pub enum EcrPublicError {
    /// GetAuthorizationToken failed.
    #[error("getting an ECR Public authorization token: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_GET_AUTHORIZATION_TOKEN))]
    AuthorizationToken {
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// GetAuthorizationToken answered with a token that does not decode.
    #[error("decoding the ECR Public authorization token: {source}")]
    DecodeToken {
        /// Why (never the token).
        #[source]
        source: TokenError,
    },
    /// DescribeImageTags failed (a mirror's listing).
    #[error("listing the tags of ECR Public repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_DESCRIBE_IMAGE_TAGS))]
    ListTags {
        /// The repository name (without the registry alias).
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// DescribeRegistries failed (the operator's own aliases).
    #[error("reading the operator's ECR Public registry aliases: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_DESCRIBE_REGISTRIES))]
    DescribeRegistries {
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// DescribeRepositories failed.
    #[error("describing ECR Public repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_DESCRIBE_REPOSITORIES))]
    DescribeRepository {
        /// The repository name (without the registry alias).
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// CreateRepository failed.
    #[error("creating ECR Public repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_CREATE_REPOSITORY))]
    CreateRepository {
        /// The repository name.
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// GetRepositoryCatalogData failed.
    #[error("reading the catalog data of ECR Public repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_GET_REPOSITORY_CATALOG_DATA))]
    GetCatalogData {
        /// The repository name.
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// PutRepositoryCatalogData failed.
    #[error("writing the catalog data of ECR Public repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_PUBLIC_PUT_REPOSITORY_CATALOG_DATA))]
    PutCatalogData {
        /// The repository name.
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
}

impl EcrPublicError {
    fn failure(&self) -> Option<&AwsFailure> {
        match self {
            Self::AuthorizationToken { source }
            | Self::DescribeRegistries { source }
            | Self::ListTags { source, .. }
            | Self::DescribeRepository { source, .. }
            | Self::CreateRepository { source, .. }
            | Self::GetCatalogData { source, .. }
            | Self::PutCatalogData { source, .. } => Some(source),
            Self::DecodeToken { .. } => None,
        }
    }

    /// The PascalCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self.failure().map(AwsFailure::kind) {
            Some(AwsErrorKind::NotFound) => reasons::REPOSITORY_NOT_FOUND,
            Some(kind) => kind.reason().unwrap_or("EcrPublicRequestRejected"),
            None => "EcrPublicRequestRejected",
        }
    }

    /// Whether retrying later may succeed (throttling, 5xx, connection errors).
    pub fn is_transient(&self) -> bool {
        self.failure().is_some_and(AwsFailure::is_transient)
    }
}

/// An ECR Public repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicRepository {
    /// The repository name, without the registry alias, e.g. `app`.
    pub name: String,
    /// The pull URI, e.g. `public.ecr.aws/acme/app`.
    pub uri: Option<String>,
}

/// What [`EcrPublic::create_repository`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepositoryCreation {
    /// The repository did not exist and was created with the catalog data.
    Created(PublicRepository),
    /// The repository existed already (possibly created concurrently); nothing was written.
    AlreadyExists,
}

/// What [`EcrPublic::sync_catalog_data`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogChange {
    /// The catalog data already showed what was asked; nothing was written.
    Unchanged,
    /// The catalog data was written.
    Updated,
}

/// What [`EcrPublic::ensure_repository`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepositoryEnsured {
    /// Created with the catalog data.
    Created,
    /// It existed; its catalog data was brought in line.
    CatalogUpdated,
    /// It existed with matching catalog data; nothing was written.
    Unchanged,
}

/// The ECR Public API of the operator's AWS account.
#[derive(Clone, Debug)]
pub struct EcrPublic {
    client: aws_sdk_ecrpublic::Client,
}

impl EcrPublic {
    /// ECR Public's API region.
    pub const REGION: &'static str = "us-east-1";

    /// A client with the credentials and settings of `sdk`, in us-east-1,
    /// at `endpoint_url` when given.
    pub fn new(sdk: &SdkConfig, endpoint_url: Option<&str>) -> Self {
        let mut config = aws_sdk_ecrpublic::config::Builder::from(sdk)
            .region(aws_sdk_ecrpublic::config::Region::new(Self::REGION));
        if let Some(url) = endpoint_url {
            config = config.endpoint_url(url);
        }
        Self::from_client(aws_sdk_ecrpublic::Client::from_conf(config.build()))
    }

    /// Wraps a client built elsewhere (tests, custom interceptors).
    pub fn from_client(client: aws_sdk_ecrpublic::Client) -> Self {
        Self { client }
    }

    /// Registry credentials (`AWS` and a password) for the ECR Public token realm.
    pub async fn authorization_token(&self) -> Result<RegistryToken, EcrPublicError> {
        let output = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|err| EcrPublicError::AuthorizationToken {
                source: AwsFailure::from_sdk(&err),
            })?;
        let data = output.authorization_data();
        let token =
            data.and_then(|d| d.authorization_token())
                .ok_or(EcrPublicError::DecodeToken {
                    source: TokenError::Missing,
                })?;
        let expires_at = data
            .and_then(|d| d.expires_at())
            .and_then(|t| SystemTime::try_from(*t).ok());
        RegistryToken::decode(token, expires_at)
            .map_err(|source| EcrPublicError::DecodeToken { source })
    }

    /// Every tag of repository `name` with its digest and push time, from
    /// DescribeImageTags in pages of 1,000 (no manifest request per tag);
    /// None when the repository does not exist. More than `max_pages` pages
    /// is an error.
    pub async fn tagged_images(
        &self,
        name: &str,
        max_pages: u32,
    ) -> Result<Option<(Vec<TaggedImage>, u32)>, EcrPublicError> {
        let error = |source| EcrPublicError::ListTags {
            repository: name.to_string(),
            source,
        };
        let listed = super::ecr::listing_pages(max_pages, |next| async move {
            let output = self
                .client
                .describe_image_tags()
                .repository_name(name)
                .max_results(super::ecr::LISTING_PAGE_SIZE)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| AwsFailure::from_sdk(&err))?;
            let mut images = Vec::new();
            for detail in output.image_tag_details() {
                let image = detail.image_detail();
                let (Some(tag), Some(digest)) =
                    (detail.image_tag(), image.and_then(|i| i.image_digest()))
                else {
                    continue;
                };
                images.push(TaggedImage {
                    tag: tag.to_string(),
                    digest: digest.to_string(),
                    pushed: image.and_then(|i| i.image_pushed_at()).map(|t| t.secs()),
                });
            }
            Ok((images, output.next_token().map(str::to_string)))
        })
        .await;
        listed.map_err(error)
    }

    /// The registry aliases of the operator's own account (DescribeRegistries,
    /// every page): only repositories under these are the API's to list,
    /// describe or create.
    pub async fn own_aliases(&self) -> Result<Vec<String>, EcrPublicError> {
        let mut aliases = Vec::new();
        let mut next: Option<String> = None;
        // A registry has a handful of aliases: a few pages at most.
        for _ in 0..10 {
            let output = self
                .client
                .describe_registries()
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|err| EcrPublicError::DescribeRegistries {
                    source: AwsFailure::from_sdk(&err),
                })?;
            for registry in output.registries() {
                aliases.extend(registry.aliases().iter().map(|a| a.name().to_string()));
            }
            match output.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(aliases)
    }

    /// The repository `name` of the account's registry, or `None` when it does not exist.
    pub async fn repository(&self, name: &str) -> Result<Option<PublicRepository>, EcrPublicError> {
        let result = self
            .client
            .describe_repositories()
            .repository_names(name)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                let failure = AwsFailure::from_sdk(&err);
                if failure.is("RepositoryNotFoundException") {
                    return Ok(None);
                }
                return Err(EcrPublicError::DescribeRepository {
                    repository: name.to_string(),
                    source: failure,
                });
            }
        };
        Ok(output
            .repositories()
            .iter()
            .find(|r| r.repository_name() == Some(name))
            .map(|r| PublicRepository {
                name: name.to_string(),
                uri: r.repository_uri().map(str::to_string),
            }))
    }

    /// Creates the repository `name` with `catalog` as its catalog data, unless it exists.
    pub async fn create_repository(
        &self,
        name: &str,
        catalog: &EcrPublicRepository,
    ) -> Result<RepositoryCreation, EcrPublicError> {
        let result = self
            .client
            .create_repository()
            .repository_name(name)
            .catalog_data(CatalogData::wanted(catalog).to_input())
            .send()
            .await;
        match result {
            Ok(output) => Ok(RepositoryCreation::Created(PublicRepository {
                name: name.to_string(),
                uri: output
                    .repository()
                    .and_then(|r| r.repository_uri())
                    .map(str::to_string),
            })),
            Err(err) => {
                let failure = AwsFailure::from_sdk(&err);
                if failure.is("RepositoryAlreadyExistsException") {
                    return Ok(RepositoryCreation::AlreadyExists);
                }
                Err(EcrPublicError::CreateRepository {
                    repository: name.to_string(),
                    source: failure,
                })
            }
        }
    }

    /// Writes `catalog` to the repository `name` when its catalog data differs
    /// ([`catalog_update`]); fields `catalog` leaves unset are kept.
    pub async fn sync_catalog_data(
        &self,
        name: &str,
        catalog: &EcrPublicRepository,
    ) -> Result<CatalogChange, EcrPublicError> {
        let current = self
            .client
            .get_repository_catalog_data()
            .repository_name(name)
            .send()
            .await
            .map_err(|err| EcrPublicError::GetCatalogData {
                repository: name.to_string(),
                source: AwsFailure::from_sdk(&err),
            })?;
        let current = current
            .catalog_data()
            .map(CatalogData::from_sdk)
            .unwrap_or_default();
        let Some(update) = catalog_update(&current, &CatalogData::wanted(catalog)) else {
            return Ok(CatalogChange::Unchanged);
        };
        self.client
            .put_repository_catalog_data()
            .repository_name(name)
            .catalog_data(update.to_input())
            .send()
            .await
            .map_err(|err| EcrPublicError::PutCatalogData {
                repository: name.to_string(),
                source: AwsFailure::from_sdk(&err),
            })?;
        Ok(CatalogChange::Updated)
    }

    /// Creates the repository with `catalog` when it is missing, otherwise
    /// brings its catalog data in line; writes nothing when it already matches.
    pub async fn ensure_repository(
        &self,
        name: &str,
        catalog: &EcrPublicRepository,
    ) -> Result<RepositoryEnsured, EcrPublicError> {
        if self.repository(name).await?.is_none()
            && let RepositoryCreation::Created(_) = self.create_repository(name, catalog).await?
        {
            return Ok(RepositoryEnsured::Created);
        }
        Ok(match self.sync_catalog_data(name, catalog).await? {
            CatalogChange::Unchanged => RepositoryEnsured::Unchanged,
            CatalogChange::Updated => RepositoryEnsured::CatalogUpdated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_reason_and_a_retry_class() {
        let failure = |kind| AwsFailure::new(kind, None, "m");
        let cases = [
            (
                EcrPublicError::CreateRepository {
                    repository: "app".into(),
                    source: failure(AwsErrorKind::AccessDenied),
                },
                "AccessDenied",
                false,
            ),
            (
                EcrPublicError::PutCatalogData {
                    repository: "app".into(),
                    source: failure(AwsErrorKind::NotFound),
                },
                "RepositoryNotFound",
                false,
            ),
            (
                EcrPublicError::GetCatalogData {
                    repository: "app".into(),
                    source: failure(AwsErrorKind::Throttled),
                },
                "RegistryUnavailable",
                true,
            ),
            (
                EcrPublicError::DescribeRepository {
                    repository: "app".into(),
                    source: failure(AwsErrorKind::Rejected),
                },
                "EcrPublicRequestRejected",
                false,
            ),
            (
                EcrPublicError::AuthorizationToken {
                    source: failure(AwsErrorKind::AuthenticationFailed),
                },
                "AuthenticationFailed",
                false,
            ),
            (
                EcrPublicError::DecodeToken {
                    source: TokenError::Missing,
                },
                "EcrPublicRequestRejected",
                false,
            ),
        ];
        for (error, reason, transient) in cases {
            assert_eq!(error.reason(), reason, "{error}");
            assert_eq!(error.is_transient(), transient, "{error}");
        }
    }
}
