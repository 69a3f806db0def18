//! cosign interoperability: images signed by the real `cosign` binary in the
//! Quay registry, their signatures gathered over HTTP through the product's
//! `SignatureStore` boundary and checked by the product's verifier. Covers
//! the `.sig` tag, both OCI 1.1 referrer forms, a wrong key, a tampered
//! payload, a signature of another digest, a missing signature, and a
//! signature on one platform's child of a multi-platform index.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image_promoter::verify::cosign::{
    PublicKey, SignatureLayout, SignatureOutcome, Verifier, fetch_signatures, layout, verify,
};
use serde_json::json;

use crate::oci::{Auth, Registry, TestImage, sha256};
use crate::store::Quay;
use crate::support::{TestEnv, unique_name};

/// A scratch directory with two cosign key pairs: `signer` and `other`.
struct Cosign {
    env: TestEnv,
    dir: PathBuf,
}

impl Cosign {
    fn new(env: &TestEnv) -> Self {
        let dir = std::env::temp_dir().join(unique_name("promoter-verify-cosign"));
        for name in ["signer", "other"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
        }
        let cosign = Self {
            env: env.clone(),
            dir,
        };
        for name in ["signer", "other"] {
            cosign.run(&cosign.dir.join(name), &["generate-key-pair"], &[]);
        }
        cosign
    }

    fn run(&self, cwd: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        let output = Command::new(self.env.tool("cosign"))
            .args(args)
            .current_dir(cwd)
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", self.env.get("PROMOTER_TEST_DOCKER_CONFIG"))
            .env("SSL_CERT_FILE", self.env.get("PROMOTER_TEST_CA"))
            .env("SIGSTORE_NO_CACHE", "true")
            .env("TUF_ROOT", self.dir.join("tuf"))
            .envs(extra_env.iter().copied())
            .output()
            .expect("running cosign");
        assert!(
            output.status.success(),
            "cosign {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `cosign sign` with the signer's key, no transparency log, plus `extra` flags.
    fn sign(&self, reference: &str, extra: &[&str], extra_env: &[(&str, &str)]) {
        let mut args = vec![
            "sign",
            "--key",
            "signer/cosign.key",
            "--tlog-upload=false",
            "--yes",
        ];
        args.extend_from_slice(extra);
        args.push(reference);
        self.run(&self.dir, &args, extra_env);
    }

    fn public_key(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name).join("cosign.pub")).unwrap()
    }

    fn key_id(&self, name: &str) -> String {
        PublicKey::from_pem(&self.public_key(name))
            .unwrap()
            .key_id()
            .to_string()
    }
}

impl Drop for Cosign {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A fresh repository in the Quay registry.
struct Repo {
    env: TestEnv,
    name: String,
    registry: Registry,
    quay: Quay,
}

impl Repo {
    fn new(env: &TestEnv, prefix: &str) -> Self {
        let name = unique_name(prefix);
        Self {
            env: env.clone(),
            registry: Registry::new(
                env.get("PROMOTER_TEST_QUAY_REGISTRY"),
                &env.ca_pem(),
                Auth::Basic {
                    user: env.get("PROMOTER_TEST_QUAY_USER").into(),
                    password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
                },
            ),
            quay: Quay::new(env, &name),
            name,
        }
    }

    async fn push(&self, seed: &str, tag: &str) -> (TestImage, String) {
        let image = TestImage::new(&format!("{}-{seed}", self.name));
        let digest = self
            .registry
            .push_image(&self.name, &image, tag)
            .await
            .expect("push image");
        (image, digest)
    }

    fn reference(&self, digest: &str) -> String {
        format!(
            "{}/{}@{digest}",
            self.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            self.name
        )
    }

    /// Gathers the signatures of `digest` and checks them against the PEM key.
    async fn verify(&self, digest: &str, key_pem: &[u8]) -> SignatureOutcome {
        let candidates = fetch_signatures(&self.quay, digest)
            .await
            .expect("gathering signatures");
        verify(
            &Verifier::public_key_pem(key_pem).unwrap(),
            digest,
            &candidates,
        )
    }

    /// The `.sig` manifest of `digest`, as JSON.
    async fn sig_manifest(&self, digest: &str) -> serde_json::Value {
        use image_promoter::verify::cosign::SignatureStore as _;
        let bytes = self
            .quay
            .manifest(&layout::signature_tag(digest).unwrap())
            .await
            .unwrap()
            .expect("the .sig manifest exists");
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn problems(outcome: &SignatureOutcome) -> &[String] {
    match outcome {
        SignatureOutcome::Invalid { problems, .. } => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_signature_tag_made_by_cosign_verifies_with_its_key_only() {
    let env = TestEnv::load();
    let cosign = Cosign::new(&env);
    let repo = Repo::new(&env, "verify/legacy");
    let (_, digest) = repo.push("legacy", "1.0.0").await;

    assert_eq!(
        repo.verify(&digest, &cosign.public_key("signer")).await,
        SignatureOutcome::Missing,
        "an unsigned image"
    );

    cosign.sign(&repo.reference(&digest), &[], &[]);
    let sig_digest = repo
        .registry
        .manifest_digest(&repo.name, &layout::signature_tag(&digest).unwrap())
        .await
        .unwrap();
    assert_eq!(
        repo.verify(&digest, &cosign.public_key("signer")).await,
        SignatureOutcome::Verified {
            key_id: cosign.key_id("signer"),
            signature_digest: sig_digest,
            layout: SignatureLayout::SignatureTag,
        }
    );

    let wrong_key = repo.verify(&digest, &cosign.public_key("other")).await;
    assert!(
        problems(&wrong_key)[0].contains("not made by a trusted key"),
        "{wrong_key:?}"
    );
    let SignatureOutcome::Invalid { trusted, .. } = wrong_key else {
        unreachable!()
    };
    assert_eq!(trusted, [cosign.key_id("other")]);
}

#[tokio::test]
async fn a_tampered_payload_does_not_verify() {
    let env = TestEnv::load();
    let cosign = Cosign::new(&env);
    let repo = Repo::new(&env, "verify/tampered");
    let (_, digest) = repo.push("tampered", "1.0.0").await;
    cosign.sign(&repo.reference(&digest), &[], &[]);

    // Rewrite the signed payload (same digest claim, another identity) and
    // point the signature manifest at it, keeping the original signature.
    let mut manifest = repo.sig_manifest(&digest).await;
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let payload = repo.registry.pull_blob(&repo.name, &layer).await.unwrap();
    let tampered = String::from_utf8(payload)
        .unwrap()
        .replace(&repo.name, "someone/else")
        .into_bytes();
    let tampered_digest = repo
        .registry
        .push_blob(&repo.name, &tampered)
        .await
        .unwrap();
    assert_eq!(tampered_digest, sha256(&tampered));
    manifest["layers"][0]["digest"] = json!(tampered_digest);
    manifest["layers"][0]["size"] = json!(tampered.len());
    repo.quay
        .put_manifest(
            &layout::signature_tag(&digest).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await;

    let outcome = repo.verify(&digest, &cosign.public_key("signer")).await;
    assert!(
        problems(&outcome)[0].contains("the payload changed after signing"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_signature_of_another_digest_does_not_verify() {
    let env = TestEnv::load();
    let cosign = Cosign::new(&env);
    let repo = Repo::new(&env, "verify/other-digest");
    let (_, wanted) = repo.push("wanted", "1.0.0").await;
    let (_, signed) = repo.push("signed", "2.0.0").await;
    cosign.sign(&repo.reference(&signed), &[], &[]);

    // Someone copies the other image's signature manifest to this image's .sig tag.
    let manifest = repo.sig_manifest(&signed).await;
    repo.quay
        .put_manifest(
            &layout::signature_tag(&wanted).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await;

    let outcome = repo.verify(&wanted, &cosign.public_key("signer")).await;
    let expected = format!("made by key {} but for {signed}", cosign.key_id("signer"));
    assert!(problems(&outcome)[0].contains(&expected), "{outcome:?}");
    assert!(matches!(
        repo.verify(&signed, &cosign.public_key("signer")).await,
        SignatureOutcome::Verified { .. }
    ));
}

#[tokio::test]
async fn referrer_signatures_of_newer_cosign_verify() {
    let env = TestEnv::load();
    let cosign = Cosign::new(&env);
    let repo = Repo::new(&env, "verify/referrers");
    let (_, referrer) = repo.push("referrer", "1.0.0").await;
    let (_, bundle) = repo.push("bundle", "2.0.0").await;
    cosign.sign(
        &repo.reference(&referrer),
        &["--registry-referrers-mode=oci-1-1"],
        &[("COSIGN_EXPERIMENTAL", "1")],
    );
    cosign.sign(&repo.reference(&bundle), &["--new-bundle-format"], &[]);

    for digest in [&referrer, &bundle] {
        // Neither signature is under the .sig tag: only the referrers hold it.
        assert!(
            repo.registry
                .manifest_digest(&repo.name, &layout::signature_tag(digest).unwrap())
                .await
                .is_err()
        );
        match repo.verify(digest, &cosign.public_key("signer")).await {
            SignatureOutcome::Verified { key_id, layout, .. } => {
                assert_eq!(key_id, cosign.key_id("signer"));
                assert_eq!(layout, SignatureLayout::Referrer);
            }
            other => panic!("{digest}: expected Verified, got {other:?}"),
        }
        let wrong = repo.verify(digest, &cosign.public_key("other")).await;
        assert!(
            problems(&wrong)[0].contains("OCI 1.1 referrer"),
            "{wrong:?}"
        );
    }
}

#[tokio::test]
async fn a_signature_on_one_platforms_child_does_not_sign_the_index() {
    let env = TestEnv::load();
    let cosign = Cosign::new(&env);
    let repo = Repo::new(&env, "verify/multi-arch");
    let (amd64, amd64_digest) = repo.push("amd64", "amd64").await;
    let (arm64, arm64_digest) = repo.push("arm64", "arm64").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64_digest,
             "size": amd64.manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64_digest,
             "size": arm64.manifest.len(), "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }))
    .unwrap();
    let index_digest = sha256(&index);
    repo.quay
        .put_manifest("1.0.0", "application/vnd.oci.image.index.v1+json", index)
        .await;

    cosign.sign(&repo.reference(&amd64_digest), &[], &[]);
    let key = cosign.public_key("signer");
    assert!(matches!(
        repo.verify(&amd64_digest, &key).await,
        SignatureOutcome::Verified { .. }
    ));
    assert_eq!(
        repo.verify(&index_digest, &key).await,
        SignatureOutcome::Missing,
        "a child's signature does not sign the index"
    );

    cosign.sign(&repo.reference(&index_digest), &[], &[]);
    assert!(matches!(
        repo.verify(&index_digest, &key).await,
        SignatureOutcome::Verified { .. }
    ));
    assert_eq!(
        repo.verify(&arm64_digest, &key).await,
        SignatureOutcome::Missing,
        "the index's signature does not sign a child"
    );
}
