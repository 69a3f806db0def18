//! What verification needs to know about the source, read once: the tag
//! resolved to a digest (and checked against the digest the object names),
//! the repository's settings and scan from ECR, and the signatures of the
//! pinned digest from the registry, checked against each verifier.
//!
//! Nothing is decided here: [`crate::verify::evaluate`] decides on the
//! [`Observations`]. A read that fails says which, with its reason and
//! whether trying again later may help.

use super::plan::PromotionPlan;
use crate::api::reasons;
use crate::aws::{EcrError, EcrInspector};
use crate::registry::Registries;
use crate::registry::error::RegistryError;
use crate::verify::cosign::registry::{RepositorySignatures, SignatureReadError};
use crate::verify::cosign::{FetchError, fetch_signatures, verify};
use crate::verify::{Observations, SignatureChecks};

/// A read that kept verification from deciding.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// An ECR call failed.
    #[error(transparent)]
    Ecr(#[from] EcrError),
    /// The tag names another digest than the object requires.
    #[error(
        "tag {tag} of {repository} resolves to {resolved}, not {expected} as the object requires; \
         promote the digest the tag names, or fix the digest in spec.source"
    )]
    DigestMismatch {
        /// The source repository.
        repository: String,
        /// The source tag.
        tag: String,
        /// What it resolved to.
        resolved: String,
        /// What the object requires.
        expected: String,
    },
    /// No client for the source registry.
    #[error("the source registry: {0}")]
    Client(#[source] RegistryError),
    /// Reading the signatures failed.
    #[error("reading the signatures of {image}: {source}")]
    Signatures {
        /// The pinned image.
        image: String,
        /// What failed.
        #[source]
        source: FetchError<SignatureReadError>,
    },
}

impl ObserveError {
    /// The PascalCase reason (the API's, or the failing client's).
    pub fn reason(&self) -> String {
        match self {
            Self::Ecr(error) => error.reason().to_string(),
            Self::DigestMismatch { .. } => reasons::SOURCE_DIGEST_MISMATCH.to_string(),
            Self::Client(error) => super::status::source_reason(error.reason(), false),
            Self::Signatures { source, .. } => {
                let error = source.store_error();
                super::status::source_reason(error.reason(), error.is_transient())
            }
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Ecr(error) => error.is_transient(),
            Self::DigestMismatch { .. } => false,
            Self::Client(error) => error.is_transient(),
            Self::Signatures { source, .. } => source.store_error().is_transient(),
        }
    }
}

/// What was read, as far as it got: the digest once known, and the rest or
/// why it could not be read.
pub struct Observed {
    /// The pinned digest, when the tag resolved (or the object named it).
    pub digest: Option<String>,
    /// The observations, or the read that failed.
    pub outcome: Result<Observations, ObserveError>,
}

/// Reads what verification of the plan's source needs.
pub async fn observe(
    plan: &PromotionPlan,
    inspector: &EcrInspector,
    registries: &Registries,
) -> Observed {
    let repository = plan.source.image.repository.name.as_str();
    let digest = match pin(plan, inspector).await {
        Ok(digest) => digest,
        Err(error) => {
            return Observed {
                digest: None,
                outcome: Err(error),
            };
        }
    };
    let outcome = async {
        let settings = inspector.repository_settings(repository).await?;
        let scan = inspector.scan_report(repository, &digest).await?;
        let signatures = signatures(plan, registries, &digest).await?;
        Ok(Observations {
            digest: digest.clone(),
            source_tag: plan.source.image.tag.clone(),
            repository: settings,
            scan,
            signatures,
        })
    }
    .await;
    Observed {
        digest: Some(digest),
        outcome,
    }
}

/// The digest to promote: the tag's, which must equal the object's digest when it names one.
async fn pin(plan: &PromotionPlan, inspector: &EcrInspector) -> Result<String, ObserveError> {
    let source = &plan.source;
    let Some(tag) = &source.image.tag else {
        return Ok(source
            .digest
            .clone()
            .expect("validation requires a tag or a digest"));
    };
    let repository = &source.image.repository.name;
    let resolved = inspector.resolve_tag(repository, tag).await?;
    match &source.digest {
        Some(expected) if *expected != resolved => Err(ObserveError::DigestMismatch {
            repository: source.image.repository.to_string(),
            tag: tag.clone(),
            resolved,
            expected: expected.clone(),
        }),
        _ => Ok(resolved),
    }
}

/// The outcome of each signature check the plan asks for.
async fn signatures(
    plan: &PromotionPlan,
    registries: &Registries,
    digest: &str,
) -> Result<SignatureChecks, ObserveError> {
    let verifiers = &plan.verifiers;
    if !verifiers.any() {
        return Ok(SignatureChecks::default());
    }
    let repository = &plan.source.image.repository;
    let client = registries
        .client(repository.api_host())
        .map_err(ObserveError::Client)?;
    let store = RepositorySignatures::new(client, &repository.name);
    let candidates =
        fetch_signatures(&store, digest)
            .await
            .map_err(|source| ObserveError::Signatures {
                image: format!("{repository}@{digest}"),
                source,
            })?;
    let check = |verifier: &Option<_>| {
        verifier
            .as_ref()
            .map(|verifier| verify(verifier, digest, &candidates))
    };
    Ok(SignatureChecks {
        object: check(&verifiers.object),
        floor: check(&verifiers.floor),
    })
}
