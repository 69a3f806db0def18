//! The ledger in a file, for `image-promoter mirror --state FILE`: loaded
//! before a sync and saved after it, so successive runs behave like the
//! operator's successive intervals.
//!
//! The file names the mirror it belongs to (namespace, name, source
//! repository); a file of another mirror, of another format version, or one
//! that does not parse is refused with what to do. It is written atomically
//! (a temporary file in the same directory, renamed) and readable by its
//! owner only (0600), and read with a size limit.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ledger::Ledger;

/// `kind` of a state file.
pub const KIND: &str = "RegistryMirrorState";
/// Format version of a state file.
pub const FORMAT: u32 = 1;
/// The largest state file read (a million tags fit).
pub const MAX_STATE_BYTES: u64 = 256 << 20;

/// Which mirror a state file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorIdentity {
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
    pub source: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateFile {
    kind: String,
    format: u32,
    mirror: MirrorIdentity,
    ledger: Ledger,
}

/// Why a state file cannot be used; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is larger than {MAX_STATE_BYTES} bytes; delete it to start again \
         from a full listing"
    )]
    TooLarge { path: PathBuf },
    #[error(
        "state file {path} is not a {KIND} file of format {FORMAT} ({message}); delete it to \
         start again from a full listing, or pass the file this mirror wrote"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "state file {path} belongs to mirror {found} and not to {wanted}; pass this mirror's \
         own --state file (a new path starts from a full listing)"
    )]
    Foreign {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("writing state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for MirrorIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{} (source {})", self.name, self.source),
            None => write!(f, "{} (source {})", self.name, self.source),
        }
    }
}

/// The ledger saved in `path` for `mirror`; None when there is no file yet.
pub fn load(path: &Path, mirror: &MirrorIdentity) -> Result<Option<Ledger>, StateError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| StateError::Read {
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(StateError::TooLarge { path: path.into() });
    }
    let corrupt = |message: String| StateError::Corrupt {
        path: path.into(),
        message,
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.kind != KIND || state.format != FORMAT {
        return Err(corrupt(format!(
            "it says kind {:?} format {}",
            state.kind, state.format
        )));
    }
    if state.mirror != *mirror {
        return Err(StateError::Foreign {
            path: path.into(),
            found: state.mirror.to_string(),
            wanted: mirror.to_string(),
        });
    }
    Ok(Some(state.ledger))
}

/// Saves `ledger` for `mirror` in `path`, atomically, readable by its owner only.
pub fn save(path: &Path, mirror: &MirrorIdentity, ledger: &Ledger) -> Result<(), StateError> {
    let error = |source| StateError::Write {
        path: path.into(),
        source,
    };
    let state = StateFile {
        kind: KIND.into(),
        format: FORMAT,
        mirror: mirror.clone(),
        ledger: ledger.clone(),
    };
    let bytes = serde_json::to_vec(&state).expect("a ledger serializes");
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let temporary = directory.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::ledger::SourceRecord;

    fn identity(name: &str) -> MirrorIdentity {
        MirrorIdentity {
            namespace: Some("team".into()),
            name: name.into(),
            source: "quay.io/acme/app".into(),
        }
    }

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mirror-state-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_saved_ledger_loads_back_for_its_mirror_only() {
        let dir = scratch("roundtrip");
        let path = dir.join("app.json");
        assert_eq!(load(&path, &identity("app")).unwrap(), None);
        let mut ledger = Ledger::default();
        ledger.source.insert(
            "1.0.0".into(),
            SourceRecord {
                digest: "sha256:aa".into(),
                pushed: Some(3),
            },
        );
        ledger.record_target("quay", "1.0.0", "sha256:aa");
        ledger.recheck_cursor = 5;
        save(&path, &identity("app"), &ledger).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load(&path, &identity("app")).unwrap(), Some(ledger.clone()));
        let foreign = load(&path, &identity("other")).unwrap_err().to_string();
        assert!(foreign.contains("belongs to mirror team/app"), "{foreign}");
        assert!(foreign.contains("--state"), "{foreign}");
        save(&path, &identity("app"), &Ledger::default()).unwrap();
        assert_eq!(
            load(&path, &identity("app")).unwrap(),
            Some(Ledger::default())
        );
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file stays behind");
    }

    #[test]
    fn corrupt_files_are_refused_with_what_to_do() {
        let dir = scratch("corrupt");
        let cases: &[&[u8]] = &[
            b"not json",
            br#"{"kind":"Other","format":1,"mirror":{"name":"app","source":"quay.io/acme/app"},"ledger":{"source":{},"targets":{}}}"#,
            br#"{"kind":"RegistryMirrorState","format":9,"mirror":{"name":"app","source":"quay.io/acme/app"},"ledger":{"source":{},"targets":{}}}"#,
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let path = dir.join(format!("{i}.json"));
            std::fs::write(&path, bytes).unwrap();
            let error = load(&path, &identity("app")).unwrap_err().to_string();
            assert!(error.contains("delete it to start again"), "{error}");
        }
    }
}
