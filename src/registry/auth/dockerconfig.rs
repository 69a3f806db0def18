//! Credentials from a dockerconfigjson document (a `kubernetes.io/dockerconfigjson`
//! Secret or a `~/.docker/config.json`): the entry for one registry host.

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

struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The `auths` map of a document. serde's messages quote the offending value
/// (a password in a wrong-typed field would reach a condition), so the
/// document is read as JSON values and checked here, naming only positions
/// and keys.
fn auths(document: &[u8]) -> Result<BTreeMap<String, Entry>, DockerConfigError> {
    let malformed = |message: String| DockerConfigError::Malformed(message);
    let value: serde_json::Value = serde_json::from_slice(document).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the document ends early",
            _ => "invalid JSON",
        };
        malformed(format!("{what} at line {} column {}", e.line(), e.column()))
    })?;
    let auths = value
        .as_object()
        .ok_or_else(|| malformed("the document is not a JSON object".into()))?
        .get("auths")
        .ok_or_else(|| malformed("no \"auths\" key".into()))?
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
}
