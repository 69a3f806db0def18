//! The clients of a run, one per registry host and credential: those the
//! configuration declares, anonymous HTTPS clients for any other host, and
//! clients whose credentials come from elsewhere (an object's Secret).
//!
//! Credentials are keyed by host **and by where they came from**: two objects
//! that reach one host with different Secrets get different clients, each
//! with its own credential and token cache, while connections and
//! per-registry limits stay those of the host ([`RegistryClient::with_source`]).
//!
//! Objects choose the hosts and the Secrets, so both caches are bounded
//! ([`BoundedCache`]: least recently used out, no thrash past the cap).

use super::auth::{Credential, SharedSource, StaticCredential};
use super::bounded::BoundedCache;
use super::client::{ClientSettings, RegistryClient};
use super::error::RegistryError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a credential came from: what it is (e.g. `Secret team-a/quay-robot`)
/// and which version of it (the Secret's resourceVersion), so a rotated
/// Secret gets a fresh client and an old one is never reused for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CredentialOrigin {
    pub id: String,
    pub version: String,
}

/// Clients with borrowed credentials, by (host, origin id): the version they
/// were built from and the client.
type Borrowed = BoundedCache<(String, String), (String, RegistryClient)>;

/// Anonymous clients (hosts the configuration does not declare) kept at most.
pub const MAX_ANONYMOUS: usize = 256;
/// Clients with borrowed credentials kept at most.
pub const MAX_BORROWED: usize = 1024;
/// How long a cached client must have been idle before a new key may take
/// its place in a full cache.
pub const KEEP_IDLE: Duration = Duration::from_secs(15 * 60);

/// Registry clients by host (`host[:port]`, as in image references).
pub struct Registries {
    configured: HashMap<String, RegistryClient>,
    anonymous: Mutex<BoundedCache<String, RegistryClient>>,
    borrowed: Mutex<Borrowed>,
}

impl Default for Registries {
    fn default() -> Self {
        Self {
            configured: HashMap::new(),
            anonymous: Mutex::new(BoundedCache::new(MAX_ANONYMOUS, KEEP_IDLE)),
            borrowed: Mutex::new(BoundedCache::new(MAX_BORROWED, KEEP_IDLE)),
        }
    }
}

impl Registries {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the client for `host`.
    pub fn insert(&mut self, host: &str, client: RegistryClient) {
        self.configured.insert(host.to_string(), client);
    }

    /// The client for `host`: the configured one, else an anonymous one.
    pub fn client(&self, host: &str) -> Result<RegistryClient, RegistryError> {
        if let Some(client) = self.configured.get(host) {
            return Ok(client.clone());
        }
        let now = Instant::now();
        let mut anonymous = self.anonymous.lock().expect("lock never poisoned");
        if let Some(client) = anonymous.get(&host.to_string(), now) {
            return Ok(client);
        }
        let client = RegistryClient::new(
            host,
            Arc::new(StaticCredential(Credential::Anonymous)),
            ClientSettings::default(),
        )?;
        anonymous.insert(host.to_string(), client.clone(), now);
        Ok(client)
    }

    /// The client for `host` with the credentials of `origin`, made from
    /// `source()` the first time and again when the origin's version changes.
    /// It shares the host's connections, settings and limits, never its
    /// credentials.
    pub fn client_with(
        &self,
        host: &str,
        origin: &CredentialOrigin,
        source: impl FnOnce() -> SharedSource,
    ) -> Result<RegistryClient, RegistryError> {
        let key = (host.to_string(), origin.id.clone());
        if let Some((version, client)) = self
            .borrowed
            .lock()
            .expect("lock never poisoned")
            .get(&key, Instant::now())
            && version == origin.version
        {
            return Ok(client);
        }
        let client = self.client(host)?.with_source(source());
        self.borrowed.lock().expect("lock never poisoned").insert(
            key,
            (origin.version.clone(), client.clone()),
            Instant::now(),
        );
        Ok(client)
    }

    /// Forgets the clients of an origin that no longer exists (a deleted Secret).
    pub fn forget(&self, origin_id: &str) {
        self.borrowed
            .lock()
            .expect("lock never poisoned")
            .retain(|(_, id), _| id != origin_id);
    }

    /// How many anonymous and borrowed clients are cached.
    pub fn cached(&self) -> (usize, usize) {
        (
            self.anonymous.lock().expect("lock never poisoned").len(),
            self.borrowed.lock().expect("lock never poisoned").len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::auth::Secret;

    fn basic(password: &str) -> SharedSource {
        Arc::new(StaticCredential(Credential::Basic {
            username: "robot".into(),
            password: Secret::new(password),
        }))
    }

    fn origin(id: &str, version: &str) -> CredentialOrigin {
        CredentialOrigin {
            id: id.into(),
            version: version.into(),
        }
    }

    #[test]
    fn borrowed_credentials_are_kept_per_origin_and_version() {
        let registries = Registries::new();
        let built = std::cell::Cell::new(0);
        let source = |password: &'static str| {
            let built = &built;
            move || {
                built.set(built.get() + 1);
                basic(password)
            }
        };
        let host = "quay.example";
        let a = origin("Secret team-a/robot", "1");
        registries.client_with(host, &a, source("a")).unwrap();
        registries.client_with(host, &a, source("a")).unwrap();
        assert_eq!(built.get(), 1, "one client per origin");
        registries
            .client_with(host, &origin("Secret team-b/robot", "1"), source("b"))
            .unwrap();
        assert_eq!(built.get(), 2, "another Secret, another client");
        registries
            .client_with(host, &origin("Secret team-a/robot", "2"), source("a2"))
            .unwrap();
        assert_eq!(built.get(), 3, "a rotated Secret, a fresh client");
        registries.forget("Secret team-a/robot");
        registries.client_with(host, &a, source("a")).unwrap();
        assert_eq!(built.get(), 4);
    }

    #[test]
    fn hosts_and_secrets_chosen_by_objects_stay_within_the_caps() {
        let registries = Registries::new();
        let hot = origin("Secret team-a/robot", "1");
        let built = std::cell::Cell::new(0);
        let source = || {
            built.set(built.get() + 1);
            basic("p")
        };
        registries.client_with("hot.example", &hot, source).unwrap();
        for i in 0..(MAX_ANONYMOUS + 50) {
            registries.client(&format!("h{i}.example")).unwrap();
        }
        for i in 0..(MAX_BORROWED + 50) {
            registries
                .client_with(
                    "quay.example",
                    &origin(&format!("Secret s/{i}"), "1"),
                    source,
                )
                .unwrap();
        }
        let (anonymous, borrowed) = registries.cached();
        assert!(anonymous <= MAX_ANONYMOUS, "{anonymous}");
        assert!(borrowed <= MAX_BORROWED, "{borrowed}");
        let before = built.get();
        registries.client_with("hot.example", &hot, source).unwrap();
        assert_eq!(built.get(), before, "the busy client survived the flood");
    }
}
