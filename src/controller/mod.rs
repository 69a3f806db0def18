//! The operator: `image-promoter run`. One [`Context`] per process — one
//! Kubernetes client, one AWS configuration, one copy engine (registry
//! clients, connection pools, token caches, limits and blob locations
//! shared by every reconcile), one event recorder, one metrics registry,
//! the per-object backoff — handed to the ImagePromotion controller
//! ([`promotion`]) and the RegistryMirror controller ([`mirror`]), one pair
//! per watched namespace or one for the cluster. The health and metrics
//! endpoints ([`http`]) and the shutdown signal are the process's too.
//!
//! The configuration file is watched; a valid change swaps in a new
//! [`Setup`] and reconciles every object again.
//!
//! Shutdown (SIGTERM or SIGINT): the controllers stop taking work, in-flight
//! reconciles get `--shutdown-grace`, then whatever still runs is dropped
//! (a copy writes its tags last, so a cancelled copy leaves no tag behind).

pub mod backoff;
pub mod compliance;
pub mod decision;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod mirror;
pub mod mirror_compliance;
pub mod promotion;
pub mod recorder;
pub mod records;
pub mod schedule;
pub mod secrets;
pub mod status;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::net::{TcpListener, TcpSocket};
use tracing::{error, info, warn};

pub use error::{ReconcileError, RunError};

use crate::api::{ImagePromotion, RegistryMirror};
use crate::config::Config;
use crate::promotion::Shared;
use decision::PromotionMemory;
use http::Health;
use leader::{Election, Leadership};
use metrics::Metrics;
use mirror::MirrorMemory;
use recorder::EventRecorder;
use records::Records;
use schedule::Outcome;

/// How the operator runs (the flags of `image-promoter run`).
#[derive(Debug)]
pub struct Settings {
    /// The configuration file's content.
    pub config: Config,
    /// Where it was read from: watched, and read again when it changes.
    pub config_path: Option<std::path::PathBuf>,
    /// `--metrics-bind-address`; `None` disables.
    pub metrics_address: Option<SocketAddr>,
    /// `--health-probe-bind-address`; `None` disables.
    pub probe_address: Option<SocketAddr>,
    /// `--watch-namespace`; empty: every namespace.
    pub watch_namespaces: Vec<String>,
    /// `--concurrency`: promotions reconciled at once.
    pub concurrency: u16,
    /// `--resync-interval`: drift check of finished promotions (jittered).
    pub resync: Duration,
    /// `--shutdown-grace`: how long in-flight reconciles may finish.
    pub shutdown_grace: Duration,
    /// `--compliance-interval`: how often a Ready promotion's published
    /// digest is judged again (jittered; `spec.compliance.interval` overrides).
    pub compliance_interval: Duration,
    /// `--leader-elect`.
    pub leader_elect: bool,
    /// `--leader-election-id`.
    pub leader_election_id: String,
    /// `--leader-election-namespace` (default: the pod's).
    pub leader_election_namespace: Option<String>,
    /// `--leader-election-lease-duration`, `-renew-deadline`, `-retry-period`.
    pub leader_election_timing: leader::Timing,
    /// `--watch-label-selector`: only objects with these labels (a shard).
    pub watch_label_selector: Option<String>,
    /// `--share-ports`: bind the metrics and probe ports with SO_REUSEPORT.
    pub share_ports: bool,
    /// `--attestation-key`: sign a promotion receipt at every target with this key.
    pub attestation_key: Option<crate::receipt::KeyReference>,
}

/// The configuration and what is built from it; replaced as a whole when
/// the configuration file changes.
pub struct Setup {
    /// The configuration file.
    pub config: Config,
    /// The AWS configuration and the engine.
    pub shared: Shared,
}

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The current configuration and engine.
    setup: std::sync::RwLock<Arc<Setup>>,
    /// How many times the configuration was replaced: an object handled with
    /// an older one is due again.
    epoch: AtomicU64,
    /// The one event publisher.
    pub recorder: EventRecorder,
    /// The metrics.
    pub metrics: Metrics,
    /// `--resync-interval`.
    pub resync: Duration,
    /// `--concurrency`: reconciles at work at once in the whole process,
    /// across kinds and watched namespaces.
    permits: tokio::sync::Semaphore,
    /// What the process remembers of each ImagePromotion.
    pub promotions: Records<PromotionMemory>,
    /// What the process remembers of each RegistryMirror (its ledger).
    pub mirrors: Records<MirrorMemory>,
    /// The Secrets objects name, read once and kept until they change.
    pub secrets: secrets::SecretReader,
    /// The attestation key and the receipts written, with `--attestation-key`.
    pub receipts: Option<crate::receipt::Receipts>,
    /// What the process knows of each published promotion's compliance.
    pub compliance: crate::compliance::Ledger,
    /// `--compliance-interval`.
    pub compliance_interval: Duration,
    /// Woken by each deletion: freed memory goes back to the kernel once a
    /// wave of deletions is over ([`release_memory`]).
    deletions: tokio::sync::Notify,
}

impl Context {
    /// The context of one process.
    pub fn new(
        client: kube::Client,
        setup: Setup,
        recorder: EventRecorder,
        metrics: Metrics,
        resync: Duration,
        concurrency: u16,
    ) -> Self {
        Self {
            secrets: secrets::SecretReader::new(client.clone()),
            client,
            setup: std::sync::RwLock::new(Arc::new(setup)),
            epoch: AtomicU64::new(0),
            recorder,
            metrics,
            resync,
            permits: tokio::sync::Semaphore::new(usize::from(concurrency.max(1))),
            promotions: Records::default(),
            mirrors: Records::default(),
            receipts: None,
            compliance: crate::compliance::Ledger::default(),
            compliance_interval: compliance::DEFAULT_INTERVAL,
            deletions: tokio::sync::Notify::new(),
        }
    }

    /// The current configuration and engine (a reconcile keeps the one it started with).
    pub fn setup(&self) -> Arc<Setup> {
        self.setup.read().expect("lock never poisoned").clone()
    }

    /// The configuration's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether the object `meta` describes is due for work now, by what
    /// `records` remember of it (its generation, a requested reconcile, the
    /// configuration's epoch, when it is next due).
    pub fn due<T: Default>(&self, records: &Records<T>, meta: &ObjectMeta) -> schedule::Due {
        records.due(
            meta.uid.as_deref().unwrap_or_default(),
            meta.generation.unwrap_or(0),
            promotion::requested_at(meta),
            self.epoch(),
            Instant::now(),
        )
    }

    fn replace_setup(&self, setup: Setup) {
        *self.setup.write().expect("lock never poisoned") = Arc::new(setup);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits for one of the process's `--concurrency` permits.
    pub async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Records that an object of `kind` was handled at `generation` with
    /// the request `requested` and ended with `outcome`; the requeue delay
    /// (`None`: on change only).
    pub fn schedule(
        &self,
        kind: &str,
        uid: &str,
        generation: i64,
        requested: Option<String>,
        outcome: &Outcome,
    ) -> Option<Duration> {
        let handled = (generation, requested, self.epoch());
        let (now, jitter) = (Instant::now(), fastrand::f64());
        if kind == RegistryMirror::kind(&()) {
            // A mirror is looked at again at its own interval.
            let period = self
                .mirrors
                .with(uid, |m| m.interval)
                .flatten()
                .unwrap_or(self.resync);
            let previous = self.mirrors.handled(uid);
            let (record, wait) =
                schedule::after(previous.as_ref(), handled, outcome, period, now, jitter);
            self.mirrors.set_handled(uid, record);
            wait
        } else {
            let previous = self.promotions.handled(uid);
            let (record, wait) = schedule::after(
                previous.as_ref(),
                handled,
                outcome,
                self.resync,
                now,
                jitter,
            );
            self.promotions.set_handled(uid, record);
            wait
        }
    }

    /// Forgets a deleted ImagePromotion everywhere: its record (cancelling
    /// its copy in flight), its gauges, receipts, compliance record and the
    /// events published about it.
    pub fn forget_promotion(&self, uid: &str) {
        self.promotions.forget(uid);
        self.metrics.object(uid, None);
        if let Some(receipts) = &self.receipts {
            receipts.forget(uid);
        }
        self.compliance.forget(uid);
        self.recorder.forget(uid);
        compliance::publish_tally(self);
        self.deletions.notify_one();
    }

    /// Forgets a deleted RegistryMirror: its record and ledger (cancelling
    /// its sync in flight), its series and the events published about it.
    pub fn forget_mirror(&self, uid: &str) {
        self.mirrors.forget(uid);
        self.metrics.forget_mirror(uid);
        self.recorder.forget(uid);
        self.deletions.notify_one();
    }
}

/// Runs the operator until SIGTERM / SIGINT.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    info!(
        version = crate::build_info::VERSION,
        revision = crate::build_info::REVISION,
        build_date = crate::build_info::BUILD_DATE,
        "starting image-promoter"
    );
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::Client)?;
    check_crds(
        &client,
        &settings.watch_namespaces,
        settings.watch_label_selector.as_deref(),
    )
    .await?;
    let shared = Shared::load(&settings.config).await?;
    let lease = settings.leader_election_id.clone();
    let metrics = Metrics::new(settings.concurrency, &lease);
    crate::registry::client::observe_requests(metrics.request_observer());
    let health = Arc::new(Health::default());
    let instance = std::env::var("POD_NAME").ok();
    let recorder = EventRecorder::new(client.clone(), "image-promoter", instance);
    let open = settings.config.tenancy.is_none();
    metrics.set_tenancy_open(open);
    if open {
        warn!(
            "the configuration has no tenancy section: every watched namespace may use the operator's credentials to promote from and publish to anything they reach; add tenancy rules (docs/config.md)"
        );
    }
    let receipts = match &settings.attestation_key {
        Some(key) => Some(
            crate::receipt::Receipts::load(key, Some(&client), &shared.sdk)
                .await
                .map_err(RunError::AttestationKey)?,
        ),
        None => None,
    };
    let mut context = Context::new(
        client.clone(),
        Setup {
            config: settings.config,
            shared,
        },
        recorder,
        metrics,
        settings.resync,
        settings.concurrency,
    );
    context.receipts = receipts;
    context.compliance_interval = settings.compliance_interval;
    let ctx = Arc::new(context);
    if let Some(address) = settings.probe_address {
        let listener = bind(address, settings.share_ports, "health probes")?;
        tokio::spawn(http::serve(
            listener,
            Arc::new(http::probes(health.clone())),
        ));
    }
    if let Some(address) = settings.metrics_address {
        let listener = bind(address, settings.share_ports, "metrics")?;
        let for_metrics = ctx.clone();
        tokio::spawn(http::serve(
            listener,
            Arc::new(move |path: &str| match path {
                "/metrics" => (
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    for_metrics.metrics.encode(),
                ),
                _ => (404, "text/plain", "not found\n".into()),
            }),
        ));
    }

    let mut leadership = None;
    if settings.leader_elect {
        let election = Election {
            namespace: leader::namespace(settings.leader_election_namespace.clone()).await?,
            name: lease.clone(),
            identity: leader::identity(),
        };
        info!(lease = %format!("{}/{}", election.namespace, election.name), identity = %election.identity, "standby: campaigning for the leader Lease");
        // A standby is healthy and ready; it only does not reconcile.
        health.set_synced();
        let mut campaign =
            Leadership::campaign(client.clone(), &election, settings.leader_election_timing)
                .await?;
        tokio::select! {
            acquired = campaign.acquired() => if !acquired {
                return Err(RunError::LeaseLost);
            },
            () = signal() => {
                campaign.release().await;
                return Ok(());
            }
        }
        info!("holding the leader Lease: reconciling");
        leadership = Some(campaign);
    }
    ctx.metrics.set_leader(&lease, true);

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let namespaces: Vec<Option<String>> = if settings.watch_namespaces.is_empty() {
        vec![None]
    } else {
        settings.watch_namespaces.into_iter().map(Some).collect()
    };
    let mut stores = Vec::new();
    let mut mirror_stores = Vec::new();
    let mut controllers = Vec::new();
    let mut reconcile_all = Vec::new();
    let watched = match &settings.watch_label_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    for namespace in namespaces {
        let promotions: Api<ImagePromotion> = scoped(&client, &namespace);
        let controller = trimmed(promotions.clone(), watched.clone());
        let store = controller.store();
        stores.push(store.clone());
        let mut promotion_stopping = stopping.clone();
        let promotion_health = health.clone();
        let (again, all_again) = futures::channel::mpsc::unbounded::<()>();
        reconcile_all.push(again);
        let poking = ctx.clone();
        let versions = SecretVersions::default();
        let running = controller
            .watches_stream(
                watch(scoped(&client, &namespace), watcher::Config::default()).touched_objects(),
                move |secret| {
                    let objects = referencing(&store, &secret, decision::references_secret);
                    if versions.changed(&secret) {
                        poking
                            .secrets
                            .changed(&secret.namespace().unwrap_or_default(), &secret.name_any());
                        poke(&poking.promotions, &objects);
                        for uid in objects.iter().filter_map(|o| o.extra.uid.as_ref()) {
                            poking.compliance.poke(uid);
                        }
                    }
                    objects
                },
            )
            .reconcile_all_on(all_again)
            .with_config(controller::Config::default().concurrency(settings.concurrency))
            .graceful_shutdown_on(async move {
                let _ = promotion_stopping.wait_for(|stop| *stop).await;
            })
            .run(promotion::reconcile, promotion::error_policy, ctx.clone())
            .for_each(move |result| {
                report(&promotion_health, result);
                futures::future::ready(())
            });
        controllers.push(running.boxed());
        tokio::spawn(forget_deleted::<ImagePromotion>(
            client.clone(),
            namespace.clone(),
            watched.clone(),
            ctx.clone(),
            Context::forget_promotion,
        ));

        let mirrors: Api<RegistryMirror> = scoped(&client, &namespace);
        let controller = trimmed(mirrors, watched.clone());
        let store = controller.store();
        mirror_stores.push(store.clone());
        let (again, all_again) = futures::channel::mpsc::unbounded::<()>();
        reconcile_all.push(again);
        let poking = ctx.clone();
        let versions = SecretVersions::default();
        let mut stopping = stopping.clone();
        let mirror_health = health.clone();
        let running = controller
            .watches_stream(
                watch(scoped(&client, &namespace), watcher::Config::default()).touched_objects(),
                move |secret| {
                    let objects = referencing(&store, &secret, mirror::references_secret);
                    if versions.changed(&secret) {
                        poking
                            .secrets
                            .changed(&secret.namespace().unwrap_or_default(), &secret.name_any());
                        poke(&poking.mirrors, &objects);
                        for uid in objects.iter().filter_map(|o| o.extra.uid.as_ref()) {
                            poking.mirrors.with(uid, |m| {
                                m.compliance.poke(crate::compliance::mirror::SCHEDULE)
                            });
                        }
                    }
                    objects
                },
            )
            .reconcile_all_on(all_again)
            .with_config(controller::Config::default().concurrency(settings.concurrency))
            .graceful_shutdown_on(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            })
            .run(mirror::reconcile, mirror::error_policy, ctx.clone())
            .for_each(move |result| {
                report(&mirror_health, result);
                futures::future::ready(())
            });
        controllers.push(running.boxed());
        tokio::spawn(forget_deleted::<RegistryMirror>(
            client.clone(),
            namespace.clone(),
            watched.clone(),
            ctx.clone(),
            Context::forget_mirror,
        ));
    }
    tokio::spawn(prune(ctx.clone(), stores.clone(), mirror_stores));
    tokio::spawn(release_memory(ctx.clone()));
    let ready = health.clone();
    tokio::spawn(async move {
        // Polled again every second: the store's readiness wakes only its
        // latest waiter, and the controller itself waits on it too.
        for store in stores {
            loop {
                match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(error)) => {
                        error!(%error, "the ImagePromotion cache will never sync");
                        return;
                    }
                    Err(_) => continue,
                }
            }
        }
        info!("the caches have synced: ready");
        ready.set_synced();
    });
    if let Some(path) = settings.config_path.clone() {
        tokio::spawn(reload_on_change(path, ctx.clone(), reconcile_all));
    }
    info!(concurrency = settings.concurrency, resync = ?settings.resync, "the operator is running");

    let mut all = Box::pin(futures::future::join_all(controllers));
    tokio::select! {
        _ = &mut all => return Ok(()),
        () = signal() => {}
        () = lost(&mut leadership) => {
            ctx.metrics.set_leader(&lease, false);
            error!("lost the leader Lease: stopping at once");
            return Err(RunError::LeaseLost);
        }
    }
    info!(grace = ?settings.shutdown_grace, "stopping: no new work; in-flight reconciles may finish");
    let _ = stop.send(true);
    tokio::select! {
        _ = &mut all => info!("stopped"),
        () = tokio::time::sleep(settings.shutdown_grace) => {
            warn!("the shutdown grace is over: cancelling the reconciles still running");
        }
    }
    // Whatever still runs is cancelled before the Lease is released.
    drop(all);
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    Ok(())
}

/// How often the configuration file is looked at.
pub const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Reads the configuration file every [`CONFIG_POLL`]; when its content
/// changed and it is valid, builds a new engine from it, swaps it in and
/// reconciles every object again (a stalled one may now pass). An invalid
/// file is reported and the running configuration kept.
async fn reload_on_change(
    path: std::path::PathBuf,
    ctx: Arc<Context>,
    reconcile_all: Vec<futures::channel::mpsc::UnboundedSender<()>>,
) {
    let mut last = tokio::fs::read(&path).await.ok();
    loop {
        tokio::time::sleep(CONFIG_POLL).await;
        let now = tokio::fs::read(&path).await.ok();
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        let file = path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&file)).await;
        let config = match loaded {
            Ok(Ok(config)) => config,
            Ok(Err(error)) => {
                error!(%error, "the changed configuration file is invalid; the running configuration stays");
                continue;
            }
            Err(error) => {
                error!(%error, "reading the changed configuration file failed");
                continue;
            }
        };
        let running = ctx.setup();
        match Shared::reload(&config, &running.shared).await {
            Ok(shared) => {
                let open = config.tenancy.is_none();
                ctx.metrics.set_tenancy_open(open);
                if open {
                    warn!(
                        "the new configuration has no tenancy section: every watched namespace may use the operator's credentials"
                    );
                }
                ctx.replace_setup(Setup { config, shared });
                info!(path = %path.display(), "the configuration changed: every object is reconciled again");
                for again in &reconcile_all {
                    let _ = again.unbounded_send(());
                }
            }
            Err(error) => {
                error!(%error, "the changed configuration's registries are unusable; the running configuration stays")
            }
        }
    }
}

/// Resolves when this replica loses the Lease; never without leader election.
async fn lost(leadership: &mut Option<Leadership>) {
    match leadership {
        Some(leadership) => leadership.lost().await,
        None => std::future::pending().await,
    }
}

/// The `K`s of `namespace`, or of every namespace.
fn scoped<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A controller of the objects `api` and `watched` select whose cache holds
/// each object without what the reconcilers never read: its managedFields
/// (every writer's field list, most of an object's size) and kubectl's
/// last-applied annotation (the whole spec again). With 10,000 objects that
/// is most of the process's memory.
fn trimmed<K>(api: Api<K>, watched: watcher::Config) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (cache, writer) = kube::runtime::reflector::store();
    let objects = watch(api, watched)
        .modify(trim)
        .reflect(writer)
        .applied_objects();
    // kube's Controller also backs off after an error of any of its watches,
    // on top of their own backoff, by not polling any of them: one counter
    // for this watch and the Secret watch, reset only by an object event or
    // two quiet minutes. After an apiserver restart (refused connections,
    // 403 while the new apiserver loads its RBAC, a 410 from each watch) it
    // reached 25-50 s, during which the cache neither saw new objects nor
    // lost deleted ones. Each watch paces itself ([`watch`]); nothing more.
    Controller::for_stream(objects, cache).trigger_backoff(NoPause)
}

/// A watch of `api`: kube's watcher, paced after its failures by
/// [`WatchBackoff`]. A 410 Expired is not one: the apiserver answers a watch that resumes from a resourceVersion
/// older than its watch cache that way (always after a restart: the new cache
/// starts at the current resourceVersion), the watcher lists again anyway,
/// and charging it would hold the list back behind the backoff of the
/// outage. The list is a consistent one (`MostRecent`), so the watch after it
/// does not expire again at once.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    watcher(api, config)
        .filter(|event| {
            let expired = is_expired(event);
            if expired {
                info!(
                    kind = %K::kind(&()),
                    "a watch's resourceVersion expired (the apiserver restarted or compacted): listing again"
                );
            }
            std::future::ready(!expired)
        })
        .backoff(WatchBackoff::default())
}

/// How long a watch waits after its failures in a row: 0.8 s, doubling, at
/// most [`WATCH_RETRY_MOST`], each wait shortened by up to half at random so
/// that the watches spread out. kube's default goes up to 30 s, doubled at
/// random, and a watch that resumes without an event keeps it for the next
/// outage: that is how long the operator stays blind after its apiserver is
/// back. A handful of watches trying every few seconds costs an apiserver little.
///
/// The count starts over after [`WATCH_RETRY_QUIET`] without a failure, not
/// on `reset`: kube's watcher sends `Init` before each list, so a list that
/// fails every time (a missing RBAC rule) would otherwise be retried at the
/// first wait forever.
#[derive(Default)]
struct WatchBackoff {
    failures: u32,
    last: Option<Instant>,
}

/// The first wait of a watch after a failure.
const WATCH_RETRY_FIRST: Duration = Duration::from_millis(800);
/// The longest wait of a watch between two failures.
const WATCH_RETRY_MOST: Duration = Duration::from_secs(5);
/// How long without a failure before a watch's waits start over.
const WATCH_RETRY_QUIET: Duration = Duration::from_secs(30);

/// The wait after `failures` earlier failures in a row; `jitter` in [0, 1).
fn watch_retry_after(failures: u32, jitter: f64) -> Duration {
    WATCH_RETRY_FIRST
        .saturating_mul(1 << failures.min(8))
        .min(WATCH_RETRY_MOST)
        .mul_f64(1.0 - jitter / 2.0)
}

impl WatchBackoff {
    /// The wait after a failure at `now`.
    fn failed(&mut self, now: Instant, jitter: f64) -> Duration {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) > WATCH_RETRY_QUIET)
        {
            self.failures = 0;
        }
        let wait = watch_retry_after(self.failures, jitter);
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        wait
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.failed(Instant::now(), fastrand::f64()))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    /// Nothing: see [`WatchBackoff`].
    fn reset(&mut self) {}
}

/// Whether `event` is the apiserver's 410 Expired on a watch.
fn is_expired<K>(event: &Result<watcher::Event<K>, watcher::Error>) -> bool {
    matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410)
}

/// A backoff that never waits: the controllers' watches pace themselves.
struct NoPause;

impl Iterator for NoPause {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoPause {
    fn reset(&mut self) {}
}

/// Drops from `object` what the cache need not keep (see [`trimmed`]).
fn trim<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// kubectl's client-side apply record: a copy of the applied object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The objects in `secret`'s namespace that reference it (`references`).
fn referencing<K>(
    store: &kube::runtime::reflector::Store<K>,
    secret: &PartialObjectMeta<Secret>,
    references: fn(&K, &str) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    let namespace = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace() == namespace && references(o, &name))
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

/// The resourceVersion of each Secret seen, by namespace and name: a watch
/// that lists again after an outage sends every Secret once more, and only
/// a Secret whose content changed makes its objects due.
#[derive(Default)]
struct SecretVersions(std::sync::Mutex<std::collections::HashMap<(String, String), String>>);

impl SecretVersions {
    /// Whether `secret` is new or changed since it was last seen.
    fn changed(&self, secret: &PartialObjectMeta<Secret>) -> bool {
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        let version = secret.resource_version().unwrap_or_default();
        let mut seen = self.0.lock().expect("lock never poisoned");
        seen.insert(key, version.clone()).as_deref() != Some(version.as_str())
    }
}

/// Marks `objects` due now: a Secret they reference changed.
fn poke<K, T: Default>(records: &Records<T>, objects: &[ObjectRef<K>])
where
    K: kube::Resource<DynamicType = ()>,
{
    for object in objects {
        if let Some(uid) = &object.extra.uid {
            records.poke(uid);
        }
    }
}

/// Follows the objects of one kind (metadata only) and forgets each one that
/// is deleted, at once: its record, its ledger, its gauges, and its work in
/// flight. No finalizer is needed: there is nothing outside the process to
/// clean up.
async fn forget_deleted<K>(
    client: kube::Client,
    namespace: Option<String>,
    watched: watcher::Config,
    ctx: Arc<Context>,
    forget: fn(&Context, &str),
) where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut events = watch(api, watched).boxed();
    while let Some(event) = events.next().await {
        if let Ok(watcher::Event::Delete(object)) = event
            && let Some(uid) = object.uid()
        {
            forget(&ctx, &uid);
        }
    }
}

/// Every minute, forgets the objects that are no longer in the controllers'
/// caches (deleted while a watch was down, so no delete event came).
async fn prune(
    ctx: Arc<Context>,
    promotions: Vec<kube::runtime::reflector::Store<ImagePromotion>>,
    mirrors: Vec<kube::runtime::reflector::Store<RegistryMirror>>,
) {
    fn uids<K>(stores: &[kube::runtime::reflector::Store<K>]) -> Option<HashSet<String>>
    where
        K: Clone + kube::Resource<DynamicType = ()>,
    {
        let mut live = HashSet::new();
        for store in stores {
            // A cache that has not synced yet says nothing about what exists.
            if !matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))) {
                return None;
            }
            live.extend(store.state().iter().filter_map(|o| o.uid()));
        }
        Some(live)
    }
    loop {
        tokio::time::sleep(PRUNE_PERIOD).await;
        let live_promotions = uids(&promotions);
        if let Some(live) = &live_promotions {
            for uid in ctx.promotions.retain(live) {
                ctx.metrics.object(&uid, None);
            }
            ctx.compliance.retain(live);
            if let Some(receipts) = &ctx.receipts {
                receipts.retain(live);
            }
            compliance::publish_tally(&ctx);
        }
        let live_mirrors = uids(&mirrors);
        if let Some(live) = &live_mirrors {
            for uid in ctx.mirrors.retain(live) {
                ctx.metrics.forget_mirror(&uid);
            }
        }
        ctx.recorder.expire();
        if let (Some(mut live), Some(mirrors)) = (live_promotions, live_mirrors) {
            live.extend(mirrors);
            ctx.recorder.retain(&live);
        }
        compliance::publish_migration(&ctx, &promotions, &mirrors);
    }
}

/// How often records are pruned against the controllers' caches.
pub const PRUNE_PERIOD: Duration = Duration::from_secs(60);

/// Returns freed memory to the kernel (see [`crate::allocator`]) once the
/// deletions have paused for [`DELETIONS_QUIET`], and every [`PRUNE_PERIOD`]
/// (what a finished reconcile or a dropped cache entry frees). Without it the
/// process keeps the pages of the largest wave of objects it ever worked.
async fn release_memory(ctx: Arc<Context>) {
    loop {
        let _ = tokio::time::timeout(PRUNE_PERIOD, ctx.deletions.notified()).await;
        // A wave ends when the deletions pause, or a period after it began.
        let give_up = Instant::now() + PRUNE_PERIOD;
        while Instant::now() < give_up
            && tokio::time::timeout(DELETIONS_QUIET, ctx.deletions.notified())
                .await
                .is_ok()
        {}
        let _ = tokio::task::spawn_blocking(crate::allocator::release_free_memory).await;
    }
}

/// How long deletions pause before a wave of them is taken as over.
const DELETIONS_QUIET: Duration = Duration::from_secs(5);

fn report<T>(
    health: &Health,
    result: Result<T, controller::Error<ReconcileError, watcher::Error>>,
) {
    match result {
        Ok(_) => {}
        Err(controller::Error::QueueError(error)) => {
            let problem = format!("a watch fails: {error}");
            error!(%error, "watching failed; the operator is not ready until it works again (check its RBAC)");
            health.set_problem(Instant::now(), problem);
        }
        Err(controller::Error::ReconcilerFailed(..)) => {}
        Err(error) => warn!(%error, "controller"),
    }
}

/// Listens on `address`. With `share`, other processes of the same user may
/// listen on the same port (SO_REUSEPORT): replicas that share a network
/// namespace, as host-network pods on one node do, then run side by side, and
/// the kernel spreads connections between them.
fn bind(address: SocketAddr, share: bool, what: &'static str) -> Result<TcpListener, RunError> {
    let listen = || {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        if share {
            socket.set_reuseport(true)?;
        }
        socket.bind(address)?;
        socket.listen(1024)
    };
    listen().map_err(|source| RunError::Bind {
        address,
        what,
        source,
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT"),
    }
}

/// Lists ImagePromotions once: a missing CRD or missing RBAC fails the start
/// with what to do.
async fn check_crds(
    client: &kube::Client,
    namespaces: &[String],
    selector: Option<&str>,
) -> Result<(), RunError> {
    let api: Api<ImagePromotion> = match namespaces.first() {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let mut params = ListParams::default().limit(1);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    match api.list(&params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RunError::CrdsMissing),
        Err(kube::Error::Api(status)) if status.code == 400 && selector.is_some() => {
            Err(RunError::LabelSelector {
                selector: selector.unwrap_or_default().to_string(),
                message: status.message.clone(),
            })
        }
        Err(kube::Error::Api(status)) if status.code == 403 => Err(RunError::Forbidden {
            what: "list imagepromotions".into(),
            message: status.message.clone(),
        }),
        Err(error) => Err(RunError::Apiserver(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "team", "resourceVersion": version},
        }))
        .unwrap()
    }

    #[test]
    fn the_cache_keeps_neither_managed_fields_nor_the_last_applied_copy() {
        // Any kind: a ConfigMap stands in for both of ours.
        let mut promotion: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "app", "namespace": "team", "uid": "u1", "generation": 3,
                "annotations": {
                    LAST_APPLIED: "{\"spec\":{}}",
                    "imagepromoter.dev/reconcile-requested-at": "now",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "data": {"a": "b"},
        }))
        .unwrap();
        trim(&mut promotion);
        assert_eq!(promotion.metadata.managed_fields, None);
        let annotations = promotion.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["imagepromoter.dev/reconcile-requested-at"],
            "what the reconcilers read stays"
        );
        assert_eq!(promotion.metadata.generation, Some(3));
        assert_eq!(promotion.metadata.uid.as_deref(), Some("u1"));

        promotion.metadata.annotations =
            Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        trim(&mut promotion);
        assert_eq!(promotion.metadata.annotations, None, "no empty map left");
    }

    #[test]
    fn only_an_expired_resource_version_lists_again_without_backing_off() {
        let status = |code: u16| {
            let status: kube::core::Status = serde_json::from_value(serde_json::json!({
                "status": "Failure", "code": code, "reason": "Expired",
                "message": "too old resource version: 554 (557)",
            }))
            .unwrap();
            Err::<watcher::Event<Secret>, _>(watcher::Error::WatchError(Box::new(status)))
        };
        assert!(is_expired(&status(410)));
        assert!(!is_expired(&status(403)), "a refusal is a failure");
        assert!(!is_expired(&status(500)));
        assert!(!is_expired(&Ok(watcher::Event::<Secret>::Init)));
        assert!(!is_expired(&Err::<watcher::Event<Secret>, _>(
            watcher::Error::NoResourceVersion
        )));
    }

    #[test]
    fn a_failing_watch_waits_longer_each_time_up_to_five_seconds() {
        let ms = Duration::from_millis;
        for (failures, jitter, wait) in [
            (0, 0.0, ms(800)),
            (0, 0.999, ms(400)),
            (1, 0.0, ms(1600)),
            (2, 0.0, ms(3200)),
            (3, 0.0, ms(5000)),
            (3, 0.999, ms(2500)),
            (9, 0.0, ms(5000)),
            (u32::MAX, 0.5, ms(3750)),
        ] {
            let got = watch_retry_after(failures, jitter);
            assert!(
                got.abs_diff(wait) < ms(5),
                "after {failures} failures, jitter {jitter}: {got:?}, not {wait:?}"
            );
        }
        let mut backoff = WatchBackoff::default();
        let start = Instant::now();
        let waits: Vec<Duration> = (0..6).map(|i| backoff.failed(start + ms(i), 0.0)).collect();
        assert_eq!(waits[..4], [ms(800), ms(1600), ms(3200), ms(5000)]);
        assert_eq!(waits[5], WATCH_RETRY_MOST);
        kube::runtime::utils::Backoff::reset(&mut backoff);
        assert_eq!(
            backoff.failed(start + WATCH_RETRY_QUIET, 0.0),
            WATCH_RETRY_MOST,
            "a list that fails every time is not retried at once (the watcher's Init resets)"
        );
        assert_eq!(
            backoff.failed(start + WATCH_RETRY_QUIET * 3, 0.0),
            WATCH_RETRY_FIRST,
            "after a quiet while the waits start over"
        );
    }

    #[test]
    fn only_a_new_or_changed_secret_makes_its_objects_due() {
        let versions = SecretVersions::default();
        assert!(versions.changed(&secret("a", "1")), "first seen");
        assert!(!versions.changed(&secret("a", "1")), "listed again");
        assert!(versions.changed(&secret("a", "2")), "changed");
        assert!(versions.changed(&secret("b", "2")), "another Secret");
        assert!(!versions.changed(&secret("a", "2")));
    }
}
