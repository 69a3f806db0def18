//! Receipts of a RegistryMirror: one per tag copied in a sync and per target
//! it reached, written right after the copy. A tag already in sync is not
//! copied again, so later syncs (and a restarted operator) write nothing.
//!
//! A mirror's ledger keeps verdicts (passed or refused), not the evidence
//! behind them, so a mirror's receipt names the policy and the source image
//! but lists no input attestations.

use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::{Ensured, PolicyObject, ReceiptFacts, Receipts};
use crate::api::RegistryMirror;
use crate::mirror::MirrorSetup;
use crate::mirror::sync::CopyMade;
use crate::registry::Engine;

/// Writes the receipts of the `copies` a sync of `object` made; how many were written.
pub async fn after_sync(
    receipts: &Receipts,
    engine: &Engine,
    object: &RegistryMirror,
    setup: &MirrorSetup,
    copies: &[CopyMade],
) -> usize {
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
    let mut written = 0;
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
            let now = Timestamp::now();
            let today = now.strftime("%Y-%m-%d").to_string();
            let facts = ReceiptFacts {
                object: policy_object.clone(),
                policy_digest: setup.verification.fingerprint.clone(),
                target: target.repository.to_string(),
                digest: digest.clone(),
                source: format!("{}@{}", setup.source, copy.digest),
                inputs: Vec::new(),
                scan: None,
                ignored: ignored
                    .iter()
                    .filter(|i| i.expires.as_str() >= today.as_str())
                    .cloned()
                    .collect(),
                time_verified: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            };
            // One receipt per digest at a target: the slot names both.
            let slot = format!("{name}@{digest}");
            match receipts
                .ensure(&client, &target.repository, &slot, &facts)
                .await
            {
                Ok(Ensured::Written(receipt)) => {
                    written += 1;
                    info!(audit = true, target = %name, tag = %copy.tag, %receipt, "wrote the mirror receipt");
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(target = %name, tag = %copy.tag, reason = error.reason(), %error, "the mirror receipt could not be written");
                }
            }
        }
    }
    written
}
