//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager):
//! with `--leader-elect`, a replica reconciles only while it holds the Lease.
//! Losing it is fail-stop: the operator stops at once (its in-flight copies
//! are dropped, which cancels them; tags are written last, so nothing half
//! done is ever published) and exits, and the Deployment restarts it as a
//! standby. On shutdown the Lease is released so a standby takes over at once.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How long a Lease is held without renewal (seconds).
pub const LEASE_SECONDS: u64 = 15;
/// How long before expiry it is renewed (seconds).
pub const RENEW_BEFORE_SECONDS: u64 = 5;
/// How often a standby looks at the Lease: a released Lease is taken within
/// this, an expired one (a killed leader) within the Lease duration.
pub const STANDBY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the Lease lives and who asks for it.
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
    task: JoinHandle<Result<(), LeaseManagerError>>,
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
    /// The Lease could not be read or created.
    #[error("the Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
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
    /// Starts campaigning for the Lease of `election`.
    pub async fn campaign(client: kube::Client, election: &Election) -> Result<Self, LeaderError> {
        let manager =
            build(client.clone(), election)
                .await
                .map_err(|source| LeaderError::Lease {
                    namespace: election.namespace.clone(),
                    name: election.name.clone(),
                    source,
                })?;
        let (leading, task) = campaign(client, election.clone(), manager);
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

    /// Waits until this replica no longer holds the Lease.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Releases the Lease (when held) and ends the campaign.
    pub async fn release(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(())) => info!("released the Lease"),
            Ok(Err(error)) => warn!(%error, "releasing the Lease failed; it expires by itself"),
            Err(error) => warn!(%error, "the Lease campaign ended abnormally"),
        }
    }
}

/// Holds or waits for the Lease until every receiver is gone, then releases
/// it. A standby looks afresh every [`STANDBY_POLL`] with a new manager (one
/// GET of the Lease): a manager alone trusts its cached copy until the Lease
/// would expire, even when its holder released it.
fn campaign(
    client: kube::Client,
    election: Election,
    first: LeaseManager,
) -> (
    watch::Receiver<bool>,
    JoinHandle<Result<(), LeaseManagerError>>,
) {
    let (sender, receiver) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut manager = first;
        loop {
            let leading = *sender.borrow();
            let step = if leading {
                tokio::select! {
                    result = manager.changed() => Some(result),
                    () = sender.closed() => break,
                }
            } else {
                tokio::select! {
                    result = tokio::time::timeout(STANDBY_POLL, manager.changed()) => result.ok(),
                    () = sender.closed() => break,
                }
            };
            match step {
                Some(Ok(state)) => {
                    let _ = sender.send(state);
                }
                Some(Err(error)) => {
                    warn!(%error, "leader election: reading or renewing the Lease failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => match build(client.clone(), &election).await {
                    Ok(fresh) => manager = fresh,
                    Err(error) => warn!(%error, "leader election: reading the Lease failed"),
                },
            }
        }
        manager.release().await
    });
    (receiver, task)
}

async fn build(
    client: kube::Client,
    election: &Election,
) -> Result<LeaseManager, LeaseManagerError> {
    LeaseManagerBuilder::new(client, &election.name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_BEFORE_SECONDS)
        // One field manager per replica: the Lease is taken with a server-side
        // apply that conflicts only between different managers, so a shared one
        // would let two replicas take it at once.
        .with_field_manager(field_manager(&election.identity))
        .build()
        .await
}

/// The field manager of one replica's Lease writes (at most 128 bytes, as the
/// apiserver requires; identities are pod names and a short suffix).
fn field_manager(identity: &str) -> String {
    let mut manager = format!("image-promoter/{identity}");
    if manager.len() > 128 {
        let mut end = 128;
        while !manager.is_char_boundary(end) {
            end -= 1;
        }
        manager.truncate(end);
    }
    manager
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replica_writes_the_lease_as_a_field_manager_of_its_own() {
        let long = "p".repeat(200);
        let cases = [
            (
                "image-promoter-7d9f-abcde_0a1b2c3d",
                "image-promoter/image-promoter-7d9f-abcde_0a1b2c3d",
            ),
            (
                "é".repeat(100).as_str(),
                &format!("image-promoter/{}", "é".repeat(56)),
            ),
            (
                long.as_str(),
                &format!("image-promoter/{}", "p".repeat(113)),
            ),
        ]
        .map(|(identity, expected)| (identity.to_string(), expected.to_string()));
        for (identity, expected) in cases {
            let manager = field_manager(&identity);
            assert_eq!(manager, expected, "{identity}");
            assert!(manager.len() <= 128, "{manager}");
        }
        assert_ne!(field_manager("a_00000001"), field_manager("a_00000002"));
    }
}
