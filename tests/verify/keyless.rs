//! Keyless signatures made by the real `cosign` with a private Sigstore.
//!
//! `tests/fixtures/keyless/sigstore.py` (Python `cryptography` in the test
//! world's venv) makes a trusted root — a certificate authority with an
//! intermediate, another authority, a transparency-log key, another log key
//! — and Fulcio-like signing certificates (SAN, OIDC issuer extensions v1
//! and v2, code signing). The real `cosign` signs: `cosign generate` writes
//! the payload, `cosign sign-blob` signs it with the certificate's key, the
//! script makes the Rekor entry and its signed entry timestamp, and `cosign
//! attach signature --certificate --certificate-chain --rekor-response`
//! stores it in the Quay registry as cosign's annotations; `cosign sign
//! --certificate --certificate-chain --tlog-upload=false` makes one with no
//! log entry. The product gathers the signatures over HTTP and checks them
//! offline. The certificates live ten minutes and have expired when the
//! check runs, as Fulcio's have: only the log entry proves they were used
//! in time. Each refusal must name what did not match.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use image_promoter::verify::cosign::{
    SignatureLayout, SignatureOutcome, Verifier, fetch_signatures, verify,
};
use image_promoter::verify::keyless::{Identity, KeylessVerifier, Pattern, TrustedRoot};

use crate::oci::{Auth, Registry, TestImage};
use crate::store::Quay;
use crate::support::{TestEnv, unique_name};

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keyless/sigstore.py"
);

/// A private Sigstore in a scratch directory, and the cosign that signs with it.
struct Sigstore {
    env: TestEnv,
    dir: PathBuf,
}

/// How a signature gets (or lacks) its transparency-log entry.
enum Entry {
    /// Logged by `log` (a key file of the scratch directory) five minutes after notBefore.
    By(&'static str),
    /// None: `cosign sign --tlog-upload=false`.
    None,
}

impl Sigstore {
    fn new(env: &TestEnv) -> Self {
        let dir = std::env::temp_dir().join(unique_name("promoter-keyless"));
        std::fs::create_dir_all(&dir).unwrap();
        let sigstore = Self {
            env: env.clone(),
            dir,
        };
        sigstore.python(&["root", sigstore.path("").to_str().unwrap()]);
        sigstore
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn python(&self, args: &[&str]) -> Output {
        let output = Command::new(self.env.tool("python"))
            .arg(SCRIPT)
            .args(args)
            .output()
            .expect("running sigstore.py");
        assert!(
            output.status.success(),
            "sigstore.py {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn cosign(&self, args: &[&str]) -> Output {
        let output = Command::new(self.env.tool("cosign"))
            .args(args)
            .current_dir(&self.dir)
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", self.env.get("PROMOTER_TEST_DOCKER_CONFIG"))
            .env("SSL_CERT_FILE", self.env.get("PROMOTER_TEST_CA"))
            .env("SIGSTORE_NO_CACHE", "true")
            .env("TUF_ROOT", self.path("tuf"))
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

    /// A signing certificate `label` from authority `ca` ("trusted" or
    /// "other"), valid for ten minutes from an hour ago, and its key
    /// imported for cosign (`<label>-cosign.key`).
    fn certificate(&self, label: &str, ca: &str, issuer: &str, subject: &str) {
        let hour_ago = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 3600;
        self.python(&[
            "leaf",
            self.dir.to_str().unwrap(),
            label,
            ca,
            issuer,
            subject,
            &hour_ago.to_string(),
            "10",
        ]);
        self.cosign(&[
            "import-key-pair",
            "--key",
            &format!("{label}.key"),
            "--output-key-prefix",
            &format!("{label}-cosign"),
        ]);
    }

    /// Signs `reference` with certificate `label`, the real cosign writing
    /// the signature and its annotations.
    fn sign(&self, reference: &str, label: &str, entry: Entry) {
        let key = format!("{label}-cosign.key");
        let (certificate, chain) = (format!("{label}.pem"), format!("{label}.chain.pem"));
        let log = match entry {
            Entry::None => {
                self.cosign(&[
                    "sign",
                    "--key",
                    &key,
                    "--certificate",
                    &certificate,
                    "--certificate-chain",
                    &chain,
                    "--tlog-upload=false",
                    "--yes",
                    reference,
                ]);
                return;
            }
            Entry::By(log) => log,
        };
        let payload = self.cosign(&["generate", reference]).stdout;
        let prefix = unique_name(label);
        let payload_file = format!("{prefix}.payload.json");
        std::fs::write(self.path(&payload_file), payload).unwrap();
        let signature_file = format!("{prefix}.sig");
        self.cosign(&[
            "sign-blob",
            "--key",
            &key,
            "--tlog-upload=false",
            "--yes",
            "--output-signature",
            &signature_file,
            &payload_file,
        ]);
        let not_before = certificate_not_before(&self.path(&certificate));
        self.python(&[
            "entry",
            self.dir.to_str().unwrap(),
            self.path(&payload_file).to_str().unwrap(),
            self.path(&signature_file).to_str().unwrap(),
            self.path(&certificate).to_str().unwrap(),
            log,
            &(not_before + 300).to_string(),
            self.path(&prefix).to_str().unwrap(),
        ]);
        self.cosign(&[
            "attach",
            "signature",
            "--payload",
            &payload_file,
            "--signature",
            &signature_file,
            "--certificate",
            &certificate,
            "--certificate-chain",
            &chain,
            "--rekor-response",
            &format!("{prefix}.rekor.json"),
            reference,
        ]);
    }

    fn root(&self) -> Arc<TrustedRoot> {
        let json = std::fs::read(self.path("trusted_root.json")).unwrap();
        Arc::new(TrustedRoot::from_json(&json).unwrap())
    }

    fn verifier(&self, issuer: Pattern, subject: Pattern) -> Verifier {
        Verifier::Keyless(KeylessVerifier {
            identities: vec![Identity { issuer, subject }],
            root: self.root(),
        })
    }

    fn exact(&self, issuer: &str, subject: &str) -> Verifier {
        self.verifier(
            Pattern::Exact(issuer.into()),
            Pattern::Exact(subject.into()),
        )
    }
}

impl Drop for Sigstore {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// notBefore of a PEM certificate, in seconds since the epoch.
fn certificate_not_before(path: &Path) -> i64 {
    let pem = std::fs::read_to_string(path).unwrap();
    image_promoter::verify::keyless::SigningCertificate::from_pem(&pem)
        .unwrap()
        .not_before
        .as_second()
}

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
