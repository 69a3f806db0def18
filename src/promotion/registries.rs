//! The registry clients of a run: every registry of the configuration file,
//! plus token clients for the ECR and ECR Public hosts a promotion names
//! that the file does not list (as the controller infers them from the host).

use std::sync::Arc;

use aws_config::SdkConfig;

use super::plan::InferredCredentials;
use crate::aws::{EcrInspector, EcrPublic, EcrPublicTokenSource, EcrTokenSource};
use crate::config::{Config, ConfigError, DEFAULT_CHUNK_BYTES};
use crate::registry::auth::SharedSource;
use crate::registry::{ClientSettings, Registries, RegistryClient, UploadMode};

/// The clients of the configuration file and of the `inferred` hosts.
pub async fn registries(
    config: &Config,
    inferred: &[InferredCredentials],
    sdk: &SdkConfig,
) -> Result<Registries, ConfigError> {
    let mut registries = config.registries().await?;
    for credentials in inferred {
        registries.insert(credentials.host(), token_client(credentials, sdk)?);
    }
    Ok(registries)
}

/// A client for an inferred host with tokens from the operator's AWS identity.
pub fn token_client(
    credentials: &InferredCredentials,
    sdk: &SdkConfig,
) -> Result<RegistryClient, ConfigError> {
    let source: SharedSource =
        match credentials {
            InferredCredentials::Ecr { registry, .. } => Arc::new(EcrTokenSource(
                EcrInspector::new(sdk, registry.clone(), None),
            )),
            InferredCredentials::EcrPublic { .. } => {
                Arc::new(EcrPublicTokenSource(EcrPublic::new(sdk, None)))
            }
        };
    let settings = ClientSettings {
        upload: UploadMode::Chunked {
            part_size: DEFAULT_CHUNK_BYTES,
        },
        ..ClientSettings::default()
    };
    RegistryClient::new(credentials.host(), source, settings)
        .map_err(|error| ConfigError::Client(Box::new(error)))
}
