//! Where blobs are known to exist, per registry host: learned from HEADs and
//! uploads during a run, so a blob missing in one repository can be mounted from
//! another repository of the same registry instead of uploaded again.
//!
//! In a long-running operator the knowledge is bounded: a location older than
//! the maximum age is not offered (a blob may have been deleted since) and is
//! dropped, and past the maximum number of blobs the least recently recorded
//! are forgotten first; each blob keeps a few repositories only.

use crate::registry::digest::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Blobs remembered (per host and digest) at most, by default.
pub const MAX_BLOBS: usize = 50_000;
/// How long a location is trusted, by default.
pub const MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// Repositories remembered per blob.
const MAX_REPOSITORIES: usize = 8;

/// Repositories holding one blob, each with when it was last seen there.
type Holders = Vec<(String, Instant)>;

/// Known blob locations, shared by every copy of a run.
#[derive(Debug)]
pub struct BlobLocations {
    known: Mutex<HashMap<(String, Digest), Holders>>,
    max_blobs: usize,
    max_age: Duration,
}

impl Default for BlobLocations {
    fn default() -> Self {
        Self::with_limits(MAX_BLOBS, MAX_AGE)
    }
}

impl BlobLocations {
    /// Locations kept for at most `max_blobs` blobs and `max_age`.
    pub fn with_limits(max_blobs: usize, max_age: Duration) -> Self {
        Self {
            known: Mutex::default(),
            max_blobs: max_blobs.max(1),
            max_age,
        }
    }

    /// Records that `digest` exists in `repository` on `host`.
    pub fn record(&self, host: &str, repository: &str, digest: &Digest) {
        self.record_at(host, repository, digest, Instant::now());
    }

    fn record_at(&self, host: &str, repository: &str, digest: &Digest, now: Instant) {
        let mut known = self.known.lock().expect("lock never poisoned");
        let holders = known.entry((host.to_string(), digest.clone())).or_default();
        holders.retain(|(r, _)| r != repository);
        holders.push((repository.to_string(), now));
        if holders.len() > MAX_REPOSITORIES {
            holders.remove(0);
        }
        if known.len() > self.max_blobs {
            let max_age = self.max_age;
            known.retain(|_, holders| {
                holders.retain(|(_, at)| now.saturating_duration_since(*at) < max_age);
                !holders.is_empty()
            });
        }
        while known.len() > self.max_blobs {
            let oldest = known
                .iter()
                .min_by_key(|(_, holders)| holders.iter().map(|(_, at)| *at).max())
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => known.remove(&key),
                None => break,
            };
        }
    }

    /// A repository on `host`, other than `repository` and one `allowed`
    /// accepts, that holds `digest` (seen there within the maximum age).
    pub fn mount_source(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        allowed: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.mount_source_at(host, repository, digest, allowed, Instant::now())
    }

    fn mount_source_at(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        allowed: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Option<String> {
        self.known
            .lock()
            .expect("lock never poisoned")
            .get(&(host.to_string(), digest.clone()))?
            .iter()
            .rev()
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.max_age)
            .map(|(r, _)| r)
            .find(|r| r.as_str() != repository && allowed(r))
            .cloned()
    }

    /// Forgets a location that turned out wrong (a refused mount).
    pub fn forget(&self, host: &str, repository: &str, digest: &Digest) {
        if let Some(holders) = self
            .known
            .lock()
            .expect("lock never poisoned")
            .get_mut(&(host.to_string(), digest.clone()))
        {
            holders.retain(|(r, _)| r != repository);
        }
    }

    /// How many blobs have known locations.
    pub fn len(&self) -> usize {
        self.known.lock().expect("lock never poisoned").len()
    }

    /// Whether no location is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_other_repositories_on_the_same_host() {
        let locations = BlobLocations::default();
        let digest = Digest::sha256_of(b"layer");
        let any = |_: &str| true;
        locations.record("r1", "team/a", &digest);
        assert_eq!(locations.mount_source("r1", "team/a", &digest, any), None);
        assert_eq!(
            locations.mount_source("r1", "team/b", &digest, any),
            Some("team/a".into())
        );
        assert_eq!(
            locations.mount_source("r1", "team/b", &digest, |r| r.starts_with("other/")),
            None,
            "a repository the caller may not use is not offered"
        );
        assert_eq!(locations.mount_source("r2", "team/b", &digest, any), None);
        locations.forget("r1", "team/a", &digest);
        assert_eq!(locations.mount_source("r1", "team/b", &digest, any), None);
    }

    #[test]
    fn knowledge_is_bounded_by_age_and_size() {
        let locations = BlobLocations::with_limits(2, Duration::from_secs(60));
        let start = Instant::now();
        let any = |_: &str| true;
        let [a, b, c] = [b"a", b"b", b"c"].map(|x| Digest::sha256_of(x));
        locations.record_at("r", "team/x", &a, start);
        assert_eq!(
            locations.mount_source_at("r", "team/y", &a, any, start + Duration::from_secs(59)),
            Some("team/x".into())
        );
        assert_eq!(
            locations.mount_source_at("r", "team/y", &a, any, start + Duration::from_secs(60)),
            None,
            "too old to trust"
        );
        locations.record_at("r", "team/x", &b, start + Duration::from_secs(1));
        locations.record_at("r", "team/x", &c, start + Duration::from_secs(2));
        assert_eq!(locations.len(), 2, "at most two blobs");
        assert_eq!(
            locations.mount_source_at("r", "team/y", &a, any, start + Duration::from_secs(3)),
            None,
            "the least recently recorded went first"
        );
        assert!(
            locations
                .mount_source_at("r", "team/y", &c, any, start + Duration::from_secs(3))
                .is_some()
        );
        for i in 0..20 {
            locations.record_at(
                "r",
                &format!("team/{i}"),
                &c,
                start + Duration::from_secs(4),
            );
        }
        let holders = locations.known.lock().unwrap()[&("r".to_string(), c.clone())].len();
        assert_eq!(holders, MAX_REPOSITORIES);
    }
}
