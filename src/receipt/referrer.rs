//! The receipt as a Sigstore bundle referrer, beside cosign's `.att` layout:
//! where `cosign verify-attestation --new-bundle-format` looks.
//!
//! The bundle ([`crate::verify::bundle`], v0.3) holds the receipt's DSSE
//! envelope and a `publicKey` hint (cosign's: the base64 SHA-256 of the key's
//! DER form), no log entry. It is the one layer of an OCI 1.1 manifest laid
//! out as cosign lays out its own bundles: `artifactType` the bundle media
//! type, the empty config, cosign's `dev.sigstore.bundle.*` annotations, and
//! `subject` the promoted digest. The registry's referrers API lists it;
//! where a registry has none, the manifest is added to the referrers
//! fallback index (tag `sha256-<hex>`), as cosign and the OCI distribution
//! specification do.
//!
//! Write-once like the `.att` receipt: before writing, the referrers of the
//! digest are read for a bundle the operator's key signed for the object
//! generation (the [`RECEIPT_ANNOTATION`] only says which to read first).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::json;

use super::key::SigningKey;
use super::layout::{IN_TOTO_PAYLOAD_TYPE, OCI_MANIFEST, RECEIPT_ANNOTATION};
use super::statement::VSA_PREDICATE_TYPE;
use super::store::{ReceiptError, SignedReceipt, is_signed_receipt, upload};
use crate::registry::copy::attached;
use crate::registry::manifest::Descriptor;
use crate::registry::{Digest, RegistryClient, RegistryError, Repository};
use crate::verify::bundle::{self, Bundle, Envelope};
use crate::verify::cosign::layout::referrers_fallback_tag;
use crate::verify::cosign::registry::{RepositorySignatures, SignatureReadError};
use crate::verify::cosign::{MAX_SIGNATURE_BLOB, SignatureStore};

/// The empty config's media type, and the config itself (`{}`).
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// cosign's annotation saying what a bundle holds.
const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// cosign's annotation naming the bundle's predicate type.
const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// At most this many candidate referrers are read when looking for a receipt.
const MAX_CANDIDATES: usize = 16;

/// The target manifest a referrer points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// The bundle of a signed receipt, signed by the key `hint` names.
pub fn receipt_bundle(signed: &SignedReceipt, hint: &str) -> Vec<u8> {
    Bundle::keyed_dsse(
        hint,
        Envelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: signed.payload.clone(),
            signatures: vec![signed.signature.clone()],
        },
    )
    .to_json()
}

/// The referrer manifest holding `bundle` (its bytes) for `subject`, with the
/// receipt hint `<uid>/<generation>`.
pub fn referrer_manifest(bundle: &[u8], subject: &Subject, hint: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": bundle::MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": Digest::sha256_of(EMPTY_CONFIG).to_string(),
            "size": EMPTY_CONFIG.len(),
        },
        "layers": [{
            "mediaType": bundle::MEDIA_TYPE,
            "digest": Digest::sha256_of(bundle).to_string(),
            "size": bundle.len(),
        }],
        "annotations": annotations(hint),
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
    }))
    .expect("JSON serialises")
}

fn annotations(hint: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONTENT_ANNOTATION.into(), "dsse-envelope".into()),
        (PREDICATE_ANNOTATION.into(), VSA_PREDICATE_TYPE.into()),
        (RECEIPT_ANNOTATION.into(), hint.into()),
    ])
}

/// The bundle referrers of a referrers index worth reading for the receipt
/// `hint`: those annotated with it first, then bundles the index does not
/// annotate (a registry may leave annotations out); at most [`MAX_CANDIDATES`].
pub fn candidates(index: &[u8], hint: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        digest: String,
        #[serde(default)]
        artifact_type: Option<String>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    let Ok(index) = serde_json::from_slice::<Index>(index) else {
        return Vec::new();
    };
    let bundles: Vec<&Entry> = index
        .manifests
        .iter()
        .filter(|e| e.artifact_type.as_deref() == Some(bundle::MEDIA_TYPE))
        .collect();
    let hinted = bundles
        .iter()
        .filter(|e| e.annotations.get(RECEIPT_ANNOTATION).map(String::as_str) == Some(hint));
    let unannotated = bundles.iter().filter(|e| e.annotations.is_empty());
    hinted
        .chain(unannotated)
        .map(|e| e.digest.clone())
        .filter(|d| crate::verify::cosign::layout::is_digest(d))
        .take(MAX_CANDIDATES)
        .collect()
}

/// Whether a bundle referrer manifest of `subject` holds, as its bundle
/// layer, what `key` signed for `(uid, generation)`; the layer's digest and
/// size to read.
fn bundle_layer(manifest: &[u8], subject: &str) -> Option<(String, u64)> {
    let value: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    if value["subject"]["digest"] != subject || value["artifactType"] != bundle::MEDIA_TYPE {
        return None;
    }
    let layer = value["layers"].as_array()?.first()?;
    (layer["mediaType"] == bundle::MEDIA_TYPE).then_some(())?;
    Some((
        layer["digest"].as_str()?.to_string(),
        layer["size"].as_u64()?,
    ))
}

/// Whether `bytes` are a bundle of a receipt `key` signed for `(uid, generation, digest)`.
pub fn is_receipt_bundle(
    key: &SigningKey,
    bytes: &[u8],
    (uid, generation, digest): (&str, i64, &str),
) -> bool {
    let Ok(parsed) = bundle::parse(bytes) else {
        return false;
    };
    let Ok(envelope) = bundle::envelope(&parsed) else {
        return false;
    };
    is_signed_receipt(
        key,
        &envelope.payload_type,
        &envelope.payload,
        &envelope.signatures,
        (uid, generation, digest),
    )
}

/// The bundle referrers of one digest in one target repository.
pub struct BundleReferrers<'a> {
    client: &'a RegistryClient,
    repository: &'a Repository,
    digest: Digest,
}

impl<'a> BundleReferrers<'a> {
    /// The referrers of `digest` in `repository`, reached through `client`.
    pub fn new(
        client: &'a RegistryClient,
        repository: &'a Repository,
        digest: &str,
    ) -> Result<Self, ReceiptError> {
        Ok(Self {
            client,
            repository,
            digest: digest
                .parse()
                .map_err(|_| ReceiptError::NotADigest(digest.to_string()))?,
        })
    }

    fn store(&self) -> RepositorySignatures {
        RepositorySignatures::new(self.client.clone(), &self.repository.name)
    }

    fn read_error(&self, source: SignatureReadError) -> ReceiptError {
        ReceiptError::Read {
            at: self.repository.to_string(),
            source: Box::new(source),
        }
    }

    fn registry_error(&self, source: RegistryError) -> ReceiptError {
        ReceiptError::Registry {
            at: self.repository.to_string(),
            source: Box::new(source),
        }
    }

    /// The referrers index: the API's, else the fallback tag's; None when neither.
    async fn index(&self) -> Result<Option<Vec<u8>>, ReceiptError> {
        let store = self.store();
        let digest = self.digest.to_string();
        if let Some(index) = store
            .referrers(&digest)
            .await
            .map_err(|e| self.read_error(e))?
        {
            return Ok(Some(index));
        }
        let tag = referrers_fallback_tag(&digest).expect("a parsed digest");
        store.manifest(&tag).await.map_err(|e| self.read_error(e))
    }

    /// The digest of the referrer manifest holding a receipt bundle `key`
    /// signed for (`uid`, `generation`) at this digest, if there is one.
    pub async fn find(
        &self,
        key: &SigningKey,
        uid: &str,
        generation: i64,
    ) -> Result<Option<String>, ReceiptError> {
        let Some(index) = self.index().await? else {
            return Ok(None);
        };
        let hint = format!("{uid}/{generation}");
        let digest = self.digest.to_string();
        let store = self.store();
        for referrer in candidates(&index, &hint) {
            let Some(manifest) = store
                .manifest(&referrer)
                .await
                .map_err(|e| self.read_error(e))?
            else {
                continue;
            };
            let Some((layer, size)) = bundle_layer(&manifest, &digest) else {
                continue;
            };
            if size > MAX_SIGNATURE_BLOB {
                continue;
            }
            let blob = match store.blob(&layer).await {
                Ok(blob) => blob,
                Err(SignatureReadError::Registry(e)) if e.is_not_found() => continue,
                Err(source) => return Err(self.read_error(source)),
            };
            if is_receipt_bundle(key, &blob, (uid, generation, &digest)) {
                return Ok(Some(referrer));
            }
        }
        Ok(None)
    }

    /// Writes the bundle of `signed` as a referrer of the digest (and adds
    /// it to the fallback index where the registry has no referrers API);
    /// the referrer manifest's digest.
    pub async fn write(
        &self,
        key: &SigningKey,
        signed: &SignedReceipt,
        uid: &str,
        generation: i64,
    ) -> Result<String, ReceiptError> {
        let name = &self.repository.name;
        let digest = self.digest.to_string();
        let head = self
            .client
            .head_manifest(name, &digest)
            .await
            .map_err(|e| self.registry_error(e))?
            .ok_or_else(|| {
                self.registry_error(RegistryError::Status {
                    operation: "HEAD manifest",
                    host: self.client.host().to_string(),
                    status: 404,
                    detail: Some(format!("the promoted manifest {digest} is not there")),
                })
            })?;
        let subject = Subject {
            media_type: head.media_type,
            digest: digest.clone(),
            size: head.size,
        };
        let bundle = receipt_bundle(signed, &key.hint());
        let hint = format!("{uid}/{generation}");
        let manifest = referrer_manifest(&bundle, &subject, &hint);
        let manifest_digest = Digest::sha256_of(&manifest);
        upload(
            self.client,
            self.repository,
            &Digest::sha256_of(EMPTY_CONFIG),
            EMPTY_CONFIG.to_vec(),
        )
        .await?;
        upload(
            self.client,
            self.repository,
            &Digest::sha256_of(&bundle),
            bundle,
        )
        .await?;
        let size = manifest.len() as u64;
        self.client
            .put_manifest(
                name,
                &manifest_digest.to_string(),
                OCI_MANIFEST,
                &Bytes::from(manifest),
            )
            .await
            .map_err(|e| self.registry_error(e))?;
        let has_api = attached::referrers_api(self.client, name, &self.digest)
            .await
            .map_err(|e| self.registry_error(e))?
            .is_some();
        if !has_api {
            let entry = Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: manifest_digest.clone(),
                size,
                platform: None,
                artifact_type: Some(bundle::MEDIA_TYPE.into()),
                annotations: annotations(&hint),
            };
            attached::merge_fallback_index(self.client, name, &self.digest, &[entry])
                .await
                .map_err(|e| self.registry_error(e))?;
        }
        Ok(manifest_digest.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> (SigningKey, SignedReceipt) {
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let key = SigningKey::from_pkcs8(pkcs8.as_ref(), "test").unwrap();
        let payload = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "r", "digest": {"sha256": "ab"}}],
            "predicateType": VSA_PREDICATE_TYPE,
            "predicate": {"verifier": {"id": "image-promoter"},
                          "policy": {"uid": "u-1", "generation": 3}},
        }))
        .unwrap();
        let pae =
            crate::receipt::layout::pre_authentication_encoding(IN_TOTO_PAYLOAD_TYPE, &payload);
        let signature = match &key {
            SigningKey::Local(pair) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), &pae)
                .unwrap()
                .as_ref()
                .to_vec(),
            SigningKey::Kms { .. } => unreachable!(),
        };
        (key, SignedReceipt { payload, signature })
    }

    #[test]
    fn the_receipt_bundle_is_a_v03_dsse_bundle_with_the_key_hint() {
        let (key, signed) = receipt();
        let bytes = receipt_bundle(&signed, &key.hint());
        let parsed = bundle::parse(&bytes).unwrap();
        assert_eq!(parsed.media_type, bundle::MEDIA_TYPE);
        assert_eq!(
            parsed.material,
            bundle::Material::PublicKey { hint: key.hint() }
        );
        assert!(parsed.tlog_entries.is_empty());
        assert!(is_receipt_bundle(&key, &bytes, ("u-1", 3, "sha256:ab")));
        for other in [
            ("u-2", 3, "sha256:ab"),
            ("u-1", 4, "sha256:ab"),
            ("u-1", 3, "sha256:cd"),
        ] {
            assert!(!is_receipt_bundle(&key, &bytes, other), "{other:?}");
        }
        let (other_key, _) = receipt();
        assert!(!is_receipt_bundle(
            &other_key,
            &bytes,
            ("u-1", 3, "sha256:ab")
        ));
        assert!(!is_receipt_bundle(&key, b"{}", ("u-1", 3, "sha256:ab")));
    }

    #[test]
    fn the_referrer_manifest_is_laid_out_as_cosign_lays_out_bundles() {
        let subject = Subject {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: "sha256:2e4b55dba9d247c4115acd72bce60977be0e72b3326828dfe8d489188a43c565"
                .into(),
            size: 417,
        };
        let manifest = referrer_manifest(b"bundle", &subject, "u-1/3");
        let value: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(value["artifactType"], bundle::MEDIA_TYPE);
        assert_eq!(
            value["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(value["subject"]["size"], 417);
        assert_eq!(
            value["annotations"][PREDICATE_ANNOTATION],
            VSA_PREDICATE_TYPE
        );
        assert_eq!(
            bundle_layer(&manifest, &subject.digest),
            Some((Digest::sha256_of(b"bundle").to_string(), 6))
        );
        assert_eq!(bundle_layer(&manifest, "sha256:00"), None);
        // What verification reads: a signature-kind referrer of the subject.
        let parsed = crate::verify::cosign::layout::parse_signature_manifest(
            &manifest,
            crate::verify::cosign::SignatureLayout::Referrer,
            &subject.digest,
        )
        .unwrap()
        .unwrap();
        assert_eq!(parsed.layers.len(), 1);
    }

    #[test]
    fn candidates_are_the_hinted_bundles_then_the_unannotated_ones() {
        let bundle_type = bundle::MEDIA_TYPE;
        let index = json!({"manifests": [
            {"digest": "sha256:01", "artifactType": bundle_type, "annotations": {RECEIPT_ANNOTATION: "u/2"}},
            {"digest": "sha256:02", "artifactType": "application/spdx+json"},
            {"digest": "sha256:03", "artifactType": bundle_type},
            {"digest": "sha256:04", "artifactType": bundle_type, "annotations": {RECEIPT_ANNOTATION: "u/3"}},
            {"digest": "../x", "artifactType": bundle_type, "annotations": {RECEIPT_ANNOTATION: "u/3"}},
            {"digest": "sha256:05", "artifactType": bundle_type, "annotations": {"other": "x"}},
        ]});
        assert_eq!(
            candidates(&serde_json::to_vec(&index).unwrap(), "u/3"),
            ["sha256:04", "sha256:03"]
        );
        assert!(candidates(b"nonsense", "u/3").is_empty());
        let many = json!({"manifests": (0..40).map(|i| json!({"digest": format!("sha256:{i:02}"),
            "artifactType": bundle_type})).collect::<Vec<_>>()});
        assert_eq!(
            candidates(&serde_json::to_vec(&many).unwrap(), "u/3").len(),
            MAX_CANDIDATES
        );
    }
}
