//! A Fulcio signing certificate: who it names, who issued it, when it is
//! valid, and whether it chains to a certificate authority of the root.
//!
//! Parsing is x509-cert's (RustCrypto); path building and the signature
//! checks along the chain are rustls-webpki's, on aws-lc-rs, the verifier
//! the operator's TLS already uses. The certificate must allow code signing
//! (extended key usage), as Fulcio's do.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ParsedPublicKey};
use k8s_openapi::jiff::Timestamp;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode, asn1::Utf8StringRef, oid::ObjectIdentifier};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

use super::root::CertificateAuthority;

/// Fulcio's OIDC issuer extension, first version: the issuer as raw bytes.
pub const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension, second version: a DER UTF8String.
pub const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER content octets.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// id-kp-codeSigning.
const CODE_SIGNING_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// What the checks need of a signing certificate.
#[derive(Clone, Debug)]
pub struct SigningCertificate {
    der: CertificateDer<'static>,
    /// Its SAN values (URIs, e-mail addresses, DNS names), in order.
    pub subjects: Vec<String>,
    /// The OIDC issuer of its Fulcio extension (v2 preferred over v1).
    pub issuer: Option<String>,
    /// Its issuer's distinguished name, for messages.
    pub issued_by: String,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// Whether its extended key usage names code signing.
    pub code_signing: bool,
    spki: Vec<u8>,
}

impl SigningCertificate {
    /// The first certificate of PEM text (cosign's certificate annotation).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| "the certificate is not a PEM CERTIFICATE".to_string())?;
        Self::from_der(der.into_owned())
    }

    /// A DER certificate.
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, String> {
        let cert = Certificate::from_der(der.as_ref())
            .map_err(|e| format!("the certificate is not X.509: {e}"))?;
        let tbs = cert.tbs_certificate();
        let mut subjects = Vec::new();
        if let Ok(Some((_, san))) = tbs.get_extension::<SubjectAltName>() {
            for name in san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(v)
                    | GeneralName::Rfc822Name(v)
                    | GeneralName::DnsName(v) => subjects.push(v.to_string()),
                    _ => {}
                }
            }
        }
        let code_signing = matches!(
            tbs.get_extension::<ExtendedKeyUsage>(),
            Ok(Some((_, eku))) if eku.0.contains(&CODE_SIGNING_OID)
        );
        let mut v1 = None;
        let mut v2 = None;
        for ext in tbs.extensions().into_iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == ISSUER_V2 {
                v2 = Utf8StringRef::from_der(value)
                    .ok()
                    .map(|s| s.as_str().to_string());
            } else if ext.extn_id == ISSUER_V1 {
                v1 = std::str::from_utf8(value).ok().map(str::to_string);
            }
        }
        let time = |t: x509_cert::time::Time| {
            Timestamp::from_second(t.to_unix_duration().as_secs() as i64)
                .map_err(|e| format!("the certificate's validity is out of range: {e}"))
        };
        Ok(Self {
            subjects,
            issuer: v2.or(v1),
            issued_by: tbs.issuer().to_string(),
            not_before: time(tbs.validity().not_before)?,
            not_after: time(tbs.validity().not_after)?,
            code_signing,
            spki: tbs
                .subject_public_key_info()
                .to_der()
                .map_err(|e| format!("the certificate's public key: {e}"))?,
            der,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// Whether `at` is within notBefore..=notAfter.
    pub fn valid_at(&self, at: Timestamp) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// Whether `signature` (ASN.1 ECDSA, P-256 or P-384) by the certificate's key signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        [&ECDSA_P256_SHA256_ASN1, &ECDSA_P384_SHA384_ASN1]
            .into_iter()
            .filter_map(|alg| ParsedPublicKey::new(alg, &self.spki).ok())
            .any(|key| key.verify_sig(message, signature).is_ok())
    }

    /// Checks the path from the certificate to the root of `authority`, at
    /// `at`, through the authority's own intermediates and `presented` ones.
    /// Intermediates that restrict their extended key usage must allow code
    /// signing (Fulcio's do); the signing certificate must name it.
    pub fn chains_to(
        &self,
        authority: &CertificateAuthority,
        presented: &[CertificateDer<'static>],
        at: Timestamp,
    ) -> Result<(), String> {
        let Some((root, own)) = authority.chain.split_last() else {
            return Err("the authority has no certificate".into());
        };
        let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| format!("{e:?}"))?;
        let mut intermediates: Vec<CertificateDer<'static>> = own.to_vec();
        intermediates.extend(presented.iter().cloned());
        let leaf = webpki::EndEntityCert::try_from(&self.der).map_err(|e| format!("{e:?}"))?;
        let seconds = u64::try_from(at.as_second()).unwrap_or_default();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
            webpki::KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
    }
}

/// Every certificate of PEM text (cosign's chain annotation); unreadable sections are skipped.
pub fn pem_chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}
