//! Publishes the operator's Events (`events.k8s.io/v1`, decided in
//! [`super::events`]) and remembers, per object, what it published in the
//! last [`SERIES_WINDOW`]: the same event again (same type, reason, action and
//! note) within the window raises the count of the Event already there (its
//! `series`, as client-go's recorder does) instead of adding another.
//!
//! What it remembers is small and belongs to its object: per object, for
//! each event a fingerprint, the Event's name and its count. It is forgotten
//! when the object is deleted ([`EventRecorder::forget`], from the same
//! delete events that free the object's record), when the object is missing
//! from the caches ([`EventRecorder::retain`]), and once the window has
//! passed ([`EventRecorder::expire`], every minute). kube's `Recorder`, used
//! before, kept each whole Event for six minutes under a key holding the
//! object's `resourceVersion`, which every status write changes: its memory
//! grew with the churn of objects, and a repeat was never found.
//!
//! The memory is in [`Sent`], pure and table-tested; [`EventRecorder`] adds
//! the API calls.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::events::Notice;

/// How long a published event is remembered, so that the same event again
/// raises its count instead of adding another Event (kube's and client-go's
/// recorders use six minutes too).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Events remembered per object at most; the oldest is forgotten first (an
/// object raises a handful of distinct events within a window).
pub const PER_OBJECT: usize = 16;

/// The longest note an Event gets (the API allows 1 kB).
const NOTE_MAX: usize = 1000;

/// One Event published about an object.
#[derive(Clone, Debug, PartialEq)]
struct Published {
    fingerprint: u64,
    name: String,
    count: i32,
    last: Instant,
}

/// What to do with an event about an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Nothing alike was published within the window: a new Event.
    Create,
    /// The same event is the Event `name`: its series count becomes `count`.
    Repeat { name: String, count: i32 },
}

/// The events published per object UID within the window (pure: the caller
/// gives the time).
#[derive(Debug, Default)]
pub struct Sent {
    objects: HashMap<String, Vec<Published>>,
}

impl Sent {
    /// What to do with the event `fingerprint` about `uid` at `now`.
    pub fn step(&mut self, uid: &str, fingerprint: u64, now: Instant) -> Step {
        let Some(published) = self.objects.get_mut(uid) else {
            return Step::Create;
        };
        published.retain(|p| now.saturating_duration_since(p.last) < SERIES_WINDOW);
        match published.iter().find(|p| p.fingerprint == fingerprint) {
            Some(p) => Step::Repeat {
                name: p.name.clone(),
                count: p.count.saturating_add(1),
            },
            None => Step::Create,
        }
    }

    /// Notes that the Event `name` about `uid` now says `fingerprint` for
    /// the `count`th time (1 when it was created).
    pub fn published(&mut self, uid: &str, fingerprint: u64, name: &str, count: i32, now: Instant) {
        let published = self.objects.entry(uid.to_string()).or_default();
        published.retain(|p| p.fingerprint != fingerprint);
        if published.len() >= PER_OBJECT {
            published.remove(0);
        }
        published.push(Published {
            fingerprint,
            name: name.to_string(),
            count,
            last: now,
        });
    }

    /// Forgets every event about `uid`.
    pub fn forget(&mut self, uid: &str) {
        self.objects.remove(uid);
    }

    /// Forgets the events about objects not in `live`.
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.objects.retain(|uid, _| live.contains(uid));
    }

    /// Forgets the events published before the window.
    pub fn expire(&mut self, now: Instant) {
        self.objects.retain(|_, published| {
            published.retain(|p| now.saturating_duration_since(p.last) < SERIES_WINDOW);
            !published.is_empty()
        });
        self.objects.shrink_to_fit();
    }

    /// Objects with events remembered.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }
}

/// What tells one event from another: its type, reason, action and note.
pub fn fingerprint(notice: &Notice) -> u64 {
    let mut hasher = DefaultHasher::new();
    (notice.warning, &notice.reason, &notice.action, &notice.note).hash(&mut hasher);
    hasher.finish()
}

/// The process's one event publisher.
pub struct EventRecorder {
    client: kube::Client,
    /// `reportingController`.
    controller: String,
    /// `reportingInstance`: the pod's name, or the controller's.
    instance: String,
    sent: Mutex<Sent>,
}

impl EventRecorder {
    /// Publishes as `controller` from `instance` (the pod's name, if known).
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            sent: Mutex::default(),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.sent.lock().expect("lock never poisoned")
    }

    /// Publishes `notices` about `object`; a failure is logged, never fatal.
    pub async fn publish<K>(&self, object: &K, notices: Vec<Notice>)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        if notices.is_empty() {
            return;
        }
        let reference = object.object_ref(&());
        let uid = reference.uid.clone().unwrap_or_default();
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        for notice in notices {
            let print = fingerprint(&notice);
            let now = Instant::now();
            let step = self.sent().step(&uid, print, now);
            let result = match step {
                Step::Repeat { name, count } => match repeat(&api, &name, count).await {
                    Ok(()) => Ok((name, count)),
                    // Gone (the API keeps Events an hour): a new one.
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.create(&api, &reference, &notice).await
                    }
                    Err(e) => Err(e),
                },
                Step::Create => self.create(&api, &reference, &notice).await,
            };
            match result {
                Ok((name, count)) if !uid.is_empty() => {
                    self.sent().published(&uid, print, &name, count, now)
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(reason = %notice.reason, %error, "publishing an event failed")
                }
            }
        }
    }

    /// Creates a new Event; its name and count (1).
    async fn create(
        &self,
        api: &Api<Event>,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        notice: &Notice,
    ) -> Result<(String, i32), kube::Error> {
        let now = Timestamp::now();
        let name = format!(
            "{}.{:x}",
            reference.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: reference.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(notice.action.clone()),
            reason: Some(notice.reason.clone()),
            note: Some(truncate(&notice.note, NOTE_MAX)),
            type_: Some(if notice.warning { "Warning" } else { "Normal" }.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        Ok((name, 1))
    }

    /// Forgets the events about a deleted object.
    pub fn forget(&self, uid: &str) {
        self.sent().forget(uid);
    }

    /// Forgets the events about objects not in `live` (both kinds).
    pub fn retain(&self, live: &HashSet<String>) {
        self.sent().retain(live);
    }

    /// Forgets the events published before the window.
    pub fn expire(&self) {
        self.sent().expire(Instant::now());
    }

    /// Objects with events remembered.
    pub fn remembered(&self) -> usize {
        self.sent().objects()
    }
}

/// Raises the series count of the Event `name` to `count`.
async fn repeat(api: &Api<Event>, name: &str, count: i32) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "series": {"count": count, "lastObservedTime": MicroTime(Timestamp::now())}
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(reason: &str, note: &str) -> Notice {
        Notice {
            warning: true,
            reason: reason.into(),
            action: "Reconcile".into(),
            note: note.into(),
        }
    }

    #[test]
    fn the_same_event_within_the_window_raises_the_count_of_the_first() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let a = fingerprint(&notice("TagsDrifted", "latest moved"));
        let mut sent = Sent::default();
        assert_eq!(sent.step("u1", a, t0), Step::Create);
        sent.published("u1", a, "p.1", 1, t0);
        let cases = [
            // (uid, fingerprint, when, expected)
            (
                "u1",
                a,
                t0 + minute,
                Step::Repeat {
                    name: "p.1".into(),
                    count: 2,
                },
            ),
            ("u2", a, t0 + minute, Step::Create),
            (
                "u1",
                fingerprint(&notice("TagsDrifted", "1.0 moved")),
                t0 + minute,
                Step::Create,
            ),
            (
                "u1",
                fingerprint(&notice("SourceNotFound", "latest moved")),
                t0 + minute,
                Step::Create,
            ),
            ("u1", a, t0 + SERIES_WINDOW, Step::Create),
        ];
        for (uid, print, when, expected) in cases {
            assert_eq!(
                sent.step(uid, print, when),
                expected,
                "{uid} at {:?}",
                when - t0
            );
        }
    }

    #[test]
    fn a_repeat_counts_on_from_the_last_and_keeps_the_event_alive() {
        let t0 = Instant::now();
        let a = fingerprint(&notice("TagsDrifted", "x"));
        let mut sent = Sent::default();
        sent.published("u", a, "p.1", 1, t0);
        for (i, count) in (2..=5).enumerate() {
            let now = t0 + SERIES_WINDOW / 2 * (i as u32 + 1);
            assert_eq!(
                sent.step("u", a, now),
                Step::Repeat {
                    name: "p.1".into(),
                    count
                }
            );
            sent.published("u", a, "p.1", count, now);
        }
    }

    #[test]
    fn nothing_outlives_its_object_or_the_window() {
        let t0 = Instant::now();
        let mut sent = Sent::default();
        for i in 0..100 {
            sent.published(&format!("u{i}"), 1, "e", 1, t0);
        }
        sent.forget("u0");
        assert_eq!(sent.objects(), 99);
        let live: HashSet<String> = (0..10).map(|i| format!("u{i}")).collect();
        sent.retain(&live);
        assert_eq!(sent.objects(), 9);
        sent.published("u5", 2, "f", 1, t0 + SERIES_WINDOW);
        sent.expire(t0 + SERIES_WINDOW);
        assert_eq!(sent.objects(), 1, "only u5's newer event is left");
        assert_eq!(
            sent.step("u5", 2, t0 + SERIES_WINDOW),
            Step::Repeat {
                name: "f".into(),
                count: 2
            }
        );
        assert_eq!(sent.step("u5", 1, t0 + SERIES_WINDOW), Step::Create);
    }

    #[test]
    fn an_object_keeps_its_latest_events_only() {
        let t0 = Instant::now();
        let mut sent = Sent::default();
        for print in 0..(PER_OBJECT as u64 + 4) {
            sent.published("u", print, &format!("e{print}"), 1, t0);
        }
        assert_eq!(sent.step("u", 0, t0), Step::Create, "the oldest went first");
        let last = PER_OBJECT as u64 + 3;
        assert_eq!(
            sent.step("u", last, t0),
            Step::Repeat {
                name: format!("e{last}"),
                count: 2
            }
        );
        assert_eq!(sent.objects.get("u").map(Vec::len), Some(PER_OBJECT));
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a", "é is two bytes");
    }
}
