//! A transparency-log entry and what it proves: that the log saw this
//! signature, made with this certificate, at its integrated time.
//!
//! Two carriers exist:
//!
//! - cosign's `dev.sigstore.cosign/bundle` layer annotation:
//!   `{"SignedEntryTimestamp": <base64>, "Payload": {"body", "integratedTime",
//!   "logIndex", "logID"}}`;
//! - a Sigstore bundle's `verificationMaterial.tlogEntries[]`, whose
//!   `inclusionPromise.signedEntryTimestamp` is the same promise.
//!
//! The signed entry timestamp (SET) is the log's signature over the
//! canonical JSON of `{body, integratedTime, logID, logIndex}` (keys sorted,
//! no whitespace). The log is found in the trusted root by its id; the key
//! must have been valid at the integrated time. The entry's body must then
//! record the very signature, certificate and payload being checked (a
//! `hashedrekord` of the signed bytes, or for a DSSE envelope a `dsse` entry
//! of its payload) — otherwise a genuine entry of another signature could be
//! replayed.

use aws_lc_rs::digest::{SHA256, digest};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::root::{TransparencyLog, TrustedRoot, decode_base64, hex};

/// A log entry with its promise, as carried next to a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The entry body, base64 as the log returned it.
    pub body: String,
    /// When the log integrated the entry (seconds since the epoch).
    pub integrated_time: i64,
    /// The entry's index in the log.
    pub log_index: i64,
    /// The log's id (SHA-256 of its public key).
    pub log_id: Vec<u8>,
    /// The signed entry timestamp.
    pub signed_entry_timestamp: Vec<u8>,
}

/// Why a log entry does not prove the signing time; the text says what did not match.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The entry cannot be read.
    #[error("its transparency-log entry is unreadable: {0}")]
    Unreadable(String),
    /// The log is not one of the root's.
    #[error(
        "its transparency-log entry is signed by log {log_id}, a key outside the trusted root \
         (which has logs {known})"
    )]
    UnknownLog {
        /// The entry's log id (hex).
        log_id: String,
        /// The root's log ids (hex).
        known: String,
    },
    /// The promise does not verify with the log's key.
    #[error(
        "its transparency-log entry's signed entry timestamp does not verify with the key of \
         log {log} of the trusted root"
    )]
    BadPromise {
        /// The log, named.
        log: String,
    },
    /// The log's key was not trusted at the integrated time.
    #[error("log {log} of the trusted root was not valid at {at}, when the entry was integrated")]
    LogNotValid {
        /// The log, named.
        log: String,
        /// The integrated time.
        at: Timestamp,
    },
    /// The entry records something else.
    #[error("its transparency-log entry records {0}")]
    OtherEntry(String),
}

impl LogEntry {
    /// Reads cosign's `dev.sigstore.cosign/bundle` annotation.
    pub fn from_cosign_annotation(json: &str) -> Result<Self, EntryProblem> {
        #[derive(Deserialize)]
        struct Annotation {
            #[serde(rename = "SignedEntryTimestamp")]
            set: String,
            #[serde(rename = "Payload")]
            payload: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            body: String,
            integrated_time: i64,
            log_index: i64,
            #[serde(rename = "logID")]
            log_id: String,
        }
        let a: Annotation = serde_json::from_str(json).map_err(|e| {
            EntryProblem::Unreadable(format!("not cosign's bundle annotation: {e}"))
        })?;
        Ok(Self {
            body: a.payload.body,
            integrated_time: a.payload.integrated_time,
            log_index: a.payload.log_index,
            log_id: from_hex(&a.payload.log_id)
                .ok_or_else(|| EntryProblem::Unreadable("its logID is not hex".into()))?,
            signed_entry_timestamp: decode_base64(&a.set).ok_or_else(|| {
                EntryProblem::Unreadable("its SignedEntryTimestamp is not base64".into())
            })?,
        })
    }

    /// What the log signed: the canonical JSON of body, integrated time, log id and index.
    pub fn signed_payload(&self) -> Vec<u8> {
        // Keys in byte order, no whitespace; the strings are base64 and hex,
        // which JSON writes without escapes, checked by `is_plain`.
        format!(
            "{{\"body\":{},\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
            serde_json::Value::String(self.body.clone()),
            self.integrated_time,
            hex(&self.log_id),
            self.log_index
        )
        .into_bytes()
    }

    /// When the log integrated the entry.
    pub fn integrated_at(&self) -> Result<Timestamp, EntryProblem> {
        Timestamp::from_second(self.integrated_time).map_err(|_| {
            EntryProblem::Unreadable(format!(
                "its integratedTime {} is out of range",
                self.integrated_time
            ))
        })
    }

    /// Checks the promise against the root; the log that made it.
    pub fn verify<'r>(&self, root: &'r TrustedRoot) -> Result<&'r TransparencyLog, EntryProblem> {
        let Some(log) = root.log(&self.log_id) else {
            return Err(EntryProblem::UnknownLog {
                log_id: hex(&self.log_id),
                known: root
                    .logs
                    .iter()
                    .map(|l| hex(&l.log_id))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let name = || {
            if log.base_url.is_empty() {
                hex(&log.log_id)
            } else {
                format!("{} ({})", log.base_url, hex(&log.log_id))
            }
        };
        if log
            .key
            .verify_sig(&self.signed_payload(), &self.signed_entry_timestamp)
            .is_err()
        {
            return Err(EntryProblem::BadPromise { log: name() });
        }
        let at = self.integrated_at()?;
        if !log.valid_for.contains(at) {
            return Err(EntryProblem::LogNotValid { log: name(), at });
        }
        Ok(log)
    }

    /// Checks that the body records `signature` by `certificate_der` over
    /// `signed` (the bytes signed). A `hashedrekord` entry records the
    /// signed bytes' hash; a `dsse` entry (a DSSE envelope in a Sigstore
    /// bundle) records the hash of the envelope's payload, `dsse_payload`.
    pub fn records(
        &self,
        signed: &[u8],
        dsse_payload: Option<&[u8]>,
        signature: &[u8],
        certificate_der: &[u8],
    ) -> Result<(), EntryProblem> {
        #[derive(Deserialize)]
        struct Body {
            kind: String,
            spec: serde_json::Value,
        }
        let body = decode_base64(&self.body)
            .ok_or_else(|| EntryProblem::Unreadable("its body is not base64".into()))?;
        let body: Body = serde_json::from_slice(&body)
            .map_err(|e| EntryProblem::Unreadable(format!("its body is not a Rekor entry: {e}")))?;
        let spec = &body.spec;
        let text = |pointer: &str| spec.pointer(pointer).and_then(|v| v.as_str());
        let (hashed, hash_at, recorded) = match (body.kind.as_str(), dsse_payload) {
            ("hashedrekord", _) => (
                signed,
                "/data/hash",
                [(
                    text("/signature/content"),
                    text("/signature/publicKey/content"),
                )]
                .to_vec(),
            ),
            ("dsse", Some(payload)) => (
                payload,
                "/payloadHash",
                spec.pointer("/signatures")
                    .and_then(|s| s.as_array())
                    .map(|list| {
                        list.iter()
                            .take(16)
                            .map(|s| {
                                (
                                    s.get("signature").and_then(|v| v.as_str()),
                                    s.get("verifier").and_then(|v| v.as_str()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            (kind, _) => {
                return Err(EntryProblem::OtherEntry(format!(
                    "a {kind:?} entry, not the {} of a signature",
                    if dsse_payload.is_some() {
                        "dsse or hashedrekord"
                    } else {
                        "hashedrekord"
                    }
                )));
            }
        };
        let found = text(&format!("{hash_at}/value")).unwrap_or_default();
        let wanted = hex(digest(&SHA256, hashed).as_ref());
        if text(&format!("{hash_at}/algorithm")) != Some("sha256")
            || !found.eq_ignore_ascii_case(&wanted)
        {
            return Err(EntryProblem::OtherEntry(format!(
                "another payload (sha256 {found}, not {wanted})"
            )));
        }
        let certificate = |pem: &str| {
            decode_base64(pem).and_then(|pem| {
                use rustls_pki_types::pem::PemObject as _;
                rustls_pki_types::CertificateDer::from_pem_slice(&pem).ok()
            })
        };
        let by_signature: Vec<Option<&str>> = recorded
            .iter()
            .filter(|(s, _)| s.and_then(decode_base64).as_deref() == Some(signature))
            .map(|(_, verifier)| *verifier)
            .collect();
        if by_signature.is_empty() {
            return Err(EntryProblem::OtherEntry("another signature".into()));
        }
        if !by_signature
            .iter()
            .any(|v| v.and_then(certificate).as_deref() == Some(certificate_der))
        {
            return Err(EntryProblem::OtherEntry("another certificate".into()));
        }
        Ok(())
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_payload_is_canonical_json_with_sorted_keys() {
        let entry = LogEntry {
            body: "eyJhIjoxfQ==".into(),
            integrated_time: 1_700_000_000,
            log_index: 42,
            log_id: vec![0xc0, 0xd2, 0x3d],
            signed_entry_timestamp: Vec::new(),
        };
        assert_eq!(
            String::from_utf8(entry.signed_payload()).unwrap(),
            r#"{"body":"eyJhIjoxfQ==","integratedTime":1700000000,"logID":"c0d23d","logIndex":42}"#
        );
        // The same bytes as a canonical JSON encoder (sorted keys, compact) writes.
        let value = serde_json::json!({
            "logIndex": 42, "logID": "c0d23d", "integratedTime": 1_700_000_000i64,
            "body": "eyJhIjoxfQ==",
        });
        let mut sorted: Vec<(&String, &serde_json::Value)> =
            value.as_object().unwrap().iter().collect();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let canonical = format!(
            "{{{}}}",
            sorted
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(entry.signed_payload(), canonical.into_bytes());
    }

    #[test]
    fn hex_and_annotations_are_read_strictly() {
        assert_eq!(from_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        for (json, problem) in [
            ("{}", "not cosign's bundle annotation"),
            (
                r#"{"SignedEntryTimestamp":"AA==","Payload":{"body":"","integratedTime":1,"logIndex":1,"logID":"xyz"}}"#,
                "logID is not hex",
            ),
        ] {
            let err = LogEntry::from_cosign_annotation(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(problem), "{err}");
        }
    }

    /// The `dsse` entry of a keyless bundle (tests/fixtures/keyless,
    /// sigstore.py make-fixtures) records its envelope's payload, signature
    /// and certificate, and nothing else.
    #[test]
    fn a_dsse_entry_records_the_envelope_payload_signature_and_certificate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keyless");
        let bytes = std::fs::read(format!("{dir}/leaf.sigstore.json")).unwrap();
        let bundle = crate::verify::bundle::parse(&bytes).unwrap();
        let entry = bundle.tlog_entries[0].log_entry().unwrap();
        let envelope = crate::verify::bundle::envelope(&bundle).unwrap();
        let (certificate, _) = bundle.material.certificates().unwrap();
        let signature = &envelope.signatures[0];
        let payload = Some(envelope.payload.as_slice());
        assert_eq!(
            entry.records(b"pae", payload, signature, certificate),
            Ok(())
        );
        let cases = [
            (
                Some(&b"other"[..]),
                signature.as_slice(),
                certificate,
                "another payload",
            ),
            (payload, &b"other"[..], certificate, "another signature"),
            (
                payload,
                signature.as_slice(),
                &b"other"[..],
                "another certificate",
            ),
            (
                None,
                signature.as_slice(),
                certificate,
                "a \"dsse\" entry, not the hashedrekord",
            ),
        ];
        for (payload, signature, certificate, problem) in cases {
            let err = entry
                .records(b"pae", payload, signature, certificate)
                .unwrap_err()
                .to_string();
            assert!(err.contains(problem), "{err} lacks {problem}");
        }
    }

    /// A signed entry timestamp public-good Rekor made (2021), checked with
    /// its real key (tests/fixtures/keyless/public-good).
    #[test]
    fn a_real_public_good_promise_verifies_with_the_rekor_key_and_not_when_changed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keyless");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let mut root: serde_json::Value = serde_json::from_str(&read("trusted_root.json")).unwrap();
        let key = read("public-good/rekor.pub.b64").trim().to_string();
        let key_id = {
            use base64::Engine as _;
            let der = decode_base64(&key).unwrap();
            base64::engine::general_purpose::STANDARD.encode(digest(&SHA256, &der).as_ref())
        };
        root["tlogs"] = serde_json::json!([{
            "baseUrl": "https://rekor.sigstore.dev",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": key, "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": "2021-01-12T11:53:27Z"}},
            "logId": {"keyId": key_id},
        }]);
        let root = TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).unwrap();
        let entry =
            LogEntry::from_cosign_annotation(&read("public-good/rekor-bundle-annotation.json"))
                .unwrap();
        assert_eq!(
            hex(&entry.log_id),
            "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
        );
        let log = entry
            .verify(&root)
            .expect("the public-good promise verifies");
        assert_eq!(log.base_url, "https://rekor.sigstore.dev");
        assert_eq!(
            entry.integrated_at().unwrap().to_string(),
            "2021-06-22T21:08:05Z"
        );
        // Not an entry of this signature: it records another kind of entry.
        let err = entry
            .records(b"x", None, b"y", b"z")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a \"rekord\" entry"), "{err}");

        let mut moved = entry.clone();
        moved.log_index += 1;
        assert!(matches!(
            moved.verify(&root),
            Err(EntryProblem::BadPromise { .. })
        ));
        let mut later = entry;
        later.integrated_time += 1;
        assert!(matches!(
            later.verify(&root),
            Err(EntryProblem::BadPromise { .. })
        ));
    }
}
