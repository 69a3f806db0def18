//! Credentials of the command line for hosts the `--config` file does not
//! declare: the docker client's own login, as skopeo and crane read it, so
//! `docker login quay.io && image-promoter copy … quay.io/…` works.
//!
//! Which file, first found wins ([`auth_file`], pure):
//! 1. `--authfile FILE` (must exist);
//! 2. `REGISTRY_AUTH_FILE` (podman's and skopeo's);
//! 3. `$DOCKER_CONFIG/config.json`;
//! 4. `~/.docker/config.json`.
//!
//! A variable that is set names the file even when it does not exist (then
//! there are no credentials), as the docker CLI treats `DOCKER_CONFIG`. In the
//! file, a host's credentials come from its `credHelpers` entry, else the
//! `credsStore`, else its `auths` entry ([`ClientConfig::lookup`]). Hosts the
//! configuration declares, and ECR / ECR Public hosts that `promote` and
//! `mirror` reach with the environment's AWS identity, are not looked up.
//! The operator never reads these files: in the cluster, credentials come
//! from the configuration and the objects' Secrets only.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::config::DEFAULT_CHUNK_BYTES;
use crate::registry::auth::dockerconfig::{ClientConfig, HostCredentials};
use crate::registry::auth::helpers::CredentialHelper;
use crate::registry::auth::{SharedSource, StaticCredential};
use crate::registry::{ClientSettings, Engine, RegistryClient, UploadMode};

/// The largest docker config file read.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The `--authfile` flag.
#[derive(Clone, Debug, Default, Args)]
pub struct AuthfileArgs {
    /// Docker config file (`auths`, `credHelpers`, `credsStore`) for hosts
    /// that --config does not declare. Default: REGISTRY_AUTH_FILE, else
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

/// Where the file came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFileOrigin {
    Flag,
    RegistryAuthFile,
    DockerConfig,
    Home,
}

/// The docker config file to read, in skopeo's and crane's order; `None`
/// when nothing names one (no flag, no variables, no home directory).
pub fn auth_file(
    flag: Option<&Path>,
    var: impl Fn(&str) -> Option<OsString>,
) -> Option<(PathBuf, AuthFileOrigin)> {
    let set = |name: &str| var(name).filter(|value| !value.is_empty());
    if let Some(path) = flag {
        return Some((path.to_path_buf(), AuthFileOrigin::Flag));
    }
    if let Some(path) = set("REGISTRY_AUTH_FILE") {
        return Some((PathBuf::from(path), AuthFileOrigin::RegistryAuthFile));
    }
    if let Some(dir) = set("DOCKER_CONFIG") {
        return Some((
            PathBuf::from(dir).join("config.json"),
            AuthFileOrigin::DockerConfig,
        ));
    }
    set("HOME").map(|home| {
        (
            PathBuf::from(home).join(".docker").join("config.json"),
            AuthFileOrigin::Home,
        )
    })
}

/// The docker client's credentials, read once per run.
pub struct ClientCredentials {
    /// The file as messages name it.
    shown: String,
    config: Option<ClientConfig>,
}

impl ClientCredentials {
    /// Reads the file [`auth_file`] names; a missing file is no credentials,
    /// except one given with `--authfile`. Errors are bad input (exit 2).
    pub fn load(args: &AuthfileArgs) -> Result<Self, String> {
        let Some((path, origin)) =
            auth_file(args.authfile.as_deref(), |name| std::env::var_os(name))
        else {
            return Ok(Self {
                shown: String::new(),
                config: None,
            });
        };
        let shown = match origin {
            AuthFileOrigin::Flag => format!("--authfile {}", path.display()),
            AuthFileOrigin::RegistryAuthFile => format!("REGISTRY_AUTH_FILE {}", path.display()),
            AuthFileOrigin::DockerConfig | AuthFileOrigin::Home => {
                format!("docker config {}", path.display())
            }
        };
        let text = match read_capped(&path) {
            Ok(text) => text,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && origin != AuthFileOrigin::Flag =>
            {
                return Ok(Self {
                    shown,
                    config: None,
                });
            }
            Err(e) => return Err(format!("reading {shown}: {e}")),
        };
        let config = ClientConfig::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
        Ok(Self {
            shown,
            config: Some(config),
        })
    }

    /// Clients for the `hosts` this file has credentials for, each sharing the
    /// engine's connections to its host; `declared` hosts are left alone.
    pub fn clients<'a>(
        &self,
        engine: &Engine,
        hosts: impl IntoIterator<Item = &'a str>,
        declared: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, RegistryClient)>, String> {
        let Some(config) = &self.config else {
            return Ok(Vec::new());
        };
        let mut clients: Vec<(String, RegistryClient)> = Vec::new();
        for host in hosts {
            if declared(host) || clients.iter().any(|(h, _)| h == host) {
                continue;
            }
            let source: SharedSource = match config
                .lookup(host)
                .map_err(|e| format!("{}: {e}", self.shown))?
            {
                HostCredentials::None => continue,
                HostCredentials::Stored(credential) => Arc::new(StaticCredential(credential)),
                HostCredentials::Helper {
                    helper,
                    server_url,
                    fallback,
                } => Arc::new(CredentialHelper::new(&helper, &server_url, fallback)),
            };
            let client = if is_aws_registry(host) {
                RegistryClient::new(host, source, aws_settings())
            } else {
                engine
                    .registries()
                    .client(host)
                    .map(|c| c.with_source(source))
            }
            .map_err(|e| e.to_string())?;
            clients.push((host.to_string(), client));
        }
        Ok(clients)
    }
}

/// ECR and ECR Public take uploads in parts of at least 5 MiB, as the
/// clients the configuration declares for them do.
fn is_aws_registry(host: &str) -> bool {
    crate::aws::parse_ecr_host(host).is_some() || host == crate::aws::ECR_PUBLIC_HOST
}

fn aws_settings() -> ClientSettings {
    ClientSettings {
        upload: UploadMode::Chunked {
            part_size: DEFAULT_CHUNK_BYTES,
        },
        ..ClientSettings::default()
    }
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthFileOrigin::*;

    #[test]
    fn the_first_file_named_wins_in_skopeos_order() {
        type Case<'a> = (
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            Option<(&'a str, AuthFileOrigin)>,
        );
        let cases: [Case<'_>; 7] = [
            (
                Some("/flag.json"),
                &[
                    ("REGISTRY_AUTH_FILE", "/auth.json"),
                    ("DOCKER_CONFIG", "/d"),
                    ("HOME", "/h"),
                ],
                Some(("/flag.json", Flag)),
            ),
            (
                None,
                &[
                    ("REGISTRY_AUTH_FILE", "/auth.json"),
                    ("DOCKER_CONFIG", "/d"),
                    ("HOME", "/h"),
                ],
                Some(("/auth.json", RegistryAuthFile)),
            ),
            (
                None,
                &[("DOCKER_CONFIG", "/d"), ("HOME", "/h")],
                Some(("/d/config.json", DockerConfig)),
            ),
            (
                None,
                &[("HOME", "/h")],
                Some(("/h/.docker/config.json", Home)),
            ),
            // An empty variable is not set.
            (
                None,
                &[
                    ("REGISTRY_AUTH_FILE", ""),
                    ("DOCKER_CONFIG", ""),
                    ("HOME", "/h"),
                ],
                Some(("/h/.docker/config.json", Home)),
            ),
            (None, &[], None),
            (Some("/flag.json"), &[], Some(("/flag.json", Flag))),
        ];
        for (flag, vars, expected) in cases {
            let var = |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            };
            let found = auth_file(flag.map(Path::new), var);
            let expected = expected.map(|(p, o)| (PathBuf::from(p), o));
            assert_eq!(found, expected, "{flag:?} {vars:?}");
        }
    }
}
