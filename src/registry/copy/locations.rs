//! Where blobs are known to exist, per registry host: learned from HEADs and
//! uploads during a run, so a blob missing in one repository can be mounted from
//! another repository of the same registry instead of uploaded again.

use crate::registry::digest::Digest;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Known blob locations, shared by every copy of a run.
#[derive(Debug, Default)]
pub struct BlobLocations {
    known: Mutex<HashMap<(String, Digest), BTreeSet<String>>>,
}

impl BlobLocations {
    /// Records that `digest` exists in `repository` on `host`.
    pub fn record(&self, host: &str, repository: &str, digest: &Digest) {
        self.known
            .lock()
            .expect("lock never poisoned")
            .entry((host.to_string(), digest.clone()))
            .or_default()
            .insert(repository.to_string());
    }

    /// A repository on `host`, other than `repository` and one `allowed`
    /// accepts, that holds `digest`.
    pub fn mount_source(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        allowed: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.known
            .lock()
            .expect("lock never poisoned")
            .get(&(host.to_string(), digest.clone()))?
            .iter()
            .find(|r| r.as_str() != repository && allowed(r))
            .cloned()
    }

    /// Forgets a location that turned out wrong (a refused mount).
    pub fn forget(&self, host: &str, repository: &str, digest: &Digest) {
        if let Some(repos) = self
            .known
            .lock()
            .expect("lock never poisoned")
            .get_mut(&(host.to_string(), digest.clone()))
        {
            repos.remove(repository);
        }
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
}
