//! Credentials from a dockerconfigjson document (a `kubernetes.io/dockerconfigjson`
//! Secret or a `~/.docker/config.json`): the entry for one registry host.

use super::credentials::{Credential, Secret};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why a dockerconfigjson document cannot be used. Messages never quote secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    #[error("dockerconfigjson is not valid JSON with an \"auths\" map: {0}")]
    Malformed(String),
    #[error(
        "dockerconfigjson entry for {0} has an \"auth\" field that is not base64 of user:password"
    )]
    BadAuth(String),
    #[error("dockerconfigjson has no credentials for {host} (it has entries for: {known})")]
    NoEntry { host: String, known: String },
}

#[derive(Deserialize)]
struct Document {
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://quay.io` → `quay.io`.
fn normalise_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// The credential for `host` in a dockerconfigjson document.
pub fn credential_for(document: &[u8], host: &str) -> Result<Credential, DockerConfigError> {
    let document: Document = serde_json::from_slice(document)
        .map_err(|e| DockerConfigError::Malformed(e.to_string()))?;
    let wanted = normalise_host(host);
    let (key, entry) = document
        .auths
        .iter()
        .find(|(key, _)| normalise_host(key) == wanted)
        .ok_or_else(|| DockerConfigError::NoEntry {
            host: wanted.clone(),
            known: document
                .auths
                .keys()
                .map(|k| normalise_host(k))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credential::Basic {
            username: username.clone(),
            password: Secret::new(password.clone()),
        });
    }
    let auth = entry
        .auth
        .as_deref()
        .ok_or_else(|| DockerConfigError::BadAuth(normalise_host(key)))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| DockerConfigError::BadAuth(normalise_host(key)))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| DockerConfigError::BadAuth(normalise_host(key)))?;
    Ok(Credential::Basic {
        username: username.to_string(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_entry_for_a_host() {
        let doc = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "quay.io":{"username":"robot","password":"s3cret"}
        }}"#;
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: Secret::new(p),
        };
        assert_eq!(
            credential_for(doc, "docker.io").unwrap(),
            basic("user", "pass")
        );
        assert_eq!(
            credential_for(doc, "quay.io").unwrap(),
            basic("robot", "s3cret")
        );
        let missing = credential_for(doc, "ghcr.io").unwrap_err().to_string();
        assert!(
            missing.contains("ghcr.io") && missing.contains("quay.io"),
            "{missing}"
        );
        let bad = credential_for(br#"{"auths":{"x.io":{"auth":"!!"}}}"#, "x.io").unwrap_err();
        assert_eq!(bad, DockerConfigError::BadAuth("x.io".into()));
        assert!(credential_for(b"[]", "x.io").is_err());
    }
}
