//! `WWW-Authenticate` challenges (RFC 7235): which scheme a registry wants and,
//! for bearer tokens, where to get one (`realm`, `service`, `scope`).

use std::collections::BTreeMap;

/// One parsed challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Why a challenge is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error(
        "the registry's authentication scheme {0:?} is not supported (expected Basic or Bearer)"
    )]
    UnsupportedScheme(String),
    #[error("the registry's bearer challenge has no realm")]
    NoRealm,
    /// Holds only the realm's scheme (a URL may carry a query).
    #[error("the registry's token realm is not an http(s) URL (scheme {0:?})")]
    BadRealm(String),
}

/// Parses a `WWW-Authenticate` header value. Quoted values may hold commas.
pub fn parse(header: &str) -> Result<Challenge, ChallengeError> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Ok(Challenge::Basic),
        "bearer" => {
            let mut params = parameters(rest);
            let realm = params.remove("realm").ok_or(ChallengeError::NoRealm)?;
            if !(realm.starts_with("https://") || realm.starts_with("http://")) {
                let scheme = realm.split(':').next().unwrap_or_default();
                return Err(ChallengeError::BadRealm(scheme.chars().take(16).collect()));
            }
            Ok(Challenge::Bearer {
                realm,
                service: params.remove("service"),
                scope: params.remove("scope"),
            })
        }
        other => Err(ChallengeError::UnsupportedScheme(
            other.chars().take(32).collect(),
        )),
    }
}

fn parameters(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let cases = [
            ("Basic realm=\"Registry Realm\"", Ok(Challenge::Basic)),
            (
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
                Ok(Challenge::Bearer {
                    realm: "https://auth.example/token".into(),
                    service: Some("registry.example".into()),
                    scope: Some("repository:a/b:pull,push".into()),
                }),
            ),
            (
                "bearer realm=https://x/token, service=svc",
                Ok(Challenge::Bearer {
                    realm: "https://x/token".into(),
                    service: Some("svc".into()),
                    scope: None,
                }),
            ),
            ("Bearer service=\"x\"", Err(ChallengeError::NoRealm)),
            (
                "Bearer realm=\"file:///etc/passwd\"",
                Err(ChallengeError::BadRealm("file".into())),
            ),
            (
                "Negotiate abc",
                Err(ChallengeError::UnsupportedScheme("negotiate".into())),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(parse(header), expected, "{header}");
        }
    }
}
