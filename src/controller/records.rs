//! What the process remembers of each object, by UID: when it was handled
//! and is next due ([`Handled`]), the status it last wrote, what the kind
//! keeps (a promotion's verdict and what it published, a mirror's ledger),
//! and a cancellation signal for the work in flight.
//!
//! The status is output, not memory: anyone with the right role can write
//! it, so what the operator needs in order to act lives here and is rebuilt
//! by observing after a start. A record is created when the object is first
//! worked on and dropped when the object is deleted ([`Records::forget`],
//! from the watch's delete events, which also cancels its work in flight) or
//! found missing from the controller's cache ([`Records::retain`]). Its UID
//! is kept a while longer, so that work queued before the deletion does not
//! begin afresh.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

use super::schedule::{self, Due, Handled};

struct Entry<T> {
    handled: Option<Handled>,
    written: Option<serde_json::Value>,
    data: T,
    cancel: watch::Sender<bool>,
}

impl<T: Default> Entry<T> {
    fn new() -> Self {
        Self {
            handled: None,
            written: None,
            data: T::default(),
            cancel: watch::channel(false).0,
        }
    }
}

/// Resolves when the object's work must stop: the object was deleted.
pub struct Cancelled(watch::Receiver<bool>);

impl Cancelled {
    /// Waits until the object is deleted (or forgotten).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|cancelled| *cancelled).await;
    }
}

/// One record per object of a kind, by UID.
pub struct Records<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
    /// UIDs forgotten lately, with when: a reconcile that was waiting for a
    /// permit when its object was deleted must not start work afresh (UIDs
    /// are never reused). Kept for [`DELETED_KEPT`].
    deleted: Mutex<HashMap<String, Instant>>,
}

/// How long a deleted object's UID is remembered: far longer than a
/// reconcile waits for a permit.
pub const DELETED_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

impl<T> Default for Records<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            deleted: Mutex::default(),
        }
    }
}

impl<T: Default> Records<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().expect("lock never poisoned")
    }

    /// Whether `uid` is due now (see [`schedule::due`]).
    pub fn due(
        &self,
        uid: &str,
        generation: i64,
        requested: Option<&str>,
        epoch: u64,
        now: Instant,
    ) -> Due {
        let entries = self.lock();
        let handled = entries.get(uid).and_then(|e| e.handled.as_ref());
        schedule::due(handled, generation, requested, epoch, now)
    }

    /// Starts work on `uid`: its record exists from now on; returns the
    /// signal of its deletion (already given, and no record made, when `uid`
    /// was deleted before the work began).
    pub fn begin(&self, uid: &str) -> Cancelled {
        if self.deleted_lock().contains_key(uid) {
            return Cancelled(watch::channel(true).1);
        }
        let mut entries = self.lock();
        let entry = entries.entry(uid.to_string()).or_insert_with(Entry::new);
        Cancelled(entry.cancel.subscribe())
    }

    /// What was handled last, if anything.
    pub fn handled(&self, uid: &str) -> Option<Handled> {
        self.lock().get(uid).and_then(|e| e.handled.clone())
    }

    /// Records what a run handled; nothing when the object was forgotten meanwhile.
    pub fn set_handled(&self, uid: &str, handled: Handled) {
        if let Some(entry) = self.lock().get_mut(uid) {
            entry.handled = Some(handled);
        }
    }

    /// Reads or changes the kind's data of `uid`; `None` when it has no record.
    pub fn with<R>(&self, uid: &str, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.lock().get_mut(uid).map(|e| f(&mut e.data))
    }

    /// The status last written for `uid`, as the apiserver stored it.
    pub fn written(&self, uid: &str) -> Option<serde_json::Value> {
        self.lock().get(uid).and_then(|e| e.written.clone())
    }

    /// Remembers the status the apiserver holds for `uid` after a run.
    pub fn set_written(&self, uid: &str, status: serde_json::Value) {
        if let Some(entry) = self.lock().get_mut(uid) {
            entry.written = Some(status);
        }
    }

    /// A Secret `uid` references changed: it is due now.
    pub fn poke(&self, uid: &str) {
        if let Some(handled) = self.lock().get_mut(uid).and_then(|e| e.handled.as_mut()) {
            handled.poked = true;
        }
    }

    fn deleted_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.deleted.lock().expect("lock never poisoned")
    }

    /// Forgets `uid` (deleted) and cancels its work in flight, and work that
    /// would begin later; whether it had a record.
    pub fn forget(&self, uid: &str) -> bool {
        self.deleted_lock().insert(uid.to_string(), Instant::now());
        let removed = self.lock().remove(uid);
        if let Some(entry) = &removed {
            let _ = entry.cancel.send(true);
        }
        removed.is_some()
    }

    /// Forgets every object not in `live`; the UIDs forgotten. Deleted UIDs
    /// older than [`DELETED_KEPT`] go too.
    pub fn retain(&self, live: &HashSet<String>) -> Vec<String> {
        let now = Instant::now();
        let mut entries = self.lock();
        let gone: Vec<String> = entries
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        let mut deleted = self.deleted_lock();
        deleted.retain(|_, at| now.saturating_duration_since(*at) < DELETED_KEPT);
        for uid in &gone {
            if let Some(entry) = entries.remove(uid) {
                let _ = entry.cancel.send(true);
            }
            deleted.insert(uid.clone(), now);
        }
        gone
    }

    /// How many objects have a record.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no object has a record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::schedule::Why;

    #[tokio::test]
    async fn a_record_lives_from_its_first_run_to_its_deletion() {
        let records: Records<Vec<u8>> = Records::default();
        let now = Instant::now();
        assert_eq!(records.due("a", 1, None, 0, now), Due::Now(Why::FirstSeen));
        assert_eq!(records.with("a", |d| d.len()), None, "no record yet");
        let cancelled = records.begin("a");
        records.with("a", |d| d.push(7));
        records.set_handled(
            "a",
            Handled {
                generation: 1,
                ..Handled::default()
            },
        );
        assert_eq!(records.due("a", 1, None, 0, now), Due::OnChange);
        records.poke("a");
        assert_eq!(
            records.due("a", 1, None, 0, now),
            Due::Now(Why::SecretChanged)
        );
        assert_eq!(records.with("a", |d| d.clone()), Some(vec![7]));
        records.begin("b");
        assert_eq!(records.len(), 2);
        assert!(records.forget("a"));
        tokio::time::timeout(std::time::Duration::from_secs(5), cancelled.wait())
            .await
            .expect("deleting cancels the work in flight");
        assert!(!records.forget("a"), "once");
        records.set_handled("a", Handled::default());
        assert_eq!(
            records.len(),
            1,
            "a run ending after the deletion adds nothing"
        );
        let live: HashSet<String> = HashSet::new();
        assert_eq!(records.retain(&live), vec!["b".to_string()]);
        assert!(records.is_empty());
    }

    #[tokio::test]
    async fn work_that_begins_after_the_deletion_is_cancelled_from_the_start() {
        // A reconcile waited for a permit while its object was deleted.
        let records: Records<Vec<u8>> = Records::default();
        records.forget("a");
        let cancelled = records.begin("a");
        tokio::time::timeout(std::time::Duration::from_secs(5), cancelled.wait())
            .await
            .expect("already cancelled");
        assert!(records.is_empty(), "no record is made for a deleted object");
        // The same for an object found missing by the prune.
        records.begin("b");
        records.retain(&HashSet::new());
        let cancelled = records.begin("b");
        tokio::time::timeout(std::time::Duration::from_secs(5), cancelled.wait())
            .await
            .expect("already cancelled");
        assert!(records.is_empty());
        assert_eq!(records.deleted_lock().len(), 2);
    }
}
