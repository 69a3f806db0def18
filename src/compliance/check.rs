//! One compliance check of a published digest (the I/O around
//! [`super::judge`]): the scan findings read again from ECR (one
//! DescribeImageScanFindings per check), the signatures checked against the
//! keys as they are now — or taken from the ledger when the digest and the
//! key set are the ones already checked (no registry request) — then judged.
//!
//! Nothing is copied and no tag is written: the only registry requests are
//! the signature reads, and only when the keys or the digest changed.

use k8s_openapi::jiff::Timestamp;

use super::judge::{self, Judgement, Standing};
use super::ledger::{Ledger, SignatureKey};
use super::metrics::ComplianceMetrics;
use crate::aws::{EcrInspector, Encryption, EncryptionType, RepositorySettings, TagMutability};
use crate::config::Config;
use crate::promotion::{PromotionPlan, Shared, observe};
use crate::registry::Engine;
use crate::verify::cosign::Verifier;
use crate::verify::{Observations, SignatureChecks};

/// What a check produced: the judgement and the signature checks it used
/// with what they hold for (`None`: nothing new to cache).
pub struct Checked {
    /// The judgement.
    pub judgement: Judgement,
    /// New signature checks, to cache.
    pub signatures: Option<(SignatureKey, SignatureChecks)>,
}

/// The key set the signature checks of `plan` at `digest` are made for.
pub fn signature_key(plan: &PromotionPlan, digest: &str) -> SignatureKey {
    let trusted = |v: &Option<Verifier>| v.as_ref().map(Verifier::trusted).unwrap_or_default();
    SignatureKey {
        digest: format!("{digest} {:?}", plan.options.platforms),
        object: trusted(&plan.verifiers.object),
        floor: trusted(&plan.verifiers.floor),
    }
}

/// What every check uses: the process's AWS configuration, the
/// configuration file (the floor), the ledger (the signature cache) and the
/// metrics.
pub struct Checker<'a> {
    /// The AWS configuration.
    pub shared: &'a Shared,
    /// The configuration file.
    pub config: &'a Config,
    /// The ledger.
    pub ledger: &'a Ledger,
    /// The metrics.
    pub metrics: &'a ComplianceMetrics,
}

/// Checks the published `digest` of the promotion `uid` under its `plan`,
/// reaching registries through `engine` — needed only when the plan asks for
/// signatures and the ledger holds none for this digest and key set.
pub async fn check(
    checker: &Checker<'_>,
    uid: &str,
    plan: &PromotionPlan,
    engine: Option<&Engine>,
    digest: &str,
) -> Checked {
    let Checker {
        shared,
        config,
        ledger,
        metrics,
    } = checker;
    let repository = plan.source.image.repository.name.as_str();
    let image = format!("{}@{digest}", plan.source.image.repository);
    let inspector = EcrInspector::new(
        &shared.sdk,
        plan.source.ecr.clone(),
        plan.source.ecr_endpoint.as_deref(),
    );
    metrics.scan_read();
    let scan = match inspector.scan_report(repository, digest).await {
        Ok(scan) => scan,
        Err(error) => {
            return Checked {
                judgement: Judgement {
                    standing: judge::scan_unreadable(&image, &error.to_string()),
                    expiring: Vec::new(),
                },
                signatures: None,
            };
        }
    };
    let key = signature_key(plan, digest);
    let (signatures, fresh) = match ledger.cached_signatures(uid, &key) {
        Some(cached) => {
            if plan.verifiers.any() {
                metrics.signature_check(true);
            }
            (cached, None)
        }
        None => {
            if !plan.verifiers.any() {
                let none = SignatureChecks::default();
                (none, None)
            } else if let Some(engine) = engine {
                metrics.signature_check(false);
                match observe::signatures(plan, engine, digest).await {
                    Ok(checks) => (checks.clone(), Some((key, checks))),
                    Err(error) => {
                        let standing = if error.is_transient() {
                            judge::scan_unreadable(&image, &error.to_string())
                        } else {
                            Standing::Violated {
                                reason: crate::api::reasons::SIGNATURE_INVALID,
                                message: format!(
                                    "the signatures of {image} cannot be read: {error}"
                                ),
                            }
                        };
                        return Checked {
                            judgement: Judgement {
                                standing,
                                expiring: Vec::new(),
                            },
                            signatures: None,
                        };
                    }
                }
            } else {
                // Not asked to reach the registry: fail closed, as an unchecked
                // signature does in verification.
                (SignatureChecks::default(), None)
            }
        }
    };
    let observed = Observations {
        digest: digest.to_string(),
        source_tag: plan.source.image.tag.clone(),
        repository: Some(named_only(repository)),
        scan,
        signatures,
    };
    Checked {
        judgement: judge::judge(&plan.policy, &config.verify, &observed, Timestamp::now()),
        signatures: fresh,
    }
}

/// The repository under its name only: its settings were checked at
/// publication and [`judge::judge`] leaves their checks out, so they are not
/// read again (what is filled in here is never looked at).
fn named_only(repository: &str) -> RepositorySettings {
    RepositorySettings {
        name: repository.to_string(),
        tag_mutability: TagMutability::Immutable,
        exclusion_filters: Vec::new(),
        encryption: Encryption {
            kind: EncryptionType::Kms,
            kms_key: None,
        },
    }
}
