//! Keyless (Sigstore) signatures: a signature is trusted for the identity in
//! its certificate, not for a key.
//!
//! A signature made with a short-lived Fulcio certificate is accepted when
//! all of these hold, checked offline against a [`TrustedRoot`] the user
//! provides (no Fulcio, Rekor or TUF request is made):
//!
//! 1. the signature verifies with the certificate's key;
//! 2. a transparency-log entry ([`tlog::LogEntry`]) of a log of the root
//!    promises it saw this signature and certificate at its integrated time,
//!    and that time falls within the certificate's validity — the
//!    certificate lives minutes, the proof that it was used while valid is
//!    the log's;
//! 3. the certificate chains to a certificate authority of the root that was
//!    valid at that time;
//! 4. the certificate's OIDC issuer (Fulcio extension) and one of its SANs
//!    match an accepted [`Identity`].
//!
//! [`KeylessVerifier::check`] is pure: the signed material and the current
//! time (only used to word the refusal of an expired certificate) go in, an
//! accepted identity or a [`Refusal`] naming what did not match comes out.
//! Reading signatures from registries is cosign's module's job
//! ([`crate::verify::cosign`]), which calls this for candidates that carry
//! a certificate.

pub mod certificate;
pub mod identity;
pub mod root;
pub mod tlog;

use std::fmt;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

pub use certificate::SigningCertificate;
pub use identity::{Identity, IdentityError, Pattern};
pub use root::{MAX_TRUSTED_ROOT, RootError, TrustedRoot};
pub use tlog::{EntryProblem, LogEntry};

/// Accepts signatures by any of `identities` under `root`.
#[derive(Clone, Debug)]
pub struct KeylessVerifier {
    /// The accepted identities (one from an object; several from the floor).
    pub identities: Vec<Identity>,
    /// The root certificates and logs.
    pub root: Arc<TrustedRoot>,
}

impl PartialEq for KeylessVerifier {
    fn eq(&self, other: &Self) -> bool {
        self.identities == other.identities && self.root.digest == other.root.digest
    }
}

impl Eq for KeylessVerifier {}

/// A keyless signature as found next to an image.
#[derive(Clone, Copy, Debug)]
pub struct SignedMaterial<'a> {
    /// The signed bytes (a simple-signing payload, or a DSSE envelope's PAE).
    pub payload: &'a [u8],
    /// For a DSSE envelope, its payload (what a `dsse` log entry hashes).
    pub dsse_payload: Option<&'a [u8]>,
    /// The raw ASN.1 ECDSA signature.
    pub signature: &'a [u8],
    /// The signing certificate, PEM.
    pub certificate: &'a str,
    /// Intermediate certificates presented with it, PEM.
    pub chain: Option<&'a str>,
    /// The transparency-log entry, when one came with it.
    pub log_entry: Option<&'a Result<LogEntry, EntryProblem>>,
}

/// A signature accepted for an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// `<issuer> <subject>` as the certificate names them.
    pub identity: String,
    /// When the log integrated it.
    pub signed_at: Timestamp,
}

/// Why a keyless signature is refused; the text names what did not match.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The certificate cannot be read.
    #[error("{0}")]
    Certificate(String),
    /// The signature was not made with the certificate's key.
    #[error("the signature does not verify with its certificate's key")]
    NotByCertificate,
    /// No log entry came with the signature.
    #[error(
        "no transparency-log entry proves when it was signed (its certificate is valid from \
         {not_before} to {not_after}{})",
        if *expired { ", and has expired" } else { "" }
    )]
    NoLogEntry {
        /// notBefore.
        not_before: Timestamp,
        /// notAfter.
        not_after: Timestamp,
        /// Whether notAfter has passed.
        expired: bool,
    },
    /// The log entry does not prove the signing time.
    #[error("{0}")]
    LogEntry(#[from] EntryProblem),
    /// Logged outside the certificate's validity.
    #[error(
        "it was logged at {signed_at}, outside its certificate's validity ({not_before} to \
         {not_after})"
    )]
    OutsideValidity {
        /// The integrated time.
        signed_at: Timestamp,
        /// notBefore.
        not_before: Timestamp,
        /// notAfter.
        not_after: Timestamp,
    },
    /// No certificate authority of the root issued the certificate.
    #[error(
        "its certificate, issued by {issued_by:?}, does not chain to a certificate authority of \
         the trusted root valid at {signed_at} ({authorities}): {detail}"
    )]
    OtherAuthority {
        /// The certificate's issuer DN.
        issued_by: String,
        /// The signing time.
        signed_at: Timestamp,
        /// The root's authorities, named.
        authorities: String,
        /// The path builder's last error.
        detail: String,
    },
    /// The certificate is not for code signing.
    #[error("its certificate does not allow code signing (extended key usage 1.3.6.1.5.5.7.3.3)")]
    NotForCodeSigning,
    /// The certificate names no OIDC issuer.
    #[error("its certificate has no Fulcio OIDC issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1)")]
    NoIssuer,
    /// Another issuer.
    #[error("its certificate names issuer {found}, not {wanted}")]
    OtherIssuer {
        /// The certificate's issuer.
        found: String,
        /// The accepted issuers.
        wanted: Wanted,
    },
    /// Another subject.
    #[error("its certificate names subject {found} (issuer {issuer}), not {wanted}")]
    OtherSubject {
        /// The certificate's SANs.
        found: String,
        /// The certificate's issuer (which matched).
        issuer: String,
        /// The accepted subjects for that issuer.
        wanted: Wanted,
    },
}

/// The accepted values of one field, for a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted(pub Vec<String>);

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0[..] {
            [one] => f.write_str(one),
            many => write!(f, "any of {}", many.join(", ")),
        }
    }
}

impl KeylessVerifier {
    /// What identifies this verifier in verdict fingerprints and messages.
    pub fn trusted(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| format!("{i} (trusted root {})", self.root.digest))
            .collect()
    }

    /// Checks one keyless signature; `now` words the refusal of an expired certificate.
    pub fn check(&self, signed: &SignedMaterial<'_>, now: Timestamp) -> Result<Accepted, Refusal> {
        let cert =
            SigningCertificate::from_pem(signed.certificate).map_err(Refusal::Certificate)?;
        if !cert.verifies(signed.payload, signed.signature) {
            return Err(Refusal::NotByCertificate);
        }
        let Some(entry) = signed.log_entry else {
            return Err(Refusal::NoLogEntry {
                not_before: cert.not_before,
                not_after: cert.not_after,
                expired: now > cert.not_after,
            });
        };
        let entry = entry.as_ref().map_err(|e| Refusal::LogEntry(e.clone()))?;
        entry.verify(&self.root)?;
        entry.records(
            signed.payload,
            signed.dsse_payload,
            signed.signature,
            cert.der(),
        )?;
        let signed_at = entry.integrated_at()?;
        if !cert.valid_at(signed_at) {
            return Err(Refusal::OutsideValidity {
                signed_at,
                not_before: cert.not_before,
                not_after: cert.not_after,
            });
        }
        if !cert.code_signing {
            return Err(Refusal::NotForCodeSigning);
        }
        self.chains(&cert, signed.chain, signed_at)?;
        let issuer = cert.issuer.clone().ok_or(Refusal::NoIssuer)?;
        let for_issuer: Vec<&Identity> = self
            .identities
            .iter()
            .filter(|i| i.issuer.matches(&issuer))
            .collect();
        if for_issuer.is_empty() {
            return Err(Refusal::OtherIssuer {
                found: issuer,
                wanted: Wanted(
                    self.identities
                        .iter()
                        .map(|i| i.issuer.to_string())
                        .collect(),
                ),
            });
        }
        let Some(subject) = cert
            .subjects
            .iter()
            .find(|s| for_issuer.iter().any(|i| i.subject.matches(s)))
        else {
            return Err(Refusal::OtherSubject {
                found: if cert.subjects.is_empty() {
                    "nothing (no SAN)".into()
                } else {
                    cert.subjects.join(", ")
                },
                issuer,
                wanted: Wanted(for_issuer.iter().map(|i| i.subject.to_string()).collect()),
            });
        };
        Ok(Accepted {
            identity: format!("{issuer} {subject}"),
            signed_at,
        })
    }

    fn chains(
        &self,
        cert: &SigningCertificate,
        chain: Option<&str>,
        signed_at: Timestamp,
    ) -> Result<(), Refusal> {
        let presented = chain.map(certificate::pem_chain).unwrap_or_default();
        let mut detail = String::from("no authority was valid then");
        for authority in &self.root.authorities {
            if !authority.valid_for.contains(signed_at) {
                continue;
            }
            match cert.chains_to(authority, &presented, signed_at) {
                Ok(()) => return Ok(()),
                Err(e) => detail = e,
            }
        }
        Err(Refusal::OtherAuthority {
            issued_by: cert.issued_by.clone(),
            signed_at,
            authorities: self
                .root
                .authorities
                .iter()
                .map(|a| a.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            detail,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Against fixed material from `tests/fixtures/keyless/sigstore.py
    //! make-fixtures`: a root with one authority (intermediate + root) and
    //! one log; a certificate valid for ten minutes from 2024-05-01T11:55Z,
    //! its signature logged at 12:00Z; the same from another authority; the
    //! entry signed by a log outside the root; an entry logged an hour late.

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keyless");
    const GITHUB: &str = "https://token.actions.githubusercontent.com";
    const WORKFLOW: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn root() -> Arc<TrustedRoot> {
        Arc::new(TrustedRoot::from_json(fixture("trusted_root.json").as_bytes()).unwrap())
    }

    fn identity(issuer: Pattern, subject: Pattern) -> Identity {
        Identity { issuer, subject }
    }

    /// A verifier for one exact identity under the fixture root.
    pub(crate) fn verifier(issuer: &str, subject: &str) -> KeylessVerifier {
        KeylessVerifier {
            identities: vec![identity(
                Pattern::Exact(issuer.into()),
                Pattern::Exact(subject.into()),
            )],
            root: root(),
        }
    }

    /// What a signature layer carries, by fixture names.
    struct Layer {
        certificate: &'static str,
        signature: &'static str,
        chain: Option<&'static str>,
        entry: Option<Result<LogEntry, EntryProblem>>,
    }

    fn layer(certificate: &'static str, signature: &'static str, entry: Option<&str>) -> Layer {
        Layer {
            certificate,
            signature,
            chain: Some("leaf.chain.pem"),
            entry: entry.map(|name| LogEntry::from_cosign_annotation(&fixture(name))),
        }
    }

    fn check(verifier: &KeylessVerifier, layer: &Layer) -> Result<Accepted, Refusal> {
        let payload = fixture("payload.json");
        let signature = root::decode_base64(&fixture(layer.signature)).unwrap();
        let certificate = fixture(layer.certificate);
        let chain = layer.chain.map(fixture);
        let now = "2026-12-07T00:00:00Z".parse().unwrap();
        verifier.check(
            &SignedMaterial {
                payload: payload.as_bytes(),
                dsse_payload: None,
                signature: &signature,
                certificate: &certificate,
                chain: chain.as_deref(),
                log_entry: layer.entry.as_ref(),
            },
            now,
        )
    }

    fn good() -> Layer {
        layer("leaf.pem", "leaf.sig", Some("leaf.bundle.json"))
    }

    #[test]
    fn the_right_identity_is_accepted_at_the_logged_time_though_the_certificate_expired() {
        let regex = |r: &str| Pattern::Regex(regex::Regex::new(r).unwrap());
        let verifiers = [
            verifier(GITHUB, WORKFLOW),
            KeylessVerifier {
                identities: vec![identity(
                    regex(r"^https://token\.actions\.githubusercontent\.com$"),
                    regex(r"^https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@"),
                )],
                root: root(),
            },
            // The floor's several identities: any one suffices.
            KeylessVerifier {
                identities: vec![
                    identity(
                        Pattern::Exact("https://accounts.google.com".into()),
                        regex("."),
                    ),
                    identity(Pattern::Exact(GITHUB.into()), regex("acme/app")),
                ],
                root: root(),
            },
        ];
        for verifier in verifiers {
            assert_eq!(
                check(&verifier, &good()),
                Ok(Accepted {
                    identity: format!("{GITHUB} {WORKFLOW}"),
                    signed_at: "2024-05-01T12:00:00Z".parse().unwrap(),
                }),
                "{:?}",
                verifier.identities
            );
        }
        // Without the presented chain, the root's own intermediate completes the path.
        let mut without_chain = good();
        without_chain.chain = None;
        assert!(check(&verifier(GITHUB, WORKFLOW), &without_chain).is_ok());
    }

    #[test]
    fn each_refusal_names_what_did_not_match() {
        let mut tampered = good();
        if let Some(Ok(entry)) = &mut tampered.entry {
            entry.integrated_time += 1;
        }
        let mut other_ca = layer(
            "other-ca-leaf.pem",
            "other-ca-leaf.sig",
            Some("other-ca-leaf.bundle.json"),
        );
        other_ca.chain = Some("other-ca-leaf.chain.pem");
        let cases = [
            (
                "another subject",
                verifier(
                    GITHUB,
                    "https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main",
                ),
                good(),
                &[
                    "names subject https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
                    "not https://github.com/acme/other/",
                ][..],
            ),
            (
                "another issuer",
                verifier("https://accounts.google.com", WORKFLOW),
                good(),
                &[
                    "names issuer https://token.actions.githubusercontent.com",
                    "not https://accounts.google.com",
                ],
            ),
            (
                "an expired certificate without log entry",
                verifier(GITHUB, WORKFLOW),
                layer("leaf.pem", "leaf.sig", None),
                &[
                    "no transparency-log entry proves when it was signed",
                    "valid from 2024-05-01T11:55:00Z to 2024-05-01T12:05:00Z",
                    "has expired",
                ],
            ),
            (
                "a log entry signed by a key outside the root",
                verifier(GITHUB, WORKFLOW),
                layer("leaf.pem", "leaf.sig", Some("leaf-other-log.bundle.json")),
                &["signed by log", "a key outside the trusted root"],
            ),
            (
                "a log entry changed after the log signed it",
                verifier(GITHUB, WORKFLOW),
                tampered,
                &["does not verify with the key of log https://rekor.test.invalid"],
            ),
            (
                "a chain to another authority",
                verifier(GITHUB, WORKFLOW),
                other_ca,
                &[
                    "issued by \"CN=other intermediate,O=image-promoter tests\"",
                    "does not chain to a certificate authority of the trusted root",
                    "https://fulcio.test.invalid",
                ],
            ),
            (
                "logged after the certificate expired",
                verifier(GITHUB, WORKFLOW),
                layer("leaf.pem", "leaf.sig", Some("leaf-late.bundle.json")),
                &["logged at 2024-05-01T12:55:00Z, outside its certificate's validity"],
            ),
            (
                "the entry of another signature",
                verifier(GITHUB, WORKFLOW),
                layer("leaf.pem", "leaf.sig", Some("other-ca-leaf.bundle.json")),
                &["records another signature"],
            ),
            (
                "a signature the certificate's key did not make",
                verifier(GITHUB, WORKFLOW),
                layer("leaf.pem", "other-ca-leaf.sig", Some("leaf.bundle.json")),
                &["does not verify with its certificate's key"],
            ),
        ];
        for (case, verifier, layer, expected) in cases {
            let refusal = check(&verifier, &layer).expect_err(case).to_string();
            for part in expected {
                assert!(refusal.contains(part), "{case}: {refusal:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn a_root_without_authorities_or_logs_or_with_bad_keys_is_refused() {
        let good: serde_json::Value = serde_json::from_str(&fixture("trusted_root.json")).unwrap();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut root = good.clone();
            f(&mut root);
            serde_json::to_vec(&root).unwrap()
        };
        let cases = [
            (
                edit(&|r| r["certificateAuthorities"] = serde_json::json!([])),
                "no certificateAuthorities",
            ),
            (edit(&|r| r["tlogs"] = serde_json::json!([])), "no tlogs"),
            (
                edit(&|r| {
                    r["tlogs"][0]["publicKey"]["keyDetails"] =
                        "PKIX_RSA_PKCS1V15_2048_SHA256".into()
                }),
                "tlogs[0].publicKey.keyDetails",
            ),
            (
                edit(&|r| r["certificateAuthorities"][0]["validFor"]["start"] = "yesterday".into()),
                "certificateAuthorities[0].validFor",
            ),
            (
                edit(&|r| {
                    r["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] =
                        "AAAA".into()
                }),
                "certificates[0] is not an X.509 certificate",
            ),
            (b"{".to_vec(), "not a usable Sigstore trusted_root.json"),
        ];
        for (bytes, message) in cases {
            let err = TrustedRoot::from_json(&bytes).unwrap_err().to_string();
            assert!(err.contains(message), "{err} lacks {message}");
        }
        let root = root();
        assert_eq!(root.authorities.len(), 1);
        assert_eq!(root.authorities[0].name, "https://fulcio.test.invalid");
        assert!(root.digest.starts_with("sha256:"));
    }

    #[test]
    fn an_authority_outside_its_validity_issues_nothing() {
        let mut json: serde_json::Value =
            serde_json::from_str(&fixture("trusted_root.json")).unwrap();
        json["certificateAuthorities"][0]["validFor"]["end"] = "2024-01-01T00:00:00Z".into();
        let verifier = KeylessVerifier {
            root: Arc::new(TrustedRoot::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()),
            ..verifier(GITHUB, WORKFLOW)
        };
        let refusal = check(&verifier, &good()).unwrap_err().to_string();
        assert!(refusal.contains("no authority was valid then"), "{refusal}");
    }
}
