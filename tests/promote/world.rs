//! The test world as the promote tests use it: source images seeded in the
//! internal ECR registry and registered in moto with their real digests,
//! scans with injected findings, signatures by the real `cosign`, targets in
//! the Quay registry and the ECR Public stand-in, ImagePromotion objects
//! written to files, and the binary run on them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aws_sdk_ecr::config::Credentials;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageIdentifier, ImageTagMutability,
};
use base64::Engine as _;
use image_promoter::api::conditions::find_condition;
use image_promoter::api::{ImagePromotionStatus, TargetState};
use image_promoter::verify::cosign::PublicKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::oci::{Auth, Registry, TestImage};
use crate::support::{TestEnv, unique_name};

const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/promote-tests";
/// The source tag every test promotes.
pub const TAG: &str = "1.0.0";

/// How the source repository is set up in moto.
#[derive(Clone, Copy, Debug)]
pub struct SourceRepository {
    pub immutable: bool,
    pub kms: bool,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The usual good source: immutable tags, KMS encryption.
pub const GOOD: SourceRepository = SourceRepository {
    immutable: true,
    kms: true,
};

/// Which cosign key pair signs.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    /// The key pair the promotions trust.
    Signer,
    /// Another key pair.
    Other,
}

impl Key {
    fn dir(self) -> &'static str {
        match self {
            Key::Signer => "signer",
            Key::Other => "other",
        }
    }
}

/// The key pairs, generated once per test binary by the real cosign.
fn keys(env: &TestEnv) -> &'static Path {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("promote-cosign"));
        for key in [Key::Signer, Key::Other] {
            std::fs::create_dir_all(dir.join(key.dir())).unwrap();
            cosign(env, &dir, &dir.join(key.dir()), &["generate-key-pair"]);
        }
        dir
    })
}

fn cosign(env: &TestEnv, keys: &Path, cwd: &Path, args: &[&str]) {
    let output = Command::new(env.tool("cosign"))
        .args(args)
        .current_dir(cwd)
        .env("COSIGN_PASSWORD", "")
        .env("DOCKER_CONFIG", env.get("PROMOTER_TEST_DOCKER_CONFIG"))
        .env("SSL_CERT_FILE", env.get("PROMOTER_TEST_CA"))
        .env("SIGSTORE_NO_CACHE", "true")
        .env("TUF_ROOT", keys.join("tuf"))
        .output()
        .expect("running cosign");
    assert!(
        output.status.success(),
        "cosign {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The public key file of `key`, for `--public-key`.
pub fn public_key_file(env: &TestEnv, key: Key) -> PathBuf {
    keys(env).join(key.dir()).join("cosign.pub")
}

/// The key id verification reports for `key`.
pub fn key_id(env: &TestEnv, key: Key) -> String {
    let pem = std::fs::read(public_key_file(env, key)).unwrap();
    PublicKey::from_pem(&pem).unwrap().key_id().to_string()
}

/// A source image: in the internal ECR registry and registered in moto.
pub struct Source {
    /// The repository name in ECR.
    pub name: String,
    /// `sha256:…` of its manifest.
    pub digest: String,
}

/// Clients for every part of the test world one test touches.
pub struct World {
    pub env: TestEnv,
    ecr: aws_sdk_ecr::Client,
    public: aws_sdk_ecrpublic::Client,
    pub quay: Registry,
    ecr_registry: Registry,
    public_registry: Registry,
}

fn credentials(env: &TestEnv) -> Credentials {
    Credentials::new(
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "testenv",
    )
}

/// `(user, password)` from a base64 `user:password` authorization token.
fn split_token(token: &str) -> (String, String) {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("the authorization token is base64");
    let text = String::from_utf8(decoded).expect("the authorization token is UTF-8");
    let (user, password) = text.split_once(':').expect("user:password");
    (user.to_string(), password.to_string())
}

impl World {
    pub async fn new() -> Self {
        Self::with_env(TestEnv::load()).await
    }

    /// The world as `env` describes it (a private control plane's ECR Public).
    pub async fn with_env(env: TestEnv) -> Self {
        let ecr = aws_sdk_ecr::Client::from_conf(
            aws_sdk_ecr::Config::builder()
                .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
                .region(aws_sdk_ecr::config::Region::new(
                    env.get("AWS_REGION").to_string(),
                ))
                .credentials_provider(credentials(&env))
                .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR"))
                .build(),
        );
        let public = aws_sdk_ecrpublic::Client::from_conf(
            aws_sdk_ecrpublic::Config::builder()
                .behavior_version(aws_sdk_ecrpublic::config::BehaviorVersion::latest())
                .region(aws_sdk_ecrpublic::config::Region::new("us-east-1"))
                .credentials_provider(credentials(&env))
                .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR_PUBLIC"))
                .build(),
        );
        let ecr_token = ecr
            .get_authorization_token()
            .send()
            .await
            .expect("GetAuthorizationToken on moto");
        let (user, password) = split_token(
            ecr_token.authorization_data()[0]
                .authorization_token()
                .expect("an ECR token"),
        );
        let ecr_registry = Registry::new(
            env.get("PROMOTER_TEST_ECR_REGISTRY"),
            &env.ca_pem(),
            Auth::Basic { user, password },
        );
        let public_token = public
            .get_authorization_token()
            .send()
            .await
            .expect("GetAuthorizationToken on the ECR Public stand-in");
        let public_registry = Registry::new(
            env.get("PROMOTER_TEST_PUBLIC_REGISTRY"),
            &env.ca_pem(),
            Auth::Bearer {
                basic: Some(split_token(
                    public_token
                        .authorization_data()
                        .and_then(|d| d.authorization_token())
                        .expect("an ECR Public token"),
                )),
            },
        );
        let quay = Registry::new(
            env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            &env.ca_pem(),
            Auth::Basic {
                user: env.get("PROMOTER_TEST_QUAY_USER").into(),
                password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
            },
        );
        Self {
            env,
            ecr,
            public,
            quay,
            ecr_registry,
            public_registry,
        }
    }

    /// A new repository in moto set up as `settings`, holding one image
    /// tagged [`TAG`]: pushed to the ECR registry and registered in moto
    /// with its real digest.
    pub async fn source(&self, prefix: &str, settings: SourceRepository) -> Source {
        let name = self.source_repository_in_moto(prefix, settings).await;
        let image = TestImage::new(&name);
        let digest = self
            .ecr_registry
            .push_image(&name, &image, TAG)
            .await
            .expect("pushing the source image to the ECR registry");
        self.register(&name, &image.manifest, OCI_MANIFEST, &digest)
            .await;
        Source { name, digest }
    }

    /// Like [`World::source`], but the image is an index of two platforms,
    /// linux/amd64 and linux/arm64, each a [`TestImage`] of its own.
    pub async fn index_source(&self, prefix: &str) -> Source {
        let name = self.source_repository_in_moto(prefix, GOOD).await;
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let image = TestImage::new(&format!("{name}-{arch}"));
            let digest = self
                .ecr_registry
                .push_image(&name, &image, &image.digest())
                .await
                .expect("pushing a platform manifest");
            entries.push(json!({
                "mediaType": OCI_MANIFEST, "digest": digest, "size": image.manifest.len(),
                "platform": {"os": "linux", "architecture": arch},
            }));
        }
        let index = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
        )
        .unwrap();
        let digest = self
            .ecr_registry
            .put_manifest(&name, TAG, OCI_INDEX, &index)
            .await
            .expect("pushing the index");
        self.register(&name, &index, OCI_INDEX, &digest).await;
        Source { name, digest }
    }

    /// A new repository in moto set up as `settings`.
    async fn source_repository_in_moto(&self, prefix: &str, settings: SourceRepository) -> String {
        let name = unique_name(&format!("promote/{prefix}"));
        let encryption = if settings.kms {
            EncryptionConfiguration::builder()
                .encryption_type(EncryptionType::Kms)
                .kms_key(KMS_KEY)
        } else {
            EncryptionConfiguration::builder().encryption_type(EncryptionType::Aes256)
        };
        let mutability = if settings.immutable {
            ImageTagMutability::Immutable
        } else {
            ImageTagMutability::Mutable
        };
        self.ecr
            .create_repository()
            .repository_name(&name)
            .image_tag_mutability(mutability)
            .encryption_configuration(encryption.build().unwrap())
            .send()
            .await
            .expect("CreateRepository in moto");
        name
    }

    #[allow(dead_code)]
    /// Makes the source's repository immutable in moto (as a release engineer
    /// fixes a refused repository in ECR).
    pub async fn set_immutable(&self, source: &Source) {
        self.ecr
            .put_image_tag_mutability()
            .repository_name(&source.name)
            .image_tag_mutability(ImageTagMutability::Immutable)
            .send()
            .await
            .expect("PutImageTagMutability in moto");
    }

    /// Registers the image tagged [`TAG`] in moto with its real digest.
    async fn register(&self, name: &str, manifest: &[u8], media_type: &str, digest: &str) {
        self.ecr
            .put_image()
            .repository_name(name)
            .image_manifest(String::from_utf8(manifest.to_vec()).unwrap())
            .image_manifest_media_type(media_type)
            .image_tag(TAG)
            .image_digest(digest)
            .send()
            .await
            .expect("PutImage in moto");
    }

    /// Starts a scan of the source and sets its result: `status` with `findings`
    /// (`(id, severity)`, basic scan format).
    pub async fn scan(&self, source: &Source, status: &str, findings: &[(&str, &str)]) {
        self.ecr
            .start_image_scan()
            .repository_name(&source.name)
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(&source.digest)
                    .build(),
            )
            .send()
            .await
            .expect("StartImageScan in moto");
        let mut counts = serde_json::Map::new();
        for (_, severity) in findings {
            let count = counts.entry(severity.to_string()).or_insert(json!(0));
            *count = json!(count.as_i64().unwrap() + 1);
        }
        let mut result = json!({
            "registryId": self.env.get("PROMOTER_TEST_ECR_ACCOUNT"),
            "repositoryName": source.name,
            "imageId": {"imageDigest": source.digest},
            "imageScanStatus": {"status": status, "description": format!("scan {status}")},
        });
        if status == "COMPLETE" {
            result["imageScanFindings"] = json!({
                "imageScanCompletedAt": 1_781_000_000,
                "vulnerabilitySourceUpdatedAt": 1_781_000_000,
                "findingSeverityCounts": counts,
                "findings": findings.iter().map(|(id, severity)| json!({
                    "name": id,
                    "uri": format!("https://cve.example/{id}"),
                    "severity": severity,
                    "attributes": [{"key": "package_name", "value": "openssl"}],
                })).collect::<Vec<_>>(),
            });
        }
        let response = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/static/ecr/scan-finding-results",
                self.env.get("AWS_ENDPOINT_URL_ECR")
            ))
            .json(&json!({
                "results": [result],
                "region": self.env.get("AWS_REGION"),
                "account_id": self.env.get("PROMOTER_TEST_ECR_ACCOUNT"),
            }))
            .send()
            .await
            .expect("POST to moto's scan-finding-results hook");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Sets a new scan result for a source that was already asked about.
    /// moto hands out one result per image and keeps it for every later
    /// DescribeImageScanFindings, so the image is registered anew (same
    /// manifest, tag and digest) before the new result is injected: what a
    /// scan finishing looks like to the product. (Used by tests/operator,
    /// which shares this world.)
    #[allow(dead_code)]
    pub async fn rescan(&self, source: &Source, status: &str, findings: &[(&str, &str)]) {
        let id = ImageIdentifier::builder()
            .image_digest(&source.digest)
            .build();
        let images = self
            .ecr
            .batch_get_image()
            .repository_name(&source.name)
            .image_ids(id.clone())
            .send()
            .await
            .expect("BatchGetImage in moto");
        let image = &images.images()[0];
        let manifest = image.image_manifest().unwrap().to_string();
        let media_type = image
            .image_manifest_media_type()
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        self.ecr
            .batch_delete_image()
            .repository_name(&source.name)
            .image_ids(id)
            .send()
            .await
            .expect("BatchDeleteImage in moto");
        self.register(
            &source.name,
            manifest.as_bytes(),
            &media_type,
            &source.digest,
        )
        .await;
        self.scan(source, status, findings).await;
    }

    /// Signs the source image with `key`, the way a release pipeline does.
    pub fn sign(&self, source: &Source, key: Key) {
        self.sign_with(source, key, &[]);
    }

    /// Signs with `cosign sign --recursive`: the index and each platform manifest.
    pub fn sign_recursively(&self, source: &Source, key: Key) {
        self.sign_with(source, key, &["--recursive"]);
    }

    fn sign_with(&self, source: &Source, key: Key, extra: &[&str]) {
        let reference = format!("{}@{}", self.source_repository(source), source.digest);
        self.sign_reference(&reference, key, extra);
    }

    /// Signs `reference` (`host/name@digest`, in any of the world's
    /// registries) with `key`. (Used by tests/mirror, which shares this world.)
    pub fn sign_reference(&self, reference: &str, key: Key, extra: &[&str]) {
        let keys = keys(&self.env);
        let key_file = keys.join(key.dir()).join("cosign.key");
        let key_file = key_file.to_str().unwrap();
        let mut args = vec!["sign", "--key", key_file, "--tlog-upload=false", "--yes"];
        args.extend(extra);
        args.push(reference);
        cosign(&self.env, keys, keys, &args);
    }

    /// `host/name` of the source in the ECR registry.
    pub fn source_repository(&self, source: &Source) -> String {
        format!(
            "{}/{}",
            self.env.get("PROMOTER_TEST_ECR_REGISTRY"),
            source.name
        )
    }

    /// A new repository path in the Quay registry (nothing is created).
    pub fn quay_target(&self, prefix: &str) -> (String, String) {
        let name = unique_name(&format!("promote/{prefix}"));
        let repository = format!("{}/{name}", self.env.get("PROMOTER_TEST_QUAY_REGISTRY"));
        (name, repository)
    }

    /// A new ECR Public repository name and its full repository reference.
    pub fn public_target(&self, prefix: &str) -> (String, String) {
        let name = unique_name(&format!("promote-{prefix}"));
        let repository = format!(
            "{}/{}/{name}",
            self.env.get("PROMOTER_TEST_PUBLIC_REGISTRY"),
            self.env.get("PROMOTER_TEST_PUBLIC_ALIAS")
        );
        (name, repository)
    }

    /// The digest `tag` names in the Quay repository `name`, or the HTTP status.
    pub async fn quay_tag(&self, name: &str, tag: &str) -> Result<String, StatusCode> {
        self.quay.manifest_digest(name, tag).await
    }

    /// The digest `tag` names in the ECR Public repository `name`, or the HTTP status.
    pub async fn public_tag(&self, name: &str, tag: &str) -> Result<String, StatusCode> {
        let path = format!("{}/{name}", self.env.get("PROMOTER_TEST_PUBLIC_ALIAS"));
        self.public_registry.manifest_digest(&path, tag).await
    }

    #[allow(dead_code)]
    /// Creates the ECR Public repository `name` in the stand-in, as someone
    /// with access to the console would.
    pub async fn create_public_repository(&self, name: &str) {
        self.public
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .expect("CreateRepository on the ECR Public stand-in");
    }

    /// Whether the ECR Public repository `name` exists in the stand-in.
    pub async fn public_repository_exists(&self, name: &str) -> bool {
        match self
            .public
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(output) => !output.repositories().is_empty(),
            Err(error) => {
                let error = error.into_service_error();
                assert!(error.is_repository_not_found_exception(), "{error:?}");
                false
            }
        }
    }

    /// The catalog data of the ECR Public repository `name`.
    pub async fn catalog(&self, name: &str) -> aws_sdk_ecrpublic::types::RepositoryCatalogData {
        self.public
            .get_repository_catalog_data()
            .repository_name(name)
            .send()
            .await
            .expect("GetRepositoryCatalogData")
            .catalog_data()
            .cloned()
            .expect("catalog data")
    }

    /// Changes the description, as someone editing the gallery page would.
    pub async fn edit_description(&self, name: &str, description: &str) {
        self.public
            .put_repository_catalog_data()
            .repository_name(name)
            .catalog_data(
                aws_sdk_ecrpublic::types::RepositoryCatalogDataInput::builder()
                    .description(description)
                    .build(),
            )
            .send()
            .await
            .expect("PutRepositoryCatalogData");
    }

    /// Runs `image-promoter promote` on `object` (written to a file) with the
    /// test world's configuration and `args`.
    pub fn promote(&self, object: &Value, args: &[&str]) -> Promoted {
        self.promote_text(&serde_yaml_ng::to_string(object).unwrap(), args)
    }

    /// Runs `image-promoter promote` on a file holding `text`.
    pub fn promote_text(&self, text: &str, args: &[&str]) -> Promoted {
        self.promote_configured(self.env.get("PROMOTER_TEST_CONFIG").as_ref(), text, args)
    }

    /// Runs `image-promoter promote` on a file holding `text` with the
    /// configuration file `config`.
    pub fn promote_configured(
        &self,
        config: &std::path::Path,
        text: &str,
        args: &[&str],
    ) -> Promoted {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}.yaml", unique_name("promotion")));
        std::fs::write(&path, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_image-promoter"))
            .arg("promote")
            .arg("-f")
            .arg(&path)
            .arg("--config")
            .arg(config)
            .args(
                ["-o", "yaml"]
                    .iter()
                    .filter(|_| !args.iter().any(|a| *a == "--output" || *a == "-o")),
            )
            .args(args)
            .output()
            .expect("running image-promoter");
        std::fs::remove_file(&path).ok();
        Promoted {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// What one run of the binary printed and returned.
pub struct Promoted {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Promoted {
    /// The printed status (YAML, or JSON which is YAML too).
    pub fn status(&self) -> ImagePromotionStatus {
        serde_yaml_ng::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "the status does not parse ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts the exit code, showing what was printed when it differs.
    pub fn expect_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// `(status, reason, message)` of the condition `type_`; `None` when absent.
pub fn condition(status: &ImagePromotionStatus, type_: &str) -> Option<(String, String, String)> {
    find_condition(&status.conditions, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Asserts `type_` has `expected` status and reason; returns its message.
pub fn expect_condition(
    status: &ImagePromotionStatus,
    type_: &str,
    expected: (&str, &str),
) -> String {
    let (found, reason, message) = condition(status, type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:#?}", status.conditions));
    assert_eq!(
        (found.as_str(), reason.as_str()),
        expected,
        "{type_}: {message}"
    );
    message
}

/// Asserts every target is in `state`.
pub fn expect_targets(status: &ImagePromotionStatus, state: TargetState) {
    for target in &status.targets {
        assert_eq!(target.state, state, "{}: {:?}", target.name, target.message);
    }
}

/// An ImagePromotion of the source, with `verify` and `targets` as given.
pub fn promotion(world: &World, source: &Source, verify: Value, targets: Value) -> Value {
    json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": source.name.rsplit('/').next().unwrap()},
        "spec": {
            "source": {"image": format!("{}:{TAG}", world.source_repository(source))},
            "verify": verify,
            "targets": targets,
        },
    })
}

/// The policy of the Gold example: KMS, completed scan without HIGH, a signature by the signer.
pub fn signed_kms_policy() -> Value {
    json!({
        "encryption": "KMS",
        "signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}},
    })
}

/// The catalog data the ECR Public targets ask for.
pub fn catalog_data() -> Value {
    json!({
        "description": "The app, promoted from internal ECR",
        "aboutText": "# App\nBuilt, scanned and signed internally.",
        "usageText": "docker pull public.ecr.aws/acme/app:1.0.0",
        "architectures": ["x86-64", "ARM 64"],
        "operatingSystems": ["Linux"],
    })
}

/// A Quay target publishing [`TAG`] and a floating `latest`.
pub fn quay_target(name: &str, repository: &str) -> Value {
    json!({"name": name, "repository": repository, "tags": [TAG, "latest"], "floatingTags": ["latest"]})
}

/// An ECR Public stand-in target created with [`catalog_data`] when missing.
pub fn public_target(name: &str, repository: &str) -> Value {
    json!({
        "name": name,
        "repository": repository,
        "credentials": {"ecrPublic": {}},
        "createRepository": catalog_data(),
    })
}
