//! The operator's configuration file (YAML): how to reach and authenticate to
//! each registry, which CA bundles to trust, and per-registry limits. The same
//! file serves the operator and the one-shot CLI; `docs/config.md` documents it.
//!
//! Secrets are never inline: a password comes from a file or an environment
//! variable, or a dockerconfigjson file supplies it.

use crate::registry::auth::dockerconfig;
use crate::registry::auth::{Credential, Secret, SharedSource, StaticCredential};
use crate::registry::client::{ClientSettings, RegistryClient, UploadMode};
use crate::registry::{Registries, RegistryError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ECR asks for parts of at least 5 MiB; 8 MiB keeps memory small and requests few.
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;
const MIN_CHUNK_BYTES: u64 = 5 << 20;
const MIN_REQUESTS_PER_SECOND: f64 = 0.01;
const MAX_REQUESTS_PER_SECOND: f64 = 1e6;
const MAX_STALL_TIMEOUT_SECONDS: u64 = 3600;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Registries that need anything but anonymous HTTPS with public CAs.
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
    /// The operator-wide verification floor every promotion must meet; the
    /// default adds nothing to what each object asks.
    #[serde(default)]
    pub verify: crate::verify::VerificationFloor,
    /// Which namespaces may promote from and write to which repositories
    /// with the operator's credentials; absent: single-tenant (every
    /// namespace may do everything).
    #[serde(default)]
    pub tenancy: Option<Vec<crate::tenancy::TenancyRule>>,
}

/// How to reach one registry.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryConfig {
    /// `host[:port]` exactly as image references write it.
    pub host: String,
    /// What the registry is; decides upload mode and, later, token sources.
    #[serde(default)]
    pub kind: RegistryKind,
    #[serde(default)]
    pub auth: AuthConfig,
    /// PEM bundle of extra CAs to trust for this registry.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Plain HTTP (never for a registry reachable by anyone else).
    #[serde(default)]
    pub plain_http: bool,
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// Requests started per second (unset: unlimited).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Upload blobs as PATCH parts of this many bytes (≥ 5 MiB). Default: whole
    /// blobs for generic registries, 8 MiB parts for ECR and ECR Public.
    #[serde(default)]
    pub chunk_bytes: Option<u64>,
    /// A request whose body sends or receives nothing for this many seconds
    /// fails (transient); there is no limit on a request's total time.
    #[serde(default)]
    pub stall_timeout_seconds: Option<u64>,
}

fn default_concurrency() -> usize {
    16
}

/// The kinds of registry the engine knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistryKind {
    #[default]
    Generic,
    Ecr,
    EcrPublic,
}

/// Where a registry's credentials come from: at most one of the fields; none
/// means anonymous.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// A user name with a password read from a file or an environment variable.
    #[serde(default)]
    pub basic: Option<BasicAuth>,
    /// The entry for this host in a dockerconfigjson file.
    #[serde(default)]
    pub docker_config: Option<DockerConfigAuth>,
    /// `ecr:GetAuthorizationToken` with the operator's AWS identity (renewed
    /// before its 12 hours run out).
    #[serde(default)]
    pub ecr: Option<EcrAuth>,
    /// `ecr-public:GetAuthorizationToken` with the operator's AWS identity.
    #[serde(default)]
    pub ecr_public: Option<EcrPublicAuth>,
}

/// Where to ask ECR for tokens. Registry id and region come from an
/// `<account>.dkr.ecr.<region>.amazonaws.com` host; other hosts must name them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcrAuth {
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// The ECR API endpoint (a VPC endpoint or a stand-in); default: AWS's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// Where to ask ECR Public for tokens (its API lives in us-east-1).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcrPublicAuth {
    /// The ECR Public API endpoint; default: AWS's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// Basic credentials; the password never appears in the file itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
}

/// A dockerconfigjson file (e.g. a mounted `kubernetes.io/dockerconfigjson` Secret).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerConfigAuth {
    pub path: PathBuf,
}

/// Why the configuration cannot be used. Messages name the file, the registry
/// and the field, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("registry {host}: {message}")]
    Invalid { host: String, message: String },
    #[error("registry {0}")]
    Client(#[source] Box<RegistryError>),
    #[error("{0}")]
    Floor(#[source] crate::verify::FloorError),
    #[error("{0}")]
    Tenancy(#[from] crate::tenancy::RuleError),
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        config.verify.signature.load().map_err(ConfigError::Floor)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.verify
            .signature
            .verifier()
            .map_err(ConfigError::Floor)?;
        if let Some(rules) = &self.tenancy {
            crate::tenancy::validate(rules)?;
        }
        let mut seen = std::collections::HashSet::new();
        for registry in &self.registries {
            let invalid = |message: &str| ConfigError::Invalid {
                host: registry.host.clone(),
                message: message.to_string(),
            };
            if !seen.insert(registry.host.as_str()) {
                return Err(invalid("declared twice"));
            }
            if registry.host.contains('/') || registry.host.is_empty() {
                return Err(invalid("host must be host[:port], without scheme or path"));
            }
            if registry.max_concurrent_requests == 0 {
                return Err(invalid("maxConcurrentRequests must be at least 1"));
            }
            if registry
                .requests_per_second
                .is_some_and(|r| !(MIN_REQUESTS_PER_SECOND..=MAX_REQUESTS_PER_SECOND).contains(&r))
            {
                return Err(invalid(
                    "requestsPerSecond must be between 0.01 and 1000000",
                ));
            }
            if registry
                .stall_timeout_seconds
                .is_some_and(|s| !(1..=MAX_STALL_TIMEOUT_SECONDS).contains(&s))
            {
                return Err(invalid("stallTimeoutSeconds must be between 1 and 3600"));
            }
            if registry.chunk_bytes.is_some_and(|c| c < MIN_CHUNK_BYTES) {
                return Err(invalid(
                    "chunkBytes must be at least 5242880 (5 MiB), as ECR requires",
                ));
            }
            let auth = &registry.auth;
            let sources = [
                auth.basic.is_some(),
                auth.docker_config.is_some(),
                auth.ecr.is_some(),
                auth.ecr_public.is_some(),
            ];
            if sources.iter().filter(|set| **set).count() > 1 {
                return Err(invalid(
                    "auth takes one of basic, dockerConfig, ecr or ecrPublic, not several",
                ));
            }
            if let Some(message) = registry.identity_not_allowed() {
                return Err(invalid(&message));
            }
            if let Some(ecr) = &auth.ecr {
                crate::aws::resolve_ecr_registry(
                    &registry.host,
                    ecr.region.as_deref(),
                    ecr.registry_id.as_deref(),
                )
                .map_err(|e| invalid(&format!("auth.ecr: {e}")))?;
            }
            if let Some(basic) = &registry.auth.basic
                && basic.password_file.is_some() == basic.password_env.is_some()
            {
                return Err(invalid(
                    "basic auth needs exactly one of passwordFile or passwordEnv",
                ));
            }
        }
        Ok(())
    }

    /// Builds one client per declared registry. The AWS configuration (default
    /// credential chain) is loaded only when a registry authenticates with ECR.
    pub async fn registries(&self) -> Result<Registries, ConfigError> {
        let needs_aws = self
            .registries
            .iter()
            .any(|r| r.auth.ecr.is_some() || r.auth.ecr_public.is_some());
        let sdk = if needs_aws {
            Some(
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await,
            )
        } else {
            None
        };
        self.registries_with(sdk.as_ref())
    }

    /// Builds one client per declared registry with the AWS configuration
    /// `sdk` (the process's one); reads CA, password and dockerconfig files.
    pub fn registries_with(
        &self,
        sdk: Option<&aws_config::SdkConfig>,
    ) -> Result<Registries, ConfigError> {
        let mut registries = Registries::new();
        for registry in &self.registries {
            let client = registry.client(sdk)?;
            registries.insert(&registry.host, client);
        }
        Ok(registries)
    }
}

impl Config {
    /// The tenancy rules (single-tenant without a `tenancy` section).
    pub fn tenancy(&self) -> crate::tenancy::Tenancy<'_> {
        crate::tenancy::Tenancy::new(self.tenancy.as_deref())
    }

    /// The entry for `host`, if the file declares it.
    pub fn registry(&self, host: &str) -> Option<&RegistryConfig> {
        self.registries.iter().find(|r| r.host == host)
    }
}

impl RegistryConfig {
    /// Why this entry may not present the operator's AWS identity, if it
    /// may not: an ECR token goes only to ECR hosts or hosts declared
    /// `kind: ecr`, an ECR Public token only to `public.ecr.aws` or hosts
    /// declared `kind: ecrPublic`.
    fn identity_not_allowed(&self) -> Option<String> {
        if self.auth.ecr.is_some()
            && self.kind != RegistryKind::Ecr
            && crate::aws::parse_ecr_host(&self.host).is_none()
        {
            return Some(format!(
                "auth.ecr presents the operator's AWS identity, which goes only to Amazon ECR \
                 hosts (<account>.dkr.ecr.<region>.amazonaws.com); declare kind: ecr on this \
                 entry if {} is an ECR registry under another name",
                self.host
            ));
        }
        if self.auth.ecr_public.is_some()
            && self.kind != RegistryKind::EcrPublic
            && self.host != crate::aws::ECR_PUBLIC_HOST
        {
            return Some(format!(
                "auth.ecrPublic presents the operator's AWS identity, which goes only to \
                 {}; declare kind: ecrPublic on this entry if {} is ECR Public under another name",
                crate::aws::ECR_PUBLIC_HOST,
                self.host
            ));
        }
        None
    }

    fn client(&self, sdk: Option<&aws_config::SdkConfig>) -> Result<RegistryClient, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            host: self.host.clone(),
            message,
        };
        let ca_pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| invalid(format!("reading caFile {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let upload = match (self.chunk_bytes, self.kind) {
            (Some(part_size), _) => UploadMode::Chunked { part_size },
            (None, RegistryKind::Generic) => UploadMode::Monolithic,
            (None, RegistryKind::Ecr | RegistryKind::EcrPublic) => UploadMode::Chunked {
                part_size: DEFAULT_CHUNK_BYTES,
            },
        };
        let settings = ClientSettings {
            plain_http: self.plain_http,
            ca_pem,
            max_concurrent_requests: self.max_concurrent_requests,
            requests_per_second: self.requests_per_second,
            upload,
            ..ClientSettings::default()
        };
        let settings = match self.stall_timeout_seconds {
            Some(seconds) => settings.with_stall_timeout(seconds),
            None => settings,
        };
        let source: SharedSource = match (&self.auth.ecr, &self.auth.ecr_public, sdk) {
            (Some(ecr), _, Some(sdk)) => {
                let registry = crate::aws::resolve_ecr_registry(
                    &self.host,
                    ecr.region.as_deref(),
                    ecr.registry_id.as_deref(),
                )
                .map_err(|e| invalid(format!("auth.ecr: {e}")))?;
                let inspector =
                    crate::aws::EcrInspector::new(sdk, registry, ecr.endpoint_url.as_deref());
                Arc::new(crate::aws::EcrTokenSource(inspector))
            }
            (_, Some(public), Some(sdk)) => Arc::new(crate::aws::EcrPublicTokenSource(
                crate::aws::EcrPublic::new(sdk, public.endpoint_url.as_deref()),
            )),
            _ => Arc::new(StaticCredential(self.credential()?)),
        };
        RegistryClient::new(&self.host, source, settings)
            .map_err(|error| ConfigError::Client(Box::new(error)))
    }

    fn credential(&self) -> Result<Credential, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            host: self.host.clone(),
            message,
        };
        if let Some(basic) = &self.auth.basic {
            let password = match (&basic.password_file, &basic.password_env) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .map_err(|e| invalid(format!("reading passwordFile {}: {e}", path.display())))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                (None, Some(name)) => std::env::var(name).map_err(|_| {
                    invalid(format!(
                        "environment variable {name} (passwordEnv) is not set"
                    ))
                })?,
                (None, None) => {
                    return Err(invalid(
                        "basic auth needs exactly one of passwordFile or passwordEnv".into(),
                    ));
                }
            };
            return Ok(Credential::Basic {
                username: basic.username.clone(),
                password: Secret::new(password),
            });
        }
        if let Some(docker) = &self.auth.docker_config {
            let document = std::fs::read(&docker.path).map_err(|e| {
                invalid(format!(
                    "reading dockerConfig {}: {e}",
                    docker.path.display()
                ))
            })?;
            return dockerconfig::credential_for(&document, &self.host)
                .map_err(|e| invalid(e.to_string()));
        }
        Ok(Credential::Anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn reads_a_full_registry_entry() {
        let config = parse(
            r#"
registries:
  - host: 127.0.0.1:5000
    kind: ecr
    auth:
      basic: {username: AWS, passwordEnv: ECR_PASSWORD}
    caFile: /tmp/ca.pem
    maxConcurrentRequests: 4
    requestsPerSecond: 20
  - host: quay.io
    auth:
      dockerConfig: {path: /secrets/config.json}
"#,
        )
        .unwrap();
        assert_eq!(config.registries.len(), 2);
        assert_eq!(config.registries[0].kind, RegistryKind::Ecr);
        assert_eq!(config.registries[1].max_concurrent_requests, 16);
        assert!(config.tenancy().single_tenant());
    }

    #[test]
    fn declared_kinds_and_aws_hosts_may_carry_the_aws_identity() {
        for text in [
            "registries: [{host: 127.0.0.1:5000, kind: ecr, auth: {ecr: {registryId: '123456789012', region: us-east-1}}}]",
            "registries: [{host: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, auth: {ecr: {}}}]",
            "registries: [{host: public.ecr.aws, auth: {ecrPublic: {}}}]",
            "registries: [{host: 127.0.0.1:6000, kind: ecrPublic, auth: {ecrPublic: {}}}]",
        ] {
            parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn carries_the_verification_floor() {
        let config = parse("verify: {requireTagImmutability: true, encryption: KMS}").unwrap();
        assert!(config.verify.require_tag_immutability);
        assert_eq!(
            config.verify.encryption,
            crate::api::EncryptionRequirement::Kms
        );
        assert_eq!(
            parse("{}").unwrap().verify,
            crate::verify::VerificationFloor::default()
        );
    }

    #[test]
    fn refuses_what_cannot_work_with_a_clear_message() {
        let cases = [
            (
                "registries: [{host: a.io, colour: red}]",
                "unknown field `colour`",
            ),
            ("registries: [{host: a.io}, {host: a.io}]", "declared twice"),
            ("registries: [{host: 'https://a.io'}]", "without scheme"),
            (
                "registries: [{host: a.io, chunkBytes: 1024}]",
                "at least 5242880",
            ),
            (
                "registries: [{host: a.io, maxConcurrentRequests: 0}]",
                "at least 1",
            ),
            (
                "registries: [{host: a.io, auth: {basic: {username: u}}}]",
                "exactly one of",
            ),
            (
                "registries: [{host: a.io, kind: gcr}]",
                "unknown variant `gcr`",
            ),
            (
                "registries: [{host: a.io, auth: {basic: {username: u, passwordEnv: P}, dockerConfig: {path: /x}}}]",
                "not several",
            ),
            ("registries: [{host: a.io, auth: {ecr: {}}}]", "auth.ecr"),
            (
                "registries: [{host: a.io, auth: {ecr: {registryId: '123456789012', region: us-east-1}}}]",
                "declare kind: ecr on this entry",
            ),
            (
                "registries: [{host: a.io, auth: {ecrPublic: {}}}]",
                "declare kind: ecrPublic on this entry",
            ),
            (
                "registries: [{host: a.io, kind: ecrPublic, auth: {ecr: {registryId: '123456789012', region: us-east-1}}}]",
                "declare kind: ecr on this entry",
            ),
            (
                "tenancy: [{namespaces: [a], targets: [quay.io]}]",
                "tenancy[0].targets",
            ),
            (
                "registries: [{host: a.io, requestsPerSecond: 1e-300}]",
                "requestsPerSecond must be between",
            ),
            (
                "registries: [{host: a.io, stallTimeoutSeconds: 0}]",
                "stallTimeoutSeconds must be between 1 and 3600",
            ),
            (
                "verify: {signature: {publicKeys: [not-a-key]}}",
                "verify.signature.publicKeys",
            ),
            (
                "verify: {encryption: KMS, scan: {requierd: true}}",
                "unknown field",
            ),
            (
                "registries: [{host: 127.0.0.1:5000, kind: ecr, auth: {ecr: {registryId: '1', region: us-east-1}}}]",
                "auth.ecr",
            ),
        ];
        for (text, message) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(message), "{text}: {err}");
        }
    }
}
