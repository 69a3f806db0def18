//! Image references (`registry/repository[:tag][@digest]`): parsing and
//! normalisation, with errors that say what is wrong.
//!
//! Follows the distribution reference grammar: the first path component is a
//! registry when it contains `.` or `:` or is `localhost`; otherwise the image is
//! on Docker Hub (`docker.io`, `library/` for single-component names).

use super::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// A repository in a registry: where images live.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// `host[:port]` as written (normalised for Docker Hub).
    pub registry: String,
    /// The path inside the registry, e.g. `team/app`.
    pub name: String,
}

/// An image: a repository plus a tag, a digest, or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    pub repository: Repository,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {reference:?}: {source}")]
    Digest {
        reference: String,
        source: DigestError,
    },
    #[error(
        "image reference {reference:?}: tag {tag:?} is invalid (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
    )]
    Tag { reference: String, tag: String },
    #[error(
        "image reference {reference:?}: repository path {path:?} is invalid (lowercase letters and digits, separated by '.', '_', '__', '-' or '/')"
    )]
    Path { reference: String, path: String },
    #[error("image reference {reference:?}: registry host {host:?} is invalid")]
    Host { reference: String, host: String },
    #[error("image reference {reference:?} is longer than {MAX_NAME} characters")]
    TooLong { reference: String },
    #[error("{reference:?} names a repository; a tag or digest was expected")]
    NoTagOrDigest { reference: String },
    #[error("{reference:?} must name a repository only, without tag or digest")]
    NotARepository { reference: String },
}

/// The host that serves the API of `registry` (`docker.io` is served by
/// `registry-1.docker.io`).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

impl Repository {
    /// The host to send API requests to.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// An image in this repository with a tag.
    pub fn tagged(&self, tag: &str) -> ImageReference {
        ImageReference {
            repository: self.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// An image in this repository by digest.
    pub fn at(&self, digest: &Digest) -> ImageReference {
        ImageReference {
            repository: self.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

impl FromStr for Repository {
    type Err = ReferenceError;

    /// A repository, e.g. `quay.io/team/app`; a tag or digest is an error.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let image = parse(text)?;
        if image.tag.is_some() || image.digest.is_some() {
            return Err(ReferenceError::NotARepository {
                reference: text.to_string(),
            });
        }
        Ok(image.repository)
    }
}

impl ImageReference {
    /// Parses a reference that must name a tag or a digest.
    pub fn parse_image(text: &str) -> Result<Self, ReferenceError> {
        let image = parse(text)?;
        if image.tag.is_none() && image.digest.is_none() {
            return Err(ReferenceError::NoTagOrDigest {
                reference: text.to_string(),
            });
        }
        Ok(image)
    }

    /// Parses a reference whose tag and digest are both optional.
    pub fn parse_any(text: &str) -> Result<Self, ReferenceError> {
        parse(text)
    }

    /// What to ask the registry for: the digest when known, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// True for a valid tag.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && tag.len() <= MAX_TAG
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_valid_component(component: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return false;
        }
    }
    true
}

fn is_valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let labels_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && labels_ok
}

fn parse(text: &str) -> Result<ImageReference, ReferenceError> {
    let reference = text.to_string();
    if text.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if text.len() > MAX_NAME + MAX_TAG + 72 + 2 {
        return Err(ReferenceError::TooLong { reference });
    }
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => {
            let digest = digest.parse().map_err(|source| ReferenceError::Digest {
                reference: reference.clone(),
                source,
            })?;
            (rest, Some(digest))
        }
        None => (text, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            if !is_valid_tag(tag) {
                return Err(ReferenceError::Tag {
                    reference,
                    tag: tag.to_string(),
                });
            }
            (&rest[..last_slash + i], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), path.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let registry = match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => registry,
    };
    if !is_valid_host(&registry) {
        return Err(ReferenceError::Host {
            reference,
            host: registry,
        });
    }
    let path = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if !path.split('/').all(is_valid_component) {
        return Err(ReferenceError::Path { reference, path });
    }
    if registry.len() + 1 + path.len() > MAX_NAME {
        return Err(ReferenceError::TooLong { reference });
    }
    Ok(ImageReference {
        repository: Repository {
            registry,
            name: path,
        },
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn normalises_valid_references() {
        let cases = [
            ("alpine:3.20", "docker.io/library/alpine:3.20"),
            ("docker.io/alpine:3", "docker.io/library/alpine:3"),
            ("index.docker.io/team/app:v1", "docker.io/team/app:v1"),
            ("quay.io/team/app:v1", "quay.io/team/app:v1"),
            ("127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000/a/b/c:latest"),
            ("localhost/app:1", "localhost/app:1"),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.2.3",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.2.3",
            ),
            (
                "public.ecr.aws/alias/app__x-y.z:v",
                "public.ecr.aws/alias/app__x-y.z:v",
            ),
        ];
        for (input, expected) in cases {
            let parsed =
                ImageReference::parse_image(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.to_string(), expected);
        }
        let both = ImageReference::parse_image(&format!("quay.io/a/b:v1@{D}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("v1"));
        assert_eq!(both.reference(), D);
        assert_eq!(
            ImageReference::parse_image("alpine:1")
                .unwrap()
                .repository
                .api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn rejects_malformed_references_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("quay.io/Team/app:v1", "repository path"),
            ("quay.io/team//app:v1", "repository path"),
            ("quay.io/team/app-:v1", "repository path"),
            ("quay.io/team/app:-v1", "tag"),
            ("quay.io/team/app:v 1", "tag"),
            ("quay.io/team/app@sha256:abc", "64 lowercase hex"),
            ("quay.io/team/app@md5:abc", "not supported"),
            ("quay.io/team/app", "tag or digest was expected"),
            ("bad_host.io:99999999/app:v1", "registry host"),
        ];
        for (input, message) in cases {
            let err = ImageReference::parse_image(input).unwrap_err().to_string();
            assert!(err.contains(message), "{input:?}: {err}");
        }
        let long_tag = format!("quay.io/a:{}", "t".repeat(129));
        assert!(ImageReference::parse_image(&long_tag).is_err());
    }

    #[test]
    fn repositories_have_no_tag() {
        let repo: Repository = "quay.io/team/app".parse().unwrap();
        assert_eq!(repo.to_string(), "quay.io/team/app");
        assert_eq!(repo.tagged("v2").to_string(), "quay.io/team/app:v2");
        let err = "quay.io/team/app:v1".parse::<Repository>().unwrap_err();
        assert!(err.to_string().contains("repository only"));
    }

    #[test]
    fn tag_grammar() {
        for ok in ["v1", "1.2.3", "latest", "_x", "A-b_c.d"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".v", "-v", "v/1", "v:1"] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }
}
