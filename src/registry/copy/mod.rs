//! The copy engine: one source image to one or more target repositories, by
//! digest, exact bytes, children before parents, tags last.
//!
//! Order of work: resolve the source once (the digest is pinned), read the
//! manifest graph, HEAD every target tag and decide per target (`plan`), then for
//! the targets that need it: skip blobs that exist, mount blobs known elsewhere
//! in the same registry, and stream the rest from the source once to all of them
//! (`fanout`); then child manifests by digest, then the root under each tag. A
//! target that fails anywhere gets no tag, so no tag ever names an image with a
//! missing blob.

pub mod attached;
pub mod batch;
pub mod fanout;
pub mod gates;
pub mod locations;
pub mod plan;
pub mod report;
pub mod signature_tag;

use super::client::{FetchedManifest, Mount, RegistryClient};
use super::digest::Digest;
use super::error::RegistryError;
use super::manifest::{self, Descriptor, Manifest};
use super::reference::{ImageReference, Repository};
use super::registries::Registries;
use bytes::Bytes;
use futures::StreamExt;
use gates::{BlobGates, TagLocks};
use locations::BlobLocations;
use plan::{ObservedTags, TargetPlan};
use report::{CopyReport, TargetFailure, TargetReport};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Which platforms of a multi-platform index to copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Platforms {
    /// Every platform; the index is copied byte for byte.
    #[default]
    All,
    /// Only these (`os/arch[/variant]`): a new index holding just them is
    /// written, so its digest differs from the source's.
    Only(Vec<String>),
}

impl Platforms {
    /// The entries of an index to copy.
    pub fn select(&self, manifests: &[Descriptor]) -> Vec<Descriptor> {
        match self {
            Platforms::All => manifests.to_vec(),
            Platforms::Only(wanted) => manifests
                .iter()
                .filter(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| wanted.iter().any(|w| p.matches(w)))
                })
                .cloned()
                .collect(),
        }
    }
}

/// One destination of a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub repository: Repository,
    /// Tags to publish; empty to copy by digest only.
    pub tags: Vec<String>,
    /// Tags allowed to move to a new digest.
    pub floating: Vec<String>,
}

/// How to copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub platforms: Platforms,
    /// Blobs streamed at the same time.
    pub blob_concurrency: usize,
    /// Copy cosign signatures (`sha256-<hex>.sig`) of the image and its platforms.
    pub signatures: bool,
    /// Copy OCI 1.1 referrers and cosign attestations / SBOMs.
    pub referrers: bool,
    /// Which repositories a missing blob may be mounted from.
    pub mount_from: MountSources,
    /// Every tag of the source repository, when the caller listed it just
    /// before (a mirror does): cosign's tags and the referrers fallback tag
    /// that are not among them are not asked for, saving a request each.
    pub source_tags: Option<std::sync::Arc<std::collections::BTreeSet<String>>>,
}

/// Which repositories of a target registry a missing blob may be mounted
/// from. A mount makes the registry copy a blob between repositories with
/// the engine's credentials, so a copy must not borrow from a repository its
/// requester could not write itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MountSources {
    /// Any repository where the engine has seen the blob (a single-tenant
    /// operator, the command line).
    #[default]
    Any,
    /// Only repositories matching these `host/path` patterns (the tenancy
    /// rules' targets of the requesting namespace).
    Matching(Vec<String>),
}

impl MountSources {
    /// Whether `repository` on `host` may lend a blob.
    pub fn allows(&self, host: &str, repository: &str) -> bool {
        match self {
            MountSources::Any => true,
            MountSources::Matching(patterns) => {
                let name = format!("{host}/{repository}");
                patterns
                    .iter()
                    .any(|p| crate::tenancy::repository_matches(p, &name))
            }
        }
    }
}

impl CopyOptions {
    /// Whether `tag` may exist at the source: always, unless the caller's
    /// listing of the source ([`CopyOptions::source_tags`]) lacks it.
    pub fn listed_at_source(&self, tag: &str) -> bool {
        self.source_tags
            .as_ref()
            .is_none_or(|known| known.contains(tag))
    }
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            platforms: Platforms::All,
            blob_concurrency: 4,
            signatures: false,
            referrers: false,
            mount_from: MountSources::Any,
            source_tags: None,
        }
    }
}

/// A failure before any target was touched (the source could not be read).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading source {source_ref}: {error}")]
    Source {
        source_ref: String,
        #[source]
        error: RegistryError,
    },
    #[error("source {source_ref}: no platform matches {wanted:?} (it has {available})")]
    NoPlatform {
        source_ref: String,
        wanted: Vec<String>,
        available: String,
    },
}

impl CopyError {
    pub fn reason(&self) -> &'static str {
        match self {
            CopyError::Source { error, .. } => error.reason(),
            CopyError::NoPlatform { .. } => "PlatformNotFound",
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Source { error, .. } => error.is_transient(),
            CopyError::NoPlatform { .. } => false,
        }
    }
}

/// A manifest of the graph with the blobs it names.
struct Node {
    manifest: FetchedManifest,
    blobs: Vec<Descriptor>,
}

/// The source image as read: the root and its children (children first).
/// Children are read only when a target needs more than tags.
struct SourceGraph {
    root: FetchedManifest,
    /// The index entries to copy, read into `children` on demand.
    child_descriptors: Vec<Descriptor>,
    children: Vec<Node>,
    /// Blobs of the root itself (an image manifest); empty for an index.
    root_blobs: Vec<Descriptor>,
    /// The source's own index, when a platform subset replaced it by a new one.
    replaced_index: Option<Digest>,
}

impl SourceGraph {
    fn nodes(&self) -> impl Iterator<Item = (&FetchedManifest, &[Descriptor])> {
        self.children
            .iter()
            .map(|n| (&n.manifest, n.blobs.as_slice()))
            .chain(std::iter::once((&self.root, self.root_blobs.as_slice())))
    }

    /// Every distinct blob, in first-seen order.
    fn blobs(&self) -> Vec<Descriptor> {
        let mut seen = std::collections::HashSet::new();
        self.nodes()
            .flat_map(|(_, blobs)| blobs.iter())
            .filter(|d| seen.insert(d.digest.clone()))
            .cloned()
            .collect()
    }
}

/// Where a target stands during a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The image is missing: blobs, manifests, then tags.
    Full,
    /// The image is there; only tags are missing.
    TagsOnly,
    /// Nothing (more) to do.
    Done,
    Failed,
}

/// State of one target during a copy.
struct TargetRun {
    target: Target,
    client: Option<RegistryClient>,
    report: TargetReport,
    started: Instant,
    /// Tags to write once the image is complete.
    tags: Vec<String>,
    stage: Stage,
}

impl TargetRun {
    fn fail(&mut self, failure: TargetFailure) {
        if self.report.error.is_none() {
            self.report.error = Some(failure);
        }
        self.stage = Stage::Failed;
    }

    fn client(&self) -> &RegistryClient {
        self.client
            .as_ref()
            .expect("failed targets have no client and do no work")
    }
}

/// The copy engine, holding what it learns across copies (blob locations) and
/// what copies running side by side must share (one upload of a blob at a time
/// per registry, one writer per tag). Cheap to clone; clones share all of it.
#[derive(Clone)]
pub struct Engine {
    registries: Arc<Registries>,
    locations: Arc<BlobLocations>,
    gates: Arc<BlobGates>,
    tag_locks: Arc<TagLocks>,
    /// Clients this view uses instead of the shared ones, by host (an
    /// object's own credentials).
    overrides: Arc<HashMap<String, RegistryClient>>,
}

impl Engine {
    pub fn new(registries: Registries) -> Self {
        Self {
            registries: Arc::new(registries),
            locations: Arc::default(),
            gates: Arc::default(),
            tag_locks: Arc::default(),
            overrides: Arc::default(),
        }
    }

    /// This engine with the tag locks and blob gates of `other`: engines
    /// built one after another (a configuration reload) keep one writer per
    /// tag between them.
    pub fn sharing_locks_of(self, other: &Engine) -> Self {
        Self {
            gates: other.gates.clone(),
            tag_locks: other.tag_locks.clone(),
            ..self
        }
    }

    pub fn registries(&self) -> &Registries {
        &self.registries
    }

    /// The same engine, reaching the hosts of `clients` with those clients
    /// (e.g. from [`Registries::client_with`]): what one object with its own
    /// credentials copies with. Blob locations, gates and tag locks stay
    /// shared with every other view.
    pub fn with_clients(
        &self,
        clients: impl IntoIterator<Item = (String, RegistryClient)>,
    ) -> Self {
        let mut overrides = (*self.overrides).clone();
        overrides.extend(clients);
        Self {
            overrides: Arc::new(overrides),
            ..self.clone()
        }
    }

    /// The client this engine reaches `host` with.
    pub fn client(&self, host: &str) -> Result<RegistryClient, RegistryError> {
        match self.overrides.get(host) {
            Some(client) => Ok(client.clone()),
            None => self.registries.client(host),
        }
    }

    /// Copies `source` to every target.
    pub async fn copy(
        &self,
        source: &ImageReference,
        targets: &[Target],
        options: &CopyOptions,
    ) -> Result<CopyReport, CopyError> {
        let started = Instant::now();
        let source_ref = source.to_string();
        let source_error = |error| CopyError::Source {
            source_ref: source_ref.clone(),
            error,
        };
        let source_client = self
            .client(&source.repository.registry)
            .map_err(source_error)?
            .counting();
        let repo = source.repository.name.as_str();
        let mut graph = self.read_root(&source_client, source, options).await?;
        let mut source_bytes = graph.root.bytes.len() as u64;

        let mut runs: Vec<TargetRun> = targets
            .iter()
            .map(|target| {
                let mut run = TargetRun {
                    target: target.clone(),
                    client: None,
                    report: TargetReport {
                        repository: target.repository.to_string(),
                        ..Default::default()
                    },
                    started: Instant::now(),
                    tags: Vec::new(),
                    stage: Stage::Full,
                };
                match self.client(&target.repository.registry) {
                    Ok(client) => run.client = Some(client.counting()),
                    Err(error) => run.fail(TargetFailure::from_error(&error)),
                }
                run
            })
            .collect();

        // Observe and plan every target before writing anything.
        futures::future::join_all(
            runs.iter_mut()
                .filter(|r| r.stage == Stage::Full)
                .map(|run| observe(run, &graph.root.digest)),
        )
        .await;

        // Blobs: skip, mount, or stream once to every target that lacks them.
        if runs.iter().any(|r| r.stage == Stage::Full) {
            graph.children = read_children(&source_client, repo, &graph.child_descriptors)
                .await
                .map_err(source_error)?;
            source_bytes += graph
                .children
                .iter()
                .map(|n| n.manifest.bytes.len() as u64)
                .sum::<u64>();
            let blobs = graph.blobs();
            for blob in &blobs {
                self.locations
                    .record(source_client.host(), repo, &blob.digest);
            }
            source_bytes += self
                .copy_blobs(
                    &source_client,
                    repo,
                    &blobs,
                    &mut runs,
                    options.blob_concurrency,
                    &options.mount_from,
                )
                .await;
        }

        // Manifests, children first, then the root under each tag.
        futures::future::join_all(
            runs.iter_mut()
                .filter(|r| matches!(r.stage, Stage::Full | Stage::TagsOnly))
                .map(|run| write_manifests(run, &graph, &self.tag_locks)),
        )
        .await;

        let reports = runs
            .into_iter()
            .map(|run| {
                let mut report = run.report;
                report.requests = run.client.as_ref().map_or(0, RegistryClient::requests);
                report.duration_ms = run.started.elapsed().as_millis() as u64;
                report
            })
            .collect();
        let mut report = CopyReport {
            source: source_ref,
            digest: graph.root.digest.clone(),
            media_type: graph.root.media_type.clone(),
            source_bytes_read: source_bytes,
            source_requests: source_client.requests(),
            targets: reports,
            duration_ms: 0,
        };
        if options.signatures || options.referrers {
            let digests: Vec<Digest> = std::iter::once(graph.root.digest.clone())
                .chain(graph.child_descriptors.iter().map(|d| d.digest.clone()))
                .collect();
            self.copy_attached(
                &source_client,
                &source.repository,
                &digests,
                targets,
                options,
                &mut report,
            )
            .await;
            if let Some(original) = &graph.replaced_index {
                let left = self
                    .left_behind(&source_client, repo, original, options)
                    .await;
                if let Some(warning) =
                    left.map(|what| index_warning(&what, original, &graph.root.digest))
                {
                    for target in report.targets.iter_mut().filter(|t| t.error.is_none()) {
                        target.warnings.push(warning.clone());
                    }
                }
            }
            report.source_requests = source_client.requests();
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Reads the root manifest (pinning the digest) and selects the platforms.
    async fn read_root(
        &self,
        client: &RegistryClient,
        source: &ImageReference,
        options: &CopyOptions,
    ) -> Result<SourceGraph, CopyError> {
        let source_ref = source.to_string();
        let error = |error| CopyError::Source {
            source_ref: source_ref.clone(),
            error,
        };
        let repo = source.repository.name.as_str();
        let root = client
            .get_manifest(repo, &source.reference())
            .await
            .map_err(error)?;
        let parsed = parse(client, repo, &root).map_err(error)?;
        let manifests = match parsed {
            Manifest::Image { .. } => {
                return Ok(SourceGraph {
                    root_blobs: parsed.blobs().into_iter().cloned().collect(),
                    root,
                    child_descriptors: Vec::new(),
                    children: Vec::new(),
                    replaced_index: None,
                });
            }
            Manifest::Index { manifests, .. } => manifests,
        };
        let selected = options.platforms.select(&manifests);
        if selected.is_empty() {
            return Err(CopyError::NoPlatform {
                source_ref: source_ref.clone(),
                wanted: match &options.platforms {
                    Platforms::Only(w) => w.clone(),
                    Platforms::All => Vec::new(),
                },
                available: manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let (root, replaced_index) = match &options.platforms {
            Platforms::All => (root, None),
            Platforms::Only(_) => {
                let original = root.digest.clone();
                (subset_index(&root, &selected), Some(original))
            }
        };
        Ok(SourceGraph {
            root,
            child_descriptors: selected,
            children: Vec::new(),
            root_blobs: Vec::new(),
            replaced_index,
        })
    }

    /// Brings every blob to every active target; returns bytes read from the source.
    async fn copy_blobs(
        &self,
        source: &RegistryClient,
        repo: &str,
        blobs: &[Descriptor],
        runs: &mut [TargetRun],
        concurrency: usize,
        mount_from: &MountSources,
    ) -> u64 {
        let runs_ref: &[TargetRun] = runs;
        // Collected first: a stream over a mapping closure makes the future
        // not provably Send (rust-lang/rust#102211), and the operator spawns it.
        let copies: Vec<_> = blobs
            .iter()
            .map(|blob| self.copy_blob(source, repo, blob, runs_ref, mount_from))
            .collect();
        let outcomes: Vec<BlobOutcome> = futures::stream::iter(copies)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut read = 0;
        for outcome in outcomes {
            read += outcome.source_bytes;
            for (index, result) in outcome.results {
                let run = &mut runs[index];
                match result {
                    Ok(BlobAction::Skipped) => run.report.blobs_skipped += 1,
                    Ok(BlobAction::Mounted) => run.report.blobs_mounted += 1,
                    Ok(BlobAction::Uploaded(bytes)) => {
                        run.report.blobs_uploaded += 1;
                        run.report.bytes_written += bytes;
                    }
                    Err(error) => run.fail(TargetFailure::from_error(&error)),
                }
            }
        }
        read
    }

    /// One blob to every active target.
    async fn copy_blob(
        &self,
        source: &RegistryClient,
        repo: &str,
        blob: &Descriptor,
        runs: &[TargetRun],
        mount_from: &MountSources,
    ) -> BlobOutcome {
        // Collected, not iterated lazily across awaits: see copy_blobs.
        let active: Vec<(usize, &TargetRun)> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.stage == Stage::Full)
            .collect();
        let hosts: Vec<&str> = active.iter().map(|(_, r)| r.client().host()).collect();
        // Held until the blob is placed everywhere: another copy needing it in
        // the same registry then finds it instead of uploading it again.
        let _held = self.gates.enter(hosts, &blob.digest).await;
        let mut results = Vec::new();
        let mut sinks = Vec::new();
        let mut sink_targets = Vec::new();
        for &(index, run) in &active {
            let client = run.client();
            let target_repo = run.target.repository.name.as_str();
            let placed = self
                .place_blob(source, repo, client, target_repo, blob, mount_from)
                .await;
            match placed {
                Ok(Placement::Done(action)) => results.push((index, Ok(action))),
                Ok(Placement::Upload(session)) => {
                    sinks.push(fanout::Sink {
                        client: client.clone(),
                        session,
                    });
                    sink_targets.push(index);
                }
                Err(error) => results.push((index, Err(error))),
            }
        }
        let mut source_bytes = 0;
        let mut reads = 0;
        while !sinks.is_empty() {
            reads += 1;
            let streamed = std::mem::take(&mut sinks);
            let fan = fanout::stream_blob(source, repo, &blob.digest, blob.size, streamed).await;
            source_bytes += fan.source_bytes;
            // A source that sent wrong bytes may send right ones when asked
            // again (a flaky cache or proxy), a few times; nothing was committed.
            let mut again = Vec::new();
            for (index, result) in sink_targets.drain(..).zip(fan.results) {
                let run = &runs[index];
                match result {
                    Err(error) if is_bad_content(&error) && reads < super::retry::CONTENT_READS => {
                        again.push((index, error));
                    }
                    Ok(()) => {
                        self.locations.record(
                            run.client().host(),
                            &run.target.repository.name,
                            &blob.digest,
                        );
                        results.push((index, Ok(BlobAction::Uploaded(blob.size))));
                    }
                    Err(error) => results.push((index, Err(error))),
                }
            }
            for (index, error) in again {
                let client = runs[index].client();
                tracing::debug!(blob = %blob.digest, reads, %error, "reading the blob again");
                match client
                    .start_upload(&runs[index].target.repository.name)
                    .await
                {
                    Ok(session) => {
                        sinks.push(fanout::Sink {
                            client: client.clone(),
                            session,
                        });
                        sink_targets.push(index);
                    }
                    Err(error) => results.push((index, Err(error))),
                }
            }
        }
        BlobOutcome {
            source_bytes,
            results,
        }
    }

    /// Skips, mounts, or opens an upload for one blob at one target. A blob
    /// is mounted only from a repository `mount_from` allows, and only after
    /// the source showed it has that very blob: a source manifest naming a
    /// blob it does not hold must not pull another repository's blob into
    /// the target.
    async fn place_blob(
        &self,
        source: &RegistryClient,
        source_repo: &str,
        client: &RegistryClient,
        repo: &str,
        blob: &Descriptor,
        mount_from: &MountSources,
    ) -> Result<Placement, RegistryError> {
        if client.blob_size(repo, &blob.digest).await?.is_some() {
            self.locations.record(client.host(), repo, &blob.digest);
            return Ok(Placement::Done(BlobAction::Skipped));
        }
        let lender = self
            .locations
            .mount_source(client.host(), repo, &blob.digest, |candidate| {
                mount_from.allows(client.host(), candidate)
            });
        if let Some(from) = lender {
            let at_source = source.blob_size(source_repo, &blob.digest).await;
            if matches!(at_source, Ok(Some(size)) if size == blob.size) {
                match client.mount_blob(repo, &blob.digest, &from).await? {
                    Mount::Mounted => {
                        self.locations.record(client.host(), repo, &blob.digest);
                        return Ok(Placement::Done(BlobAction::Mounted));
                    }
                    Mount::Refused(session) => return Ok(Placement::Upload(session)),
                }
            }
        }
        Ok(Placement::Upload(client.start_upload(repo).await?))
    }

    /// What the source has attached to `index` that a copy of a platform
    /// subset cannot take along ("cosign signatures", "referrers"); None
    /// when nothing, or when the source cannot say.
    async fn left_behind(
        &self,
        source: &RegistryClient,
        repo: &str,
        index: &Digest,
        options: &CopyOptions,
    ) -> Option<String> {
        let mut found = Vec::new();
        let signature = index.tag_with_suffix("sig");
        if options.signatures
            && options.listed_at_source(&signature)
            && let Ok(Some(_)) = source.head_manifest(repo, &signature).await
        {
            found.push("cosign signatures");
        }
        if options.referrers
            && attached::referrers(source, repo, index, options)
                .await
                .is_ok_and(|list| !list.is_empty())
        {
            found.push("referrers");
        }
        (!found.is_empty()).then(|| found.join(" and "))
    }
}

/// Why a platform subset's new index travels without what the source's
/// index has attached, and what to do about it.
fn index_warning(what: &str, original: &Digest, subset: &Digest) -> String {
    format!(
        "{what} of the source index {original} did not travel: they cover only that digest, and \
         the platform subset is a new index {subset}; the platform manifests' own signatures \
         and referrers were copied. Sign each platform manifest (cosign sign --recursive) or \
         promote every platform"
    )
}

/// A source that sent bytes that are not the blob (wrong digest or size).
fn is_bad_content(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. }
    )
}

enum Placement {
    Done(BlobAction),
    Upload(super::client::UploadSession),
}

enum BlobAction {
    Skipped,
    Mounted,
    Uploaded(u64),
}

struct BlobOutcome {
    source_bytes: u64,
    results: Vec<(usize, Result<BlobAction, RegistryError>)>,
}

fn parse(
    client: &RegistryClient,
    repo: &str,
    fetched: &FetchedManifest,
) -> Result<Manifest, RegistryError> {
    Manifest::parse(&fetched.media_type, &fetched.bytes).map_err(|source| RegistryError::Manifest {
        at: format!("{}/{repo}", client.host()),
        source,
    })
}

/// Reads the child manifests of an index, each by digest.
async fn read_children(
    client: &RegistryClient,
    repo: &str,
    descriptors: &[Descriptor],
) -> Result<Vec<Node>, RegistryError> {
    // Collected first: see copy_blobs (rust-lang/rust#102211).
    let reads: Vec<_> = descriptors
        .iter()
        .map(|descriptor| async move {
            let child = client
                .get_manifest(repo, &descriptor.digest.to_string())
                .await?;
            let parsed = parse(client, repo, &child)?;
            if let Manifest::Index { .. } = parsed {
                return Err(RegistryError::Manifest {
                    at: format!("{}/{repo}", client.host()),
                    source: manifest::ManifestError::UnexpectedChild {
                        parent: "an index".to_string(),
                        digest: descriptor.digest.clone(),
                        media_type: child.media_type.clone(),
                    },
                });
            }
            Ok(Node {
                blobs: parsed.blobs().into_iter().cloned().collect(),
                manifest: child,
            })
        })
        .collect();
    let fetched: Vec<Result<Node, RegistryError>> =
        futures::stream::iter(reads).buffered(8).collect().await;
    fetched.into_iter().collect()
}

/// A new index holding only the selected children (other fields kept).
fn subset_index(root: &FetchedManifest, selected: &[Descriptor]) -> FetchedManifest {
    let mut value: serde_json::Value = serde_json::from_slice(&root.bytes).expect("parsed before");
    let keep: std::collections::HashSet<String> =
        selected.iter().map(|d| d.digest.to_string()).collect();
    if let Some(list) = value.get_mut("manifests").and_then(|m| m.as_array_mut()) {
        list.retain(|entry| {
            entry
                .get("digest")
                .and_then(|d| d.as_str())
                .is_some_and(|d| keep.contains(d))
        });
    }
    let bytes = Bytes::from(serde_json::to_vec(&value).expect("JSON value serialises"));
    FetchedManifest {
        digest: Digest::sha256_of(&bytes),
        bytes,
        media_type: root.media_type.clone(),
    }
}

/// HEADs the target's tags (or, copying by digest only, the image), and
/// decides what the target needs.
async fn observe(run: &mut TargetRun, digest: &Digest) {
    let repo = run.target.repository.name.clone();
    if run.target.tags.is_empty() {
        // By digest only: a manifest the target has is complete, blobs and all.
        match run.client().head_manifest(&repo, &digest.to_string()).await {
            Ok(Some(_)) => {
                run.report.digest = Some(digest.clone());
                run.stage = Stage::Done;
                return;
            }
            Ok(None) => {}
            Err(error) => return run.fail(TargetFailure::from_error(&error)),
        }
    }
    let mut observed = ObservedTags::new();
    for tag in &run.target.tags {
        match run.client().head_manifest(&repo, tag).await {
            Ok(head) => {
                observed.insert(tag.clone(), head.map(|h| h.digest));
            }
            Err(error) => return run.fail(TargetFailure::from_error(&error)),
        }
    }
    match plan::plan_target(digest, &run.target.tags, &run.target.floating, &observed) {
        TargetPlan::UpToDate => {
            run.report.digest = Some(digest.clone());
            run.report.tags_present = run.target.tags.clone();
            run.stage = Stage::Done;
        }
        TargetPlan::Conflict(conflicts) => run.fail(TargetFailure::conflict(&conflicts)),
        TargetPlan::Write { tags } => {
            run.report.tags_present = run
                .target
                .tags
                .iter()
                .filter(|t| !tags.contains(t))
                .cloned()
                .collect();
            // When a tag already points at the image, only the other tags are missing.
            if observed.values().any(|d| d.as_ref() == Some(digest)) {
                run.stage = Stage::TagsOnly;
            }
            run.tags = tags;
        }
    }
}

/// Child manifests by digest, then the root by digest or under each tag.
async fn write_manifests(run: &mut TargetRun, graph: &SourceGraph, locks: &TagLocks) {
    let repo = run.target.repository.name.clone();
    let children = if run.stage == Stage::Full {
        graph.children.as_slice()
    } else {
        &[]
    };
    for node in children {
        let manifest = &node.manifest;
        let digest = manifest.digest.to_string();
        match run.client().head_manifest(&repo, &digest).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(error) => return run.fail(TargetFailure::from_error(&error)),
        }
        if let Err(error) = run
            .client()
            .put_manifest(&repo, &digest, &manifest.media_type, &manifest.bytes)
            .await
        {
            return run.fail(TargetFailure::from_error(&error));
        }
        run.report.manifests_written += 1;
        run.report.bytes_written += manifest.bytes.len() as u64;
    }
    write_root(run, graph, locks).await;
}

/// The root by digest, or under each tag. Tags are written holding their
/// locks and after a last look at where they point: another copy of this
/// process that wrote one of them since the first look wins, and this one
/// reports the conflict instead of moving the tag.
async fn write_root(run: &mut TargetRun, graph: &SourceGraph, locks: &TagLocks) {
    let repo = run.target.repository.name.clone();
    let root = &graph.root;
    let _held;
    let by_tag = !run.tags.is_empty();
    let references: Vec<String> = if !by_tag {
        vec![root.digest.to_string()]
    } else {
        _held = locks.lock_tags(run.client().host(), &repo, &run.tags).await;
        match recheck_tags(run, &root.digest).await {
            Some(tags) => tags,
            None => return,
        }
    };
    for reference in &references {
        if let Err(error) = run
            .client()
            .put_manifest(&repo, reference, &root.media_type, &root.bytes)
            .await
        {
            return run.fail(TargetFailure::from_error(&error));
        }
        run.report.manifests_written += 1;
        run.report.bytes_written += root.bytes.len() as u64;
        if by_tag {
            run.report.tags_written.push(reference.clone());
        }
    }
    run.report.digest = Some(root.digest.clone());
    run.stage = Stage::Done;
}

/// Where the tags about to be written point now: the tags still to write,
/// or None when the target failed (a write-once tag moved meanwhile).
async fn recheck_tags(run: &mut TargetRun, digest: &Digest) -> Option<Vec<String>> {
    let repo = run.target.repository.name.clone();
    let mut observed = ObservedTags::new();
    for tag in &run.tags {
        match run.client().head_manifest(&repo, tag).await {
            Ok(head) => {
                observed.insert(tag.clone(), head.map(|h| h.digest));
            }
            Err(error) => {
                run.fail(TargetFailure::from_error(&error));
                return None;
            }
        }
    }
    match plan::plan_target(digest, &run.tags, &run.target.floating, &observed) {
        TargetPlan::Conflict(conflicts) => {
            run.fail(TargetFailure::conflict(&conflicts));
            None
        }
        TargetPlan::UpToDate => {
            let present = std::mem::take(&mut run.tags);
            run.report.tags_present.extend(present);
            Some(Vec::new())
        }
        TargetPlan::Write { tags } => {
            let present = run.tags.iter().filter(|t| !tags.contains(t)).cloned();
            run.report.tags_present.extend(present);
            Some(tags)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_of_the_source_decides_which_attached_tags_are_asked_for() {
        let listed = CopyOptions {
            source_tags: Some(std::sync::Arc::new(
                ["1.0.0", "sha256-ab.sig"].map(String::from).into(),
            )),
            ..CopyOptions::default()
        };
        let cases = [
            (&CopyOptions::default(), "sha256-ab.sig", true),
            (&CopyOptions::default(), "sha256-cd.att", true),
            (&listed, "sha256-ab.sig", true),
            (&listed, "sha256-ab.att", false),
            (&listed, "sha256-ab", false),
        ];
        for (options, tag, expected) in cases {
            assert_eq!(options.listed_at_source(tag), expected, "{tag}");
        }
    }

    #[test]
    fn an_engine_built_after_a_reload_keeps_the_tag_locks_and_gates() {
        let running = Engine::new(Registries::new());
        let reloaded = Engine::new(Registries::new()).sharing_locks_of(&running);
        assert!(Arc::ptr_eq(&running.tag_locks, &reloaded.tag_locks));
        assert!(Arc::ptr_eq(&running.gates, &reloaded.gates));
        assert!(!Arc::ptr_eq(&running.registries, &reloaded.registries));
        let unrelated = Engine::new(Registries::new());
        assert!(!Arc::ptr_eq(&running.tag_locks, &unrelated.tag_locks));
    }
}
