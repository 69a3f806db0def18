//! The Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`):
//! one JSON document holding a signature, what verifies it and the
//! transparency-log entries that prove when it was made.
//!
//! cosign v3 stores image signatures this way (`--new-bundle-format`, an OCI
//! 1.1 referrer whose layer is the bundle), and the promoter writes its
//! receipts this way beside cosign's `.att` layout. Both directions meet
//! here, pure: [`parse`] reads a bundle from a registry (untrusted: bounded
//! size and counts, strict base64, a clear error naming the field) into a
//! [`Bundle`]; [`Bundle::to_json`] writes one.
//!
//! What the fields mean is Sigstore's protobuf schema (`sigstore_bundle.proto`,
//! in proto3's JSON form: bytes as base64, 64-bit integers as strings):
//!
//! - `verificationMaterial`: the signing `certificate` (v0.3), an
//!   `x509CertificateChain` (v0.1, v0.2: leaf first) or a `publicKey` hint;
//!   `tlogEntries[]` with the log's id, the entry's kind, its
//!   `integratedTime`, the `inclusionPromise` (the signed entry timestamp)
//!   and the `canonicalizedBody`;
//! - the content: a `messageSignature` (a digest and its signature) or a
//!   `dsseEnvelope` (a payload, its type and signatures over DSSE's PAE).
//!
//! Whether the signature verifies, for whom, and what the log entry proves
//! is decided by the callers ([`crate::verify::cosign`] with
//! [`crate::verify::keyless`]).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use super::keyless::{EntryProblem, LogEntry};

/// The media type of a v0.3 bundle, what the promoter writes.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every media type read: v0.1 to v0.3 in both spellings Sigstore used.
pub const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    MEDIA_TYPE,
];
/// The longest bundle read (a signature blob's bound).
pub const MAX_BUNDLE: usize = 1 << 20;
/// At most this many log entries, certificates, signatures or proof hashes.
const MAX_ITEMS: usize = 16;
/// At most this many hashes in an inclusion proof (a tree of 2^64 entries).
const MAX_PROOF_HASHES: usize = 64;

/// A Sigstore bundle, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// Its media type, one of [`MEDIA_TYPES`].
    pub media_type: String,
    /// What verifies the signature.
    pub material: Material,
    /// The transparency-log entries of the signature.
    pub tlog_entries: Vec<TlogEntry>,
    /// The signature itself.
    pub content: Content,
}

/// What verifies a bundle's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Material {
    /// A signing certificate, DER (v0.3 `certificate`).
    Certificate(Vec<u8>),
    /// A certificate chain, DER, the signing certificate first (v0.1, v0.2).
    Chain(Vec<Vec<u8>>),
    /// A key the verifier knows, named by a hint (may be empty).
    PublicKey {
        /// The hint (cosign writes the base64 SHA-256 of the key's DER form).
        hint: String,
    },
}

impl Material {
    /// The signing certificate and the certificates presented with it, DER.
    pub fn certificates(&self) -> Option<(&[u8], &[Vec<u8>])> {
        match self {
            Self::Certificate(der) => Some((der, &[])),
            Self::Chain(chain) => chain.split_first().map(|(l, r)| (l.as_slice(), r)),
            Self::PublicKey { .. } => None,
        }
    }
}

/// One transparency-log entry of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogEntry {
    /// The entry's index in the log.
    pub log_index: i64,
    /// The log's id (SHA-256 of its public key).
    pub log_id: Vec<u8>,
    /// The entry's kind (`hashedrekord`, `dsse`, …).
    pub kind: String,
    /// The kind's version (`0.0.1`).
    pub kind_version: String,
    /// When the log integrated it (seconds since the epoch).
    pub integrated_time: i64,
    /// The inclusion promise: the log's signed entry timestamp.
    pub signed_entry_timestamp: Option<Vec<u8>>,
    /// The inclusion proof, when the bundle has one.
    pub inclusion_proof: Option<InclusionProof>,
    /// The entry body as the log canonicalized it (JSON bytes).
    pub canonicalized_body: Vec<u8>,
}

/// A Merkle inclusion proof of a log entry, kept as read (not checked here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's index in the tree.
    pub log_index: i64,
    /// The tree's root hash.
    pub root_hash: Vec<u8>,
    /// The tree's size.
    pub tree_size: i64,
    /// The sibling hashes, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed checkpoint (a note), as text.
    pub checkpoint: String,
}

/// The signature a bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A signature over a digest of an artifact (no payload to read).
    MessageSignature {
        /// The digest's algorithm (`SHA2_256`).
        algorithm: String,
        /// The digest.
        digest: Vec<u8>,
        /// The signature.
        signature: Vec<u8>,
    },
    /// A DSSE envelope.
    Dsse(Envelope),
}

/// A DSSE envelope: a typed payload and signatures over its PAE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The payload type (`application/vnd.in-toto+json`).
    pub payload_type: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// The signatures (raw ASN.1 ECDSA), over the PAE of type and payload.
    pub signatures: Vec<Vec<u8>>,
}

/// Why bytes are not a bundle this version reads; the text names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Longer than [`MAX_BUNDLE`].
    #[error("a Sigstore bundle of {0} bytes is longer than {MAX_BUNDLE}")]
    TooLong(usize),
    /// Not JSON of the bundle's shape.
    #[error("not a Sigstore bundle: {0}")]
    Malformed(String),
    /// Another media type.
    #[error("a Sigstore bundle of media type {0:?}, not one of v0.1 to v0.3")]
    MediaType(String),
    /// A required field is absent.
    #[error("a Sigstore bundle without {0}")]
    Missing(&'static str),
    /// A bytes field that is not base64.
    #[error("the Sigstore bundle's {0} is not base64")]
    Base64(&'static str),
    /// An integer field that is not an integer.
    #[error("the Sigstore bundle's {0} is not an integer")]
    Integer(&'static str),
    /// Too many items in a list.
    #[error("the Sigstore bundle has more than {limit} {what}")]
    TooMany {
        /// The list.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
}

/// Base64 as proto3 JSON writes bytes: standard alphabet (URL-safe also
/// read), padding optional, no whitespace, no stray bits.
fn engines() -> [GeneralPurpose; 2] {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [
        GeneralPurpose::new(&base64::alphabet::STANDARD, config),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
    ]
}

/// Strict base64 of a bytes field named `field`.
pub fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, BundleError> {
    engines()
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(BundleError::Base64(field))
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An int64 as proto3 JSON writes it (a string), or a plain number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Text(String),
    Number(i64),
}

impl Int64 {
    fn get(&self, field: &'static str) -> Result<i64, BundleError> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Text(t) => t.parse().map_err(|_| BundleError::Integer(field)),
        }
    }
}

fn bounded<T>(items: &[T], what: &'static str, limit: usize) -> Result<(), BundleError> {
    if items.len() > limit {
        return Err(BundleError::TooMany { what, limit });
    }
    Ok(())
}

mod wire {
    //! The JSON shape, as read; [`super::parse`] turns it into the model.
    use super::Int64;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Bundle {
        pub media_type: Option<String>,
        pub verification_material: Option<Material>,
        pub message_signature: Option<MessageSignature>,
        pub dsse_envelope: Option<Envelope>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Material {
        pub certificate: Option<RawBytes>,
        pub x509_certificate_chain: Option<Chain>,
        pub public_key: Option<KeyHint>,
        #[serde(default)]
        pub tlog_entries: Vec<Entry>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RawBytes {
        pub raw_bytes: String,
    }

    #[derive(Deserialize)]
    pub struct Chain {
        #[serde(default)]
        pub certificates: Vec<RawBytes>,
    }

    #[derive(Deserialize)]
    pub struct KeyHint {
        #[serde(default)]
        pub hint: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Entry {
        pub log_index: Int64,
        pub log_id: LogId,
        pub kind_version: KindVersion,
        pub integrated_time: Int64,
        pub inclusion_promise: Option<Promise>,
        pub inclusion_proof: Option<Proof>,
        pub canonicalized_body: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LogId {
        pub key_id: String,
    }

    #[derive(Deserialize)]
    pub struct KindVersion {
        pub kind: String,
        pub version: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Promise {
        pub signed_entry_timestamp: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Proof {
        pub log_index: Int64,
        pub root_hash: String,
        pub tree_size: Int64,
        #[serde(default)]
        pub hashes: Vec<String>,
        pub checkpoint: Option<Checkpoint>,
    }

    #[derive(Deserialize)]
    pub struct Checkpoint {
        #[serde(default)]
        pub envelope: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct MessageSignature {
        pub message_digest: Option<Digest>,
        pub signature: String,
    }

    #[derive(Deserialize)]
    pub struct Digest {
        pub algorithm: String,
        pub digest: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Envelope {
        pub payload: String,
        pub payload_type: String,
        #[serde(default)]
        pub signatures: Vec<Signature>,
    }

    #[derive(Deserialize)]
    pub struct Signature {
        pub sig: String,
    }
}

/// Reads a bundle: its media type, material, log entries and content.
pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLong(bytes.len()));
    }
    let wire: wire::Bundle =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let media_type = wire.media_type.ok_or(BundleError::Missing("mediaType"))?;
    if !MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(BundleError::MediaType(media_type));
    }
    let material = wire
        .verification_material
        .ok_or(BundleError::Missing("verificationMaterial"))?;
    bounded(&material.tlog_entries, "tlog entries", MAX_ITEMS)?;
    let tlog_entries = material
        .tlog_entries
        .iter()
        .map(entry)
        .collect::<Result<_, _>>()?;
    let material = match (
        material.certificate,
        material.x509_certificate_chain,
        material.public_key,
    ) {
        (Some(cert), _, _) => Material::Certificate(decode("certificate", &cert.raw_bytes)?),
        (None, Some(chain), _) => {
            bounded(&chain.certificates, "chain certificates", MAX_ITEMS)?;
            if chain.certificates.is_empty() {
                return Err(BundleError::Missing("x509CertificateChain.certificates"));
            }
            Material::Chain(
                chain
                    .certificates
                    .iter()
                    .map(|c| decode("x509CertificateChain", &c.raw_bytes))
                    .collect::<Result<_, _>>()?,
            )
        }
        (None, None, Some(key)) => Material::PublicKey { hint: key.hint },
        (None, None, None) => {
            return Err(BundleError::Missing(
                "a certificate, chain or public key in verificationMaterial",
            ));
        }
    };
    let content = match (wire.dsse_envelope, wire.message_signature) {
        (Some(envelope), _) => {
            bounded(&envelope.signatures, "DSSE signatures", MAX_ITEMS)?;
            Content::Dsse(Envelope {
                payload: decode("dsseEnvelope.payload", &envelope.payload)?,
                payload_type: envelope.payload_type,
                signatures: envelope
                    .signatures
                    .iter()
                    .map(|s| decode("dsseEnvelope.signatures.sig", &s.sig))
                    .collect::<Result<_, _>>()?,
            })
        }
        (None, Some(message)) => {
            let digest = message
                .message_digest
                .ok_or(BundleError::Missing("messageSignature.messageDigest"))?;
            Content::MessageSignature {
                algorithm: digest.algorithm,
                digest: decode("messageSignature.messageDigest.digest", &digest.digest)?,
                signature: decode("messageSignature.signature", &message.signature)?,
            }
        }
        (None, None) => {
            return Err(BundleError::Missing(
                "content (a dsseEnvelope or messageSignature)",
            ));
        }
    };
    Ok(Bundle {
        media_type,
        material,
        tlog_entries,
        content,
    })
}

fn entry(e: &wire::Entry) -> Result<TlogEntry, BundleError> {
    let inclusion_proof = match &e.inclusion_proof {
        None => None,
        Some(p) => {
            bounded(&p.hashes, "inclusion proof hashes", MAX_PROOF_HASHES)?;
            Some(InclusionProof {
                log_index: p.log_index.get("inclusionProof.logIndex")?,
                root_hash: decode("inclusionProof.rootHash", &p.root_hash)?,
                tree_size: p.tree_size.get("inclusionProof.treeSize")?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| decode("inclusionProof.hashes", h))
                    .collect::<Result<_, _>>()?,
                checkpoint: p
                    .checkpoint
                    .as_ref()
                    .map(|c| c.envelope.clone())
                    .unwrap_or_default(),
            })
        }
    };
    Ok(TlogEntry {
        log_index: e.log_index.get("tlogEntries.logIndex")?,
        log_id: decode("tlogEntries.logId.keyId", &e.log_id.key_id)?,
        kind: e.kind_version.kind.clone(),
        kind_version: e.kind_version.version.clone(),
        integrated_time: e.integrated_time.get("tlogEntries.integratedTime")?,
        signed_entry_timestamp: e
            .inclusion_promise
            .as_ref()
            .map(|p| {
                decode(
                    "inclusionPromise.signedEntryTimestamp",
                    &p.signed_entry_timestamp,
                )
            })
            .transpose()?,
        inclusion_proof,
        canonicalized_body: decode("tlogEntries.canonicalizedBody", &e.canonicalized_body)?,
    })
}

impl TlogEntry {
    /// The entry as the keyless verifier checks it: its signed entry
    /// timestamp is the proof this version checks (the inclusion proof's
    /// checkpoint is not).
    pub fn log_entry(&self) -> Result<LogEntry, EntryProblem> {
        let promise = self.signed_entry_timestamp.clone().ok_or_else(|| {
            EntryProblem::Unreadable(
                "it has no inclusion promise (signed entry timestamp), the proof this version \
                 checks"
                    .into(),
            )
        })?;
        Ok(LogEntry {
            body: encode(&self.canonicalized_body),
            integrated_time: self.integrated_time,
            log_index: self.log_index,
            log_id: self.log_id.clone(),
            signed_entry_timestamp: promise,
        })
    }

    fn to_json(&self) -> Value {
        let mut value = json!({
            "logIndex": self.log_index.to_string(),
            "logId": {"keyId": encode(&self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.kind_version},
            "integratedTime": self.integrated_time.to_string(),
            "canonicalizedBody": encode(&self.canonicalized_body),
        });
        if let Some(set) = &self.signed_entry_timestamp {
            value["inclusionPromise"] = json!({"signedEntryTimestamp": encode(set)});
        }
        if let Some(p) = &self.inclusion_proof {
            value["inclusionProof"] = json!({
                "logIndex": p.log_index.to_string(),
                "rootHash": encode(&p.root_hash),
                "treeSize": p.tree_size.to_string(),
                "hashes": p.hashes.iter().map(|h| encode(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": p.checkpoint},
            });
        }
        value
    }
}

impl Bundle {
    /// A v0.3 bundle of a DSSE envelope signed with a key named by `hint`,
    /// with no log entry: what a receipt is.
    pub fn keyed_dsse(hint: &str, envelope: Envelope) -> Self {
        Self {
            media_type: MEDIA_TYPE.to_string(),
            material: Material::PublicKey {
                hint: hint.to_string(),
            },
            tlog_entries: Vec::new(),
            content: Content::Dsse(envelope),
        }
    }

    /// The bundle as JSON, in proto3's JSON form (what [`parse`] reads).
    pub fn to_json(&self) -> Vec<u8> {
        let mut material = match &self.material {
            Material::Certificate(der) => json!({"certificate": {"rawBytes": encode(der)}}),
            Material::Chain(chain) => json!({"x509CertificateChain": {"certificates":
                chain.iter().map(|c| json!({"rawBytes": encode(c)})).collect::<Vec<_>>()}}),
            Material::PublicKey { hint } => json!({"publicKey": {"hint": hint}}),
        };
        material["tlogEntries"] = self.tlog_entries.iter().map(TlogEntry::to_json).collect();
        let mut bundle = json!({"mediaType": self.media_type, "verificationMaterial": material});
        match &self.content {
            Content::Dsse(e) => {
                bundle["dsseEnvelope"] = json!({
                    "payload": encode(&e.payload),
                    "payloadType": e.payload_type,
                    "signatures": e.signatures.iter().map(|s| json!({"sig": encode(s)})).collect::<Vec<_>>(),
                });
            }
            Content::MessageSignature {
                algorithm,
                digest,
                signature,
            } => {
                bundle["messageSignature"] = json!({
                    "messageDigest": {"algorithm": algorithm, "digest": encode(digest)},
                    "signature": encode(signature),
                });
            }
        }
        serde_json::to_vec(&bundle).expect("JSON serialises")
    }
}

/// The bundle's content as a DSSE envelope, or why it is not one.
pub fn envelope(bundle: &Bundle) -> Result<&Envelope, &'static str> {
    match &bundle.content {
        Content::Dsse(envelope) => Ok(envelope),
        Content::MessageSignature { .. } => {
            Err("a message-signature bundle, which does not name an image")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsse() -> Envelope {
        Envelope {
            payload_type: "application/vnd.in-toto+json".into(),
            payload: br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
            signatures: vec![vec![0x30, 0x45, 1, 2, 3]],
        }
    }

    fn entry() -> TlogEntry {
        TlogEntry {
            log_index: 1234,
            log_id: vec![0xc0, 0xd2],
            kind: "dsse".into(),
            kind_version: "0.0.1".into(),
            integrated_time: 1_714_564_800,
            signed_entry_timestamp: Some(vec![9, 9, 9]),
            inclusion_proof: Some(InclusionProof {
                log_index: 1000,
                root_hash: vec![1; 32],
                tree_size: 2000,
                hashes: vec![vec![2; 32], vec![3; 32]],
                checkpoint: "rekor.test - 1\n2000\nAQ==\n".into(),
            }),
            canonicalized_body: br#"{"kind":"dsse"}"#.to_vec(),
        }
    }

    #[test]
    fn a_bundle_written_reads_back_the_same() {
        let bundles = [
            Bundle::keyed_dsse("c2lnbmVy", dsse()),
            Bundle {
                media_type: MEDIA_TYPE.into(),
                material: Material::Certificate(vec![0x30, 0x82, 1]),
                tlog_entries: vec![entry()],
                content: Content::Dsse(dsse()),
            },
            Bundle {
                media_type: MEDIA_TYPES[1].into(),
                material: Material::Chain(vec![vec![1], vec![2]]),
                tlog_entries: vec![TlogEntry {
                    inclusion_proof: None,
                    ..entry()
                }],
                content: Content::MessageSignature {
                    algorithm: "SHA2_256".into(),
                    digest: vec![7; 32],
                    signature: vec![8; 70],
                },
            },
        ];
        for bundle in bundles {
            assert_eq!(parse(&bundle.to_json()), Ok(bundle.clone()));
        }
        let chain = Material::Chain(vec![vec![1], vec![2], vec![3]]);
        assert_eq!(
            chain.certificates(),
            Some((&[1u8][..], &[vec![2u8], vec![3]][..]))
        );
        assert_eq!(Material::PublicKey { hint: "".into() }.certificates(), None);
    }

    #[test]
    fn what_cosign_writes_is_read() {
        // cosign 2.6.5 `sign --new-bundle-format --key` (tests/fixtures/cosign).
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cosign/blob-d1cd115b244cb0aba5f7b56c804b1079c760c9d16ceed1a8e63d75ae7f1f5488"
        ))
        .unwrap();
        let bundle = parse(&bytes).unwrap();
        assert_eq!(bundle.media_type, MEDIA_TYPE);
        assert!(matches!(bundle.material, Material::PublicKey { .. }));
        let envelope = envelope(&bundle).unwrap();
        assert_eq!(envelope.payload_type, "application/vnd.in-toto+json");
        assert_eq!(envelope.signatures.len(), 1);
    }

    #[test]
    fn a_proto_json_entry_becomes_a_log_entry() {
        let json = br#"{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.3",
            "verificationMaterial":{"certificate":{"rawBytes":"MAA="},"tlogEntries":[
              {"logIndex":"7","logId":{"keyId":"wNI="},"kindVersion":{"kind":"hashedrekord","version":"0.0.1"},
               "integratedTime":"1700000000","inclusionPromise":{"signedEntryTimestamp":"AQID"},
               "canonicalizedBody":"eyJhIjoxfQ=="}]},
            "messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA"},"signature":"AQ=="}}"#;
        let bundle = parse(json).unwrap();
        let entry = bundle.tlog_entries[0].log_entry().unwrap();
        assert_eq!(entry.body, "eyJhIjoxfQ==");
        assert_eq!(
            (entry.log_index, entry.integrated_time, entry.log_id),
            (7, 1_700_000_000, vec![0xc0, 0xd2])
        );
        assert_eq!(entry.signed_entry_timestamp, vec![1, 2, 3]);
        let no_promise = TlogEntry {
            signed_entry_timestamp: None,
            ..bundle.tlog_entries[0].clone()
        };
        let err = no_promise.log_entry().unwrap_err().to_string();
        assert!(err.contains("no inclusion promise"), "{err}");
        assert_eq!(
            envelope(&bundle).unwrap_err(),
            "a message-signature bundle, which does not name an image"
        );
    }

    #[test]
    fn untrusted_input_is_refused_naming_the_field() {
        let good = serde_json::from_slice::<Value>(
            &Bundle {
                tlog_entries: vec![entry()],
                ..Bundle::keyed_dsse("h", dsse())
            }
            .to_json(),
        )
        .unwrap();
        let with = |pointer: &str, value: Value| {
            let mut v = good.clone();
            *v.pointer_mut(pointer).unwrap() = value;
            serde_json::to_vec(&v).unwrap()
        };
        let without = |key: &str| {
            let mut v = good.clone();
            v.as_object_mut().unwrap().remove(key);
            serde_json::to_vec(&v).unwrap()
        };
        let many = |n: usize| Value::Array(vec![good["dsseEnvelope"]["signatures"][0].clone(); n]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![b' '; MAX_BUNDLE + 1], "longer than"),
            (b"[]".to_vec(), "not a Sigstore bundle"),
            (without("mediaType"), "without mediaType"),
            (
                with("/mediaType", "application/json".into()),
                "media type \"application/json\"",
            ),
            (
                without("verificationMaterial"),
                "without verificationMaterial",
            ),
            (without("dsseEnvelope"), "without content"),
            (
                with("/verificationMaterial/publicKey", Value::Null),
                "without a certificate, chain or public key",
            ),
            (
                with("/dsseEnvelope/payload", "a b".into()),
                "dsseEnvelope.payload is not base64",
            ),
            (
                with("/dsseEnvelope/payload", " eyJ9".into()),
                "dsseEnvelope.payload is not base64",
            ),
            (
                with("/dsseEnvelope/signatures/0/sig", "AB=C".into()),
                "dsseEnvelope.signatures.sig is not base64",
            ),
            (
                with("/verificationMaterial/tlogEntries/0/logIndex", "12x".into()),
                "tlogEntries.logIndex is not an integer",
            ),
            (
                with(
                    "/verificationMaterial/tlogEntries/0/canonicalizedBody",
                    "%".into(),
                ),
                "canonicalizedBody is not base64",
            ),
            (
                with(
                    "/verificationMaterial/tlogEntries/0/inclusionPromise/signedEntryTimestamp",
                    "*".into(),
                ),
                "signedEntryTimestamp is not base64",
            ),
            (
                with("/dsseEnvelope/signatures", many(MAX_ITEMS + 1)),
                "more than 16 DSSE signatures",
            ),
            (
                with(
                    "/verificationMaterial/tlogEntries/0/inclusionProof/hashes",
                    Value::Array(vec!["AA==".into(); MAX_PROOF_HASHES + 1]),
                ),
                "more than 64 inclusion proof hashes",
            ),
        ];
        for (bytes, problem) in cases {
            let err = parse(&bytes).unwrap_err().to_string();
            assert!(err.contains(problem), "{err} lacks {problem}");
        }
        // Numbers are read in both forms; padding is optional.
        let numeric = with("/verificationMaterial/tlogEntries/0/logIndex", 1234.into());
        assert_eq!(parse(&numeric).unwrap().tlog_entries[0].log_index, 1234);
        assert_eq!(decode("f", "AQ").unwrap(), vec![1]);
        assert_eq!(decode("f", "_w==").unwrap(), vec![255]);
    }
}
