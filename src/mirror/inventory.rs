//! Listing a repository's tags cheaply: the inventory adapters.
//!
//! - any registry: `/v2/<name>/tags/list`, following `Link` headers on the
//!   same host, at most [`MAX_LISTING_PAGES`] pages of at most 1 MiB;
//! - ECR: DescribeImages, tags with digests and push times, 1,000 per page;
//! - ECR Public (targets): DescribeImageTags, likewise, under the operator's
//!   own aliases only: the API sees only the operator's registry, so a
//!   repository under another account's alias is listed through the registry
//!   (reading the operator's same-named repository instead would report the
//!   wrong tags and digests).
//!
//! A listing that gives digests spares a manifest request per tag; one that
//! does not leaves the sync to HEAD only what its ledger cannot vouch for.
//! Everything a registry or API answers is untrusted: digests are parsed and
//! dropped when invalid (the tag is then read like an unlisted one), tags
//! that are not valid tag names are ignored.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use super::plan::Problem;
use super::setup::ListingApi;
use crate::aws::{EcrInspector, EcrPublic, EcrPublicError, TaggedImage};
use crate::registry::digest::Digest;
use crate::registry::reference::is_valid_tag;
use crate::registry::{RegistryClient, Repository};

/// The most pages one listing reads (100,000 tags at 1,000 a page).
pub const MAX_LISTING_PAGES: u32 = 100;

/// One listed tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedTag {
    /// The digest, when the listing gives it.
    pub digest: Option<String>,
    /// Push time in seconds since the epoch, when the listing gives it.
    pub pushed: Option<i64>,
}

/// A repository's tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub tags: BTreeMap<String, ListedTag>,
    /// Pages (registry requests or API calls) the listing took.
    pub pages: u32,
}

/// Why a listing failed, and whether waiting helps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingError {
    pub problem: Problem,
    pub transient: bool,
}

impl ListingError {
    fn new(reason: &str, message: String, transient: bool) -> Self {
        Self {
            problem: Problem {
                reason: reason.to_string(),
                message,
            },
            transient,
        }
    }
}

/// Keeps valid tags and valid digests only.
fn from_images(images: Vec<TaggedImage>, pages: u32) -> Listing {
    let tags = images
        .into_iter()
        .filter(|image| is_valid_tag(&image.tag))
        .map(|image| {
            let digest = image.digest.parse::<Digest>().ok().map(|d| d.to_string());
            (
                image.tag,
                ListedTag {
                    digest,
                    pushed: image.pushed,
                },
            )
        })
        .collect();
    Listing { tags, pages }
}

/// Lists `repository` through `api`; None when the repository does not exist.
pub async fn list(
    api: &ListingApi,
    client: &RegistryClient,
    sdk: &SdkConfig,
    repository: &Repository,
) -> Result<Option<Listing>, ListingError> {
    match api {
        ListingApi::Registry => registry_listing(client, repository).await,
        ListingApi::Ecr { registry, endpoint } => {
            let inspector = EcrInspector::new(sdk, registry.clone(), endpoint.as_deref());
            let listed = inspector
                .tagged_images(&repository.name, MAX_LISTING_PAGES)
                .await
                .map_err(|e| ListingError::new(e.reason(), e.to_string(), e.is_transient()))?;
            Ok(listed.map(|(images, pages)| from_images(images, pages)))
        }
        ListingApi::EcrPublic {
            endpoint,
            alias,
            name,
        } => {
            let public = EcrPublic::new(sdk, endpoint.as_deref());
            let failed =
                |e: EcrPublicError| ListingError::new(e.reason(), e.to_string(), e.is_transient());
            let own = public.own_aliases().await.map_err(failed)?;
            if !own.contains(alias) {
                return registry_listing(client, repository).await;
            }
            let listed = public
                .tagged_images(name, MAX_LISTING_PAGES)
                .await
                .map_err(failed)?;
            Ok(listed.map(|(images, pages)| from_images(images, pages)))
        }
    }
}

/// `/v2/<name>/tags/list`: tags without digests.
async fn registry_listing(
    client: &RegistryClient,
    repository: &Repository,
) -> Result<Option<Listing>, ListingError> {
    let listing = client
        .list_tags(&repository.name, MAX_LISTING_PAGES)
        .await
        .map_err(|e| ListingError::new(e.reason(), e.to_string(), e.is_transient()))?;
    Ok(listing.tags.map(|tags| Listing {
        tags: tags
            .into_iter()
            .filter(|t| is_valid_tag(t))
            .map(|t| (t, ListedTag::default()))
            .collect(),
        pages: listing.pages,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_listings_keep_valid_tags_and_digests_only() {
        let good = format!("sha256:{}", "a".repeat(64));
        let image = |tag: &str, digest: &str| TaggedImage {
            tag: tag.into(),
            digest: digest.into(),
            pushed: Some(7),
        };
        let listing = from_images(
            vec![
                image("1.0.0", &good),
                image("bad digest", &good),
                image("2.0.0", "sha256:zz"),
            ],
            1,
        );
        let tags: Vec<(&str, Option<&str>)> = listing
            .tags
            .iter()
            .map(|(t, l)| (t.as_str(), l.digest.as_deref()))
            .collect();
        assert_eq!(tags, [("1.0.0", Some(good.as_str())), ("2.0.0", None)]);
    }
}
