//! The clients of a run, one per registry host: those the configuration
//! declares, and anonymous HTTPS clients for any other host.

use super::auth::{Credential, StaticCredential};
use super::client::{ClientSettings, RegistryClient};
use super::error::RegistryError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Registry clients by host (`host[:port]`, as in image references).
#[derive(Default)]
pub struct Registries {
    configured: HashMap<String, RegistryClient>,
    anonymous: Mutex<HashMap<String, RegistryClient>>,
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
        anonymous.insert(host.to_string(), client.clone());
        Ok(client)
    }
}
