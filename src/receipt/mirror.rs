//! Receipts of a RegistryMirror: one per tag copied in a sync and per target
//! it reached, written right after the copy. A tag already in sync is not
//! copied again, so later syncs (and a restarted operator) write nothing.
//!
//! A mirror's receipt carries what a promotion's does: the policy and the
//! source image, the source signatures verified (`inputAttestations`), the
//! scan evaluated and the ignore entries in force — the evidence its
//! verification kept in the ledger for the digest ([`CopyMade::evidence`]).
//! The receipts written or found are returned, newest first, for the
//! mirror's status (its latest few, [`crate::api::MirrorReceipt`]).

use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::statement::Verified;
use super::{Ensured, PolicyObject, ReceiptFacts, Receipts};
use crate::api::{MirrorReceipt, RegistryMirror};
use crate::mirror::MirrorSetup;
use crate::mirror::sync::CopyMade;
use crate::registry::Engine;

/// Makes sure the receipts of the `copies` a sync of `object` made are at
/// their targets (written now, or found or known when written before);
/// the receipts, one per copied tag and target reached.
pub async fn after_sync(
    receipts: &Receipts,
    engine: &Engine,
    object: &RegistryMirror,
    setup: &MirrorSetup,
    copies: &[CopyMade],
) -> Vec<MirrorReceipt> {
    let policy_object = PolicyObject {
        kind: RegistryMirror::kind(&()).to_string(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
    };
    let ignored = setup
        .verification
        .policy
        .as_ref()
        .map(|p| p.scan.ignore.clone())
        .unwrap_or_default();
    let source = setup.source.to_string();
    let mut receipts_made = Vec::new();
    for copy in copies {
        for (name, report) in copy.targets.iter().zip(&copy.reports) {
            if report.error.is_some() {
                continue;
            }
            let Some(target) = setup.targets.iter().find(|t| t.name == *name) else {
                continue;
            };
            let digest = report
                .digest
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| copy.digest.clone());
            let client = match engine.client(&target.repository.registry) {
                Ok(client) => client,
                Err(error) => {
                    warn!(target = %name, %error, "no client for the receipt");
                    continue;
                }
            };
            let verified = Verified {
                object: &policy_object,
                policy: &setup.verification.fingerprint,
                source: &source,
                ignores: &ignored,
                evidence: copy.evidence.as_ref().map(|e| &e.verification),
            };
            let facts = ReceiptFacts::of(
                &verified,
                &target.repository.to_string(),
                &digest,
                &copy.digest,
                Timestamp::now(),
            );
            // One receipt per digest at a target: the slot names both.
            let slot = format!("{name}@{digest}");
            match receipts
                .ensure(&client, &target.repository, &slot, &facts)
                .await
            {
                Ok(ensured) => {
                    if let Ensured::Written(receipt) = &ensured {
                        info!(audit = true, target = %name, tag = %copy.tag, %receipt, "wrote the mirror receipt");
                    }
                    receipts_made.push(MirrorReceipt {
                        tag: copy.tag.clone(),
                        target: name.clone(),
                        digest: digest.clone(),
                        receipt: ensured.digest().to_string(),
                    });
                }
                Err(error) => {
                    warn!(target = %name, tag = %copy.tag, reason = error.reason(), %error, "the mirror receipt could not be written");
                }
            }
        }
    }
    receipts_made
}
