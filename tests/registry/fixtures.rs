//! Seeds the source registry with images built here (random, incompressible
//! layers; single-platform manifests and multi-platform indexes) through the
//! independent test client, and reads targets back the same way.

use crate::oci::{Auth, Registry, sha256};
use crate::support::{TestEnv, unique_name};
use image_promoter::config::Config;
use image_promoter::registry::{Engine, Repository};
use serde_json::json;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image pushed to the source: its manifest bytes, digest and blob sizes.
pub struct Seeded {
    pub repository: String,
    pub digest: String,
    pub manifest: Vec<u8>,
    /// Blob digests with their sizes (configs and layers of every platform).
    pub blobs: Vec<(String, u64)>,
}

impl Seeded {
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, size)| size).sum()
    }
}

/// Pseudo-random bytes that do not compress (xorshift, seeded).
pub fn random_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut state = u64::from_str_radix(&sha256(seed.as_bytes())[7..23], 16).unwrap() | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn quay(env: &TestEnv) -> Registry {
    Registry::new(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    )
}

pub async fn ecr(env: &TestEnv) -> Registry {
    let docker = std::fs::read(format!(
        "{}/config.json",
        env.get("PROMOTER_TEST_DOCKER_CONFIG")
    ))
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&docker).unwrap();
    let auth = config["auths"][env.get("PROMOTER_TEST_ECR_REGISTRY")]["auth"]
        .as_str()
        .unwrap();
    use base64::Engine as _;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap(),
    )
    .unwrap();
    let (user, password) = decoded.split_once(':').unwrap();
    Registry::new(
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        },
    )
}

/// The engine configured for the test world.
pub async fn engine(env: &TestEnv) -> Engine {
    let config = Config::load(env.get("PROMOTER_TEST_CONFIG").as_ref())
        .expect("the test world's promoter.yaml");
    Engine::new(config.registries().await.expect("registry clients"))
}

pub fn repository(host: &str, name: &str) -> Repository {
    format!("{host}/{name}").parse().unwrap()
}

/// Pushes one platform's config + layers + manifest; returns (manifest, digest, blobs).
async fn push_platform(
    registry: &Registry,
    repo: &str,
    seed: &str,
    layer_sizes: &[usize],
    platform: (&str, &str),
) -> (Vec<u8>, String, Vec<(String, u64)>) {
    let mut layers = Vec::new();
    let mut blobs = Vec::new();
    for (i, size) in layer_sizes.iter().enumerate() {
        let bytes = random_bytes(&format!("{seed}-{}-{}-{i}", platform.0, platform.1), *size);
        let digest = registry.push_blob(repo, &bytes).await.expect("push layer");
        blobs.push((digest.clone(), bytes.len() as u64));
        layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": bytes.len()}));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": platform.1, "os": platform.0,
        "config": {"Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": blobs.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()},
    }))
    .unwrap();
    let config_digest = registry
        .push_blob(repo, &config)
        .await
        .expect("push config");
    blobs.insert(0, (config_digest.clone(), config.len() as u64));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    let digest = sha256(&manifest);
    (manifest, digest, blobs)
}

/// A single-platform image tagged `tag` in a new repository of the Quay registry.
pub async fn single(env: &TestEnv, prefix: &str, tag: &str, layer_sizes: &[usize]) -> Seeded {
    let registry = quay(env);
    let repository = unique_name(&format!("copy/{prefix}"));
    let (manifest, digest, blobs) = push_platform(
        &registry,
        &repository,
        &repository,
        layer_sizes,
        ("linux", "amd64"),
    )
    .await;
    registry
        .put_manifest(&repository, tag, OCI_MANIFEST, &manifest)
        .await
        .expect("push manifest");
    Seeded {
        repository,
        digest,
        manifest,
        blobs,
    }
}

/// A multi-platform index (linux/amd64, linux/arm64) tagged `tag`.
pub async fn multi(env: &TestEnv, prefix: &str, tag: &str, layer_sizes: &[usize]) -> Seeded {
    let registry = quay(env);
    let repository = unique_name(&format!("copy/{prefix}"));
    let mut entries = Vec::new();
    let mut all_blobs = Vec::new();
    for platform in [("linux", "amd64"), ("linux", "arm64")] {
        let (manifest, digest, blobs) =
            push_platform(&registry, &repository, &repository, layer_sizes, platform).await;
        registry
            .put_manifest(&repository, &digest, OCI_MANIFEST, &manifest)
            .await
            .expect("push child manifest");
        entries.push(json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
            "platform": {"os": platform.0, "architecture": platform.1},
        }));
        all_blobs.extend(blobs);
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    let digest = registry
        .put_manifest(&repository, tag, OCI_INDEX, &index)
        .await
        .expect("push index");
    Seeded {
        repository,
        digest,
        manifest: index,
        blobs: all_blobs,
    }
}

/// Images of one Quay repository, one per tag, sharing a base layer and each
/// with a layer of its own (a release train's tags, as a mirror sees them).
pub struct Family {
    pub repository: String,
    /// (tag, manifest digest), in the order given.
    pub images: Vec<(String, String)>,
    pub base: String,
    /// Distinct blobs of the family: the base, and each image's layer and config.
    pub distinct_blobs: u64,
}

pub async fn family(env: &TestEnv, prefix: &str, tags: &[&str], base_size: usize) -> Family {
    let registry = quay(env);
    let repository = unique_name(&format!("copy/{prefix}"));
    let base_bytes = random_bytes(&format!("{repository}-base"), base_size);
    let base = registry
        .push_blob(&repository, &base_bytes)
        .await
        .expect("push base layer");
    let mut images = Vec::new();
    for tag in tags {
        let own = random_bytes(&format!("{repository}-{tag}"), 50_000);
        let own_digest = registry
            .push_blob(&repository, &own)
            .await
            .expect("push layer");
        let layer = |digest: &str, size: usize| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size});
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": [base, own_digest]},
        }))
        .unwrap();
        let config_digest = registry
            .push_blob(&repository, &config)
            .await
            .expect("push config");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [layer(&base, base_bytes.len()), layer(&own_digest, own.len())],
        }))
        .unwrap();
        let digest = registry
            .put_manifest(&repository, tag, OCI_MANIFEST, &manifest)
            .await
            .expect("push manifest");
        images.push((tag.to_string(), digest));
    }
    Family {
        repository,
        distinct_blobs: 1 + 2 * tags.len() as u64,
        images,
        base,
    }
}

/// A plain SDK client for the ECR Public stand-in (to create repositories).
pub fn ecr_public_client(env: &TestEnv) -> aws_sdk_ecrpublic::Client {
    let config = aws_sdk_ecrpublic::Config::builder()
        .behavior_version(aws_sdk_ecrpublic::config::BehaviorVersion::latest())
        .region(aws_sdk_ecrpublic::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ecrpublic::config::Credentials::new(
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "testenv",
        ))
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR_PUBLIC"))
        .build();
    aws_sdk_ecrpublic::Client::from_conf(config)
}

/// Creates a repository in the ECR Public stand-in (it refuses pushes to others).
pub async fn create_public_repository(env: &TestEnv, name: &str) {
    ecr_public_client(env)
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("CreateRepository");
}
