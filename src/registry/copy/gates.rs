//! Turns for copies running side by side (a batch, or the operator's
//! promotions), keyed by what they touch:
//!
//! - [`BlobGates`]: one blob at a time per target registry. Copies that need
//!   the same blob in the same registry take turns, so the second finds it
//!   there (or mounts it) instead of uploading it again. A copy takes the gates
//!   of one blob for all its target hosts and holds them only while that blob
//!   is placed.
//! - [`TagLocks`]: one writer at a time per (registry, repository, tag). A
//!   copy holds the locks of a target's tags from its last check of where
//!   they point to its last tag PUT, so two copies cannot both find a
//!   write-once tag free and both write it.
//!
//! Keys are taken in sorted order and a copy never waits for a gate while
//! holding gates of another kind, so two copies cannot wait on each other.

use crate::registry::digest::Digest;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Table<K> = Arc<Mutex<HashMap<K, Arc<AsyncMutex<()>>>>>;

/// Gates by key; an entry lives only while a copy holds or awaits it.
#[derive(Debug)]
pub struct Gates<K> {
    gates: Table<K>,
}

impl<K> Default for Gates<K> {
    fn default() -> Self {
        Self {
            gates: Arc::default(),
        }
    }
}

/// Gates of one blob, by registry host.
pub type BlobGates = Gates<(String, Digest)>;

/// Locks of tags, by (registry host, repository, tag).
pub type TagLocks = Gates<(String, String, String)>;

/// Held gates; dropping them lets the next copy in.
pub struct Held<K: Eq + Hash> {
    guards: Vec<(K, OwnedMutexGuard<()>)>,
    gates: Table<K>,
}

impl<K: Clone + Ord + Hash> Gates<K> {
    /// Waits for the gates of every key (any order, duplicates allowed) and
    /// holds them.
    pub async fn enter_all(&self, keys: impl IntoIterator<Item = K>) -> Held<K> {
        let mut keys: Vec<K> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
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

impl BlobGates {
    /// Waits for the gates of `digest` at every host in `hosts`.
    pub async fn enter<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a str>,
        digest: &Digest,
    ) -> Held<(String, Digest)> {
        self.enter_all(hosts.into_iter().map(|h| (h.to_string(), digest.clone())))
            .await
    }
}

impl TagLocks {
    /// Waits for the locks of `tags` in `repository` on `host`.
    pub async fn lock_tags(
        &self,
        host: &str,
        repository: &str,
        tags: &[String],
    ) -> Held<(String, String, String)> {
        self.enter_all(
            tags.iter()
                .map(|t| (host.to_string(), repository.to_string(), t.clone())),
        )
        .await
    }
}

impl<K: Eq + Hash> Drop for Held<K> {
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

    #[tokio::test]
    async fn a_tag_has_one_writer_at_a_time() {
        let locks = TagLocks::default();
        let tags = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let first = locks
            .lock_tags("r", "team/app", &tags(&["1.0", "latest"]))
            .await;
        let latest = tags(&["latest"]);
        let mut second = Box::pin(locks.lock_tags("r", "team/app", &latest));
        assert!(futures::poll!(&mut second).is_pending());
        // Same tag in another repository or registry: no wait.
        drop(locks.lock_tags("r", "team/other", &latest).await);
        drop(locks.lock_tags("r2", "team/app", &latest).await);
        drop(first);
        drop(second.await);
        assert_eq!(locks.in_use(), 0);
    }
}
