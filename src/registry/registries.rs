//! The clients of a run, one per registry host and credential: those the
//! configuration declares, anonymous HTTPS clients for any other host, and
//! clients whose credentials come from elsewhere (an object's Secret).
//!
//! Credentials are keyed by host **and by where they came from**: two objects
//! that reach one host with different Secrets get different clients, each
//! with its own credential and token cache, while connections and
//! per-registry limits stay those of the host ([`RegistryClient::with_source`]).

use super::auth::{Credential, SharedSource, StaticCredential};
use super::client::{ClientSettings, RegistryClient};
use super::error::RegistryError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
type Borrowed = HashMap<(String, String), (String, RegistryClient)>;

/// Anonymous clients (hosts the configuration does not declare) kept at most;
/// past it the map starts over (a client is cheap to make again, and objects
/// can name any host, so the map must not grow without end).
pub const MAX_ANONYMOUS: usize = 256;
/// Clients with borrowed credentials kept at most, likewise.
pub const MAX_BORROWED: usize = 1024;

/// Registry clients by host (`host[:port]`, as in image references).
#[derive(Default)]
pub struct Registries {
    configured: HashMap<String, RegistryClient>,
    anonymous: Mutex<HashMap<String, RegistryClient>>,
    borrowed: Mutex<Borrowed>,
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
        let mut anonymous = self.anonymous.lock().expect("lock never poisoned");
        if let Some(client) = anonymous.get(host) {
            return Ok(client.clone());
        }
        let client = RegistryClient::new(
            host,
            Arc::new(StaticCredential(Credential::Anonymous)),
            ClientSettings::default(),
        )?;
        if anonymous.len() >= MAX_ANONYMOUS {
            anonymous.clear();
        }
        anonymous.insert(host.to_string(), client.clone());
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
        if let Some((version, client)) =
            self.borrowed.lock().expect("lock never poisoned").get(&key)
            && *version == origin.version
        {
            return Ok(client.clone());
        }
        let client = self.client(host)?.with_source(source());
        let mut borrowed = self.borrowed.lock().expect("lock never poisoned");
        if borrowed.len() >= MAX_BORROWED && !borrowed.contains_key(&key) {
            borrowed.clear();
        }
        borrowed.insert(key, (origin.version.clone(), client.clone()));
        Ok(client)
    }

    /// Forgets the clients of an origin that no longer exists (a deleted Secret).
    pub fn forget(&self, origin_id: &str) {
        self.borrowed
            .lock()
            .expect("lock never poisoned")
            .retain(|(_, id), _| id != origin_id);
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
}
