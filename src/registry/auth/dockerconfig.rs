//! Credentials from a dockerconfigjson document (a `kubernetes.io/dockerconfigjson`
//! Secret or a `~/.docker/config.json`): the entry for one registry host.
//!
//! A Secret holds `auths` only ([`credential_for`]). A docker client's own file
//! (`docker login`, `podman login`'s `auth.json`) may also name credential
//! helpers: [`ClientConfig::lookup`] decides, without I/O, where a host's
//! credentials come from, in the docker CLI's order: the host's entry in
//! `credHelpers`, else the `credsStore` (falling back to the host's `auths`
//! entry when the store has none), else the `auths` entry. Running a helper
//! is [`super::helpers`]'s job.

use super::credentials::{Credential, Secret};
use base64::Engine as _;
use std::collections::BTreeMap;

/// Why a dockerconfigjson document cannot be used. Messages never quote secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    /// Where the document is malformed (line and column, or the key); never
    /// the value found there.
    #[error("dockerconfigjson is not valid JSON with an \"auths\" map: {0}")]
    Malformed(String),
    #[error(
        "dockerconfigjson entry for {0} has an \"auth\" field that is not base64 of user:password"
    )]
    BadAuth(String),
    #[error("dockerconfigjson has no credentials for {host} (it has entries for: {known})")]
    NoEntry { host: String, known: String },
}

/// Where one host's credentials come from in a docker client's config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostCredentials {
    /// Ask `docker-credential-<helper> get` for `server_url`; when the helper
    /// (a `credsStore`) has none, use `fallback`.
    Helper {
        helper: String,
        server_url: String,
        fallback: Option<Credential>,
    },
    /// The file's own `auths` entry.
    Stored(Credential),
    /// The file says nothing about the host: anonymous.
    None,
}

/// A docker client's config file (`~/.docker/config.json`, `$DOCKER_CONFIG/config.json`,
/// `REGISTRY_AUTH_FILE`): `auths`, `credHelpers` and `credsStore`, each optional.
pub struct ClientConfig {
    auths: BTreeMap<String, Entry>,
    helpers: BTreeMap<String, String>,
    store: Option<String>,
}

/// The Docker Hub key the docker CLI stores and asks helpers for.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// A helper name is the end of a program name on PATH: no path, no options.
fn valid_helper(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ClientConfig {
    /// Parses a client's config file; every key but `auths`, `credHelpers`
    /// and `credsStore` is ignored (the docker CLI writes many).
    pub fn parse(document: &[u8]) -> Result<Self, DockerConfigError> {
        let malformed = |message: String| DockerConfigError::Malformed(message);
        let document = object(document)?;
        let auths = match document.get("auths") {
            None | Some(serde_json::Value::Null) => BTreeMap::new(),
            Some(auths) => entries(auths)?,
        };
        let helper = |what: &str, value: &serde_json::Value| -> Result<String, DockerConfigError> {
            value
                .as_str()
                .filter(|name| valid_helper(name))
                .map(str::to_string)
                .ok_or_else(|| {
                    malformed(format!(
                        "{what} is not a helper name (letters, digits, '-', '_', '.')"
                    ))
                })
        };
        let mut helpers = BTreeMap::new();
        match document.get("credHelpers") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (host, name) in map {
                    let host = normalise_host(host);
                    let name = helper(&format!("credHelpers entry for {host}"), name)?;
                    helpers.insert(host, name);
                }
            }
            Some(_) => return Err(malformed("\"credHelpers\" is not an object".into())),
        }
        let store = match document.get("credsStore") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(name)) if name.is_empty() => None,
            Some(name) => Some(helper("\"credsStore\"", name)?),
        };
        Ok(Self {
            auths,
            helpers,
            store,
        })
    }

    /// Where `host`'s credentials come from (the docker CLI's order).
    pub fn lookup(&self, host: &str) -> Result<HostCredentials, DockerConfigError> {
        let wanted = normalise_host(host);
        let server_url = if wanted == "docker.io" {
            DOCKER_HUB_SERVER.to_string()
        } else {
            wanted.clone()
        };
        if let Some(helper) = self.helpers.get(&wanted) {
            return Ok(HostCredentials::Helper {
                helper: helper.clone(),
                server_url,
                fallback: None,
            });
        }
        let stored = self
            .auths
            .iter()
            .find(|(key, _)| normalise_host(key) == wanted)
            .filter(|(_, entry)| {
                entry.auth.as_deref().is_some_and(|a| !a.is_empty())
                    || entry.username.is_some()
                    || entry.identity_token.is_some()
            })
            .map(|(key, entry)| entry_credential(key, entry))
            .transpose()?;
        Ok(match (&self.store, stored) {
            (Some(store), fallback) => HostCredentials::Helper {
                helper: store.clone(),
                server_url,
                fallback,
            },
            (None, Some(credential)) => HostCredentials::Stored(credential),
            (None, None) => HostCredentials::None,
        })
    }
}

struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identity_token: Option<String>,
}

/// The document as a JSON object. serde's messages quote the offending value
/// (a password in a wrong-typed field would reach a condition), so the
/// document is read as JSON values and checked here, naming only positions
/// and keys.
fn object(
    document: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, DockerConfigError> {
    let malformed = |message: String| DockerConfigError::Malformed(message);
    let value: serde_json::Value = serde_json::from_slice(document).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the document ends early",
            _ => "invalid JSON",
        };
        malformed(format!("{what} at line {} column {}", e.line(), e.column()))
    })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(malformed("the document is not a JSON object".into())),
    }
}

/// The `auths` map of a Secret's document, which must have one.
fn auths(document: &[u8]) -> Result<BTreeMap<String, Entry>, DockerConfigError> {
    let document = object(document)?;
    let auths = document
        .get("auths")
        .ok_or_else(|| DockerConfigError::Malformed("no \"auths\" key".into()))?;
    entries(auths)
}

/// The entries of an `auths` map.
fn entries(auths: &serde_json::Value) -> Result<BTreeMap<String, Entry>, DockerConfigError> {
    let malformed = |message: String| DockerConfigError::Malformed(message);
    let auths = auths
        .as_object()
        .ok_or_else(|| malformed("\"auths\" is not an object".into()))?;
    let mut entries = BTreeMap::new();
    for (key, entry) in auths {
        let host = normalise_host(key);
        let entry = entry
            .as_object()
            .ok_or_else(|| malformed(format!("auths entry for {host} is not an object")))?;
        let field = |name: &str| -> Result<Option<String>, DockerConfigError> {
            match entry.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(malformed(format!(
                    "auths entry for {host}: \"{name}\" is not a string"
                ))),
            }
        };
        entries.insert(
            key.clone(),
            Entry {
                auth: field("auth")?,
                username: field("username")?,
                password: field("password")?,
                identity_token: field("identitytoken")?,
            },
        );
    }
    Ok(entries)
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
    let auths = auths(document)?;
    let wanted = normalise_host(host);
    let (key, entry) = auths
        .iter()
        .find(|(key, _)| normalise_host(key) == wanted)
        .ok_or_else(|| DockerConfigError::NoEntry {
            host: wanted.clone(),
            known: auths
                .keys()
                .map(|k| normalise_host(k))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    entry_credential(key, entry)
}

/// The credential an `auths` entry holds.
fn entry_credential(key: &str, entry: &Entry) -> Result<Credential, DockerConfigError> {
    if let Some(token) = entry.identity_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Credential::IdentityToken(Secret::new(token)));
    }
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

    #[test]
    fn malformed_documents_say_where_never_what() {
        let secret = "hunter2-s3cret";
        let cases = [
            (
                format!(r#"{{"auths":{{"x.io":{{"username":"u","password":["{secret}"]}}}}}}"#),
                "auths entry for x.io: \"password\" is not a string",
            ),
            (
                format!(r#"{{"auths":{{"x.io":{{"auth":{{"{secret}":1}}}}}}}}"#),
                "auths entry for x.io: \"auth\" is not a string",
            ),
            (
                format!(r#"{{"auths":{{"x.io":"{secret}"}}}}"#),
                "auths entry for x.io is not an object",
            ),
            (
                format!(r#"{{"auths":{{"x.io":{{"password":"{secret}" "username":1}}}}}}"#),
                "invalid JSON at line 1 column",
            ),
            (
                format!(r#"{{"auths":{{"x.io":{{"password":"{secret}"#),
                "ends early at line 1 column",
            ),
            (
                format!(r#"{{"auths":"{secret}"}}"#),
                "\"auths\" is not an object",
            ),
            (format!(r#"["{secret}"]"#), "not a JSON object"),
            (format!(r#"{{"{secret}":1}}"#), "no \"auths\" key"),
        ];
        for (document, expected) in cases {
            let message = match credential_for(document.as_bytes(), "x.io") {
                Ok(_) => panic!("{document}: accepted"),
                Err(error) => error.to_string(),
            };
            assert!(message.contains(expected), "{document}: {message}");
            assert!(!message.contains(secret), "{document}: {message}");
        }
    }

    #[test]
    fn a_clients_file_says_where_each_hosts_credentials_come_from() {
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: Secret::new(p),
        };
        let helper =
            |name: &str, server: &str, fallback: Option<Credential>| HostCredentials::Helper {
                helper: name.into(),
                server_url: server.into(),
                fallback,
            };
        let with_helpers = br#"{
            "auths": {"quay.io": {"auth": "cm9ib3Q6czNjcmV0"}, "ghcr.io": {}},
            "credHelpers": {"123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login",
                            "https://quay.io": "pass"},
            "credsStore": "desktop",
            "psFormat": "table"
        }"#;
        let plain = br#"{"auths": {"quay.io": {"username": "robot", "password": "s3cret"},
                                    "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}}}"#;
        let cases: [(&[u8], &str, HostCredentials); 8] = [
            // credHelpers first, even over an auths entry.
            (with_helpers, "quay.io", helper("pass", "quay.io", None)),
            (
                with_helpers,
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                helper(
                    "ecr-login",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                    None,
                ),
            ),
            // Then the store, with an empty placeholder entry: nothing to fall back to.
            (with_helpers, "ghcr.io", helper("desktop", "ghcr.io", None)),
            (
                with_helpers,
                "docker.io",
                helper("desktop", "https://index.docker.io/v1/", None),
            ),
            // Without helpers: the auths entry, or nothing.
            (
                plain,
                "quay.io",
                HostCredentials::Stored(basic("robot", "s3cret")),
            ),
            (
                plain,
                "docker.io",
                HostCredentials::Stored(basic("user", "pass")),
            ),
            (plain, "ghcr.io", HostCredentials::None),
            (b"{}", "quay.io", HostCredentials::None),
        ];
        for (document, host, expected) in cases {
            let config = ClientConfig::parse(document).unwrap();
            assert_eq!(config.lookup(host).unwrap(), expected, "{host}");
        }
        // A store falls back to the file's own entry when it has none.
        let stored = ClientConfig::parse(
            br#"{"auths": {"quay.io": {"auth": "cm9ib3Q6czNjcmV0"}}, "credsStore": "osxkeychain"}"#,
        )
        .unwrap();
        assert_eq!(
            stored.lookup("quay.io").unwrap(),
            helper("osxkeychain", "quay.io", Some(basic("robot", "s3cret")))
        );
    }

    #[test]
    fn helper_names_are_checked_and_identity_tokens_kept() {
        let secret = "hunter2-s3cret";
        let refused = [
            format!(r#"{{"credHelpers": {{"x.io": "../../bin/{secret}"}}}}"#),
            format!(r#"{{"credHelpers": {{"x.io": "-{secret}"}}}}"#),
            r#"{"credHelpers": {"x.io": ""}}"#.to_string(),
            format!(r#"{{"credsStore": ["{secret}"]}}"#),
            format!(r#"{{"credHelpers": "{secret}"}}"#),
        ];
        for document in refused {
            let Err(error) = ClientConfig::parse(document.as_bytes()) else {
                panic!("{document}: accepted");
            };
            let message = error.to_string();
            assert!(!message.contains(secret), "{document}: {message}");
        }
        let token = ClientConfig::parse(
            format!(r#"{{"auths": {{"x.io": {{"auth": "", "identitytoken": "{secret}"}}}}}}"#)
                .as_bytes(),
        )
        .unwrap()
        .lookup("x.io")
        .unwrap();
        assert_eq!(
            token,
            HostCredentials::Stored(Credential::IdentityToken(Secret::new(secret)))
        );
    }
}
