//! Docker credential helpers: `docker-credential-<name> get`, the protocol
//! `docker login` stores credentials with (`credHelpers`, `credsStore`), so the
//! command line reaches a registry the way docker, skopeo and crane do.
//!
//! The helper is a program on PATH named by a file the user controls, but what
//! it prints is treated as untrusted: it gets the server URL on standard input
//! and nothing else, at most [`MAX_OUTPUT`] bytes of its standard output are
//! read, it is killed after [`TIMEOUT`], its standard error is not kept, and no
//! error quotes what it printed. The helper runs when the registry first asks
//! for credentials, not before. Deciding what the answer means is pure
//! ([`parse_answer`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::credentials::{Credential, CredentialError, CredentialSource, Lease, Secret};

/// How long a helper may take (a keychain may ask the user to unlock it).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a helper's standard output read; an answer is a few hundred bytes.
pub const MAX_OUTPUT: usize = 64 << 10;
/// The reason of every helper failure.
pub const REASON: &str = "CredentialHelperFailed";

/// What a helper prints for `get`.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The user name with which a helper answers an identity (OAuth2 refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// What a helper's answer means: a credential, `None` when it has none for
/// the server ("credentials not found" and a failed exit, or an empty
/// answer), or why it cannot be used. The message never quotes the output.
pub fn parse_answer(
    helper: &str,
    success: bool,
    stdout: &[u8],
) -> Result<Option<Credential>, String> {
    let program = format!("docker-credential-{helper}");
    if !success {
        let text = String::from_utf8_lossy(stdout);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!(
            "{program} get failed (its output is not shown: it may hold a secret)"
        ));
    }
    let answer: Answer = serde_json::from_slice(stdout).map_err(|_| {
        format!("{program} get printed something other than {{\"Username\", \"Secret\"}} JSON")
    })?;
    if answer.username == IDENTITY_TOKEN_USER {
        return Ok(Some(Credential::IdentityToken(Secret::new(answer.secret))));
    }
    if answer.username.is_empty() && answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::Basic {
        username: answer.username,
        password: Secret::new(answer.secret),
    }))
}

/// Credentials from a docker credential helper, asked when the registry
/// first wants them; the answer is kept for the run.
#[derive(Debug)]
pub struct CredentialHelper {
    /// The `<name>` of `docker-credential-<name>`.
    pub helper: String,
    /// What the helper is asked for: the registry host, or Docker Hub's URL.
    pub server_url: String,
    /// What to use when the helper has nothing for the server (a `credsStore`
    /// next to the file's own `auths` entry); anonymous when `None`.
    pub fallback: Option<Credential>,
    /// The program to run: `docker-credential-<name>` on PATH unless set.
    pub program: Option<PathBuf>,
    /// How long it may take.
    pub timeout: Duration,
}

impl CredentialHelper {
    /// The helper `docker-credential-<helper>` on PATH.
    pub fn new(helper: &str, server_url: &str, fallback: Option<Credential>) -> Self {
        Self {
            helper: helper.to_string(),
            server_url: server_url.to_string(),
            fallback,
            program: None,
            timeout: TIMEOUT,
        }
    }

    fn program(&self) -> PathBuf {
        self.program
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("docker-credential-{}", self.helper)))
    }

    fn error(&self, message: String, transient: bool) -> CredentialError {
        CredentialError {
            message: format!("{message} (asked for {})", self.server_url),
            transient,
            reason: Some(REASON),
        }
    }

    /// Runs `get` and reads its answer.
    async fn get(&self) -> Result<Option<Credential>, CredentialError> {
        let program = format!("docker-credential-{}", self.helper);
        let mut child = tokio::process::Command::new(self.program())
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let message = match e.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "{program} is not on PATH (the docker config names it in credHelpers \
                         or credsStore); install it or remove the entry"
                    ),
                    _ => format!("starting {program}: {e}"),
                };
                self.error(message, false)
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let server_url = self.server_url.clone();
        let talk = async move {
            // A helper that exits without reading its input is not an error here.
            let _ = stdin.write_all(server_url.as_bytes()).await;
            drop(stdin);
            let mut output = Vec::new();
            (&mut stdout)
                .take(MAX_OUTPUT as u64 + 1)
                .read_to_end(&mut output)
                .await?;
            if output.len() > MAX_OUTPUT {
                return Ok((None, output));
            }
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((Some(status.success()), output))
        };
        let (success, output) = tokio::time::timeout(self.timeout, talk)
            .await
            .map_err(|_| {
                self.error(
                    format!(
                        "{program} get did not answer within {} s",
                        self.timeout.as_secs()
                    ),
                    true,
                )
            })?
            .map_err(|e| self.error(format!("talking to {program}: {e}"), false))?;
        let Some(success) = success else {
            return Err(self.error(
                format!("{program} get printed more than {MAX_OUTPUT} bytes"),
                false,
            ));
        };
        parse_answer(&self.helper, success, &output).map_err(|message| self.error(message, false))
    }
}

impl CredentialSource for CredentialHelper {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, CredentialError>> {
        Box::pin(async move {
            let credential = match self.get().await? {
                Some(credential) => credential,
                None => self.fallback.clone().unwrap_or(Credential::Anonymous),
            };
            Ok(Lease::forever(credential))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &str = "hunter2-s3cret";

    fn basic(user: &str, password: &str) -> Credential {
        Credential::Basic {
            username: user.into(),
            password: Secret::new(password),
        }
    }

    #[test]
    fn answers_mean_a_credential_nothing_or_a_refusal() {
        let ok = format!(r#"{{"ServerURL":"q.io","Username":"robot","Secret":"{SECRET}"}}"#);
        assert_eq!(
            parse_answer("t", true, ok.as_bytes()),
            Ok(Some(basic("robot", SECRET)))
        );
        assert_eq!(
            parse_answer("t", false, b"credentials not found in native keychain\n"),
            Ok(None)
        );
        assert_eq!(
            parse_answer("t", true, br#"{"Username":"","Secret":""}"#),
            Ok(None)
        );
        let token = format!(r#"{{"Username":"<token>","Secret":"{SECRET}"}}"#);
        assert_eq!(
            parse_answer("t", true, token.as_bytes()),
            Ok(Some(Credential::IdentityToken(Secret::new(SECRET))))
        );
        let refused = [
            (false, format!("error: {SECRET}")),
            (true, format!("not json {SECRET}")),
            (true, format!(r#"{{"Username":1,"Secret":"{SECRET}"}}"#)),
        ];
        for (success, output) in refused {
            let message = parse_answer("t", success, output.as_bytes()).unwrap_err();
            assert!(message.starts_with("docker-credential-t get"), "{message}");
            assert!(!message.contains(SECRET), "{output}: {message}");
        }
    }

    /// A helper script of this test's own.
    fn script(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "image-promoter-helper-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    fn helper(name: &str, body: &str, fallback: Option<Credential>) -> CredentialHelper {
        CredentialHelper {
            program: Some(script(name, body)),
            timeout: Duration::from_secs(5),
            ..CredentialHelper::new(name, "registry.test:5000", fallback)
        }
    }

    #[tokio::test]
    async fn runs_the_helper_with_the_server_on_its_input() {
        // The helper answers only for the server it is asked about.
        let answering = helper(
            "answering",
            &format!(
                r#"read server; [ "$server" = registry.test:5000 ] || exit 3
printf '{{"ServerURL":"%s","Username":"robot","Secret":"{SECRET}"}}' "$server""#
            ),
            None,
        );
        let lease = answering.fetch().await.unwrap();
        assert_eq!(lease.credential, basic("robot", SECRET));

        let empty = helper(
            "empty",
            "echo 'credentials not found in native keychain'; exit 1",
            Some(basic("from-file", "p")),
        );
        assert_eq!(
            empty.fetch().await.unwrap().credential,
            basic("from-file", "p")
        );
        let anonymous = helper("anonymous", "echo 'credentials not found'; exit 1", None);
        assert_eq!(
            anonymous.fetch().await.unwrap().credential,
            Credential::Anonymous
        );
    }

    #[tokio::test]
    async fn a_helper_that_misbehaves_is_cut_off_and_not_quoted() {
        let cases = [
            (
                "failing",
                format!("echo 'fatal: {SECRET}' >&2; echo '{SECRET}'; exit 2"),
                "get failed",
                false,
            ),
            (
                "flooding",
                "yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_string(),
                "printed more than 65536 bytes",
                false,
            ),
            (
                "hanging",
                "exec sleep 30".to_string(),
                "did not answer within 1 s",
                true,
            ),
        ];
        for (name, body, expected, transient) in cases {
            let mut source = helper(name, &body, None);
            source.timeout = Duration::from_secs(1);
            let error = source.fetch().await.unwrap_err();
            assert!(
                error.message.contains(expected),
                "{name}: {}",
                error.message
            );
            assert!(!error.message.contains(SECRET), "{name}: {}", error.message);
            assert_eq!(error.transient, transient, "{name}");
            assert_eq!(error.reason, Some(REASON));
        }
        let missing = CredentialHelper::new("surely-not-installed-x1", "r.test", None)
            .fetch()
            .await
            .unwrap_err();
        assert!(
            missing
                .message
                .contains("docker-credential-surely-not-installed-x1 is not on PATH"),
            "{}",
            missing.message
        );
    }
}
