//! Content digests (`sha256:<hex>`): parsing, and hashing bytes as they stream.
//!
//! Every byte the copy engine moves is hashed once with aws-lc-rs (SHA-NI where the
//! CPU has it); a blob whose bytes do not hash to its digest is never committed.

use aws_lc_rs::digest::{Context, SHA256, SHA512};
use std::fmt;
use std::str::FromStr;

/// A validated content digest, e.g. `sha256:9f86…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The digest algorithms the OCI image spec registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} has no algorithm prefix (expected sha256:<64 hex>)")]
    MissingAlgorithm(String),
    #[error("digest algorithm {0:?} is not supported (expected sha256 or sha512)")]
    UnsupportedAlgorithm(String),
    #[error("digest {0:?} must have {1} lowercase hex characters after the algorithm")]
    BadHex(String, usize),
}

impl Digest {
    /// The digest of `bytes` with SHA-256.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(bytes);
        hasher.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A hasher for content that should match this digest.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }

    /// The digest as a tag: `sha256-<hex>` (the referrers tag-schema fallback).
    pub fn tag_form(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }

    /// cosign's tag for things attached to this digest: `sha256-<hex>.sig`.
    pub fn tag_with_suffix(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.tag_form())
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| DigestError::MissingAlgorithm(text.to_string()))?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let valid_hex = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid_hex {
            return Err(DigestError::BadHex(text.to_string(), algorithm.hex_len()));
        }
        Ok(Self {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes content incrementally and counts its bytes.
pub struct Hasher {
    algorithm: Algorithm,
    context: Context,
    bytes: u64,
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        let context = match algorithm {
            Algorithm::Sha256 => Context::new(&SHA256),
            Algorithm::Sha512 => Context::new(&SHA512),
        };
        Self {
            algorithm,
            context,
            bytes: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn finish(self) -> Digest {
        let hex = self
            .context
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Digest {
            algorithm: self.algorithm,
            hex,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.bytes(), 3);
        assert_eq!(
            hasher.finish().to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_and_rejects() {
        let ok = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(ok.parse::<Digest>().unwrap().to_string(), ok);
        let cases = [
            ("ba7816bf", "no algorithm prefix"),
            ("md5:abc", "not supported"),
            ("sha256:ABC", "64 lowercase hex"),
            (
                "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aZ",
                "64",
            ),
            ("sha256:../../etc/passwd", "64"),
        ];
        for (input, message) in cases {
            let err = input.parse::<Digest>().unwrap_err().to_string();
            assert!(err.contains(message), "{input}: {err}");
        }
    }

    #[test]
    fn signature_tag() {
        let digest = Digest::sha256_of(b"x");
        assert_eq!(
            digest.tag_with_suffix("sig"),
            format!("sha256-{}.sig", digest.hex())
        );
    }
}
