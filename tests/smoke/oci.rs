//! A deliberately small OCI distribution client for the smoke suite: just enough
//! to push and pull blobs and manifests with each registry's auth, so the suite
//! proves the registries are real without depending on the product's client.
//! Other test binaries use it to seed and inspect registries independently of
//! the engine under test; each uses a part of it.
#![allow(dead_code)]

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use reqwest::{Method, StatusCode, header};

/// How to authenticate to a registry.
#[derive(Clone)]
pub enum Auth {
    Anonymous,
    Basic {
        user: String,
        password: String,
    },
    /// The bearer challenge flow; `basic` is what the token realm is given.
    Bearer {
        basic: Option<(String, String)>,
    },
}

/// One registry host, reached over TLS with the test CA.
pub struct Registry {
    host: String,
    http: reqwest::Client,
    auth: Auth,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    let hex: String = digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A small image: a config, one layer and the manifest that names them.
pub struct TestImage {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn new(seed: &str) -> Self {
        let layer: Vec<u8> = (0..4096u32)
            .flat_map(|i| sha256(format!("{seed}{i}").as_bytes()).into_bytes())
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(&layer),
                "size": layer.len(),
            }],
        }))
        .unwrap();
        Self {
            config,
            layer,
            manifest,
        }
    }

    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

impl Registry {
    pub fn new(host: &str, ca_pem: &[u8], auth: Auth) -> Self {
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("test CA is PEM");
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("building an HTTP client");
        Self {
            host: host.to_string(),
            http,
            auth,
        }
    }

    /// The `Authorization` header for `repo` with `actions`, after the bearer
    /// challenge where the registry asks for one.
    async fn authorization(&self, repo: &str, actions: &str) -> Result<Option<String>, String> {
        match &self.auth {
            Auth::Anonymous => Ok(None),
            Auth::Basic { user, password } => Ok(Some(basic(user, password))),
            Auth::Bearer { basic: creds } => {
                let ping = self
                    .http
                    .get(format!("https://{}/v2/", self.host))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let challenge = ping
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .ok_or("the registry sent no WWW-Authenticate challenge")?
                    .to_string();
                let params = parse_challenge(&challenge)?;
                let realm = params.get("realm").ok_or("challenge without realm")?;
                let service = params.get("service").ok_or("challenge without service")?;
                let mut request = self.http.get(realm.as_str()).query(&[
                    ("service", service.as_str()),
                    ("scope", &format!("repository:{repo}:{actions}")),
                ]);
                if let Some((user, password)) = creds {
                    request = request.header(header::AUTHORIZATION, basic(user, password));
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("token realm answered {}", response.status()));
                }
                let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
                let token = body["token"]
                    .as_str()
                    .ok_or("token response without token")?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        auth: &Option<String>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, String> {
        let mut request = self.http.request(method, url);
        if let Some(value) = auth {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(value) = content_type {
            request = request.header(header::CONTENT_TYPE, value);
        }
        if let Some(bytes) = body {
            request = request.body(bytes);
        }
        request.send().await.map_err(|e| e.to_string())
    }

    /// Monolithic blob upload (POST then PUT ?digest=); the HTTP status on refusal.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, StatusCode> {
        let auth = self
            .authorization(repo, "pull,push")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let digest = sha256(bytes);
        let start = self
            .send(
                Method::POST,
                format!("https://{}/v2/{repo}/blobs/uploads/", self.host),
                &auth,
                None,
                None,
            )
            .await
            .expect("POST upload");
        if start.status() != StatusCode::ACCEPTED {
            return Err(start.status());
        }
        let location = start.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        let url = if location.starts_with("https://") {
            location
        } else {
            format!("https://{}{location}", self.host)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let put = self
            .send(
                Method::PUT,
                format!("{url}{sep}digest={digest}"),
                &auth,
                Some("application/octet-stream"),
                Some(bytes.to_vec()),
            )
            .await
            .expect("PUT upload");
        if put.status() != StatusCode::CREATED {
            return Err(put.status());
        }
        Ok(digest)
    }

    /// GET a blob; the bytes, or the HTTP status.
    pub async fn pull_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, StatusCode> {
        let auth = self
            .authorization(repo, "pull")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let response = self
            .send(
                Method::GET,
                format!("https://{}/v2/{repo}/blobs/{digest}", self.host),
                &auth,
                None,
                None,
            )
            .await
            .expect("GET blob");
        if !response.status().is_success() {
            return Err(response.status());
        }
        Ok(response.bytes().await.expect("blob body").to_vec())
    }

    /// DELETE a blob from a repository (the test world's registries allow it).
    pub async fn delete_blob(&self, repo: &str, digest: &str) -> Result<(), StatusCode> {
        let auth = self
            .authorization(repo, "pull,push,delete")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let response = self
            .send(
                Method::DELETE,
                format!("https://{}/v2/{repo}/blobs/{digest}", self.host),
                &auth,
                None,
                None,
            )
            .await
            .expect("DELETE blob");
        if response.status() != StatusCode::ACCEPTED {
            return Err(response.status());
        }
        Ok(())
    }

    /// Pushes the image's blobs and its manifest under `reference` (a tag).
    pub async fn push_image(
        &self,
        repo: &str,
        image: &TestImage,
        reference: &str,
    ) -> Result<String, StatusCode> {
        self.push_blob(repo, &image.config).await?;
        self.push_blob(repo, &image.layer).await?;
        let auth = self
            .authorization(repo, "pull,push")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let response = self
            .send(
                Method::PUT,
                format!("https://{}/v2/{repo}/manifests/{reference}", self.host),
                &auth,
                Some("application/vnd.oci.image.manifest.v1+json"),
                Some(image.manifest.clone()),
            )
            .await
            .expect("PUT manifest");
        if response.status() != StatusCode::CREATED {
            return Err(response.status());
        }
        Ok(image.digest())
    }

    /// PUT manifest bytes of any media type under `reference`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, StatusCode> {
        let auth = self
            .authorization(repo, "pull,push")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let response = self
            .send(
                Method::PUT,
                format!("https://{}/v2/{repo}/manifests/{reference}", self.host),
                &auth,
                Some(media_type),
                Some(bytes.to_vec()),
            )
            .await
            .expect("PUT manifest");
        if response.status() != StatusCode::CREATED {
            return Err(response.status());
        }
        Ok(sha256(bytes))
    }

    /// Sends a manifest request (GET or HEAD) with pull access; the response
    /// when it succeeded, else its status.
    async fn manifest_response(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
    ) -> Result<reqwest::Response, StatusCode> {
        let auth = self
            .authorization(repo, "pull")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let mut request = self
            .http
            .request(method, format!("https://{}/v2/{repo}/manifests/{reference}", self.host))
            .header(
                header::ACCEPT,
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            );
        if let Some(value) = &auth {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = request.send().await.expect("manifest request");
        if !response.status().is_success() {
            return Err(response.status());
        }
        Ok(response)
    }

    /// GET a manifest's bytes and content type.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), StatusCode> {
        let response = self.manifest_response(Method::GET, repo, reference).await?;
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        Ok((
            response.bytes().await.expect("manifest body").to_vec(),
            content_type,
        ))
    }

    /// The repository's tags (one `tags/list` page of up to 1,000), or the HTTP status.
    #[allow(dead_code)]
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, StatusCode> {
        let auth = self
            .authorization(repo, "pull")
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let mut request = self
            .http
            .get(format!("https://{}/v2/{repo}/tags/list?n=1000", self.host));
        if let Some(value) = &auth {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = request.send().await.expect("tags/list request");
        if !response.status().is_success() {
            return Err(response.status());
        }
        let body: serde_json::Value = response.json().await.expect("a tags/list body");
        Ok(body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// HEAD a manifest; its digest, or the HTTP status.
    pub async fn manifest_digest(&self, repo: &str, reference: &str) -> Result<String, StatusCode> {
        let response = self
            .manifest_response(Method::HEAD, repo, reference)
            .await?;
        Ok(response.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string())
    }
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// `Bearer realm="…",service="…"` → its parameters.
fn parse_challenge(challenge: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let rest = challenge
        .strip_prefix("Bearer ")
        .ok_or_else(|| format!("not a bearer challenge: {challenge}"))?;
    Ok(rest
        .split(',')
        .filter_map(|part| {
            let (key, value) = part.trim().split_once('=')?;
            Some((key.to_string(), value.trim_matches('"').to_string()))
        })
        .collect())
}
