//! One blob at a time per target registry: copies running side by side (a
//! batch, or the operator's promotions) that need the same blob in the same
//! registry take turns, so the second finds it there (or mounts it) instead of
//! uploading it again.
//!
//! A gate is keyed by registry host and blob digest. A copy takes the gates of
//! one blob for all its target hosts in sorted order and holds them only while
//! that blob is placed; it never waits for a gate while holding another blob's,
//! so two copies cannot wait on each other.

use crate::registry::digest::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Key = (String, Digest);

/// The gates in use; an entry lives only while a copy holds or awaits it.
#[derive(Debug, Default)]
pub struct BlobGates {
    gates: Arc<Mutex<HashMap<Key, Arc<AsyncMutex<()>>>>>,
}

/// Held gates of one blob; dropping it lets the next copy in.
pub struct Held {
    guards: Vec<(Key, OwnedMutexGuard<()>)>,
    gates: Arc<Mutex<HashMap<Key, Arc<AsyncMutex<()>>>>>,
}

impl BlobGates {
    /// Waits for the gates of `digest` at every host in `hosts` (any order,
    /// duplicates allowed) and holds them.
    pub async fn enter<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a str>,
        digest: &Digest,
    ) -> Held {
        let mut hosts: Vec<&str> = hosts.into_iter().collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut guards = Vec::with_capacity(hosts.len());
        for host in hosts {
            let key = (host.to_string(), digest.clone());
            let gate = self
                .gates
                .lock()
                .expect("lock never poisoned")
                .entry(key.clone())
                .or_default()
                .clone();
            guards.push((key, gate.lock_owned().await));
        }
        Held {
            guards,
            gates: self.gates.clone(),
        }
    }

    /// Gates currently held or awaited.
    pub fn in_use(&self) -> usize {
        self.gates.lock().expect("lock never poisoned").len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut gates = self.gates.lock().expect("lock never poisoned");
        for (key, guard) in self.guards.drain(..) {
            drop(guard);
            // Only the map holds it: nobody waits, so the entry can go.
            if gates
                .get(&key)
                .is_some_and(|gate| Arc::strong_count(gate) == 1)
            {
                gates.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_copy_waits_until_the_first_is_done() {
        let gates = BlobGates::default();
        let digest = Digest::sha256_of(b"base layer");
        let first = gates.enter(["r1", "r2"], &digest).await;
        let mut second = Box::pin(gates.enter(["r2"], &digest));
        assert!(
            futures::poll!(&mut second).is_pending(),
            "the second copy got the gate while held"
        );

        // Another blob, or another registry, does not wait.
        let other = gates.enter(["r2"], &Digest::sha256_of(b"app")).await;
        let elsewhere = gates.enter(["r3"], &digest).await;
        drop((other, elsewhere));

        drop(first);
        let second = second.await;
        assert_eq!(gates.in_use(), 1);
        drop(second);
        assert_eq!(gates.in_use(), 0, "entries are removed once free");
    }

    #[tokio::test]
    async fn duplicate_hosts_are_entered_once() {
        let gates = BlobGates::default();
        let digest = Digest::sha256_of(b"layer");
        let held = gates.enter(["r1", "r1"], &digest).await;
        assert_eq!(held.guards.len(), 1);
    }
}
