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
