//! The operator: `image-promoter run`. One [`Context`] per process — one
//! Kubernetes client, one AWS configuration, one copy engine (registry
//! clients, connection pools, token caches, limits and blob locations
//! shared by every reconcile), one event recorder, one metrics registry,
//! the per-object backoff — handed to the ImagePromotion controller
//! ([`promotion`]), one per watched namespace or one for the cluster. The
//! health and metrics endpoints ([`http`]) and the shutdown signal are the
//! process's too.
//!
//! The configuration file is watched; a valid change swaps in a new
//! [`Setup`] and reconciles every object again.
//!
//! Shutdown (SIGTERM or SIGINT): the controllers stop taking work, in-flight
//! reconciles get `--shutdown-grace`, then whatever still runs is dropped
//! (a copy writes its tags last, so a cancelled copy leaves no tag behind).

pub mod backoff;
pub mod decision;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod mirror;
pub mod promotion;
pub mod secrets;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio::net::{TcpListener, TcpSocket};
use tracing::{error, info, warn};

pub use error::{ReconcileError, RunError};

use crate::api::{ImagePromotion, RegistryMirror};
use crate::config::Config;
use crate::promotion::Shared;
use backoff::Backoffs;
use http::Health;
use leader::{Election, Leadership};
use metrics::Metrics;

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
    /// `--leader-elect`.
    pub leader_elect: bool,
    /// `--leader-election-id`.
    pub leader_election_id: String,
    /// `--leader-election-namespace` (default: the pod's).
    pub leader_election_namespace: Option<String>,
    /// `--share-ports`: bind the metrics and probe ports with SO_REUSEPORT.
    pub share_ports: bool,
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
    /// The one event recorder.
    pub recorder: Recorder,
    /// The metrics.
    pub metrics: Metrics,
    /// Per-object failure and wait counts.
    pub backoff: Backoffs,
    /// `--resync-interval`.
    pub resync: Duration,
    /// Each RegistryMirror's ledger.
    pub ledgers: mirror::Ledgers,
}

impl Context {
    /// The current configuration and engine (a reconcile keeps the one it started with).
    pub fn setup(&self) -> Arc<Setup> {
        self.setup.read().expect("lock never poisoned").clone()
    }

    fn replace_setup(&self, setup: Setup) {
        *self.setup.write().expect("lock never poisoned") = Arc::new(setup);
    }
}

/// Runs the operator until SIGTERM / SIGINT.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::Client)?;
    check_crds(&client, &settings.watch_namespaces).await?;
    let shared = Shared::load(&settings.config).await?;
    let lease = settings.leader_election_id.clone();
    let metrics = Metrics::new(settings.concurrency, &lease);
    crate::registry::client::observe_requests(metrics.request_observer());
    let health = Arc::new(Health::default());
    let instance = std::env::var("POD_NAME").ok();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "image-promoter".into(),
            instance,
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        setup: std::sync::RwLock::new(Arc::new(Setup {
            config: settings.config,
            shared,
        })),
        recorder,
        metrics,
        backoff: Backoffs::default(),
        resync: settings.resync,
        ledgers: mirror::Ledgers::default(),
    });
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
        let mut campaign = Leadership::campaign(client.clone(), &election).await?;
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
    let mut controllers = Vec::new();
    let mut reconcile_all = Vec::new();
    for namespace in namespaces {
        let (promotions, secrets): (Api<ImagePromotion>, Api<PartialObjectMeta<Secret>>) =
            match &namespace {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (Api::all(client.clone()), Api::all(client.clone())),
            };
        let controller = Controller::new(promotions, watcher::Config::default());
        let store = controller.store();
        stores.push(store.clone());
        let mut promotion_stopping = stopping.clone();
        let promotion_health = health.clone();
        let (again, all_again) = futures::channel::mpsc::unbounded::<()>();
        reconcile_all.push(again);
        let running = controller
            .watches(secrets, watcher::Config::default(), move |secret| {
                referencing(&store, &secret)
            })
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
        let mirrors: Api<RegistryMirror> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut stopping = stopping.clone();
        let mirror_health = health.clone();
        let running = Controller::new(mirrors, watcher::Config::default())
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
    }
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
        match Shared::load(&config).await {
            Ok(shared) => {
                ctx.replace_setup(Setup { config, shared });
                info!(path = %path.display(), "the configuration changed: every promotion is reconciled again");
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

/// The ImagePromotions in `secret`'s namespace that reference it.
fn referencing(
    store: &kube::runtime::reflector::Store<ImagePromotion>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<ImagePromotion>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .into_iter()
        .filter(|p| p.namespace() == namespace && decision::references_secret(p, &name))
        .map(|p| ObjectRef::from_obj(&*p))
        .collect()
}

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
async fn check_crds(client: &kube::Client, namespaces: &[String]) -> Result<(), RunError> {
    let api: Api<ImagePromotion> = match namespaces.first() {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RunError::CrdsMissing),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(RunError::Forbidden {
            what: "list imagepromotions".into(),
            message: status.message.clone(),
        }),
        Err(error) => Err(RunError::Apiserver(error)),
    }
}
