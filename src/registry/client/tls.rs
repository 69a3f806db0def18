//! Whom a registry connection trusts: the system's roots, read once per
//! process (a run with three registries used to read the 300 files of
//! /etc/ssl/certs three times before its first request), plus the CAs a
//! registry's configuration adds. `SSL_CERT_FILE` / `SSL_CERT_DIR` point
//! elsewhere when set.

use crate::registry::error::RegistryError;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::{Arc, OnceLock};

/// The system's trust roots, loaded on first use.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "reading the system's trust roots");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system trust roots loaded");
        roots
    })
}

/// TLS settings for one registry: system roots plus `extra_pem`, HTTP/1.1.
pub(super) fn client_config(
    extra_pem: Option<&[u8]>,
    host: &str,
) -> Result<ClientConfig, RegistryError> {
    let invalid = |message: String| RegistryError::Transport {
        operation: "loading CA bundle",
        host: host.to_string(),
        message,
        transient: false,
    };
    let mut roots = system_roots().clone();
    if let Some(pem) = extra_pem {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("not a PEM bundle: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("holds no certificate".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("a certificate cannot be a root: {e}")))?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(format!("TLS versions: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_bundle_without_certificates() {
        let err = client_config(Some(b"not pem at all"), "r.example").unwrap_err();
        assert!(err.to_string().contains("holds no certificate"), "{err}");
        let err = client_config(
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            "r.example",
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot be a root"), "{err}");
    }

    #[test]
    fn the_system_roots_are_read_once() {
        let first: *const RootCertStore = system_roots();
        assert!(std::ptr::eq(first, system_roots()));
    }
}
