//! Semantic versions as tags, and version ranges in the syntax Flux, Helm and
//! skopeo users write (npm / Masterminds style): `^1.2`, `~1.4`, `1.2.x`,
//! `>=1.0.0 <2.0.0`, `>=1.0, <2.0`, `1.2 - 1.4`, `||`, an optional `v`.
//!
//! Tags are parsed strictly: `MAJOR.MINOR.PATCH` with an optional `v`,
//! pre-release and build metadata, numbers without leading zeros that fit in
//! 64 bits. `1.2`, `latest` or a commit hash like `1234567` are not versions
//! and never match a range (lenient parsers read `1234567` as 1234567.0.0).
//! Ranges may name partial versions (`^1.2`, `>=1.0`), as users write them.
//!
//! Pre-releases: a tag such as `2.0.0-rc.1` matches a range only when one
//! comparator of the same `||` alternative names a pre-release of the same
//! `MAJOR.MINOR.PATCH` (`>=2.0.0-rc.0`), so `^2.0` never selects release
//! candidates. Build metadata is ignored in comparisons. Everything is pure.

use std::cmp::Ordering;
use std::fmt;

/// A version parsed from a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated pre-release identifiers; empty for a release.
    pub pre: Vec<Identifier>,
}

/// One pre-release identifier: numeric ones order below alphanumeric ones.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identifier {
    Numeric(u64),
    Alphanumeric(String),
}

impl Version {
    /// Parses a tag strictly (see the module doc); None when it is not a version.
    pub fn parse_tag(tag: &str) -> Option<Self> {
        let text = tag.strip_prefix('v').unwrap_or(tag);
        let (text, _build) = match text.split_once('+') {
            Some((core, build)) if identifiers(build, false).is_some() => (core, Some(build)),
            Some(_) => return None,
            None => (text, None),
        };
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, identifiers(pre, true)?),
            None => (text, Vec::new()),
        };
        let mut parts = core.split('.');
        let (major, minor, patch) = (
            number(parts.next()?)?,
            number(parts.next()?)?,
            number(parts.next()?)?,
        );
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre: pre
                .into_iter()
                .map(|id| match number(id) {
                    Some(n) => Identifier::Numeric(n),
                    None => Identifier::Alphanumeric(id.to_string()),
                })
                .collect(),
        })
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }

    fn release(triple: (u64, u64, u64)) -> Self {
        Self {
            major: triple.0,
            minor: triple.1,
            patch: triple.2,
            pre: Vec::new(),
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple().cmp(&other.triple()).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match id {
                Identifier::Numeric(n) => write!(f, "{n}")?,
                Identifier::Alphanumeric(s) => f.write_str(s)?,
            }
        }
        Ok(())
    }
}

/// A decimal number without a leading zero that fits in 64 bits.
fn number(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Dot-separated `[0-9A-Za-z-]+` identifiers; pre-release numbers may not
/// have leading zeros.
fn identifiers(text: &str, pre_release: bool) -> Option<Vec<&str>> {
    let ids: Vec<&str> = text.split('.').collect();
    let valid = ids.iter().all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(pre_release
                && id.bytes().all(|b| b.is_ascii_digit())
                && id.len() > 1
                && id.starts_with('0'))
    });
    valid.then_some(ids)
}

/// Why a range does not parse; names the piece.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("semver range {range:?}: {problem}")]
pub struct RangeError {
    pub range: String,
    pub problem: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One bound: a version compared with an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let order = v.cmp(&self.version);
        match self.op {
            Op::Eq => order == Ordering::Equal,
            Op::Ne => order != Ordering::Equal,
            Op::Gt => order == Ordering::Greater,
            Op::Ge => order != Ordering::Less,
            Op::Lt => order == Ordering::Less,
            Op::Le => order != Ordering::Greater,
        }
    }
}

/// A parsed range: alternatives (`||`) of comparator sets (all must hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    alternatives: Vec<Vec<Comparator>>,
}

/// The largest range accepted, in bytes (the API caps it at 256 too).
const MAX_RANGE: usize = 256;

impl Range {
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let error = |problem: String| RangeError {
            range: text.to_string(),
            problem,
        };
        if text.len() > MAX_RANGE {
            return Err(error(format!("longer than {MAX_RANGE} bytes")));
        }
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            alternatives.push(comparator_set(alternative).map_err(error)?);
        }
        Ok(Self { alternatives })
    }

    /// Whether `version` satisfies the range (see the module doc for pre-releases).
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|set| {
            set.iter().all(|c| c.matches(version))
                && (version.pre.is_empty()
                    || set.iter().any(|c| {
                        !c.version.pre.is_empty() && c.version.triple() == version.triple()
                    }))
        })
    }
}

/// A version as a range writes it: parts may be missing or wildcards.
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Vec<Identifier>,
}

impl Partial {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.strip_prefix(['v', '=']).unwrap_or(text);
        let text = text.split_once('+').map_or(text, |(core, _)| core);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let mut numbers = [None; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 || core.is_empty() {
            return Err(format!("{text:?} is not a version"));
        }
        let mut wildcard = false;
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if matches!(*part, "x" | "X" | "*") {
                wildcard = true;
            } else if wildcard {
                return Err(format!("{text:?}: a number after a wildcard"));
            } else {
                *slot = Some(number(part).ok_or_else(|| format!("{text:?} is not a version"))?);
            }
        }
        let pre = match pre {
            Some(pre) => {
                if numbers.iter().any(Option::is_none) {
                    return Err(format!("{text:?}: a pre-release needs MAJOR.MINOR.PATCH"));
                }
                Version::parse_tag(&format!("0.0.0-{pre}"))
                    .ok_or_else(|| format!("{text:?}: bad pre-release"))?
                    .pre
            }
            None => Vec::new(),
        };
        Ok(Self {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers[2],
            pre,
        })
    }

    /// The lowest version it covers.
    fn floor(&self) -> Version {
        Version {
            pre: self.pre.clone(),
            ..Version::release((
                self.major.unwrap_or(0),
                self.minor.unwrap_or(0),
                self.patch.unwrap_or(0),
            ))
        }
    }

    /// The first version above everything it covers; None for `*`.
    fn ceiling(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (None, _, _) => None,
            (Some(major), None, _) => Some(Version::release((major.checked_add(1)?, 0, 0))),
            (Some(major), Some(minor), None) => {
                Some(Version::release((major, minor.checked_add(1)?, 0)))
            }
            (Some(_), Some(_), Some(_)) => None,
        }
    }

    fn is_full(&self) -> bool {
        self.patch.is_some()
    }
}

fn comparator_set(text: &str) -> Result<Vec<Comparator>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty alternative (around `||`)".into());
    }
    if let Some((low, high)) = text.split_once(" - ") {
        let low = Partial::parse(low.trim())?;
        let high = Partial::parse(high.trim())?;
        let mut set = vec![Comparator {
            op: Op::Ge,
            version: low.floor(),
        }];
        set.extend(upper_inclusive(&high));
        return Ok(set);
    }
    let mut set = Vec::new();
    let tokens = tokens(text);
    let mut i = 0;
    while i < tokens.len() {
        let (op, mut rest) = operator(tokens[i]);
        // An operator written apart from its version: `>= 1.2`.
        if rest.is_empty() {
            i += 1;
            rest = tokens
                .get(i)
                .copied()
                .ok_or_else(|| format!("{op:?} without a version"))?;
        }
        let partial = Partial::parse(rest)?;
        set.extend(expand(op, &partial)?);
        i += 1;
    }
    Ok(set)
}

/// Whitespace- and comma-separated tokens.
fn tokens(text: &str) -> Vec<&str> {
    text.split([' ', ',', '\t'])
        .filter(|t| !t.is_empty())
        .collect()
}

fn operator(token: &str) -> (&'static str, &str) {
    for op in [">=", "<=", "=<", "!=", "~>", ">", "<", "=", "~", "^"] {
        if let Some(rest) = token.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", token)
}

fn at(op: Op, version: Version) -> Comparator {
    Comparator { op, version }
}

fn upper_inclusive(high: &Partial) -> Vec<Comparator> {
    match high.ceiling() {
        _ if high.is_full() => vec![at(Op::Le, high.floor())],
        Some(ceiling) => vec![at(Op::Lt, ceiling)],
        None => Vec::new(),
    }
}

/// A comparator with a possibly partial version, as bounds on full versions.
fn expand(op: &str, v: &Partial) -> Result<Vec<Comparator>, String> {
    let floor = v.floor();
    let overflow = || "a version too large to have a successor".to_string();
    Ok(match op {
        "" | "=" => match v.ceiling() {
            _ if v.is_full() => vec![at(Op::Eq, floor)],
            Some(ceiling) => vec![at(Op::Ge, floor), at(Op::Lt, ceiling)],
            None => vec![at(Op::Ge, Version::release((0, 0, 0)))],
        },
        "!=" if v.is_full() => vec![at(Op::Ne, floor)],
        "!=" => return Err("`!=` needs a full version".into()),
        ">=" => vec![at(Op::Ge, floor)],
        "<" => vec![at(Op::Lt, floor)],
        ">" if v.is_full() => vec![at(Op::Gt, floor)],
        ">" => match v.ceiling() {
            Some(ceiling) => vec![at(Op::Ge, ceiling)],
            // Above everything: nothing matches.
            None => vec![at(Op::Lt, Version::release((0, 0, 0)))],
        },
        "<=" | "=<" => upper_inclusive(v),
        "~" | "~>" => {
            let ceiling = match (v.major, v.minor) {
                (Some(major), None) => (major.checked_add(1).ok_or_else(overflow)?, 0, 0),
                (Some(major), Some(minor)) => {
                    (major, minor.checked_add(1).ok_or_else(overflow)?, 0)
                }
                (None, _) => return Ok(vec![at(Op::Ge, Version::release((0, 0, 0)))]),
            };
            vec![at(Op::Ge, floor), at(Op::Lt, Version::release(ceiling))]
        }
        "^" => {
            let (major, minor, patch) = (v.major, v.minor, v.patch);
            let ceiling = match (major, minor, patch) {
                (None, _, _) => return Ok(vec![at(Op::Ge, Version::release((0, 0, 0)))]),
                (Some(0), Some(0), Some(p)) => (0, 0, p.checked_add(1).ok_or_else(overflow)?),
                (Some(0), Some(0), None) => (0, 1, 0),
                (Some(0), Some(m), _) => (0, m.checked_add(1).ok_or_else(overflow)?, 0),
                (Some(0), None, _) => (1, 0, 0),
                (Some(major), _, _) => (major.checked_add(1).ok_or_else(overflow)?, 0, 0),
            };
            vec![at(Op::Ge, floor), at(Op::Lt, Version::release(ceiling))]
        }
        other => return Err(format!("unknown operator {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_versions_only_when_fully_written() {
        let cases = [
            ("1.2.3", Some("1.2.3")),
            ("v1.2.3", Some("1.2.3")),
            ("1.2.3-rc.1", Some("1.2.3-rc.1")),
            ("1.2.3+build.5", Some("1.2.3")),
            ("1.2.3-beta+exp.sha.5114f85", Some("1.2.3-beta")),
            ("1.2", None),
            ("1", None),
            ("1234567", None),
            ("latest", None),
            ("01.2.3", None),
            ("1.2.3-01", None),
            ("1.2.3.4", None),
            ("1.2.3-", None),
            ("1.2.3+", None),
            ("99999999999999999999.0.0", None),
            ("sha256-abc.sig", None),
            ("V1.2.3", None),
            ("", None),
        ];
        for (tag, expected) in cases {
            assert_eq!(
                Version::parse_tag(tag).map(|v| v.to_string()).as_deref(),
                expected,
                "{tag}"
            );
        }
    }

    #[test]
    fn versions_order_by_semver_precedence() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.10.0",
            "2.0.0",
        ];
        let versions: Vec<Version> = ordered
            .iter()
            .map(|t| Version::parse_tag(t).unwrap())
            .collect();
        for pair in versions.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn ranges_as_flux_and_helm_users_write_them() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "^1.2",
                &["1.2.0", "1.9.9", "v1.3.0"],
                &["1.1.9", "2.0.0", "1.3.0-rc.1"],
            ),
            ("^1.2.3", &["1.2.3", "1.99.0"], &["1.2.2", "2.0.0"]),
            ("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2"]),
            ("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2"]),
            ("^0", &["0.0.0", "0.9.9"], &["1.0.0"]),
            ("~1.4", &["1.4.0", "1.4.9"], &["1.5.0", "1.3.9"]),
            ("~1.4.2", &["1.4.2", "1.4.9"], &["1.4.1", "1.5.0"]),
            ("~>1", &["1.0.0", "1.9.0"], &["2.0.0"]),
            (">=1.0.0 <2.0.0", &["1.0.0", "1.5.0"], &["2.0.0", "0.9.9"]),
            (">=1.0, <2.0", &["1.0.0", "1.99.99"], &["2.0.0"]),
            (">= 1.0 < 2", &["1.2.0"], &["2.0.0"]),
            ("1.2.x", &["1.2.0", "1.2.99"], &["1.3.0"]),
            ("1.*", &["1.0.0", "1.99.0"], &["2.0.0"]),
            ("*", &["0.0.1", "99.0.0"], &["1.0.0-rc.1"]),
            ("1.2 - 1.4", &["1.2.0", "1.4.99"], &["1.5.0", "1.1.9"]),
            ("1.2.3 - 1.4.5", &["1.2.3", "1.4.5"], &["1.4.6"]),
            ("^1.0 || ^3.0", &["1.5.0", "3.1.0"], &["2.0.0"]),
            (">1.2", &["1.3.0"], &["1.2.9", "1.2.0"]),
            (">1.2.3", &["1.2.4"], &["1.2.3"]),
            ("<=1.2", &["1.2.9"], &["1.3.0"]),
            ("<1.2", &["1.1.9"], &["1.2.0"]),
            ("=1.2.3", &["1.2.3", "v1.2.3"], &["1.2.4"]),
            ("1.2.3", &["1.2.3"], &["1.2.4"]),
            ("!=1.2.3 ^1", &["1.2.4"], &["1.2.3"]),
            ("v2.x", &["2.3.4"], &["3.0.0"]),
            (
                ">=2.0.0-rc.0 <3",
                &["2.0.0-rc.1", "2.0.0", "2.5.0"],
                &["2.1.0-rc.1", "3.0.0-rc.1"],
            ),
            ("2.0.0-rc.2", &["2.0.0-rc.2"], &["2.0.0-rc.1", "2.0.0"]),
        ];
        for (range, yes, no) in cases {
            let parsed = Range::parse(range).unwrap_or_else(|e| panic!("{e}"));
            for tag in *yes {
                let v = Version::parse_tag(tag).unwrap();
                assert!(parsed.matches(&v), "{range} should match {tag}");
            }
            for tag in *no {
                let v = Version::parse_tag(tag).unwrap();
                assert!(!parsed.matches(&v), "{range} should not match {tag}");
            }
        }
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        let cases = [
            ("", "empty alternative"),
            ("^1 ||", "empty alternative"),
            (">=", "without a version"),
            ("^1.x.3", "a number after a wildcard"),
            ("1.2.3.4", "is not a version"),
            ("latest", "is not a version"),
            ("!=1.2", "needs a full version"),
            ("1.2-rc.1", "needs MAJOR.MINOR.PATCH"),
            ("^18446744073709551615", "too large"),
        ];
        for (range, expected) in cases {
            let err = Range::parse(range).unwrap_err().to_string();
            assert!(err.contains(expected), "{range:?}: {err}");
        }
        assert!(
            Range::parse(&"1".repeat(300))
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
    }
}
