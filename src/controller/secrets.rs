//! The object's Secrets, read through the API when a reconcile needs them:
//! a `kubernetes.io/dockerconfigjson` Secret for a registry host
//! (`credentials.secretRef`) and a cosign public key
//! (`verify.signature.publicKey.secretRef`), and a Sigstore trusted root
//! (`verify.signature.keyless.trustedRoot`, a Secret or a ConfigMap). A registry client made from a
//! Secret is kept per Secret and resourceVersion ([`Registries::client_with`]),
//! so a rotated Secret gets a fresh client and tokens on its next use.
//! Nothing read here is ever logged or written to a status.
//!
//! [`SecretReader`] keeps each Secret it read for a while, so 10,000 objects
//! that name one Secret read it once: the controllers' Secret watches drop an
//! entry as soon as its Secret changes or goes ([`SecretReader::changed`]),
//! and an entry older than [`KEPT_FOR`] is read again in any case.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use crate::api::{TrustedRootReference, reasons};
use crate::registry::auth::StaticCredential;
use crate::registry::auth::dockerconfig::{self, DockerConfigError};
use crate::registry::{CredentialOrigin, Engine, RegistryClient, RegistryError};
use crate::verify::cosign::{KeyError, PublicKey};
use crate::verify::keyless::{RootError, TrustedRoot};

const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// A Secret that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The Secret does not exist.
    #[error("Secret {namespace}/{name} does not exist")]
    NotFound { namespace: String, name: String },
    /// The operator may not read it.
    #[error(
        "the operator may not read Secret {namespace}/{name} (forbidden): its RBAC must allow \
         get on secrets in this namespace"
    )]
    Forbidden { namespace: String, name: String },
    /// Reading it failed.
    #[error("reading Secret {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// It is not a dockerconfigjson Secret.
    #[error("Secret {namespace}/{name} has type {found:?}, not {DOCKER_CONFIG_TYPE}")]
    WrongType {
        namespace: String,
        name: String,
        found: String,
    },
    /// A key is missing.
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    /// The dockerconfigjson document is unusable for the host.
    #[error("Secret {namespace}/{name}: {source}")]
    DockerConfig {
        namespace: String,
        name: String,
        #[source]
        source: DockerConfigError,
    },
    /// The public key does not parse.
    #[error("Secret {namespace}/{name} key {key:?}: {source}")]
    PublicKey {
        namespace: String,
        name: String,
        key: String,
        #[source]
        source: KeyError,
    },
    /// The ConfigMap does not exist.
    #[error("ConfigMap {namespace}/{name} does not exist")]
    ConfigMapNotFound { namespace: String, name: String },
    /// The operator may not read the ConfigMap.
    #[error(
        "the operator may not read ConfigMap {namespace}/{name} (forbidden): its RBAC must allow \
         get on configmaps in this namespace"
    )]
    ConfigMapForbidden { namespace: String, name: String },
    /// Reading the ConfigMap failed.
    #[error("reading ConfigMap {namespace}/{name}: {source}")]
    ConfigMapRead {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The ConfigMap lacks the key.
    #[error("ConfigMap {namespace}/{name} has no key {key:?}")]
    ConfigMapMissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    /// The trusted root does not parse.
    #[error("{kind} {namespace}/{name} key {key:?}: {source}")]
    TrustedRoot {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
        #[source]
        source: RootError,
    },
    /// No client could be made for the host.
    #[error("a client for {host} with Secret {namespace}/{name}: {source}")]
    Client {
        namespace: String,
        name: String,
        host: String,
        #[source]
        source: Box<RegistryError>,
    },
}

impl SecretError {
    /// The PascalCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Forbidden { .. } | Self::ConfigMapForbidden { .. } => reasons::ACCESS_DENIED,
            Self::Read { .. } | Self::ConfigMapRead { .. } => reasons::REGISTRY_UNAVAILABLE,
            Self::Client { .. } => reasons::INVALID_SPEC,
            _ => reasons::CREDENTIALS_NOT_FOUND,
        }
    }

    /// Whether reading again later may help without a change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Read { source, .. } | Self::ConfigMapRead { source, .. } => !matches!(
                source,
                kube::Error::Api(status) if (400..500).contains(&status.code) && status.code != 429
            ),
            _ => false,
        }
    }
}

/// How long a Secret read is used without reading it again, when no watch
/// event said it changed (a watch can be down for a while).
pub const KEPT_FOR: Duration = Duration::from_secs(300);

/// A Secret's namespace and name.
type SecretKey = (String, String);

/// Reads Secrets through the API and keeps them for a while (see the module
/// doc). One per process, in the controllers' context.
pub struct SecretReader {
    client: kube::Client,
    kept: Mutex<HashMap<SecretKey, (Arc<Secret>, Instant)>>,
    /// Bumped by every [`changed`](Self::changed): a read that started
    /// before a change must not keep what it read.
    changes: AtomicU64,
}

impl SecretReader {
    /// A reader with nothing kept.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            kept: Mutex::default(),
            changes: AtomicU64::new(0),
        }
    }

    /// The Secret `name` of `namespace`: the one kept, or read now.
    async fn get(&self, namespace: &str, name: &str) -> Result<Arc<Secret>, SecretError> {
        let key = (namespace.to_string(), name.to_string());
        if let Some((secret, read)) = self.kept.lock().expect("lock never poisoned").get(&key)
            && read.elapsed() < KEPT_FOR
        {
            return Ok(secret.clone());
        }
        let changes = self.changes.load(Ordering::SeqCst);
        let secret = Arc::new(get(&self.client, namespace, name).await?);
        let mut kept = self.kept.lock().expect("lock never poisoned");
        if self.changes.load(Ordering::SeqCst) == changes {
            kept.retain(|_, (_, read)| read.elapsed() < KEPT_FOR);
            kept.insert(key, (secret.clone(), Instant::now()));
        }
        Ok(secret)
    }

    /// The Secret `name` of `namespace` changed or was deleted: the next use
    /// reads it again.
    pub fn changed(&self, namespace: &str, name: &str) {
        let mut kept = self.kept.lock().expect("lock never poisoned");
        self.changes.fetch_add(1, Ordering::SeqCst);
        kept.remove(&(namespace.to_string(), name.to_string()));
    }
}

async fn get(client: &kube::Client, namespace: &str, name: &str) -> Result<Secret, SecretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let names = || (namespace.to_string(), name.to_string());
    match api.get_opt(name).await {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => {
            let (namespace, name) = names();
            Err(SecretError::NotFound { namespace, name })
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            let (namespace, name) = names();
            Err(SecretError::Forbidden { namespace, name })
        }
        Err(source) => {
            let (namespace, name) = names();
            Err(SecretError::Read {
                namespace,
                name,
                source,
            })
        }
    }
}

fn data<'a>(
    secret: &'a Secret,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<&'a [u8], SecretError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
        .ok_or_else(|| SecretError::MissingKey {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        })
}

/// The client for `host` with the dockerconfigjson Secret `name` of `namespace`.
async fn registry_client(
    secrets: &SecretReader,
    engine: &Engine,
    namespace: &str,
    name: &str,
    host: &str,
) -> Result<RegistryClient, SecretError> {
    let secret = secrets.get(namespace, name).await?;
    let found = secret.type_.clone().unwrap_or_default();
    if found != DOCKER_CONFIG_TYPE {
        return Err(SecretError::WrongType {
            namespace: namespace.into(),
            name: name.into(),
            found,
        });
    }
    let document = data(&secret, namespace, name, DOCKER_CONFIG_KEY)?;
    let credential = dockerconfig::credential_for(document, host).map_err(|source| {
        SecretError::DockerConfig {
            namespace: namespace.into(),
            name: name.into(),
            source,
        }
    })?;
    let origin = CredentialOrigin {
        id: format!("Secret {namespace}/{name}"),
        version: secret.metadata.resource_version.clone().unwrap_or_default(),
    };
    engine
        .registries()
        .client_with(host, &origin, || Arc::new(StaticCredential(credential)))
        .map_err(|source| SecretError::Client {
            namespace: namespace.into(),
            name: name.into(),
            host: host.into(),
            source: Box::new(source),
        })
}

/// A client per `(host, Secret)` an object's plan names: `(host, client)`,
/// in the plan's order; the first Secret that fails stops it.
pub async fn registry_clients(
    secrets: &SecretReader,
    engine: &Engine,
    namespace: &str,
    named: &[crate::promotion::SecretCredentials],
) -> Result<Vec<(String, RegistryClient)>, SecretError> {
    let mut clients = Vec::with_capacity(named.len());
    for credentials in named {
        let client = registry_client(
            secrets,
            engine,
            namespace,
            &credentials.secret,
            &credentials.host,
        )
        .await?;
        clients.push((credentials.host.clone(), client));
    }
    Ok(clients)
}

/// The Sigstore `trusted_root.json` that `reference` names in `namespace`.
pub async fn trusted_root(
    secrets: &SecretReader,
    namespace: &str,
    reference: &TrustedRootReference,
) -> Result<Arc<TrustedRoot>, SecretError> {
    let (kind, bytes, name, key) = match (&reference.secret_ref, &reference.config_map_ref) {
        (Some(r), _) => {
            let secret = secrets.get(namespace, &r.name).await?;
            let bytes = data(&secret, namespace, &r.name, &r.key)?.to_vec();
            ("Secret", bytes, &r.name, &r.key)
        }
        (None, Some(r)) => (
            "ConfigMap",
            config_map_data(&secrets.client, namespace, &r.name, &r.key).await?,
            &r.name,
            &r.key,
        ),
        (None, None) => {
            return Err(SecretError::TrustedRoot {
                kind: "trustedRoot",
                namespace: namespace.into(),
                name: String::new(),
                key: String::new(),
                source: RootError("set secretRef or configMapRef".into()),
            });
        }
    };
    TrustedRoot::from_json(&bytes)
        .map(Arc::new)
        .map_err(|source| SecretError::TrustedRoot {
            kind,
            namespace: namespace.into(),
            name: name.clone(),
            key: key.clone(),
            source,
        })
}

/// The value of `key` of the ConfigMap `name` (`data`, else `binaryData`).
async fn config_map_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Vec<u8>, SecretError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let (ns, n) = (namespace.to_string(), name.to_string());
    let map = match api.get_opt(name).await {
        Ok(Some(map)) => map,
        Ok(None) => {
            return Err(SecretError::ConfigMapNotFound {
                namespace: ns,
                name: n,
            });
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Err(SecretError::ConfigMapForbidden {
                namespace: ns,
                name: n,
            });
        }
        Err(source) => {
            return Err(SecretError::ConfigMapRead {
                namespace: ns,
                name: n,
                source,
            });
        }
    };
    map.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.as_bytes().to_vec())
        .or_else(|| {
            map.binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.clone())
        })
        .ok_or(SecretError::ConfigMapMissingKey {
            namespace: ns,
            name: n,
            key: key.into(),
        })
}

/// The cosign public key in `key` of the Secret `name` of `namespace`.
pub async fn public_key(
    secrets: &SecretReader,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<PublicKey, SecretError> {
    let secret = secrets.get(namespace, name).await?;
    let pem = data(&secret, namespace, name, key)?;
    PublicKey::from_pem(pem).map_err(|source| SecretError::PublicKey {
        namespace: namespace.into(),
        name: name.into(),
        key: key.into(),
        source,
    })
}
