//! A bounded cache for clients keyed by what users choose (registry hosts,
//! Secrets): at most `capacity` entries, least recently used first out, and
//! no thrash past the cap.
//!
//! Objects can name any host, so a cache keyed by host must be bounded; but
//! a plain LRU (or clearing the map when it is full) makes every lookup a
//! miss once more keys are in use than fit, throwing away the clients and
//! tokens the busy objects rely on. Here an entry is evicted only when it
//! has been idle for `keep` (a reconcile interval or so); while every entry
//! is in use, a new key is not admitted and its caller uses the value once,
//! uncached. The cache then holds a stable working set, and new keys get in
//! as old ones go quiet.
//!
//! Time is a parameter, so the decisions are tested without waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A cache of at most `capacity` entries (see the module doc).
#[derive(Debug)]
pub struct BoundedCache<K, V> {
    capacity: usize,
    keep: Duration,
    entries: HashMap<K, (V, Instant)>,
}

/// What [`BoundedCache::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Stored; the cache had room or the key was already there.
    Stored,
    /// Stored in place of the least recently used entry, idle for `keep`.
    Replaced,
    /// Not stored: the cache is full of entries in use.
    Refused,
}

impl<K: Hash + Eq + Clone, V: Clone> BoundedCache<K, V> {
    /// At most `capacity` entries (at least one); an entry idle for `keep`
    /// may make room for a new key.
    pub fn new(capacity: usize, keep: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            keep,
            entries: HashMap::new(),
        }
    }

    /// The value for `key`, marked as used at `now`.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        let (value, used) = self.entries.get_mut(key)?;
        *used = now;
        Some(value.clone())
    }

    /// Stores `value` for `key` at `now` when there is room, or when the
    /// least recently used entry has been idle for `keep` (it goes).
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> Admission {
        if let Some(entry) = self.entries.get_mut(&key) {
            *entry = (value, now);
            return Admission::Stored;
        }
        if self.entries.len() < self.capacity {
            self.entries.insert(key, (value, now));
            return Admission::Stored;
        }
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, (_, used))| (k.clone(), *used));
        match oldest {
            Some((old, used)) if now.saturating_duration_since(used) >= self.keep => {
                self.entries.remove(&old);
                self.entries.insert(key, (value, now));
                Admission::Replaced
            }
            _ => Admission::Refused,
        }
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|k, (v, _)| keep(k, v));
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(600);

    #[test]
    fn full_of_entries_in_use_it_refuses_instead_of_evicting() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut cache = BoundedCache::new(2, KEEP);
        // (step, key, time, expected admission of an insert after a miss)
        let steps = [
            ("a", 0, Some(Admission::Stored)),
            ("b", 1, Some(Admission::Stored)),
            ("a", 2, None),
            ("c", 3, Some(Admission::Refused)),
            ("b", 300, None),
            ("c", 601, Some(Admission::Refused)),
            ("c", 603, Some(Admission::Replaced)),
            ("a", 604, Some(Admission::Refused)),
            ("b", 605, None),
        ];
        for (key, secs, expected) in steps {
            let hit = cache.get(&key, at(secs)).is_some();
            match expected {
                None => assert!(hit, "{key} at {secs}s is cached"),
                Some(admission) => {
                    assert!(!hit, "{key} at {secs}s is not cached");
                    assert_eq!(
                        cache.insert(key, secs, at(secs)),
                        admission,
                        "{key} at {secs}s"
                    );
                }
            }
            assert!(cache.len() <= 2);
        }
    }

    #[test]
    fn many_keys_past_the_cap_leave_the_working_set_alone() {
        let start = Instant::now();
        let mut cache = BoundedCache::new(4, KEEP);
        for key in 0..4 {
            cache.insert(key, key, start);
        }
        // A thousand hostile keys, while the working set keeps being used.
        for (i, key) in (100..1100).enumerate() {
            let now = start + Duration::from_millis(i as u64);
            assert_eq!(cache.insert(key, key, now), Admission::Refused);
            for hot in 0..4 {
                assert_eq!(cache.get(&hot, now), Some(hot));
            }
        }
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn retain_forgets_and_a_known_key_is_updated_in_place() {
        let now = Instant::now();
        let mut cache = BoundedCache::new(1, KEEP);
        assert_eq!(cache.insert("a", 1, now), Admission::Stored);
        assert_eq!(cache.insert("a", 2, now), Admission::Stored);
        assert_eq!(cache.get(&"a", now), Some(2));
        cache.retain(|k, _| *k != "a");
        assert!(cache.is_empty());
        assert_eq!(cache.insert("b", 3, now), Admission::Stored);
    }
}
