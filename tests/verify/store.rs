//! A tiny registry reader for the tests: the product's `SignatureStore`
//! over plain HTTP with basic auth (the Quay registry), plus the manifest
//! writes the tests use to tamper with signatures.

use image_promoter::verify::cosign::SignatureStore;
use reqwest::{StatusCode, header};

use crate::support::TestEnv;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// One repository of the Quay registry, read and written with the robot account.
pub struct Quay {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl Quay {
    pub fn new(env: &TestEnv, repository: &str) -> Self {
        let ca = reqwest::Certificate::from_pem(&env.ca_pem()).expect("test CA is PEM");
        Self {
            http: reqwest::Client::builder()
                .tls_certs_only([ca])
                .build()
                .expect("HTTP client"),
            base: format!(
                "https://{}/v2/{repository}",
                env.get("PROMOTER_TEST_QUAY_REGISTRY")
            ),
            user: env.get("PROMOTER_TEST_QUAY_USER").to_string(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").to_string(),
        }
    }

    /// GET `path`; `None` on 404.
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, HttpError> {
        let response = self
            .http
            .get(format!("{}/{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .header(header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| HttpError(e.to_string()))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(
                response
                    .bytes()
                    .await
                    .map_err(|e| HttpError(e.to_string()))?
                    .to_vec(),
            )),
            status => Err(HttpError(format!("GET {path}: {status}"))),
        }
    }

    /// PUT a manifest under a tag or digest.
    pub async fn put_manifest(&self, reference: &str, media_type: &str, bytes: Vec<u8>) {
        let response = self
            .http
            .put(format!("{}/manifests/{reference}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .header(header::CONTENT_TYPE, media_type)
            .body(bytes)
            .send()
            .await
            .expect("PUT manifest");
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "PUT manifest {reference}"
        );
    }
}

impl SignatureStore for Quay {
    type Error = HttpError;

    async fn manifest(&self, reference: &str) -> Result<Option<Vec<u8>>, HttpError> {
        self.get(&format!("manifests/{reference}")).await
    }

    async fn referrers(&self, digest: &str) -> Result<Option<Vec<u8>>, HttpError> {
        self.get(&format!("referrers/{digest}")).await
    }

    async fn blob(&self, digest: &str) -> Result<Vec<u8>, HttpError> {
        self.get(&format!("blobs/{digest}"))
            .await?
            .ok_or_else(|| HttpError(format!("blob {digest} not found")))
    }
}
