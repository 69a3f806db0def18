//! What verification needs to know about the source, read once: the tag
//! resolved to a digest (and checked against the digest the object names),
//! the repository's settings and scan from ECR, and the signatures of the
//! pinned digest from the registry, checked against each verifier.
//!
//! Nothing is decided here: [`crate::verify::evaluate`] decides on the
//! [`Observations`]. A read that fails says which, with its reason and
//! whether trying again later may help.

use super::plan::{PromotionPlan, Verifiers};
use crate::api::reasons;
use crate::aws::{EcrError, EcrInspector};
use crate::registry::error::RegistryError;
use crate::registry::manifest::Manifest;
use crate::registry::{Engine, Platforms, RegistryClient, Repository};
use crate::verify::cosign::registry::{RepositorySignatures, SignatureReadError};
use crate::verify::cosign::{FetchError, SignatureOutcome, fetch_signatures, verify};
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
    /// The source resolves to another digest than the status claims was pinned.
    #[error(
        "the status says {repository} was pinned to {claimed}, but the source now resolves to \
         {resolved}: the tag moved since, or the status was written by someone else; nothing is \
         copied. To promote {resolved}, set spec.source.digest to it"
    )]
    PinMismatch {
        /// The source repository.
        repository: String,
        /// What the status claims.
        claimed: String,
        /// What the source resolves to now.
        resolved: String,
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
            Self::DigestMismatch { .. } | Self::PinMismatch { .. } => {
                reasons::SOURCE_DIGEST_MISMATCH.to_string()
            }
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
            Self::DigestMismatch { .. } | Self::PinMismatch { .. } => false,
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

/// Reads what verification of the plan's source needs; `pinned` is the
/// digest an earlier run of this process resolved the tag to, which is never
/// resolved again; `claimed` is what a previous status says was pinned, which
/// the source must still resolve to.
pub async fn observe(
    plan: &PromotionPlan,
    inspector: &EcrInspector,
    engine: &Engine,
    pinned: Option<&str>,
    claimed: Option<&str>,
) -> Observed {
    let repository = plan.source.image.repository.name.as_str();
    let pinned = match pinned {
        Some(digest) => Ok(digest.to_string()),
        None => match (pin(plan, inspector).await, claimed) {
            (Ok(resolved), Some(claimed)) if claimed != resolved => {
                Err(ObserveError::PinMismatch {
                    repository: plan.source.image.repository.to_string(),
                    claimed: claimed.to_string(),
                    resolved,
                })
            }
            (resolved, _) => resolved,
        },
    };
    let digest = match pinned {
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
        let signatures = signatures(plan, engine, &digest).await?;
        Ok(Observations {
            digest: digest.clone(),
            source_tag: plan.source.image.tag.clone(),
            repository: Some(settings),
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

/// The outcome of each signature check the plan asks for. A platform subset
/// publishes a new index that no signature of the source's index covers, so
/// then every selected platform manifest must carry a verified signature.
pub(crate) async fn signatures(
    plan: &PromotionPlan,
    engine: &Engine,
    digest: &str,
) -> Result<SignatureChecks, ObserveError> {
    let verifiers = &plan.verifiers;
    if !verifiers.any() {
        return Ok(SignatureChecks::default());
    }
    let repository = &plan.source.image.repository;
    let client = engine
        .client(repository.api_host())
        .map_err(ObserveError::Client)?;
    let signed = match &plan.options.platforms {
        Platforms::All => vec![(None, digest.to_string())],
        Platforms::Only(_) => subset_platforms(plan, &client, digest).await?,
    };
    check_signatures(client, repository, verifiers, &signed).await
}

/// Checks the signatures of each `(platform, digest)` in `signed` (one
/// entry, without a platform, for a whole image) against each verifier:
/// what promotions and mirrors both run before copying.
pub async fn check_signatures(
    client: RegistryClient,
    repository: &Repository,
    verifiers: &Verifiers,
    signed: &[(Option<String>, String)],
) -> Result<SignatureChecks, ObserveError> {
    if !verifiers.any() {
        return Ok(SignatureChecks::default());
    }
    let store = RepositorySignatures::new(client, &repository.name);
    let mut object = Vec::new();
    let mut floor = Vec::new();
    for (platform, digest) in signed {
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
                .map(|verifier| (platform.clone(), verify(verifier, digest, &candidates)))
        };
        object.extend(check(&verifiers.object));
        floor.extend(check(&verifiers.floor));
    }
    Ok(SignatureChecks {
        object: every_platform(object, trusted(&verifiers.object)),
        floor: every_platform(floor, trusted(&verifiers.floor)),
    })
}

fn trusted(verifier: &Option<crate::verify::cosign::Verifier>) -> Vec<String> {
    verifier.as_ref().map(|v| v.trusted()).unwrap_or_default()
}

/// The platform manifests a subset copies, as (platform, digest); the image
/// itself when it is not an index.
async fn subset_platforms(
    plan: &PromotionPlan,
    client: &RegistryClient,
    digest: &str,
) -> Result<Vec<(Option<String>, String)>, ObserveError> {
    let repository = &plan.source.image.repository;
    let root = client
        .get_manifest(&repository.name, digest)
        .await
        .map_err(ObserveError::Client)?;
    let parsed = Manifest::parse(&root.media_type, &root.bytes).map_err(|source| {
        ObserveError::Client(RegistryError::Manifest {
            at: repository.to_string(),
            source,
        })
    })?;
    Ok(match parsed {
        Manifest::Image { .. } => vec![(None, digest.to_string())],
        Manifest::Index { manifests, .. } => plan
            .options
            .platforms
            .select(&manifests)
            .into_iter()
            .map(|d| (d.platform.map(|p| p.to_string()), d.digest.to_string()))
            .collect(),
    })
}

/// One outcome for several signed manifests: verified when every one is
/// (the first one's evidence), else the first that is not, saying which
/// platform lacks what.
fn every_platform(
    outcomes: Vec<(Option<String>, SignatureOutcome)>,
    trusted: Vec<String>,
) -> Option<SignatureOutcome> {
    let verified = outcomes
        .iter()
        .all(|(_, o)| matches!(o, SignatureOutcome::Verified { .. }));
    if verified {
        return outcomes.into_iter().next().map(|(_, o)| o);
    }
    let (platform, outcome) = outcomes
        .into_iter()
        .find(|(_, o)| !matches!(o, SignatureOutcome::Verified { .. }))?;
    let Some(platform) = platform else {
        return Some(outcome);
    };
    let why = "a platform subset is published as a new index that the source index's \
               signature does not cover, so each copied platform manifest must be signed \
               (cosign sign --recursive), or promote every platform";
    Some(match outcome {
        SignatureOutcome::Missing => SignatureOutcome::Invalid {
            trusted,
            problems: vec![format!("platform {platform} has no signature: {why}")],
        },
        SignatureOutcome::Invalid {
            trusted: theirs,
            problems,
        } => SignatureOutcome::Invalid {
            trusted: theirs,
            problems: problems
                .into_iter()
                .map(|p| format!("platform {platform}: {p}"))
                .chain(std::iter::once(why.to_string()))
                .collect(),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::cosign::SignatureLayout;

    fn verified(key: &str) -> SignatureOutcome {
        SignatureOutcome::Verified {
            key_id: key.into(),
            signature_digest: "sha256:5151".into(),
            layout: SignatureLayout::SignatureTag,
        }
    }

    fn keys() -> Vec<String> {
        vec!["k1".into()]
    }

    #[test]
    fn a_subset_is_verified_only_when_every_platform_is() {
        let amd = Some("linux/amd64".to_string());
        let arm = Some("linux/arm64".to_string());
        assert_eq!(every_platform(Vec::new(), keys()), None);
        assert_eq!(
            every_platform(
                vec![(amd.clone(), verified("k1")), (arm.clone(), verified("k2"))],
                keys()
            ),
            Some(verified("k1"))
        );
        let Some(SignatureOutcome::Invalid { problems, trusted }) = every_platform(
            vec![
                (amd.clone(), verified("k1")),
                (arm.clone(), SignatureOutcome::Missing),
            ],
            keys(),
        ) else {
            panic!("one unsigned platform refuses the subset")
        };
        assert!(
            problems[0].starts_with("platform linux/arm64 has no signature"),
            "{problems:?}"
        );
        assert_eq!(trusted, keys());
        let Some(SignatureOutcome::Invalid { problems, trusted }) = every_platform(
            vec![(
                arm,
                SignatureOutcome::Invalid {
                    trusted: vec!["k1".into()],
                    problems: vec!["signed by an untrusted key".into()],
                },
            )],
            keys(),
        ) else {
            panic!("invalid stays invalid")
        };
        assert_eq!(trusted, ["k1"]);
        assert_eq!(
            problems[0],
            "platform linux/arm64: signed by an untrusted key"
        );
        assert!(problems[1].contains("cosign sign --recursive"));
        // Not an index: the image's own outcome, unchanged.
        assert_eq!(
            every_platform(vec![(None, SignatureOutcome::Missing)], keys()),
            Some(SignatureOutcome::Missing)
        );
    }
}
