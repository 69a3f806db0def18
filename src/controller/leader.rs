//! Leader election on a `coordination.k8s.io` Lease: with `--leader-elect`, a
//! replica reconciles only while it holds the Lease.
//!
//! The protocol is the one client-go's leader election speaks, so the Lease
//! reads the same in `kubectl get lease` and works next to other tools: every
//! `--leader-election-retry-period` a standby reads the Lease and takes it
//! when it is free, released, or was not renewed for the holder's
//! `leaseDurationSeconds` (measured on this replica's own clock from when it
//! saw the Lease change, so clocks need not agree); the holder renews it every
//! retry period. Every write carries the `resourceVersion` it read, so of
//! two replicas writing at once exactly one succeeds.
//!
//! A leader that could not renew within `--leader-election-renew-deadline`
//! of its last successful renewal considers the Lease lost, even though
//! nobody took it yet: the renew deadline is shorter than the Lease duration,
//! so it stops before a standby may take over. Losing the Lease is
//! fail-stop: the operator drops its controllers at once (in-flight copies
//! are cancelled; tags are written last, so nothing half done is published)
//! and exits, and the Deployment restarts it as a standby. On shutdown the
//! Lease is released so a standby takes over at its next look.
//!
//! When to renew, when the Lease counts as lost and when a standby may take
//! it are pure decisions ([`renewal`], [`claim`], [`observe`]); the
//! campaign around them only reads and writes the Lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long a Lease lasts, how long a leader keeps trying to renew it and
/// how often it is looked at (controller-runtime's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `--leader-election-lease-duration`: how long a standby waits after the
    /// Lease was last renewed before it takes it.
    pub lease_duration: Duration,
    /// `--leader-election-renew-deadline`: how long the leader keeps trying
    /// to renew before it stops leading.
    pub renew_deadline: Duration,
    /// `--leader-election-retry-period`: how often the Lease is renewed, or
    /// read by a standby.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Leader election timings that cannot work.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The Lease is written in whole seconds.
    #[error(
        "--leader-election-lease-duration is {0:?}: a Lease lasts at least 1s (it is written in \
         whole seconds); the default is 15s"
    )]
    LeaseTooShort(Duration),
    /// A leader could still be working after a standby took the Lease.
    #[error(
        "--leader-election-renew-deadline ({renew_deadline:?}) must be shorter than \
         --leader-election-lease-duration ({lease_duration:?}): a leader that cannot renew must \
         stop before a standby may take the Lease (defaults: 10s and 15s)"
    )]
    RenewDeadlineNotBelowLease {
        /// The renew deadline.
        renew_deadline: Duration,
        /// The Lease duration.
        lease_duration: Duration,
    },
    /// A leader would not try to renew even once before its deadline.
    #[error(
        "--leader-election-retry-period ({retry_period:?}) must be shorter than \
         --leader-election-renew-deadline ({renew_deadline:?}) and above zero: a leader tries to \
         renew every retry period until the deadline (defaults: 2s and 10s)"
    )]
    RetryNotBelowRenewDeadline {
        /// The retry period.
        retry_period: Duration,
        /// The renew deadline.
        renew_deadline: Duration,
    },
}

impl Timing {
    /// Checks that the three durations work together.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, TimingError> {
        if lease_duration < Duration::from_secs(1) {
            return Err(TimingError::LeaseTooShort(lease_duration));
        }
        if renew_deadline >= lease_duration {
            return Err(TimingError::RenewDeadlineNotBelowLease {
                renew_deadline,
                lease_duration,
            });
        }
        if retry_period.is_zero() || retry_period >= renew_deadline {
            return Err(TimingError::RetryNotBelowRenewDeadline {
                retry_period,
                renew_deadline,
            });
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// `leaseDurationSeconds` as written into the Lease (rounded up).
    fn lease_seconds(&self) -> i32 {
        let seconds =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(seconds).unwrap_or(i32::MAX)
    }
}

/// What a leader makes of the time since its last successful renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Still within the renew deadline: keep leading (and keep renewing).
    Keep,
    /// The renew deadline passed: stop leading now, before a standby may
    /// take the Lease.
    Lost,
}

/// Whether a leader whose last successful renewal was sent at `renewed`
/// still leads at `now`.
pub fn renewal(renewed: Instant, now: Instant, timing: &Timing) -> Renewal {
    if now.saturating_duration_since(renewed) < timing.renew_deadline {
        Renewal::Keep
    } else {
        Renewal::Lost
    }
}

/// What a replica may do with the Lease as it reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It holds the Lease: renew it.
    Renew,
    /// Nobody holds it, or its holder let it expire: take it.
    Take,
    /// Another replica holds it: wait.
    Wait,
}

/// The Lease as one replica last saw it change: its `resourceVersion`, and
/// when (on this replica's clock) that version was first seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The Lease's `resourceVersion`.
    pub version: String,
    /// When this replica first saw it.
    pub since: Instant,
}

/// Updates what was observed of the Lease after reading `version` at `now`:
/// an unchanged Lease keeps the instant it was first seen.
pub fn observe(previous: Option<Observed>, version: &str, now: Instant) -> Observed {
    match previous {
        Some(observed) if observed.version == version => observed,
        _ => Observed {
            version: version.to_string(),
            since: now,
        },
    }
}

/// Whether `me` may take or renew a Lease held by `holder` for `held_for`,
/// unchanged since `since`.
pub fn claim(
    holder: Option<&str>,
    held_for: Duration,
    me: &str,
    since: Instant,
    now: Instant,
) -> Claim {
    match holder {
        None | Some("") => Claim::Take,
        Some(holder) if holder == me => Claim::Renew,
        Some(_) if now.saturating_duration_since(since) >= held_for => Claim::Take,
        Some(_) => Claim::Wait,
    }
}

/// Where the Lease lives, who asks for it, and how its time runs.
#[derive(Clone, Debug)]
pub struct Election {
    /// `--leader-election-namespace`, or the pod's namespace.
    pub namespace: String,
    /// `--leader-election-id`.
    pub name: String,
    /// This replica: the pod's name and a random suffix.
    pub identity: String,
}

/// A campaign for the Lease, running in the background.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// No namespace for the Lease.
    #[error(
        "leader election needs a namespace for its Lease: set --leader-election-namespace, or \
         POD_NAMESPACE (the chart sets it from the downward API)"
    )]
    NoNamespace,
    /// The Lease cannot be read or written, and waiting will not change that.
    #[error(
        "the Lease {namespace}/{name}: {source}; the operator needs get, create and update on \
         coordination.k8s.io leases in that namespace (the Role in deploy/rbac.yaml)"
    )]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What the apiserver said.
        #[source]
        source: kube::Error,
    },
}

/// The Lease's namespace: the flag, else the pod's.
pub async fn namespace(flag: Option<String>) -> Result<String, LeaderError> {
    if let Some(namespace) = flag.or_else(|| std::env::var("POD_NAMESPACE").ok()) {
        return Ok(namespace);
    }
    tokio::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .await
        .map(|n| n.trim().to_string())
        .map_err(|_| LeaderError::NoNamespace)
}

/// This replica's identity.
pub fn identity() -> String {
    let pod = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "image-promoter".into());
    format!("{pod}_{:08x}", fastrand::u32(..))
}

impl Leadership {
    /// Starts campaigning for the Lease of `election`. The first attempt is
    /// made at once: a Lease this replica may not read or write (RBAC, a
    /// missing namespace) fails the start; anything else is tried again.
    pub async fn campaign(
        client: kube::Client,
        election: &Election,
        timing: Timing,
    ) -> Result<Self, LeaderError> {
        let mut lock = LeaseLock {
            api: Api::namespaced(client, &election.namespace),
            name: election.name.clone(),
            identity: election.identity.clone(),
            timing,
            observed: None,
        };
        let attempt = Instant::now();
        let held = match tokio::time::timeout(timing.renew_deadline, lock.try_hold()).await {
            Ok(Ok(Hold::Held)) => Some(attempt),
            Ok(Ok(Hold::Elsewhere | Hold::Raced)) | Err(_) => None,
            Ok(Err(error)) if is_permanent(&error) => {
                return Err(LeaderError::Lease {
                    namespace: election.namespace.clone(),
                    name: election.name.clone(),
                    source: error,
                });
            }
            Ok(Err(error)) => {
                warn!(%error, "leader election: reading or taking the Lease failed");
                None
            }
        };
        let (sender, leading) = watch::channel(false);
        let task = tokio::spawn(campaign(lock, sender, held));
        Ok(Self { leading, task })
    }

    /// Whether this replica holds the Lease now.
    pub fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until this replica holds the Lease; false when the campaign ended.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Waits until this replica no longer leads: another replica took the
    /// Lease, or it could not be renewed within the renew deadline.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Releases the Lease (when held) and ends the campaign.
    pub async fn release(self) {
        drop(self.leading);
        if let Err(error) = self.task.await {
            warn!(%error, "the Lease campaign ended abnormally");
        }
    }
}

/// Whether an answer about the Lease will not change by asking again.
fn is_permanent(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 400 | 401 | 403 | 404 | 422))
}

/// Waits for the Lease (unless `held` says since when it is held), holds it
/// until the renew deadline passes or another replica holds it (then
/// reports `false` and ends), or until every receiver is gone (then
/// releases it).
async fn campaign(mut lock: LeaseLock, leading: watch::Sender<bool>, held: Option<Instant>) {
    let timing = lock.timing;
    let mut renewed = match held {
        Some(renewed) => renewed,
        None => loop {
            // Jittered, so that standbys started together do not ask together.
            let pause = timing.retry_period.mul_f64(1.0 + fastrand::f64() * 0.2);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = leading.closed() => return,
            }
            let attempt = Instant::now();
            match tokio::time::timeout(timing.renew_deadline, lock.try_hold()).await {
                Ok(Ok(Hold::Held)) => break attempt,
                Ok(Ok(Hold::Elsewhere | Hold::Raced)) => {}
                Ok(Err(error)) => {
                    warn!(%error, "leader election: reading or taking the Lease failed")
                }
                Err(_) => warn!("leader election: reading or taking the Lease timed out"),
            }
        },
    };
    let _ = leading.send(true);
    loop {
        let deadline = renewed + timing.renew_deadline;
        let next = (Instant::now() + timing.retry_period).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = leading.closed() => break,
        }
        if renewal(renewed, Instant::now(), &timing) == Renewal::Lost {
            error!(deadline = ?timing.renew_deadline, "leader election: the Lease could not be renewed within the renew deadline");
            let _ = leading.send(false);
            return;
        }
        let attempt = Instant::now();
        let tried = tokio::select! {
            tried = tokio::time::timeout_at(deadline.into(), lock.try_hold()) => tried,
            () = leading.closed() => break,
        };
        match tried {
            Ok(Ok(Hold::Held)) => renewed = attempt,
            Ok(Ok(Hold::Elsewhere)) => {
                error!("leader election: another replica holds the Lease");
                let _ = leading.send(false);
                return;
            }
            Ok(Ok(Hold::Raced)) => {}
            Ok(Err(error)) => {
                warn!(%error, "leader election: renewing the Lease failed; trying again until the renew deadline")
            }
            // The deadline passed during the attempt: the next turn says so.
            Err(_) => {}
        }
    }
    match tokio::time::timeout(timing.renew_deadline, lock.release()).await {
        Ok(Ok(true)) => info!("released the Lease"),
        Ok(Ok(false)) => info!("the Lease was no longer ours to release"),
        Ok(Err(error)) => warn!(%error, "releasing the Lease failed; it expires by itself"),
        Err(_) => warn!("releasing the Lease timed out; it expires by itself"),
    }
}

/// The outcome of one attempt to take or renew the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// This replica holds it (taken or renewed).
    Held,
    /// Another replica holds it.
    Elsewhere,
    /// Someone wrote the Lease between this replica's read and write.
    Raced,
}

/// One replica's reads and writes of the Lease.
struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<Observed>,
}

/// The field manager of the Lease writes.
const FIELD_MANAGER: &str = "image-promoter";

impl LeaseLock {
    /// Reads the Lease and takes or renews it when [`claim`] allows.
    async fn try_hold(&mut self) -> Result<Hold, kube::Error> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.taken(&LeaseSpec::default())),
            };
            return match self.api.create(&params, &lease).await {
                Ok(created) => {
                    self.saw(&created, Instant::now());
                    Ok(Hold::Held)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Hold::Raced),
                Err(error) => Err(error),
            };
        };
        let now = Instant::now();
        self.saw(&lease, now);
        let spec = lease.spec.clone().unwrap_or_default();
        let held_for = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.lease_duration, Duration::from_secs);
        let since = self.observed.as_ref().map_or(now, |o| o.since);
        let next = match claim(
            spec.holder_identity.as_deref(),
            held_for,
            &self.identity,
            since,
            now,
        ) {
            Claim::Wait => return Ok(Hold::Elsewhere),
            Claim::Renew => LeaseSpec {
                renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                lease_duration_seconds: Some(self.timing.lease_seconds()),
                ..spec
            },
            Claim::Take => self.taken(&spec),
        };
        let mut lease = lease;
        lease.spec = Some(next);
        // `lease` carries the resourceVersion read above: a write by anyone
        // in between makes this one fail with 409.
        match self.api.replace(&self.name, &params, &lease).await {
            Ok(written) => {
                self.saw(&written, Instant::now());
                Ok(Hold::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Hold::Raced),
            Err(error) => Err(error),
        }
    }

    /// `spec` taken over by this replica.
    fn taken(&self, spec: &LeaseSpec) -> LeaseSpec {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_duration_seconds: Some(self.timing.lease_seconds()),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + 1),
            ..spec.clone()
        }
    }

    fn saw(&mut self, lease: &Lease, now: Instant) {
        let version = lease
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default();
        self.observed = Some(observe(self.observed.take(), version, now));
    }

    /// Gives the Lease up when this replica holds it, so that a standby takes
    /// it at its next look; whether it did.
    async fn release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.take() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            acquire_time: None,
            renew_time: None,
            lease_duration_seconds: Some(1),
            ..spec
        });
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match self.api.replace(&self.name, &params, &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_leader_stops_once_it_could_not_renew_within_the_renew_deadline() {
        let timing = Timing::default();
        let renewed = Instant::now();
        let cases = [
            (MS(0), Renewal::Keep),
            (S(2), Renewal::Keep),
            (MS(9_999), Renewal::Keep),
            (S(10), Renewal::Lost),
            (S(14), Renewal::Lost),
            (S(3600), Renewal::Lost),
        ];
        for (after, expected) in cases {
            assert_eq!(
                renewal(renewed, renewed + after, &timing),
                expected,
                "{after:?} after the renewal"
            );
        }
        // A clock read before the renewal was recorded is not a lost Lease.
        assert_eq!(renewal(renewed + S(1), renewed, &timing), Renewal::Keep);
        let short = Timing::new(S(6), S(4), S(1)).unwrap();
        assert_eq!(renewal(renewed, renewed + S(4), &short), Renewal::Lost);
        assert_eq!(renewal(renewed, renewed + MS(3_900), &short), Renewal::Keep);
    }

    #[test]
    fn a_standby_takes_the_lease_only_when_free_or_unrenewed_for_its_duration() {
        let seen = Instant::now();
        let me = "replica-b";
        let cases = [
            (None, S(15), S(0), Claim::Take),
            (Some(""), S(15), S(0), Claim::Take),
            (Some("replica-b"), S(15), S(0), Claim::Renew),
            (Some("replica-b"), S(15), S(60), Claim::Renew),
            (Some("replica-a"), S(15), S(0), Claim::Wait),
            (Some("replica-a"), S(15), MS(14_999), Claim::Wait),
            (Some("replica-a"), S(15), S(15), Claim::Take),
            (Some("replica-a"), S(1), S(1), Claim::Take),
            (Some("replica-a"), S(3600), S(60), Claim::Wait),
        ];
        for (holder, held_for, unchanged_for, expected) in cases {
            assert_eq!(
                claim(holder, held_for, me, seen, seen + unchanged_for),
                expected,
                "held by {holder:?} for {held_for:?}, unchanged for {unchanged_for:?}"
            );
        }
    }

    #[test]
    fn a_lease_counts_as_unchanged_from_when_this_replica_first_saw_its_version() {
        let t0 = Instant::now();
        let first = observe(None, "100", t0);
        assert_eq!(
            first,
            Observed {
                version: "100".into(),
                since: t0
            }
        );
        let again = observe(Some(first.clone()), "100", t0 + S(5));
        assert_eq!(again.since, t0, "the same version keeps its first sighting");
        let renewed = observe(Some(again), "101", t0 + S(7));
        assert_eq!(
            renewed,
            Observed {
                version: "101".into(),
                since: t0 + S(7)
            }
        );
    }

    #[test]
    fn the_renew_deadline_ends_before_the_lease_and_after_a_retry() {
        assert_eq!(Timing::new(S(15), S(10), S(2)), Ok(Timing::default()));
        let cases = [
            (S(15), S(10), S(2), true),
            (S(6), S(4), S(1), true),
            (MS(1500), S(1), MS(200), true),
            (S(15), S(15), S(2), false),
            (S(10), S(15), S(2), false),
            (S(15), S(10), S(10), false),
            (S(15), S(10), S(12), false),
            (S(15), S(10), S(0), false),
            (MS(500), MS(400), MS(100), false),
        ];
        for (lease, renew, retry, valid) in cases {
            let timing = Timing::new(lease, renew, retry);
            assert_eq!(
                timing.is_ok(),
                valid,
                "{lease:?} {renew:?} {retry:?}: {timing:?}"
            );
        }
        let error = Timing::new(S(15), S(20), S(2)).unwrap_err().to_string();
        assert!(
            error.contains("--leader-election-renew-deadline (20s) must be shorter"),
            "{error}"
        );
        let error = Timing::new(S(15), S(10), S(10)).unwrap_err().to_string();
        assert!(
            error.contains("--leader-election-retry-period (10s)"),
            "{error}"
        );
    }

    #[test]
    fn the_lease_is_written_in_whole_seconds_rounded_up() {
        let cases = [(S(15), 15), (MS(1500), 2), (S(1), 1)];
        for (lease, seconds) in cases {
            let timing = Timing::new(lease, MS(900), MS(100)).unwrap();
            assert_eq!(timing.lease_seconds(), seconds, "{lease:?}");
        }
    }
}
