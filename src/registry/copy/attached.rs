//! Artifacts attached to an image, copied along with it when asked:
//!
//! - cosign's tag scheme: `sha256-<hex>.sig` (signatures), `.att` (attestations) and
//!   `.sbom` (SBOMs) next to the image, each an ordinary image manifest. These tags are
//!   appended to by cosign, so at the target they float; a signature or attestation
//!   tag holding layers the source lacks (another key's signature, the operator's
//!   promotion receipt) keeps them ([`signature_tag`]).
//! - OCI 1.1 referrers (SBOMs, attestations, newer cosign signatures): found with the
//!   referrers API, or with the tag-schema fallback (`sha256-<hex>` naming an index of
//!   referrers) where a registry has no API. Each referrer is copied by digest; a target
//!   without the referrers API gets its fallback index merged (existing entries kept).

use super::report::{CopyReport, TargetFailure, TargetReport};
use super::signature_tag::{self, SignatureTag};
use super::{CopyOptions, Engine, Target};
use crate::registry::client::{FetchedManifest, RegistryClient};
use crate::registry::digest::Digest;
use crate::registry::error::RegistryError;
use crate::registry::manifest::{Descriptor, MAX_MANIFEST_BYTES, OCI_INDEX};
use crate::registry::reference::{ImageReference, Repository};
use bytes::Bytes;

/// cosign's tag suffixes, by what they hold.
const SIGNATURE_SUFFIX: &str = "sig";
const ATTACHMENT_SUFFIXES: [&str; 2] = ["att", "sbom"];
/// The cosign tags whose layers accumulate (signatures, attestations): merged
/// with what a target already holds instead of copied over it.
const MERGED_SUFFIXES: [&str; 2] = [SIGNATURE_SUFFIX, "att"];

/// The tag the referrers tag-schema fallback uses for `digest`.
pub fn fallback_tag(digest: &Digest) -> String {
    digest.tag_form()
}

#[derive(serde::Deserialize)]
struct IndexDocument {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The referrers index from the registry's API; None when it has no API.
pub async fn referrers_api(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
) -> Result<Option<Bytes>, RegistryError> {
    client
        .get_json(
            "GET referrers",
            repo,
            &format!("/v2/{repo}/referrers/{digest}"),
            OCI_INDEX,
            MAX_MANIFEST_BYTES,
        )
        .await
}

/// The referrers of `digest` in the source repository `repo`: from the API,
/// else the fallback tag (not asked for when the options' listing lacks it).
pub async fn referrers(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
    options: &CopyOptions,
) -> Result<Vec<Descriptor>, RegistryError> {
    let body = match referrers_api(client, repo, digest).await? {
        Some(body) => Some(body),
        None if !options.listed_at_source(&fallback_tag(digest)) => None,
        None => match client.head_manifest(repo, &fallback_tag(digest)).await? {
            Some(_) => Some(
                client
                    .get_manifest(repo, &fallback_tag(digest))
                    .await?
                    .bytes,
            ),
            None => None,
        },
    };
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    let index: IndexDocument =
        serde_json::from_slice(&body).map_err(|e| RegistryError::Manifest {
            at: format!("{}/{repo}", client.host()),
            source: crate::registry::manifest::ManifestError::Malformed {
                media_type: OCI_INDEX.into(),
                message: e.to_string(),
            },
        })?;
    Ok(index.manifests)
}

/// Adds `entries` to the fallback index of `digest` at a target without the API.
pub async fn merge_fallback_index(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
    entries: &[Descriptor],
) -> Result<(), RegistryError> {
    let tag = fallback_tag(digest);
    let mut document: serde_json::Value = match client.head_manifest(repo, &tag).await? {
        Some(_) => serde_json::from_slice(&client.get_manifest(repo, &tag).await?.bytes)
            .unwrap_or_default(),
        None => serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let list = document
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| RegistryError::Manifest {
            at: format!("{}/{repo}", client.host()),
            source: crate::registry::manifest::ManifestError::Malformed {
                media_type: OCI_INDEX.into(),
                message: format!("referrers fallback tag {tag} holds no manifests list"),
            },
        })?;
    let mut changed = false;
    for entry in entries {
        let present = list.iter().any(|m| {
            m.get("digest").and_then(|d| d.as_str()) == Some(entry.digest.to_string().as_str())
        });
        if !present {
            let mut value = serde_json::json!({
                "mediaType": entry.media_type,
                "digest": entry.digest.to_string(),
                "size": entry.size,
            });
            if let Some(artifact_type) = &entry.artifact_type {
                value["artifactType"] = artifact_type.clone().into();
            }
            if !entry.annotations.is_empty() {
                value["annotations"] =
                    serde_json::to_value(&entry.annotations).expect("map serialises");
            }
            list.push(value);
            changed = true;
        }
    }
    if changed {
        let bytes = Bytes::from(serde_json::to_vec(&document).expect("JSON value serialises"));
        client.put_manifest(repo, &tag, OCI_INDEX, &bytes).await?;
    }
    Ok(())
}

impl Engine {
    /// Copies what is attached to `digests` (the image and its platform manifests)
    /// to the targets that succeeded, recording counts and failures in `report`.
    pub(super) async fn copy_attached(
        &self,
        source_client: &RegistryClient,
        source: &Repository,
        digests: &[Digest],
        targets: &[Target],
        options: &CopyOptions,
        report: &mut CopyReport,
    ) {
        let inner = CopyOptions {
            signatures: false,
            referrers: false,
            ..options.clone()
        };
        let mut suffixes = Vec::new();
        if options.signatures {
            suffixes.push(SIGNATURE_SUFFIX);
        }
        if options.referrers {
            suffixes.extend(ATTACHMENT_SUFFIXES);
        }
        for digest in digests {
            for suffix in &suffixes {
                let tag = digest.tag_with_suffix(suffix);
                if !options.listed_at_source(&tag) {
                    continue;
                }
                let found = source_client.head_manifest(&source.name, &tag).await;
                match found {
                    Ok(Some(_)) => {}
                    Ok(None) => continue,
                    Err(error) => return fail_all(report, targets, &error),
                }
                // Signatures and attestations are layers of one manifest under
                // one tag: a target's own (another key's signature, the
                // operator's promotion receipt) are kept, never copied over.
                if MERGED_SUFFIXES.contains(suffix) {
                    self.copy_signature_tag(source_client, source, &tag, targets, &inner, report)
                        .await;
                    continue;
                }
                let live = live_targets(report, targets);
                let attached: Vec<Target> = live
                    .iter()
                    .map(|(_, t)| Target {
                        repository: t.repository.clone(),
                        tags: vec![tag.clone()],
                        floating: vec![tag.clone()],
                    })
                    .collect();
                let copied = Box::pin(self.copy(&source.tagged(&tag), &attached, &inner)).await;
                merge(report, &live, copied, counted(&tag));
            }
            if options.referrers {
                self.copy_referrers(source_client, source, digest, targets, &inner, report)
                    .await;
            }
        }
    }

    /// Copies the signature manifest under `tag` without losing signatures a
    /// target has and the source lacks ([`signature_tag`]): where the target's
    /// tag holds only what the source has (or nothing), the tag simply follows
    /// the source; otherwise the source's manifest is copied by digest and the
    /// tag is pointed at the merge of both.
    async fn copy_signature_tag(
        &self,
        source_client: &RegistryClient,
        source: &Repository,
        tag: &str,
        targets: &[Target],
        inner: &CopyOptions,
        report: &mut CopyReport,
    ) {
        let counted = counted(tag);
        let signed = match source_client.get_manifest(&source.name, tag).await {
            Ok(manifest) => manifest,
            Err(error) => return fail_all(report, targets, &error),
        };
        let mut planned = Vec::new();
        for (index, target) in live_targets(report, targets) {
            match self.signature_tag(target, tag, &signed).await {
                Ok(Some(decision)) => planned.push((index, target, decision)),
                Ok(None) => counted(&mut report.targets[index]),
                Err(error) => report.targets[index].error = Some(TargetFailure::from_error(&error)),
            }
        }
        if planned.is_empty() {
            return;
        }
        let copies: Vec<Target> = planned
            .iter()
            .map(|(_, target, decision)| {
                let tags = match decision {
                    SignatureTag::Source => vec![tag.to_string()],
                    SignatureTag::Merged(_) => Vec::new(),
                };
                Target {
                    repository: target.repository.clone(),
                    floating: tags.clone(),
                    tags,
                }
            })
            .collect();
        let pinned = ImageReference {
            repository: source.clone(),
            tag: None,
            digest: Some(signed.digest.clone()),
        };
        let live: Vec<(usize, &Target)> = planned.iter().map(|(i, t, _)| (*i, *t)).collect();
        let copied = Box::pin(self.copy(&pinned, &copies, inner)).await;
        merge(report, &live, copied, counted);
        for (index, target, decision) in planned {
            let SignatureTag::Merged(bytes) = decision else {
                continue;
            };
            if report.targets[index].error.is_some() {
                continue;
            }
            let written = match self.client(&target.repository.registry) {
                Ok(client) => {
                    client
                        .put_manifest(&target.repository.name, tag, &signed.media_type, &bytes)
                        .await
                }
                Err(error) => Err(error),
            };
            let entry = &mut report.targets[index];
            match written {
                Ok(()) => {
                    entry.manifests_written += 1;
                    entry.bytes_written += bytes.len() as u64;
                }
                Err(error) => entry.error = Some(TargetFailure::from_error(&error)),
            }
        }
    }

    /// Where `tag` should point at one target, given the source's signature
    /// manifest; None when it already holds every signature of both.
    async fn signature_tag(
        &self,
        target: &Target,
        tag: &str,
        signed: &FetchedManifest,
    ) -> Result<Option<SignatureTag>, RegistryError> {
        let client = self.client(&target.repository.registry)?;
        let repo = &target.repository.name;
        let head = match client.head_manifest(repo, tag).await? {
            None => return Ok(Some(SignatureTag::Source)),
            Some(head) if head.digest == signed.digest => return Ok(None),
            Some(head) => head,
        };
        let existing = client.get_manifest(repo, tag).await?;
        let decision = signature_tag::merge(&signed.bytes, &existing.bytes).map_err(|source| {
            RegistryError::Manifest {
                at: target.repository.to_string(),
                source,
            }
        })?;
        Ok(match decision {
            // An earlier run wrote this very merge.
            SignatureTag::Merged(bytes) if Digest::sha256_of(&bytes) == head.digest => None,
            decision => Some(decision),
        })
    }

    async fn copy_referrers(
        &self,
        source_client: &RegistryClient,
        source: &Repository,
        digest: &Digest,
        targets: &[Target],
        inner: &CopyOptions,
        report: &mut CopyReport,
    ) {
        let found = match referrers(source_client, &source.name, digest, inner).await {
            Ok(found) => found,
            Err(error) => return fail_all(report, targets, &error),
        };
        if found.is_empty() {
            return;
        }
        for referrer in &found {
            let live = live_targets(report, targets);
            let by_digest: Vec<Target> = live
                .iter()
                .map(|(_, t)| Target {
                    repository: t.repository.clone(),
                    tags: Vec::new(),
                    floating: Vec::new(),
                })
                .collect();
            let image = ImageReference {
                repository: source.clone(),
                tag: None,
                digest: Some(referrer.digest.clone()),
            };
            let copied = Box::pin(self.copy(&image, &by_digest, inner)).await;
            merge(report, &live, copied, |t| t.referrers_copied += 1);
        }
        for (index, target) in live_targets(report, targets) {
            let client = match self.client(&target.repository.registry) {
                Ok(client) => client,
                Err(error) => {
                    report.targets[index].error = Some(TargetFailure::from_error(&error));
                    continue;
                }
            };
            let repo = &target.repository.name;
            let result = match referrers_api(&client, repo, digest).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => merge_fallback_index(&client, repo, digest, &found).await,
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                report.targets[index].error = Some(TargetFailure::from_error(&error));
            }
        }
    }
}

/// Targets (with their index in the report) that have not failed.
fn live_targets<'a>(report: &CopyReport, targets: &'a [Target]) -> Vec<(usize, &'a Target)> {
    targets
        .iter()
        .enumerate()
        .filter(|(index, _)| report.targets[*index].error.is_none())
        .collect()
}

fn fail_all(report: &mut CopyReport, targets: &[Target], error: &RegistryError) {
    for (index, _) in live_targets(report, targets) {
        report.targets[index].error = Some(TargetFailure::from_error(error));
    }
}

/// What a copy of the cosign tag `tag` counts at a target: a signature
/// (`.sig`) or an attached artifact.
fn counted(tag: &str) -> fn(&mut TargetReport) {
    if tag.ends_with(&format!(".{SIGNATURE_SUFFIX}")) {
        |t| t.signatures_copied += 1
    } else {
        |t| t.referrers_copied += 1
    }
}

/// Folds the report of an attached copy into the image's report.
fn merge(
    report: &mut CopyReport,
    live: &[(usize, &Target)],
    copied: Result<CopyReport, super::CopyError>,
    count: impl Fn(&mut TargetReport),
) {
    match copied {
        Ok(sub) => {
            report.source_bytes_read += sub.source_bytes_read;
            report.source_requests += sub.source_requests;
            for ((index, _), target) in live.iter().zip(sub.targets) {
                let main = &mut report.targets[*index];
                main.bytes_written += target.bytes_written;
                main.blobs_skipped += target.blobs_skipped;
                main.blobs_mounted += target.blobs_mounted;
                main.blobs_uploaded += target.blobs_uploaded;
                main.manifests_written += target.manifests_written;
                main.requests += target.requests;
                match target.error {
                    Some(error) => main.error = Some(error),
                    None => count(main),
                }
            }
        }
        Err(error) => {
            for (index, _) in live {
                report.targets[*index].error = Some(TargetFailure {
                    reason: error.reason().into(),
                    message: error.to_string(),
                    transient: error.is_transient(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags() {
        let digest = Digest::sha256_of(b"image");
        assert_eq!(fallback_tag(&digest), format!("sha256-{}", digest.hex()));
        assert_eq!(
            digest.tag_with_suffix("sig"),
            format!("sha256-{}.sig", digest.hex())
        );
    }
}
