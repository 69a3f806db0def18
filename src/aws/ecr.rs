//! Reads what verification needs from one Amazon ECR registry.
//!
//! [`EcrInspector`] makes the calls — DescribeImages (tag → digest),
//! DescribeRepositories (mutability, encryption), DescribeImageScanFindings
//! (paginated), GetAuthorizationToken — and turns the answers into the plain
//! data of [`super::repository`] and [`super::scan`]. The identity needs only
//! read permissions: `ecr:DescribeImages`, `ecr:DescribeRepositories`,
//! `ecr:DescribeImageScanFindings` and `ecr:GetAuthorizationToken`.

use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_sdk_ecr::types::ImageIdentifier;

use super::error::{AwsErrorKind, AwsFailure};
use super::host::EcrRegistry;
use super::permissions::{self, denied_hint};
use super::repository::RepositorySettings;
use super::scan::ScanReport;
use super::token::{RegistryToken, TokenError};
use crate::api::reasons;

/// Page size of DescribeImageScanFindings (ECR's maximum).
const FINDINGS_PAGE_SIZE: i32 = 1000;
/// Page size of DescribeImages and ECR Public's DescribeImageTags (their maximum).
pub(crate) const LISTING_PAGE_SIZE: i32 = 1000;

/// Reads a listing page after page (`fetch` is given the previous page's
/// next token): every item and the pages read, None when the repository
/// does not exist, an error past `max_pages` pages.
pub(crate) async fn listing_pages<F, Fut>(
    max_pages: u32,
    mut fetch: F,
) -> Result<Option<(Vec<TaggedImage>, u32)>, AwsFailure>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<TaggedImage>, Option<String>), AwsFailure>>,
{
    let mut images = Vec::new();
    let mut next = None;
    for page in 1..=max_pages {
        match fetch(next.take()).await {
            Ok((more, token)) => {
                images.extend(more);
                match token {
                    Some(token) if !token.is_empty() => next = Some(token),
                    _ => return Ok(Some((images, page))),
                }
            }
            Err(failure) if failure.is("RepositoryNotFoundException") => return Ok(None),
            Err(failure) => return Err(failure),
        }
    }
    Err(AwsFailure::new(
        AwsErrorKind::Rejected,
        None,
        format!("more than {max_pages} pages of tags; refused"),
    ))
}

/// One tag of a repository as ECR's API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedImage {
    /// The tag.
    pub tag: String,
    /// The digest it names, as the API gave it (validated by the caller).
    pub digest: String,
    /// When the image was pushed, in seconds since the epoch.
    pub pushed: Option<i64>,
}

/// A failed ECR call: one variant per operation, with its context.
#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    /// DescribeImages for a tag failed, or found no image.
    #[error("resolving tag {tag:?} of ECR repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_DESCRIBE_IMAGES))]
    ResolveTag {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// DescribeImages over the whole repository failed (a mirror's listing).
    #[error("listing the images of ECR repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_LIST_IMAGES))]
    ListImages {
        /// The repository.
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// DescribeRepositories failed.
    #[error("describing ECR repository {repository}: {source}{}", denied_hint(source, &permissions::ECR_DESCRIBE_REPOSITORIES))]
    DescribeRepository {
        /// The repository.
        repository: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// DescribeImageScanFindings failed.
    #[error("reading the scan findings of {repository}@{digest}: {source}{}", denied_hint(source, &permissions::ECR_DESCRIBE_IMAGE_SCAN_FINDINGS))]
    DescribeScanFindings {
        /// The repository.
        repository: String,
        /// The image digest.
        digest: String,
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// GetAuthorizationToken failed.
    #[error("getting an Amazon ECR authorization token: {source}{}", denied_hint(source, &permissions::ECR_GET_AUTHORIZATION_TOKEN))]
    AuthorizationToken {
        /// What AWS said.
        #[source]
        source: AwsFailure,
    },
    /// GetAuthorizationToken answered with a token that does not decode.
    #[error("decoding the Amazon ECR authorization token: {source}")]
    DecodeToken {
        /// Why it does not decode (never the token).
        #[source]
        source: TokenError,
    },
}

impl EcrError {
    /// The PascalCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ResolveTag { source, .. }
            | Self::ListImages { source, .. }
            | Self::DescribeRepository { source, .. }
            | Self::DescribeScanFindings { source, .. } => match source.kind() {
                AwsErrorKind::NotFound => reasons::SOURCE_NOT_FOUND,
                kind => kind.reason().unwrap_or("EcrRequestRejected"),
            },
            Self::AuthorizationToken { source } => {
                source.kind().reason().unwrap_or("EcrRequestRejected")
            }
            Self::DecodeToken { .. } => "EcrRequestRejected",
        }
    }

    /// Whether retrying later may succeed (throttling, 5xx, connection errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::ResolveTag { source, .. }
            | Self::ListImages { source, .. }
            | Self::DescribeRepository { source, .. }
            | Self::DescribeScanFindings { source, .. }
            | Self::AuthorizationToken { source } => source.is_transient(),
            Self::DecodeToken { .. } => false,
        }
    }
}

/// Reads repositories and images of one ECR registry.
#[derive(Clone, Debug)]
pub struct EcrInspector {
    client: aws_sdk_ecr::Client,
    registry: EcrRegistry,
}

impl EcrInspector {
    /// A client for `registry` with the credentials and settings of `sdk`, in
    /// the registry's region (FIPS when its host is), at `endpoint_url` when given.
    pub fn new(sdk: &SdkConfig, registry: EcrRegistry, endpoint_url: Option<&str>) -> Self {
        let mut config = aws_sdk_ecr::config::Builder::from(sdk)
            .region(aws_sdk_ecr::config::Region::new(registry.region.clone()));
        if registry.fips {
            config = config.use_fips(true);
        }
        if let Some(url) = endpoint_url {
            config = config.endpoint_url(url);
        }
        Self::from_client(aws_sdk_ecr::Client::from_conf(config.build()), registry)
    }

    /// Wraps a client built elsewhere (tests, custom interceptors).
    pub fn from_client(client: aws_sdk_ecr::Client, registry: EcrRegistry) -> Self {
        Self { client, registry }
    }

    /// The registry this inspector reads.
    pub fn registry(&self) -> &EcrRegistry {
        &self.registry
    }

    /// The digest `tag` names in `repository` (for a multi-platform image, the index's).
    pub async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<String, EcrError> {
        let error = |source| EcrError::ResolveTag {
            repository: repository.to_string(),
            tag: tag.to_string(),
            source,
        };
        let output = self
            .client
            .describe_images()
            .registry_id(&self.registry.registry_id)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await
            .map_err(|err| error(AwsFailure::from_sdk(&err)))?;
        output
            .image_details()
            .iter()
            .find_map(|detail| detail.image_digest())
            .map(str::to_string)
            .ok_or_else(|| {
                error(AwsFailure::new(
                    AwsErrorKind::NotFound,
                    None,
                    "DescribeImages returned no image for the tag",
                ))
            })
    }

    /// Every tag of `repository` with its digest and push time, from
    /// DescribeImages in pages of 1,000 (no manifest request per tag); None
    /// when the repository does not exist; with the pages read. More than
    /// `max_pages` pages is an error.
    pub async fn tagged_images(
        &self,
        repository: &str,
        max_pages: u32,
    ) -> Result<Option<(Vec<TaggedImage>, u32)>, EcrError> {
        use aws_sdk_ecr::types::{DescribeImagesFilter, TagStatus};
        let error = |source| EcrError::ListImages {
            repository: repository.to_string(),
            source,
        };
        let listed = listing_pages(max_pages, |next| async move {
            let output = self
                .client
                .describe_images()
                .registry_id(&self.registry.registry_id)
                .repository_name(repository)
                .filter(
                    DescribeImagesFilter::builder()
                        .tag_status(TagStatus::Tagged)
                        .build(),
                )
                .max_results(LISTING_PAGE_SIZE)
                .set_next_token(next)
                .send()
                .await
                .map_err(|err| AwsFailure::from_sdk(&err))?;
            let mut images = Vec::new();
            for detail in output.image_details() {
                let Some(digest) = detail.image_digest() else {
                    continue;
                };
                let pushed = detail.image_pushed_at().map(|t| t.secs());
                images.extend(detail.image_tags().iter().map(|tag| TaggedImage {
                    tag: tag.clone(),
                    digest: digest.to_string(),
                    pushed,
                }));
            }
            Ok((images, output.next_token().map(str::to_string)))
        })
        .await;
        listed.map_err(error)
    }

    /// Tag mutability and encryption of `repository`.
    pub async fn repository_settings(
        &self,
        repository: &str,
    ) -> Result<RepositorySettings, EcrError> {
        let error = |source| EcrError::DescribeRepository {
            repository: repository.to_string(),
            source,
        };
        let output = self
            .client
            .describe_repositories()
            .registry_id(&self.registry.registry_id)
            .repository_names(repository)
            .send()
            .await
            .map_err(|err| error(AwsFailure::from_sdk(&err)))?;
        output
            .repositories()
            .iter()
            .find(|r| r.repository_name() == Some(repository))
            .map(RepositorySettings::from_sdk)
            .ok_or_else(|| {
                error(AwsFailure::new(
                    AwsErrorKind::NotFound,
                    None,
                    "DescribeRepositories did not return the repository",
                ))
            })
    }

    /// The scan of the image `digest` in `repository`, every page of findings
    /// read. An image that was never scanned is [`ScanReport::not_scanned`], not an error.
    pub async fn scan_report(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<ScanReport, EcrError> {
        let mut stream = self
            .client
            .describe_image_scan_findings()
            .registry_id(&self.registry.registry_id)
            .repository_name(repository)
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            .into_paginator()
            .page_size(FINDINGS_PAGE_SIZE)
            .send();
        let mut pages = Vec::new();
        while let Some(page) = stream.next().await {
            match page {
                Ok(page) => pages.push(page),
                Err(err) => {
                    let failure = AwsFailure::from_sdk(&err);
                    if pages.is_empty() && failure.is("ScanNotFoundException") {
                        return Ok(ScanReport::not_scanned());
                    }
                    return Err(EcrError::DescribeScanFindings {
                        repository: repository.to_string(),
                        digest: digest.to_string(),
                        source: failure,
                    });
                }
            }
        }
        Ok(ScanReport::from_pages(&pages))
    }

    /// Registry credentials (`AWS` and a 12-hour password) for pulling from this registry.
    pub async fn authorization_token(&self) -> Result<RegistryToken, EcrError> {
        let output = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|err| EcrError::AuthorizationToken {
                source: AwsFailure::from_sdk(&err),
            })?;
        let data = output.authorization_data().first();
        let token = data
            .and_then(|d| d.authorization_token())
            .ok_or(EcrError::DecodeToken {
                source: TokenError::Missing,
            })?;
        let expires_at = data
            .and_then(|d| d.expires_at())
            .and_then(|t| SystemTime::try_from(*t).ok());
        RegistryToken::decode(token, expires_at).map_err(|source| EcrError::DecodeToken { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: AwsErrorKind) -> AwsFailure {
        AwsFailure::new(kind, None, "m")
    }

    fn image(tag: &str) -> TaggedImage {
        TaggedImage {
            tag: tag.into(),
            digest: "sha256:00".into(),
            pushed: None,
        }
    }

    #[tokio::test]
    async fn listings_follow_next_tokens_within_a_page_bound() {
        let pages = |next: Option<String>| async move {
            Ok(match next.as_deref() {
                None => (vec![image("a"), image("b")], Some("2".to_string())),
                Some("2") => (vec![image("c")], Some(String::new())),
                _ => unreachable!(),
            })
        };
        let (images, read) = listing_pages(5, pages).await.unwrap().unwrap();
        let tags: Vec<&str> = images.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!((tags.as_slice(), read), (["a", "b", "c"].as_slice(), 2));
        let too_many = listing_pages(1, pages).await.unwrap_err();
        assert!(
            too_many.to_string().contains("more than 1 pages"),
            "{too_many}"
        );
        let missing = listing_pages(3, |_| async {
            Err(AwsFailure::new(
                AwsErrorKind::NotFound,
                Some("RepositoryNotFoundException"),
                "no such repository",
            ))
        })
        .await
        .unwrap();
        assert_eq!(missing, None);
    }

    #[test]
    fn every_operation_has_a_reason_and_a_retry_class() {
        let cases = [
            (
                EcrError::ResolveTag {
                    repository: "r".into(),
                    tag: "t".into(),
                    source: failure(AwsErrorKind::NotFound),
                },
                "SourceNotFound",
                false,
            ),
            (
                EcrError::DescribeRepository {
                    repository: "r".into(),
                    source: failure(AwsErrorKind::AccessDenied),
                },
                "AccessDenied",
                false,
            ),
            (
                EcrError::DescribeScanFindings {
                    repository: "r".into(),
                    digest: "sha256:00".into(),
                    source: failure(AwsErrorKind::Throttled),
                },
                "RegistryUnavailable",
                true,
            ),
            (
                EcrError::DescribeScanFindings {
                    repository: "r".into(),
                    digest: "sha256:00".into(),
                    source: failure(AwsErrorKind::Rejected),
                },
                "EcrRequestRejected",
                false,
            ),
            (
                EcrError::AuthorizationToken {
                    source: failure(AwsErrorKind::Unavailable),
                },
                "RegistryUnavailable",
                true,
            ),
            (
                EcrError::AuthorizationToken {
                    source: failure(AwsErrorKind::AuthenticationFailed),
                },
                "AuthenticationFailed",
                false,
            ),
            (
                EcrError::DecodeToken {
                    source: TokenError::Malformed,
                },
                "EcrRequestRejected",
                false,
            ),
        ];
        for (error, reason, transient) in cases {
            assert_eq!(error.reason(), reason, "{error}");
            assert_eq!(error.is_transient(), transient, "{error}");
        }
    }
}
