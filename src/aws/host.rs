//! Which Amazon ECR registry (account and region) a registry host names.
//!
//! An image reference names ECR by host: `<account>.dkr.ecr.<region>.amazonaws.com`
//! (and its FIPS, China and dual-stack spellings). The ECR API wants the
//! account as `registryId` and a client for the region, so the host is parsed
//! here. A registry reached under another name — a pull-through proxy, a VPC
//! endpoint alias, the test world's `127.0.0.1:PORT` — needs the region and
//! account given explicitly (`credentials.ecr.region` / `registryId`, or the
//! operator's configuration); explicit values always win over the host.

use std::fmt;

/// One Amazon ECR registry: an account's registry in one region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EcrRegistry {
    /// The 12-digit AWS account id, which ECR calls the registry id.
    pub registry_id: String,
    /// The AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Whether the host is a FIPS endpoint; the API client then uses FIPS too.
    pub fips: bool,
}

impl fmt::Display for EcrRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.registry_id, self.region)?;
        if self.fips {
            f.write_str(" (FIPS)")?;
        }
        Ok(())
    }
}

/// Why no ECR registry follows from a host and the explicit settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcrRegistryError {
    /// The host is not an ECR host and the region and registry id were not both given.
    #[error(
        "{host} is not an Amazon ECR host (<account>.dkr.ecr.<region>.amazonaws.com): \
         give both the region and the registry id for it"
    )]
    NotAnEcrHost {
        /// The registry host.
        host: String,
    },
    /// An explicit registry id is not 12 digits.
    #[error("registry id {0:?} is not a 12-digit AWS account id")]
    InvalidRegistryId(String),
    /// An explicit region is not a region name.
    #[error("{0:?} is not an AWS region name")]
    InvalidRegion(String),
}

impl EcrRegistryError {
    /// The PascalCase reason: the spec (or configuration) must change.
    pub fn reason(&self) -> &'static str {
        crate::api::reasons::INVALID_SPEC
    }
}

/// ECR Public's registry host.
pub const ECR_PUBLIC_HOST: &str = "public.ecr.aws";

/// The ECR service labels of a host and the DNS suffixes they appear with.
const SPELLINGS: &[(&str, bool, &[&str])] = &[
    ("dkr.ecr", false, &["amazonaws.com", "amazonaws.com.cn"]),
    ("dkr.ecr-fips", true, &["amazonaws.com"]),
    ("dkr-ecr", false, &["on.aws"]),
    ("dkr-ecr-fips", true, &["on.aws"]),
];

/// Parses an ECR registry host (with or without `:port`), case-insensitively.
///
/// Accepted: `<account>.dkr.ecr.<region>.amazonaws.com`,
/// `<account>.dkr.ecr-fips.<region>.amazonaws.com`,
/// `<account>.dkr.ecr.<region>.amazonaws.com.cn` and the dual-stack
/// `<account>.dkr-ecr[-fips].<region>.on.aws`. Anything else is `None`.
pub fn parse_ecr_host(host: &str) -> Option<EcrRegistry> {
    let host = strip_port(host).to_ascii_lowercase();
    let (account, rest) = host.split_once('.')?;
    if !is_account_id(account) {
        return None;
    }
    SPELLINGS.iter().find_map(|(service, fips, suffixes)| {
        let rest = rest.strip_prefix(service)?.strip_prefix('.')?;
        suffixes.iter().find_map(|suffix| {
            let region = rest.strip_suffix(suffix)?.strip_suffix('.')?;
            is_region(region).then(|| EcrRegistry {
                registry_id: account.to_string(),
                region: region.to_string(),
                fips: *fips,
            })
        })
    })
}

/// The registry for `host`, with explicit `region` and `registry_id` taking
/// precedence over what the host says. A host that is not an ECR host needs both.
pub fn resolve_ecr_registry(
    host: &str,
    region: Option<&str>,
    registry_id: Option<&str>,
) -> Result<EcrRegistry, EcrRegistryError> {
    if let Some(region) = region.filter(|r| !is_region(r)) {
        return Err(EcrRegistryError::InvalidRegion(region.to_string()));
    }
    if let Some(id) = registry_id.filter(|id| !is_account_id(id)) {
        return Err(EcrRegistryError::InvalidRegistryId(id.to_string()));
    }
    let parsed = parse_ecr_host(host);
    let region = region
        .map(str::to_string)
        .or_else(|| parsed.as_ref().map(|p| p.region.clone()));
    let registry_id = registry_id
        .map(str::to_string)
        .or_else(|| parsed.as_ref().map(|p| p.registry_id.clone()));
    match (region, registry_id) {
        (Some(region), Some(registry_id)) => Ok(EcrRegistry {
            registry_id,
            region,
            fips: parsed.is_some_and(|p| p.fips),
        }),
        _ => Err(EcrRegistryError::NotAnEcrHost {
            host: host.to_string(),
        }),
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `<letters>-<letters>[-<letters>…]-<digits>`, e.g. `us-east-1`, `us-gov-west-1`, `cn-north-1`.
fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(id: &str, region: &str, fips: bool) -> Option<EcrRegistry> {
        Some(EcrRegistry {
            registry_id: id.into(),
            region: region.into(),
            fips,
        })
    }

    #[test]
    fn ecr_hosts_in_every_partition_and_spelling() {
        let cases = [
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                registry("123456789012", "us-east-1", false),
            ),
            (
                "123456789012.dkr.ecr.eu-central-2.amazonaws.com:443",
                registry("123456789012", "eu-central-2", false),
            ),
            (
                "123456789012.DKR.ECR.US-WEST-2.AMAZONAWS.COM",
                registry("123456789012", "us-west-2", false),
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                registry("123456789012", "us-gov-west-1", true),
            ),
            (
                "123456789012.dkr.ecr-fips.us-east-2.amazonaws.com",
                registry("123456789012", "us-east-2", true),
            ),
            (
                "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn",
                registry("210987654321", "cn-north-1", false),
            ),
            (
                "210987654321.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
                registry("210987654321", "cn-northwest-1", false),
            ),
            (
                "123456789012.dkr-ecr.ap-southeast-1.on.aws",
                registry("123456789012", "ap-southeast-1", false),
            ),
            (
                "123456789012.dkr-ecr-fips.us-east-1.on.aws",
                registry("123456789012", "us-east-1", true),
            ),
            // Not ECR, or not quite.
            ("public.ecr.aws", None),
            ("quay.io", None),
            ("127.0.0.1:5000", None),
            ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
            ("1234567890123.dkr.ecr.us-east-1.amazonaws.com", None),
            ("12345678901a.dkr.ecr.us-east-1.amazonaws.com", None),
            ("123456789012.dkr.ecr.amazonaws.com", None),
            ("123456789012.dkr.ecr.us-east.amazonaws.com", None),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
                None,
            ),
            ("123456789012.dkr.ecr.us-east-1.example.com", None),
            ("123456789012.ecr.us-east-1.amazonaws.com", None),
            (
                "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn",
                None,
            ),
            ("123456789012.dkr.ecr.us-east-1.on.aws", None),
            ("api.ecr.us-east-1.amazonaws.com", None),
            ("", None),
        ];
        for (host, expected) in cases {
            assert_eq!(parse_ecr_host(host), expected, "{host}");
        }
    }

    #[test]
    fn explicit_region_and_account_win_over_the_host() {
        let ecr = "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com";
        assert_eq!(
            resolve_ecr_registry(ecr, None, None),
            Ok(registry("123456789012", "us-east-1", true).unwrap())
        );
        assert_eq!(
            resolve_ecr_registry(ecr, Some("us-west-2"), Some("210987654321")),
            Ok(registry("210987654321", "us-west-2", true).unwrap())
        );
        // The test world: a loopback host with both given.
        assert_eq!(
            resolve_ecr_registry("127.0.0.1:47961", Some("us-east-1"), Some("123456789012")),
            Ok(registry("123456789012", "us-east-1", false).unwrap())
        );
    }

    #[test]
    fn a_foreign_host_needs_both_settings_and_bad_settings_are_refused() {
        for (region, id) in [
            (None, None),
            (Some("us-east-1"), None),
            (None, Some("123456789012")),
        ] {
            let err = resolve_ecr_registry("proxy.example.com", region, id).unwrap_err();
            assert!(
                matches!(err, EcrRegistryError::NotAnEcrHost { .. }),
                "{err}"
            );
            assert_eq!(err.reason(), "InvalidSpec");
        }
        assert_eq!(
            resolve_ecr_registry("proxy.example.com", Some("mars"), Some("123456789012")),
            Err(EcrRegistryError::InvalidRegion("mars".into()))
        );
        assert_eq!(
            resolve_ecr_registry("proxy.example.com", Some("us-east-1"), Some("42")),
            Err(EcrRegistryError::InvalidRegistryId("42".into()))
        );
    }
}
