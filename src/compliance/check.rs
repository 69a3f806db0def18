//! One compliance check of a published digest (the I/O around
//! [`super::judge`]): the scan findings read again from ECR (one
//! DescribeImageScanFindings per check), the signatures checked against the
//! keys as they are now — or taken from the ledger when the digest and the
//! key set are the ones already checked (no registry request) — then judged.
//!
//! Nothing is copied and no tag is written: the only registry requests are
//! the signature reads, and only when the keys or the digest changed.
//!
//! A promotion's check ([`check`]) and a mirror's check of each in-sync
//! digest (`crate::controller::mirror_compliance`) are the same
//! [`check_subject`], on a [`Subject`] each builds from its own setup.

use k8s_openapi::jiff::Timestamp;

use super::judge::{self, Judgement, Standing};
use super::ledger::{Ledger, SignatureKey};
use super::metrics::ComplianceMetrics;
use std::future::Future;

use crate::api::VerificationPolicy;
use crate::aws::{
    EcrInspector, Encryption, EncryptionType, RepositorySettings, ScanReport, TagMutability,
};
use crate::config::Config;
use crate::promotion::observe::ObserveError;
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

/// What one check is of: the published image and the policy it must still
/// pass. A promotion's comes from its plan ([`Subject::of_plan`]), a
/// mirror's from its setup.
pub struct Subject<'a> {
    /// The source repository with its host, for messages.
    pub repository: String,
    /// The repository's name in ECR, where its scan is read.
    pub repository_name: String,
    /// The source tag, if any.
    pub tag: Option<String>,
    /// Where the scan findings are read; `None`: the policy reads no scan
    /// (the image is judged as not scanned).
    pub scans: Option<EcrInspector>,
    /// The object's policy (`None`: only the floor applies).
    pub policy: Option<&'a VerificationPolicy>,
    /// Whether any signature is checked.
    pub signed: bool,
    /// What the signature checks are made for.
    pub key: SignatureKey,
}

impl<'a> Subject<'a> {
    /// The subject of a promotion's `plan` at `digest`.
    pub fn of_plan(shared: &Shared, plan: &'a PromotionPlan, digest: &str) -> Self {
        Self {
            repository: plan.source.image.repository.to_string(),
            repository_name: plan.source.image.repository.name.clone(),
            tag: plan.source.image.tag.clone(),
            scans: Some(EcrInspector::new(
                &shared.sdk,
                plan.source.ecr.clone(),
                plan.source.ecr_endpoint.as_deref(),
            )),
            policy: Some(&plan.policy),
            signed: plan.verifiers.any(),
            key: signature_key(plan, digest),
        }
    }
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
    let subject = Subject::of_plan(checker.shared, plan, digest);
    let read = engine.map(|engine| move || observe::signatures(plan, engine, digest));
    check_subject(checker, uid, &subject, digest, read).await
}

/// Checks `digest` of `subject`, recorded under `key` in the ledger: one
/// scan read (when the policy reads scans), and the signatures read with
/// `read` only when the ledger holds none for this digest and key set
/// (without `read` an unchecked signature fails closed, as in verification).
pub async fn check_subject<F, R>(
    checker: &Checker<'_>,
    key: &str,
    subject: &Subject<'_>,
    digest: &str,
    read: Option<F>,
) -> Checked
where
    F: FnOnce() -> R,
    R: Future<Output = Result<SignatureChecks, ObserveError>>,
{
    let Checker {
        config,
        ledger,
        metrics,
        ..
    } = checker;
    let image = format!("{}@{digest}", subject.repository);
    let scan = match &subject.scans {
        Some(inspector) => {
            metrics.scan_read();
            match inspector
                .scan_report(&subject.repository_name, digest)
                .await
            {
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
            }
        }
        None => ScanReport::not_scanned(),
    };
    let (signatures, fresh) = match ledger.cached_signatures(key, &subject.key) {
        Some(cached) => {
            if subject.signed {
                metrics.signature_check(true);
            }
            (cached, None)
        }
        None => {
            if !subject.signed {
                let none = SignatureChecks::default();
                (none, None)
            } else if let Some(read) = read {
                metrics.signature_check(false);
                match read().await {
                    Ok(checks) => (checks.clone(), Some((subject.key.clone(), checks))),
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
        source_tag: subject.tag.clone(),
        repository: Some(named_only(&subject.repository_name)),
        scan,
        signatures,
    };
    Checked {
        judgement: judge::judge_with(subject.policy, &config.verify, &observed, Timestamp::now()),
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
