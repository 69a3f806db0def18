//! The identity a keyless signature must carry: the OIDC issuer Fulcio
//! recorded in the certificate and the subject it certified (a SAN), each
//! named exactly or by a regular expression.
//!
//! Regular expressions behave as cosign's `--certificate-identity-regexp`
//! and `--certificate-oidc-issuer-regexp`: unanchored (a match anywhere in
//! the value counts; write `^…$` to match the whole value), RE2 syntax. They
//! are compiled once, with a size limit, when the policy is planned: a bad
//! pattern is an invalid spec, not a refused image.

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::api::KeylessSignature;

/// Largest compiled pattern accepted (the mirror's tag filters use the same).
const MAX_COMPILED_PATTERN: usize = 1 << 20;

/// How one value (issuer or subject) is named.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// Exactly this value.
    Exact(String),
    /// A value this expression matches.
    Regex(Regex),
}

impl Pattern {
    /// Whether `value` satisfies the pattern.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == value,
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for Pattern {}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(exact) => write!(f, "{exact}"),
            Self::Regex(regex) => write!(f, "matching /{}/", regex.as_str()),
        }
    }
}

/// An accepted signer: an issuer and a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The OIDC issuer (Fulcio issuer extension).
    pub issuer: Pattern,
    /// The certified identity (a SAN of the certificate).
    pub subject: Pattern,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "issuer {}, subject {}", self.issuer, self.subject)
    }
}

/// Why a keyless policy cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Neither or both of the exact value and the expression are set.
    #[error("set exactly one of {exact} and {regex}")]
    NotExactlyOne {
        /// The exact field's name.
        exact: &'static str,
        /// The expression field's name.
        regex: &'static str,
    },
    /// An expression does not compile.
    #[error("{field} is not a valid regular expression: {message}")]
    BadPattern {
        /// The field's name.
        field: &'static str,
        /// The compiler's message.
        message: String,
    },
}

impl Identity {
    /// The identity `spec` names; field names in errors are relative to it.
    pub fn from_spec(spec: &KeylessSignature) -> Result<Self, IdentityError> {
        Ok(Self {
            issuer: pattern(
                spec.issuer.as_deref(),
                spec.issuer_reg_exp.as_deref(),
                "issuer",
                "issuerRegExp",
            )?,
            subject: pattern(
                spec.subject.as_deref(),
                spec.subject_reg_exp.as_deref(),
                "subject",
                "subjectRegExp",
            )?,
        })
    }
}

fn pattern(
    exact: Option<&str>,
    regex: Option<&str>,
    exact_field: &'static str,
    regex_field: &'static str,
) -> Result<Pattern, IdentityError> {
    match (exact, regex) {
        (Some(exact), None) if !exact.is_empty() => Ok(Pattern::Exact(exact.to_string())),
        (None, Some(regex)) if !regex.is_empty() => RegexBuilder::new(regex)
            .size_limit(MAX_COMPILED_PATTERN)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| IdentityError::BadPattern {
                field: regex_field,
                message: e.to_string(),
            }),
        _ => Err(IdentityError::NotExactlyOne {
            exact: exact_field,
            regex: regex_field,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(issuer: (&str, &str), subject: (&str, &str)) -> KeylessSignature {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        KeylessSignature {
            issuer: some(issuer.0),
            issuer_reg_exp: some(issuer.1),
            subject: some(subject.0),
            subject_reg_exp: some(subject.1),
            trusted_root: None,
        }
    }

    const GITHUB: &str = "https://token.actions.githubusercontent.com";
    const WORKFLOW: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

    #[test]
    fn exact_values_and_expressions_match_as_cosign_matches_them() {
        let cases = [
            ((GITHUB, ""), (WORKFLOW, ""), GITHUB, WORKFLOW, true),
            (
                (GITHUB, ""),
                (WORKFLOW, ""),
                GITHUB,
                "https://github.com/acme/app",
                false,
            ),
            (
                (GITHUB, ""),
                (WORKFLOW, ""),
                "https://accounts.google.com",
                WORKFLOW,
                false,
            ),
            // Unanchored, as cosign's --certificate-identity-regexp.
            (
                ("", "githubusercontent"),
                ("", "acme/app/"),
                GITHUB,
                WORKFLOW,
                true,
            ),
            (
                ("", r"^https://token\.actions\.githubusercontent\.com$"),
                ("", r"^https://github\.com/acme/.+@refs/tags/v"),
                GITHUB,
                WORKFLOW,
                false,
            ),
            (
                (GITHUB, ""),
                (
                    "",
                    r"^https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/heads/main$",
                ),
                GITHUB,
                WORKFLOW,
                true,
            ),
        ];
        for (issuer, subject, found_issuer, found_subject, expected) in cases {
            let identity = Identity::from_spec(&spec(issuer, subject)).unwrap();
            assert_eq!(
                identity.issuer.matches(found_issuer) && identity.subject.matches(found_subject),
                expected,
                "{identity} against {found_issuer} {found_subject}"
            );
        }
    }

    #[test]
    fn a_bad_or_ambiguous_policy_names_the_field() {
        let cases = [
            (
                spec((GITHUB, ""), ("", "(unclosed")),
                "subjectRegExp is not a valid regular expression",
            ),
            (
                spec(("", "[z-a]"), (WORKFLOW, "")),
                "issuerRegExp is not a valid regular expression",
            ),
            (
                spec((GITHUB, "x"), (WORKFLOW, "")),
                "set exactly one of issuer and issuerRegExp",
            ),
            (
                spec((GITHUB, ""), ("", "")),
                "set exactly one of subject and subjectRegExp",
            ),
        ];
        for (spec, message) in cases {
            let err = Identity::from_spec(&spec).unwrap_err().to_string();
            assert!(err.contains(message), "{err} lacks {message}");
        }
        let identity = Identity::from_spec(&spec((GITHUB, ""), ("", "^a$"))).unwrap();
        assert_eq!(
            identity.to_string(),
            format!("issuer {GITHUB}, subject matching /^a$/")
        );
    }
}
