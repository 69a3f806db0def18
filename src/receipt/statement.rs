//! The receipt's content: an in-toto Statement v1 whose predicate is SLSA's
//! Verification Summary Attestation v1, built from what a promotion verified.
//! Pure: facts in, JSON out.
//!
//! The VSA fields are used as the specification defines them: `verifier`
//! (this operator and its version), `timeVerified`, `resourceUri` (the target
//! reference pinned to its digest), `policy` (the object, and a digest of the
//! effective policy), `inputAttestations` (the source signatures verified) and
//! `verificationResult`. The promoter checks signatures and scans, not a SLSA
//! track, so `verifiedLevels` is empty. What the VSA has no field for — the
//! scan summary and the ignore entries that applied — sits under the
//! namespaced key [`EXTENSION_KEY`], which VSA consumers ignore.

use serde_json::{Value, json};

use k8s_openapi::jiff::Timestamp;

use crate::api::verify::ScanEvidence;
use crate::api::{IgnoredFinding, VerificationEvidence};

/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a Verification Summary Attestation v1.
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// The verifier's id in every receipt.
pub const VERIFIER_ID: &str = "image-promoter";
/// Where the promoter's own facts sit in the predicate.
pub const EXTENSION_KEY: &str = "https://imagepromoter.dev/promotion/v1";

/// The object whose policy a receipt attests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyObject {
    /// `ImagePromotion` or `RegistryMirror`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// The generation that was promoted.
    pub generation: i64,
}

impl PolicyObject {
    /// `imagepromoter.dev/<Kind>/<namespace>/<name>`: the policy's URI.
    pub fn uri(&self) -> String {
        format!(
            "imagepromoter.dev/{}/{}/{}",
            self.kind, self.namespace, self.name
        )
    }
}

/// A signature of the source that verification accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputAttestation {
    /// Where it is: the source repository pinned to the signature manifest.
    pub uri: String,
    /// The signature manifest's digest (`sha256:<hex>`).
    pub digest: String,
    /// The key (or identity) that verified it.
    pub key_id: String,
}

/// What a receipt says about one target.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptFacts {
    /// The object and its generation.
    pub object: PolicyObject,
    /// The fingerprint of the effective policy (`sha256:<hex>`).
    pub policy_digest: String,
    /// The target repository (`registry/name`), without tag or digest.
    pub target: String,
    /// The digest promoted there (`sha256:<hex>`).
    pub digest: String,
    /// The source image, pinned (`registry/name@sha256:…`).
    pub source: String,
    /// The signatures verified.
    pub inputs: Vec<InputAttestation>,
    /// The scan that was evaluated, if any.
    pub scan: Option<ScanEvidence>,
    /// The ignore entries of the policy that were in force.
    pub ignored: Vec<IgnoredFinding>,
    /// When the source was verified (RFC 3339).
    pub time_verified: String,
}

/// What the receipts of one object's copies rest on, whoever made them (a
/// promotion's run or a mirror's sync).
pub struct Verified<'a> {
    /// The object and its generation.
    pub object: &'a PolicyObject,
    /// The fingerprint of the effective policy.
    pub policy: &'a str,
    /// The source repository (`registry/name`).
    pub source: &'a str,
    /// The policy's ignore entries (those in force when verified are named).
    pub ignores: &'a [IgnoredFinding],
    /// What verification found: the signature verified and the scan
    /// evaluated; `None` when nothing was verified.
    pub evidence: Option<&'a VerificationEvidence>,
}

impl ReceiptFacts {
    /// The facts of a receipt for `digest` at `target` (`registry/name`),
    /// copied from `source_digest` and verified as `verified` says at `now`
    /// (pure): the signatures verified become input attestations, the
    /// scan and the unexpired ignore entries are named.
    pub fn of(
        verified: &Verified<'_>,
        target: &str,
        digest: &str,
        source_digest: &str,
        now: Timestamp,
    ) -> Self {
        let source = verified.source;
        let inputs = verified
            .evidence
            .and_then(|e| e.signature.as_ref())
            .into_iter()
            .filter_map(|s| {
                let signature = s.signature_digest.clone()?;
                Some(InputAttestation {
                    uri: format!("{source}@{signature}"),
                    digest: signature,
                    key_id: s.key_id.clone(),
                })
            })
            .collect();
        let today = now.strftime("%Y-%m-%d").to_string();
        let ignored = verified
            .ignores
            .iter()
            .filter(|i| i.expires.as_str() >= today.as_str())
            .cloned()
            .collect();
        Self {
            object: verified.object.clone(),
            policy_digest: verified.policy.to_string(),
            target: target.to_string(),
            digest: digest.to_string(),
            source: format!("{source}@{source_digest}"),
            inputs,
            scan: verified.evidence.and_then(|e| e.scan.clone()),
            ignored,
            time_verified: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }
}

/// Splits `sha256:<hex>` into a DigestSet entry.
fn digest_set(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((algorithm, hex)) => json!({ algorithm: hex }),
        None => json!({}),
    }
}

/// The in-toto statement of `facts` (pure).
pub fn statement(facts: &ReceiptFacts) -> Value {
    let resource = format!("{}@{}", facts.target, facts.digest);
    let inputs: Vec<Value> = facts
        .inputs
        .iter()
        .map(|i| json!({"uri": i.uri, "digest": digest_set(&i.digest)}))
        .collect();
    let mut extension = json!({
        "object": {
            "kind": facts.object.kind,
            "namespace": facts.object.namespace,
            "name": facts.object.name,
            "uid": facts.object.uid,
            "generation": facts.object.generation,
        },
        "source": facts.source,
        "signatures": facts.inputs.iter().map(|i| json!({"digest": i.digest, "keyId": i.key_id})).collect::<Vec<_>>(),
        "ignored": facts.ignored.iter().map(|i| json!({"id": i.id, "reason": i.reason, "expires": i.expires})).collect::<Vec<_>>(),
    });
    if let Some(scan) = &facts.scan {
        extension["scan"] = serde_json::to_value(scan).expect("scan evidence serialises");
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.target, "digest": digest_set(&facts.digest)}],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": {
                "id": VERIFIER_ID,
                "version": {
                    VERIFIER_ID: crate::build_info::VERSION,
                    "revision": crate::build_info::REVISION,
                },
            },
            "timeVerified": facts.time_verified,
            "resourceUri": resource,
            "policy": {
                "uri": facts.object.uri(),
                "digest": digest_set(&facts.policy_digest),
                "uid": facts.object.uid,
                "generation": facts.object.generation,
            },
            "inputAttestations": inputs,
            "verificationResult": "PASSED",
            "verifiedLevels": [],
            EXTENSION_KEY: extension,
        },
    })
}

/// What identifies a receipt of one object generation: the predicate's
/// policy URI, UID and generation, and the statement's subject (pure; `None`
/// when `statement` is not a receipt of this shape).
pub fn identity(statement: &Value) -> Option<ReceiptIdentity> {
    if statement["predicateType"] != VSA_PREDICATE_TYPE
        || statement["predicate"]["verifier"]["id"] != VERIFIER_ID
    {
        return None;
    }
    let policy = &statement["predicate"]["policy"];
    let subject = statement["subject"].as_array()?.first()?;
    let (algorithm, hex) = subject["digest"].as_object()?.iter().next()?;
    Some(ReceiptIdentity {
        uid: policy["uid"].as_str()?.to_string(),
        generation: policy["generation"].as_i64()?,
        digest: format!("{algorithm}:{}", hex.as_str()?),
    })
}

/// Which (object generation, digest) a receipt is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReceiptIdentity {
    /// The object's UID.
    pub uid: String,
    /// The generation promoted.
    pub generation: i64,
    /// The subject digest.
    pub digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_a_copy_name_its_signatures_scan_and_ignores_in_force() {
        use crate::api::verify::SignatureEvidence;
        let object = PolicyObject {
            kind: "RegistryMirror".into(),
            namespace: "ns".into(),
            name: "m".into(),
            uid: "u".into(),
            generation: 1,
        };
        let ignores = [
            IgnoredFinding {
                id: "CVE-1".into(),
                reason: "r".into(),
                expires: "2099-01-01".into(),
            },
            IgnoredFinding {
                id: "CVE-2".into(),
                reason: "r".into(),
                expires: "2020-01-01".into(),
            },
        ];
        let evidence = VerificationEvidence {
            scan: Some(ScanEvidence {
                status: "COMPLETE".into(),
                ..ScanEvidence::default()
            }),
            signature: Some(SignatureEvidence {
                key_id: "sha256:k".into(),
                signature_digest: Some(SIGNATURE.into()),
            }),
            ..VerificationEvidence::default()
        };
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let mut verified = Verified {
            object: &object,
            policy: "sha256:ff",
            source: "quay.io/acme/app",
            ignores: &ignores,
            evidence: Some(&evidence),
        };
        let facts = ReceiptFacts::of(&verified, "public.ecr.aws/acme/app", DIGEST, DIGEST, now);
        assert_eq!(facts.inputs.len(), 1);
        assert_eq!(facts.inputs[0].uri, format!("quay.io/acme/app@{SIGNATURE}"));
        assert_eq!(facts.scan.as_ref().unwrap().status, "COMPLETE");
        assert_eq!(facts.ignored.len(), 1, "only the entry in force");
        assert_eq!(facts.source, format!("quay.io/acme/app@{DIGEST}"));
        let json = statement(&facts);
        assert_eq!(
            json["predicate"]["inputAttestations"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            json["predicate"][EXTENSION_KEY]["scan"]["status"],
            "COMPLETE"
        );
        verified.evidence = None;
        let bare = ReceiptFacts::of(&verified, "public.ecr.aws/acme/app", DIGEST, DIGEST, now);
        assert!(bare.inputs.is_empty() && bare.scan.is_none());
    }

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const SIGNATURE: &str =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn facts() -> ReceiptFacts {
        ReceiptFacts {
            object: PolicyObject {
                kind: "ImagePromotion".into(),
                namespace: "team-a".into(),
                name: "app".into(),
                uid: "0c5e-uid".into(),
                generation: 3,
            },
            policy_digest: "sha256:abcd".into(),
            target: "quay.io/acme/app".into(),
            digest: DIGEST.into(),
            source: format!("123.dkr.ecr.us-east-1.amazonaws.com/app@{DIGEST}"),
            inputs: vec![InputAttestation {
                uri: format!("123.dkr.ecr.us-east-1.amazonaws.com/app@{SIGNATURE}"),
                digest: SIGNATURE.into(),
                key_id: "sha256:beef".into(),
            }],
            scan: Some(ScanEvidence {
                status: "COMPLETE".into(),
                ignored: 1,
                ..ScanEvidence::default()
            }),
            ignored: vec![IgnoredFinding {
                id: "CVE-2026-0001".into(),
                reason: "not reachable".into(),
                expires: "2027-01-01".into(),
            }],
            time_verified: "2026-12-07T04:00:00Z".into(),
        }
    }

    #[test]
    fn the_statement_is_a_vsa_about_the_target_digest() {
        let s = statement(&facts());
        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["predicateType"], VSA_PREDICATE_TYPE);
        assert_eq!(s["subject"][0]["name"], "quay.io/acme/app");
        assert_eq!(s["subject"][0]["digest"]["sha256"], &DIGEST[7..]);
        let p = &s["predicate"];
        assert_eq!(p["verifier"]["id"], "image-promoter");
        assert_eq!(
            p["verifier"]["version"]["image-promoter"],
            crate::build_info::VERSION
        );
        assert_eq!(p["resourceUri"], format!("quay.io/acme/app@{DIGEST}"));
        assert_eq!(p["verificationResult"], "PASSED");
        assert_eq!(p["timeVerified"], "2026-12-07T04:00:00Z");
        assert_eq!(
            p["policy"]["uri"],
            "imagepromoter.dev/ImagePromotion/team-a/app"
        );
        assert_eq!(p["policy"]["digest"]["sha256"], "abcd");
        assert_eq!(p["policy"]["uid"], "0c5e-uid");
        assert_eq!(p["policy"]["generation"], 3);
        assert_eq!(
            p["inputAttestations"][0]["digest"]["sha256"],
            &SIGNATURE[7..]
        );
        let ext = &p[EXTENSION_KEY];
        assert_eq!(ext["scan"]["status"], "COMPLETE");
        assert_eq!(ext["ignored"][0]["id"], "CVE-2026-0001");
        assert_eq!(ext["signatures"][0]["keyId"], "sha256:beef");
    }

    #[test]
    fn a_receipt_is_identified_by_object_generation_and_digest() {
        let cases: Vec<(Value, Option<(i64, &str)>)> = vec![
            (statement(&facts()), Some((3, DIGEST))),
            (
                {
                    let mut s = statement(&facts());
                    s["predicateType"] = "https://slsa.dev/provenance/v1".into();
                    s
                },
                None,
            ),
            (
                {
                    let mut s = statement(&facts());
                    s["predicate"]["verifier"]["id"] = "someone-else".into();
                    s
                },
                None,
            ),
            (json!({"predicateType": VSA_PREDICATE_TYPE}), None),
        ];
        for (s, expected) in cases {
            let found = identity(&s);
            assert_eq!(
                found.as_ref().map(|i| (i.generation, i.digest.as_str())),
                expected,
                "{s}"
            );
            if let Some(i) = found {
                assert_eq!(i.uid, "0c5e-uid");
            }
        }
    }

    #[test]
    fn without_scan_or_signature_the_lists_are_empty() {
        let mut f = facts();
        f.inputs.clear();
        f.scan = None;
        f.ignored.clear();
        let s = statement(&f);
        assert_eq!(s["predicate"]["inputAttestations"], json!([]));
        assert!(s["predicate"][EXTENSION_KEY].get("scan").is_none());
        assert_eq!(s["predicate"][EXTENSION_KEY]["ignored"], json!([]));
    }
}
