//! Keyless signatures made by the real `cosign` with a private Sigstore
//! ([`crate::keyless_sigstore`]), stored in the Quay registry, gathered over
//! HTTP and checked offline by the product's verifier. The certificates have
//! expired when the check runs, as Fulcio's have: only the log entry proves
//! they were used in time. Each refusal must name what did not match.

use image_promoter::verify::cosign::{
    SignatureLayout, SignatureOutcome, Verifier, fetch_signatures, verify,
};
use image_promoter::verify::keyless::Pattern;

use crate::keyless_sigstore::{Entry, GITHUB, Sigstore, WORKFLOW};
use crate::oci::{Auth, Registry, TestImage};
use crate::store::Quay;
use crate::support::{TestEnv, unique_name};

/// A fresh repository in the Quay registry with one image.
struct Signed {
    env: TestEnv,
    name: String,
    quay: Quay,
    registry: Registry,
    digest: String,
}

impl Signed {
    async fn push(env: &TestEnv, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let registry = Registry::new(
            env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            &env.ca_pem(),
            Auth::Basic {
                user: env.get("PROMOTER_TEST_QUAY_USER").into(),
                password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
            },
        );
        let image = TestImage::new(&name);
        let digest = registry
            .push_image(&name, &image, "1.0.0")
            .await
            .expect("push image");
        Self {
            env: env.clone(),
            quay: Quay::new(env, &name),
            registry,
            name,
            digest,
        }
    }

    fn reference(&self) -> String {
        format!(
            "{}/{}@{}",
            self.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            self.name,
            self.digest
        )
    }

    async fn verify(&self, verifier: &Verifier) -> SignatureOutcome {
        let candidates = fetch_signatures(&self.quay, &self.digest)
            .await
            .expect("gathering signatures");
        verify(verifier, &self.digest, &candidates)
    }
}

impl Signed {
    /// Signs with the real `cosign sign --new-bundle-format` and certificate
    /// `label` (a Sigstore bundle referrer, no log entry: this cosign cannot
    /// upload to a private log), then puts in its place the same bundle with
    /// the `dsse` entry `log` makes: referrer manifest and fallback index
    /// rewritten as cosign would have written them with the entry.
    async fn sign_bundle(&self, sigstore: &Sigstore, label: &str, log: &str) {
        sigstore.cosign(&[
            "sign",
            "--new-bundle-format",
            "--key",
            &format!("{label}-cosign.key"),
            "--certificate",
            &format!("{label}.pem"),
            "--certificate-chain",
            &format!("{label}.chain.pem"),
            "--tlog-upload=false",
            "--yes",
            &self.reference(),
        ]);
        let fallback = self.digest.replace(':', "-");
        let (index, _) = self
            .registry
            .get_manifest(&self.name, &fallback)
            .await
            .unwrap();
        let mut index: serde_json::Value = serde_json::from_slice(&index).unwrap();
        let entries = index["manifests"].as_array_mut().unwrap();
        assert_eq!(entries.len(), 1, "cosign wrote one referrer: {entries:?}");
        let written = entries[0]["digest"].as_str().unwrap().to_string();
        let (manifest, media_type) = self
            .registry
            .get_manifest(&self.name, &written)
            .await
            .unwrap();
        let mut manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(
            manifest["artifactType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        let layer = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let bundle = self.registry.pull_blob(&self.name, &layer).await.unwrap();
        let logged = sigstore.logged_bundle(&bundle, label, log);
        manifest["layers"][0]["digest"] = self
            .registry
            .push_blob(&self.name, &logged)
            .await
            .unwrap()
            .into();
        manifest["layers"][0]["size"] = logged.len().into();
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let digest = self
            .registry
            .put_manifest(
                &self.name,
                &written_digest(&manifest),
                &media_type,
                &manifest,
            )
            .await
            .unwrap();
        entries[0]["digest"] = digest.into();
        entries[0]["size"] = manifest.len().into();
        let index = serde_json::to_vec(&index).unwrap();
        self.registry
            .put_manifest(
                &self.name,
                &fallback,
                "application/vnd.oci.image.index.v1+json",
                &index,
            )
            .await
            .unwrap();
    }
}

/// `sha256:<hex>` of `bytes`.
fn written_digest(bytes: &[u8]) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The one problem of a refused image.
fn refusal(outcome: SignatureOutcome) -> String {
    match outcome {
        SignatureOutcome::Invalid { problems, .. } => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            problems[0].clone()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assert_names(problem: &str, parts: &[&str]) {
    for part in parts {
        assert!(problem.contains(part), "{problem:?} lacks {part:?}");
    }
}

#[tokio::test]
async fn the_signing_identity_is_accepted_and_another_subject_or_issuer_refused() {
    let env = TestEnv::load();
    let sigstore = Sigstore::new(&env);
    sigstore.certificate("ci", "trusted", GITHUB, WORKFLOW);
    let image = Signed::push(&env, "verify/keyless-ok").await;
    assert_eq!(
        image.verify(&sigstore.exact(GITHUB, WORKFLOW)).await,
        SignatureOutcome::Missing
    );
    sigstore.sign(&image.reference(), "ci", Entry::By("log"));

    for verifier in [
        sigstore.exact(GITHUB, WORKFLOW),
        sigstore.verifier(
            Pattern::Regex(
                regex::Regex::new(r"^https://token\.actions\.githubusercontent\.com$").unwrap(),
            ),
            Pattern::Regex(
                regex::Regex::new(r"^https://github\.com/acme/[^/]+/\.github/workflows/").unwrap(),
            ),
        ),
    ] {
        match image.verify(&verifier).await {
            SignatureOutcome::Verified { key_id, layout, .. } => {
                assert_eq!(key_id, format!("{GITHUB} {WORKFLOW}"));
                assert_eq!(layout, SignatureLayout::SignatureTag);
            }
            other => panic!("expected the signature to verify, got {other:?}"),
        }
    }

    let other_subject = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main";
    let problem = refusal(image.verify(&sigstore.exact(GITHUB, other_subject)).await);
    assert_names(
        &problem,
        &[
            &format!("names subject {WORKFLOW}"),
            &format!("not {other_subject}"),
        ],
    );
    let problem = refusal(
        image
            .verify(&sigstore.exact("https://accounts.google.com", WORKFLOW))
            .await,
    );
    assert_names(
        &problem,
        &[
            &format!("names issuer {GITHUB}"),
            "not https://accounts.google.com",
        ],
    );

    // The real cosign accepts the same signature offline with the same root:
    // the private Sigstore is a Sigstore, not a shape only this verifier reads.
    sigstore.cosign(&[
        "verify",
        "--offline",
        "--insecure-ignore-sct",
        "--trusted-root",
        "trusted_root.json",
        "--certificate-identity",
        WORKFLOW,
        "--certificate-oidc-issuer",
        GITHUB,
        &image.reference(),
    ]);
}

#[tokio::test]
async fn an_expired_certificate_without_log_entry_is_refused() {
    let env = TestEnv::load();
    let sigstore = Sigstore::new(&env);
    sigstore.certificate("ci", "trusted", GITHUB, WORKFLOW);
    let image = Signed::push(&env, "verify/keyless-nolog").await;
    sigstore.sign(&image.reference(), "ci", Entry::None);
    let problem = refusal(image.verify(&sigstore.exact(GITHUB, WORKFLOW)).await);
    assert_names(
        &problem,
        &[
            "no transparency-log entry proves when it was signed",
            "has expired",
        ],
    );
}

#[tokio::test]
async fn a_log_entry_signed_by_a_key_outside_the_root_is_refused() {
    let env = TestEnv::load();
    let sigstore = Sigstore::new(&env);
    sigstore.certificate("ci", "trusted", GITHUB, WORKFLOW);
    let image = Signed::push(&env, "verify/keyless-otherlog").await;
    sigstore.sign(&image.reference(), "ci", Entry::By("other-log"));
    let problem = refusal(image.verify(&sigstore.exact(GITHUB, WORKFLOW)).await);
    assert_names(
        &problem,
        &[
            "transparency-log entry is signed by log",
            "a key outside the trusted root",
        ],
    );
}

#[tokio::test]
async fn a_certificate_of_another_authority_is_refused() {
    let env = TestEnv::load();
    let sigstore = Sigstore::new(&env);
    sigstore.certificate("elsewhere", "other", GITHUB, WORKFLOW);
    let image = Signed::push(&env, "verify/keyless-otherca").await;
    sigstore.sign(&image.reference(), "elsewhere", Entry::By("log"));
    let problem = refusal(image.verify(&sigstore.exact(GITHUB, WORKFLOW)).await);
    assert_names(
        &problem,
        &[
            "issued by \"CN=other intermediate,O=image-promoter tests\"",
            "does not chain to a certificate authority of the trusted root",
        ],
    );
}

/// cosign v3's format: the real cosign signs a Sigstore bundle referrer with
/// the certificate, the private log's `dsse` entry is added, and the
/// product's verifier accepts the identity and refuses another subject,
/// naming it; an entry by a log outside the root is refused too.
#[tokio::test]
async fn a_keyless_signature_in_the_bundle_format_is_checked_like_the_annotations() {
    let env = TestEnv::load();
    let sigstore = Sigstore::new(&env);
    sigstore.certificate("ci", "trusted", GITHUB, WORKFLOW);
    let image = Signed::push(&env, "verify/keyless-bundle").await;
    image.sign_bundle(&sigstore, "ci", "log").await;
    match image.verify(&sigstore.exact(GITHUB, WORKFLOW)).await {
        SignatureOutcome::Verified { key_id, layout, .. } => {
            assert_eq!(key_id, format!("{GITHUB} {WORKFLOW}"));
            assert_eq!(layout, SignatureLayout::Referrer);
        }
        other => panic!("expected the bundle to verify, got {other:?}"),
    }
    let other_subject = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main";
    let problem = refusal(image.verify(&sigstore.exact(GITHUB, other_subject)).await);
    assert_names(
        &problem,
        &[
            "OCI 1.1 referrer",
            &format!("names subject {WORKFLOW}"),
            &format!("not {other_subject}"),
        ],
    );

    // The real cosign accepts the same bundle offline with the same root.
    sigstore.cosign(&[
        "verify",
        "--new-bundle-format",
        "--offline",
        "--insecure-ignore-sct",
        "--trusted-root",
        "trusted_root.json",
        "--certificate-identity",
        WORKFLOW,
        "--certificate-oidc-issuer",
        GITHUB,
        &image.reference(),
    ]);

    let elsewhere = Signed::push(&env, "verify/keyless-bundle-otherlog").await;
    elsewhere.sign_bundle(&sigstore, "ci", "other-log").await;
    let problem = refusal(elsewhere.verify(&sigstore.exact(GITHUB, WORKFLOW)).await);
    assert_names(&problem, &["a key outside the trusted root"]);
}
