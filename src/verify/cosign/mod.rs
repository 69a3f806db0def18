//! cosign signature verification, public keys first, keyless later.
//!
//! A promotion may require that the source image carries a cosign signature
//! made with a trusted key. The work splits in three:
//!
//! 1. [`fetch_signatures`] gathers the signature candidates of the pinned
//!    digest through a [`SignatureStore`] the registry client implements
//!    (the `sha256-<hex>.sig` tag and OCI 1.1 referrers, see [`layout`]);
//! 2. [`verify`] — pure — checks each candidate against the [`Verifier`]:
//!    the ECDSA P-256 signature, then that the signed payload names the
//!    pinned digest;
//! 3. the policy ([`crate::verify::policy`]) turns the [`SignatureOutcome`]
//!    into `SignatureMissing`, `SignatureInvalid` or evidence (the key id).
//!
//! A signature on a different platform's child manifest is a signature of
//! that child, not of the index that was pinned: it does not count.
//! Keyless signatures (a Fulcio certificate, a Rekor entry) are checked by
//! a [`Verifier::Keyless`] through [`crate::verify::keyless`], from the
//! certificate, chain and Rekor bundle annotations of a simple-signing layer,
//! or from the certificate, DSSE envelope and log entries of a Sigstore
//! bundle ([`crate::verify::bundle`], cosign `--new-bundle-format`).

mod envelope;
pub(crate) use envelope::pre_authentication_encoding;
mod fetch;
mod key;
pub mod layout;
pub mod registry;

pub use fetch::{
    FetchError, MAX_SIGNATURE_BLOB, SignatureCandidate, SignatureContent, SignatureStore,
    fetch_signatures,
};
pub use key::{KeyError, PublicKey};
pub use layout::SignatureLayout;

use envelope::Check;
use k8s_openapi::jiff::Timestamp;

use crate::verify::bundle;
use crate::verify::keyless::{KeylessVerifier, LogEntry, SignedMaterial};

/// What a signature must have been made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verifier {
    /// A signature by any of these keys (several, so keys can be rotated).
    PublicKeys(Vec<PublicKey>),
    /// A keyless signature by one of these identities, under this trusted root.
    Keyless(KeylessVerifier),
}

impl Verifier {
    /// A verifier for one PEM public key.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::PublicKeys(vec![PublicKey::from_pem(pem)?]))
    }

    /// The ids of the trusted keys (`sha256:<hex>`), or the keyless identity.
    pub fn trusted(&self) -> Vec<String> {
        match self {
            Self::PublicKeys(keys) => keys.iter().map(|k| k.key_id().to_string()).collect(),
            Self::Keyless(keyless) => keyless.trusted(),
        }
    }
}

/// The result of checking an image's signatures against a [`Verifier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureOutcome {
    /// A trusted key (or keyless identity) signed the pinned digest.
    Verified {
        /// The key that verified (`sha256:<hex>` of its DER form), or the
        /// keyless identity (`<issuer> <subject>` as the certificate names them).
        key_id: String,
        /// Digest of the signature manifest holding the signature.
        signature_digest: String,
        /// Where that manifest was found.
        layout: SignatureLayout,
    },
    /// The image has no signature at all.
    Missing,
    /// The image has signatures, but none by a trusted key for the pinned digest.
    Invalid {
        /// The trusted key ids.
        trusted: Vec<String>,
        /// What each signature was, e.g. "signed by an untrusted key".
        problems: Vec<String>,
    },
    /// The verifier asks for what this version cannot check (keyless).
    Unsupported {
        /// What is not supported.
        what: String,
    },
}

/// Checks the `candidates` gathered for the image `digest` against `verifier`.
pub fn verify(
    verifier: &Verifier,
    digest: &str,
    candidates: &[SignatureCandidate],
) -> SignatureOutcome {
    verify_at(verifier, digest, candidates, Timestamp::now())
}

/// [`verify`] at `now` (which only words the refusal of an expired keyless certificate).
pub fn verify_at(
    verifier: &Verifier,
    digest: &str,
    candidates: &[SignatureCandidate],
    now: Timestamp,
) -> SignatureOutcome {
    let keys = match verifier {
        Verifier::PublicKeys(keys) => keys.as_slice(),
        Verifier::Keyless(_) => &[],
    };
    if candidates.is_empty() {
        return SignatureOutcome::Missing;
    }
    let mut problems = Vec::new();
    for candidate in candidates {
        let check = match (&candidate.content, verifier) {
            (_, Verifier::Keyless(keyless)) => check_keyless(keyless, digest, candidate, now),
            (
                SignatureContent::SimpleSigning {
                    payload, signature, ..
                },
                _,
            ) => envelope::check_simple_signing(keys, digest, payload, signature),
            (SignatureContent::Bundle(bundle), _) => envelope::check_bundle(keys, digest, bundle),
            (SignatureContent::Unusable(problem), _) => Check::Unusable(problem.clone()),
        };
        let problem = match check {
            Check::Verified { key_id } => {
                return SignatureOutcome::Verified {
                    key_id,
                    signature_digest: candidate.manifest_digest.clone(),
                    layout: candidate.layout,
                };
            }
            Check::NotTrusted => {
                "not made by a trusted key, or the payload changed after signing".to_string()
            }
            Check::OtherImage { key_id, signed } if key_id.starts_with("sha256:") => {
                format!("made by key {key_id} but for {signed}")
            }
            Check::OtherImage { key_id, signed } => {
                format!("made by {key_id} but for {signed}")
            }
            Check::Unusable(problem) => problem,
        };
        problems.push(format!(
            "{} ({}): {problem}",
            short_digest(&candidate.manifest_digest),
            candidate.layout
        ));
    }
    problems.dedup();
    SignatureOutcome::Invalid {
        trusted: verifier.trusted(),
        problems,
    }
}

/// One candidate against a keyless verifier: a simple-signing layer with
/// its certificate and Rekor bundle annotations.
fn check_keyless(
    keyless: &KeylessVerifier,
    digest: &str,
    candidate: &SignatureCandidate,
    now: Timestamp,
) -> Check {
    let (payload, signature, certificate, chain, log_entry) = match &candidate.content {
        SignatureContent::SimpleSigning {
            payload,
            signature,
            certificate: Some(certificate),
            chain,
            log_entry,
        } => (payload, signature, certificate, chain, log_entry),
        SignatureContent::SimpleSigning { .. } => {
            return Check::Unusable(
                "made with a key, without a certificate: not a keyless signature".into(),
            );
        }
        SignatureContent::Bundle(bytes) => {
            return check_keyless_bundle(keyless, digest, bytes, now);
        }
        SignatureContent::Unusable(problem) => return Check::Unusable(problem.clone()),
    };
    let Some(signature) = envelope::decode_base64(signature) else {
        return Check::Unusable("the signature annotation is not base64".into());
    };
    let entry = log_entry.as_deref().map(LogEntry::from_cosign_annotation);
    let signed = SignedMaterial {
        payload,
        dsse_payload: None,
        signature: &signature,
        certificate,
        chain: chain.as_deref(),
        log_entry: entry.as_ref(),
    };
    let accepted = match keyless.check(&signed, now) {
        Ok(accepted) => accepted,
        Err(refusal) => return Check::Unusable(refusal.to_string()),
    };
    match envelope::signed_image(payload) {
        Ok(signed) if signed == digest => Check::Verified {
            key_id: accepted.identity,
        },
        Ok(signed) => Check::OtherImage {
            key_id: accepted.identity,
            signed,
        },
        Err(problem) => Check::Unusable(problem),
    }
}

/// A Sigstore bundle (cosign `--new-bundle-format`) against a keyless
/// verifier: its certificate, the DSSE envelope's one signature over the
/// PAE, and its log entries (any one that proves the signing time suffices).
fn check_keyless_bundle(
    keyless: &KeylessVerifier,
    digest: &str,
    bytes: &[u8],
    now: Timestamp,
) -> Check {
    let bundle = match bundle::parse(bytes) {
        Ok(bundle) => bundle,
        Err(err) => return Check::Unusable(err.to_string()),
    };
    let Some((leaf, presented)) = bundle.material.certificates() else {
        return Check::Unusable(
            "a Sigstore bundle made with a key, without a certificate: not a keyless signature"
                .into(),
        );
    };
    let envelope = match bundle::envelope(&bundle) {
        Ok(envelope) => envelope,
        Err(problem) => return Check::Unusable(problem.into()),
    };
    let [signature] = envelope.signatures.as_slice() else {
        return Check::Unusable(format!(
            "a DSSE envelope with {} signatures, where a keyless signature has one",
            envelope.signatures.len()
        ));
    };
    let pae = pre_authentication_encoding(&envelope.payload_type, &envelope.payload);
    let certificate = pem_certificate(leaf);
    let chain: String = presented.iter().map(|c| pem_certificate(c)).collect();
    let entries: Vec<_> = bundle.tlog_entries.iter().map(|e| e.log_entry()).collect();
    let check = |log_entry| {
        keyless.check(
            &SignedMaterial {
                payload: &pae,
                dsse_payload: Some(&envelope.payload),
                signature,
                certificate: &certificate,
                chain: (!chain.is_empty()).then_some(chain.as_str()),
                log_entry,
            },
            now,
        )
    };
    let mut result = None;
    for entry in &entries {
        let checked = check(Some(entry));
        let accepted = checked.is_ok();
        result = Some(checked);
        if accepted {
            break;
        }
    }
    match result.unwrap_or_else(|| check(None)) {
        Ok(accepted) => envelope::check_statement(accepted.identity, digest, envelope),
        Err(refusal) => Check::Unusable(refusal.to_string()),
    }
}

/// A DER certificate as PEM text (what the keyless verifier reads).
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// `sha256:0123456789ab` — enough to tell signature manifests apart in a message.
fn short_digest(digest: &str) -> &str {
    match digest.find(':') {
        Some(colon) => &digest[..digest.len().min(colon + 13)],
        None if digest.is_empty() => "index",
        None => digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cosign");
    const PAYLOAD: &str = "blob-2757c71823ad271a0f41fcb61f004d0522e03d0b2e6fce0f309ccb4a67e887f0";
    const BUNDLE: &str = "blob-d1cd115b244cb0aba5f7b56c804b1079c760c9d16ceed1a8e63d75ae7f1f5488";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn key(name: &str) -> PublicKey {
        PublicKey::from_pem(&fixture(name)).unwrap()
    }

    fn digest() -> String {
        String::from_utf8(fixture("image.digest")).unwrap()
    }

    /// The signature annotations of the .sig manifest: key a's, then key b's.
    fn signatures() -> Vec<String> {
        let manifest: serde_json::Value =
            serde_json::from_slice(&fixture("legacy.sig.manifest.json")).unwrap();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l["annotations"][layout::SIGNATURE_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn simple(payload: Vec<u8>, signature: &str) -> SignatureCandidate {
        SignatureCandidate {
            manifest_digest: "sha256:5151515151515151515151".into(),
            layout: SignatureLayout::SignatureTag,
            content: SignatureContent::SimpleSigning {
                payload,
                signature: signature.to_string(),
                certificate: None,
                chain: None,
                log_entry: None,
            },
        }
    }

    fn bundle(bytes: Vec<u8>) -> SignatureCandidate {
        SignatureCandidate {
            manifest_digest: "sha256:b0b0b0b0b0b0b0b0b0".into(),
            layout: SignatureLayout::Referrer,
            content: SignatureContent::Bundle(bytes),
        }
    }

    fn verifier(names: &[&str]) -> Verifier {
        Verifier::PublicKeys(names.iter().map(|n| key(n)).collect())
    }

    #[test]
    fn signatures_made_by_cosign_verify_with_their_key() {
        let [sig_a, sig_b] = signatures().try_into().unwrap();
        let cases = [
            (
                verifier(&["key-a.pub"]),
                simple(fixture(PAYLOAD), &sig_a),
                "key-a.pub",
            ),
            (
                verifier(&["key-b.pub"]),
                simple(fixture(PAYLOAD), &sig_b),
                "key-b.pub",
            ),
            (
                verifier(&["key-c.pub", "key-b.pub"]),
                simple(fixture(PAYLOAD), &sig_b),
                "key-b.pub",
            ),
            (
                verifier(&["key-a.pub"]),
                bundle(fixture(BUNDLE)),
                "key-a.pub",
            ),
        ];
        for (verifier, candidate, signer) in cases {
            let outcome = verify(&verifier, &digest(), std::slice::from_ref(&candidate));
            assert_eq!(
                outcome,
                SignatureOutcome::Verified {
                    key_id: key(signer).key_id().to_string(),
                    signature_digest: candidate.manifest_digest.clone(),
                    layout: candidate.layout,
                },
                "{signer}"
            );
        }
    }

    #[test]
    fn the_first_trusted_signature_among_several_wins() {
        let [sig_a, sig_b] = signatures().try_into().unwrap();
        let candidates = [
            simple(fixture(PAYLOAD), &sig_a),
            simple(fixture(PAYLOAD), &sig_b),
        ];
        let outcome = verify(&verifier(&["key-b.pub"]), &digest(), &candidates);
        assert!(
            matches!(&outcome, SignatureOutcome::Verified { key_id, .. } if key_id == key("key-b.pub").key_id()),
            "{outcome:?}"
        );
    }

    #[test]
    fn wrong_key_tampered_payload_and_another_digest_are_invalid() {
        let [sig_a, _] = signatures().try_into().unwrap();
        let tampered = String::from_utf8(fixture(PAYLOAD))
            .unwrap()
            .replace(
                "cosign container image signature",
                "cosign container image signaturf",
            )
            .into_bytes();
        let mut tampered_bundle: serde_json::Value =
            serde_json::from_slice(&fixture(BUNDLE)).unwrap();
        tampered_bundle["dsseEnvelope"]["payloadType"] = "application/json".into();
        let other_digest =
            "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let cases = [
            (
                verifier(&["key-c.pub"]),
                simple(fixture(PAYLOAD), &sig_a),
                digest(),
                "not made by a trusted key",
            ),
            (
                verifier(&["key-c.pub"]),
                bundle(fixture(BUNDLE)),
                digest(),
                "not made by a trusted key",
            ),
            (
                verifier(&["key-a.pub"]),
                simple(tampered, &sig_a),
                digest(),
                "not made by a trusted key",
            ),
            (
                verifier(&["key-a.pub"]),
                bundle(serde_json::to_vec(&tampered_bundle).unwrap()),
                digest(),
                "not made by a trusted key",
            ),
            (
                verifier(&["key-a.pub"]),
                simple(fixture(PAYLOAD), &sig_a),
                other_digest.to_string(),
                "but for sha256:611331e0",
            ),
            (
                verifier(&["key-a.pub"]),
                bundle(fixture(BUNDLE)),
                other_digest.to_string(),
                "but for sha256:611331e0",
            ),
            (
                verifier(&["key-a.pub"]),
                simple(fixture(PAYLOAD), "%%%"),
                digest(),
                "not base64",
            ),
        ];
        for (verifier, candidate, digest, problem) in cases {
            match verify(&verifier, &digest, &[candidate]) {
                SignatureOutcome::Invalid { trusted, problems } => {
                    assert_eq!(trusted, verifier.trusted());
                    assert_eq!(problems.len(), 1);
                    assert!(
                        problems[0].contains(problem),
                        "{problems:?} lacks {problem}"
                    );
                }
                other => panic!("expected Invalid ({problem}), got {other:?}"),
            }
        }
    }

    #[test]
    fn no_candidates_is_missing_and_a_key_signature_is_not_keyless() {
        assert_eq!(
            verify(&verifier(&["key-a.pub"]), &digest(), &[]),
            SignatureOutcome::Missing
        );
        let keyless = Verifier::Keyless(crate::verify::keyless::tests::verifier(
            "https://token.actions.githubusercontent.com",
            "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
        ));
        assert_eq!(verify(&keyless, &digest(), &[]), SignatureOutcome::Missing);
        let [sig_a, _] = signatures().try_into().unwrap();
        match verify(&keyless, &digest(), &[simple(fixture(PAYLOAD), &sig_a)]) {
            SignatureOutcome::Invalid { trusted, problems } => {
                assert_eq!(trusted, keyless.trusted());
                assert!(
                    problems[0].contains("not a keyless signature"),
                    "{problems:?}"
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// A key pair made for the test, to sign payloads cosign would not.
    struct Signer(aws_lc_rs::signature::EcdsaKeyPair);

    impl Signer {
        fn new() -> Self {
            use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
            Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
        }

        fn verifier(&self) -> Verifier {
            use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
            use aws_lc_rs::signature::KeyPair;
            let der: PublicKeyX509Der<'_> = self.0.public_key().as_der().unwrap();
            Verifier::PublicKeys(vec![PublicKey::from_der(der.as_ref()).unwrap()])
        }

        fn sign(&self, message: &[u8]) -> String {
            use base64::Engine as _;
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let signature = self.0.sign(&rng, message).unwrap();
            base64::engine::general_purpose::STANDARD.encode(signature.as_ref())
        }

        /// A bundle with a DSSE envelope over `statement`, signed over its PAE.
        fn bundle(&self, payload_type: &str, statement: &serde_json::Value) -> SignatureCandidate {
            use base64::Engine as _;
            let payload = serde_json::to_vec(statement).unwrap();
            let mut pae = format!(
                "DSSEv1 {} {payload_type} {} ",
                payload_type.len(),
                payload.len()
            )
            .into_bytes();
            pae.extend_from_slice(&payload);
            bundle(
                serde_json::to_vec(&serde_json::json!({
                    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                    "verificationMaterial": {"publicKey": {"hint": ""}},
                    "dsseEnvelope": {
                        "payload": base64::engine::general_purpose::STANDARD.encode(&payload),
                        "payloadType": payload_type,
                        "signatures": [{"sig": self.sign(&pae)}],
                    },
                }))
                .unwrap(),
            )
        }
    }

    #[test]
    fn trusted_signatures_over_other_payloads_are_not_image_signatures() {
        let signer = Signer::new();
        let statement = |predicate: &str| {
            serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"digest": {"sha256": digest().trim_start_matches("sha256:")}}],
                "predicateType": predicate,
            })
        };
        let other_type = br#"{"critical":{"identity":{},"image":{"docker-manifest-digest":"x"},"type":"something else"},"optional":null}"#;
        let cases = [
            (
                signer.bundle(
                    "application/vnd.in-toto+json",
                    &statement("https://slsa.dev/provenance/v1"),
                ),
                "an attestation (https://slsa.dev/provenance/v1), not a signature",
            ),
            (
                signer.bundle(
                    "application/json",
                    &statement("https://sigstore.dev/cosign/sign/v1"),
                ),
                "not an in-toto statement",
            ),
            (
                simple(other_type.to_vec(), &signer.sign(other_type)),
                "of type \"something else\"",
            ),
            (simple(b"[]".to_vec(), &signer.sign(b"[]")), "not cosign's"),
            (
                bundle(
                    br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
                    "verificationMaterial":{"publicKey":{}},"messageSignature":{"messageDigest":
                    {"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}"#
                        .to_vec(),
                ),
                "a message-signature bundle",
            ),
            (
                bundle(br#"{"dsseEnvelope":{}}"#.to_vec()),
                "not a Sigstore bundle",
            ),
        ];
        for (candidate, problem) in cases {
            match verify(&signer.verifier(), &digest(), &[candidate]) {
                SignatureOutcome::Invalid { problems, .. } => {
                    assert!(
                        problems[0].contains(problem),
                        "{problems:?} lacks {problem}"
                    )
                }
                other => panic!("expected Invalid ({problem}), got {other:?}"),
            }
        }
        // The same signer, signing what cosign signs, verifies.
        let good = signer.bundle(
            "application/vnd.in-toto+json",
            &statement("https://sigstore.dev/cosign/sign/v1"),
        );
        assert!(matches!(
            verify(&signer.verifier(), &digest(), &[good]),
            SignatureOutcome::Verified { .. }
        ));
        assert_eq!(
            short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
        assert_eq!(short_digest(""), "index");
    }

    /// A keyless bundle from `tests/fixtures/keyless` (sigstore.py
    /// make-fixtures): the statement names that directory's image digest.
    fn keyless_bundle(name: &str) -> SignatureCandidate {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keyless/");
        bundle(std::fs::read(format!("{path}{name}")).unwrap())
    }

    fn keyless_digest() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keyless/image.digest"
        );
        std::fs::read_to_string(path).unwrap()
    }

    fn keyless(subject: &str) -> Verifier {
        Verifier::Keyless(crate::verify::keyless::tests::verifier(
            "https://token.actions.githubusercontent.com",
            subject,
        ))
    }

    const WORKFLOW: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

    #[test]
    fn a_keyless_bundle_is_accepted_for_its_identity_and_refused_naming_what_differs() {
        let now = "2026-12-07T00:00:00Z".parse().unwrap();
        let outcome = verify_at(
            &keyless(WORKFLOW),
            &keyless_digest(),
            &[keyless_bundle("leaf.sigstore.json")],
            now,
        );
        assert!(
            matches!(&outcome, SignatureOutcome::Verified { key_id, layout: SignatureLayout::Referrer, .. }
                if key_id == &format!("https://token.actions.githubusercontent.com {WORKFLOW}")),
            "{outcome:?}"
        );

        let mut tampered: serde_json::Value =
            serde_json::from_slice(&fixture_keyless("leaf.sigstore.json")).unwrap();
        tampered["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1714564801".into();
        let mut no_entry = tampered.clone();
        no_entry["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
        let mut keyed = tampered.clone();
        keyed["verificationMaterial"] = serde_json::json!({"publicKey": {"hint": "x"}});
        let other = "https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main";
        let zeros = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let cases = [
            (
                keyless(other),
                keyless_bundle("leaf.sigstore.json"),
                keyless_digest(),
                format!(
                    "names subject {WORKFLOW} (issuer https://token.actions.githubusercontent.com), not {other}"
                ),
            ),
            (
                keyless(WORKFLOW),
                keyless_bundle("leaf-other-log.sigstore.json"),
                keyless_digest(),
                "a key outside the trusted root".into(),
            ),
            (
                keyless(WORKFLOW),
                keyless_bundle("other-ca-leaf.sigstore.json"),
                keyless_digest(),
                "does not chain to a certificate authority".into(),
            ),
            (
                keyless(WORKFLOW),
                bundle(serde_json::to_vec(&tampered).unwrap()),
                keyless_digest(),
                "signed entry timestamp does not verify".into(),
            ),
            (
                keyless(WORKFLOW),
                bundle(serde_json::to_vec(&no_entry).unwrap()),
                keyless_digest(),
                "no transparency-log entry proves when it was signed".into(),
            ),
            (
                keyless(WORKFLOW),
                bundle(serde_json::to_vec(&keyed).unwrap()),
                keyless_digest(),
                "made with a key, without a certificate".into(),
            ),
            (
                keyless(WORKFLOW),
                keyless_bundle("leaf.sigstore.json"),
                zeros.to_string(),
                format!("but for {}", keyless_digest()),
            ),
        ];
        for (verifier, candidate, digest, problem) in cases {
            match verify_at(&verifier, &digest, &[candidate], now) {
                SignatureOutcome::Invalid { problems, .. } => {
                    assert!(
                        problems[0].contains(&problem),
                        "{problems:?} lacks {problem}"
                    )
                }
                other => panic!("expected Invalid ({problem}), got {other:?}"),
            }
        }
    }

    fn fixture_keyless(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keyless/");
        std::fs::read(format!("{path}{name}")).unwrap()
    }
}
