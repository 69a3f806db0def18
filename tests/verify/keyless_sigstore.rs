//! A private Sigstore for integration tests, and the real `cosign` signing
//! with it. Shared by tests/verify/keyless.rs and tests/operator/keyless.rs.
//!
//! `tests/fixtures/keyless/sigstore.py` (Python `cryptography` in the test
//! world's venv) makes a trusted root — a certificate authority with an
//! intermediate, another authority, a transparency-log key, another log key
//! — and Fulcio-like signing certificates (SAN, OIDC issuer extensions v1
//! and v2, code signing) valid for ten minutes from an hour ago, as an
//! expired Fulcio certificate is. The real `cosign` signs: `cosign generate`
//! writes the payload, `cosign sign-blob` signs it with the certificate's
//! key, the script makes the Rekor entry and its signed entry timestamp, and
//! `cosign attach signature --certificate --certificate-chain
//! --rekor-response` stores it in the registry as cosign's annotations;
//! `cosign sign --certificate --certificate-chain --tlog-upload=false`
//! makes one with no log entry, and with `--new-bundle-format` a Sigstore
//! bundle to which the script adds the log's `dsse` entry
//! ([`Sigstore::logged_bundle`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use image_promoter::verify::cosign::Verifier;
use image_promoter::verify::keyless::{Identity, KeylessVerifier, Pattern, TrustedRoot};

use crate::support::{TestEnv, unique_name};

pub const GITHUB: &str = "https://token.actions.githubusercontent.com";
pub const WORKFLOW: &str =
    "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keyless/sigstore.py"
);

/// A private Sigstore in a scratch directory, and the cosign that signs with it.
pub struct Sigstore {
    env: TestEnv,
    dir: PathBuf,
}

/// How a signature gets (or lacks) its transparency-log entry.
pub enum Entry {
    /// Logged by `log` (a key file of the scratch directory) five minutes after notBefore.
    By(&'static str),
    /// None: `cosign sign --tlog-upload=false`.
    None,
}

impl Sigstore {
    pub fn new(env: &TestEnv) -> Self {
        let dir = std::env::temp_dir().join(unique_name("promoter-keyless"));
        std::fs::create_dir_all(&dir).unwrap();
        let sigstore = Self {
            env: env.clone(),
            dir,
        };
        sigstore.python(&["root", sigstore.path("").to_str().unwrap()]);
        sigstore
    }

    pub fn path(&self, name: &str) -> PathBuf {
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

    pub fn cosign(&self, args: &[&str]) -> Output {
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
    pub fn certificate(&self, label: &str, ca: &str, issuer: &str, subject: &str) {
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
    pub fn sign(&self, reference: &str, label: &str, entry: Entry) {
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

    /// Adds to the Sigstore bundle `bundle` (JSON, as `cosign sign
    /// --new-bundle-format --tlog-upload=false` wrote it with certificate
    /// `label`) the `dsse` entry `log` makes five minutes after notBefore;
    /// the new bundle.
    pub fn logged_bundle(&self, bundle: &[u8], label: &str, log: &str) -> Vec<u8> {
        let prefix = unique_name(label);
        let (input, output) = (
            self.path(&format!("{prefix}.in.json")),
            self.path(&format!("{prefix}.sigstore.json")),
        );
        std::fs::write(&input, bundle).unwrap();
        let certificate = self.path(&format!("{label}.pem"));
        let not_before = certificate_not_before(&certificate);
        self.python(&[
            "logged-bundle",
            self.dir.to_str().unwrap(),
            input.to_str().unwrap(),
            certificate.to_str().unwrap(),
            log,
            &(not_before + 300).to_string(),
            output.to_str().unwrap(),
        ]);
        std::fs::read(output).unwrap()
    }

    pub fn root(&self) -> Arc<TrustedRoot> {
        let json = std::fs::read(self.path("trusted_root.json")).unwrap();
        Arc::new(TrustedRoot::from_json(&json).unwrap())
    }

    pub fn verifier(&self, issuer: Pattern, subject: Pattern) -> Verifier {
        Verifier::Keyless(KeylessVerifier {
            identities: vec![Identity { issuer, subject }],
            root: self.root(),
        })
    }

    pub fn exact(&self, issuer: &str, subject: &str) -> Verifier {
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
