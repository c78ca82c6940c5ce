//! The lab's state directory: one folder per instance holding its password (mode 0600) and
//! what `up` chose (topology file, port shift, settings), so `up` twice is a no-op, `up`
//! after a crash resumes, and two instances never take the same ports.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is damaged ({message}); remove it or run `lab down {instance}`")]
    Corrupt {
        path: String,
        instance: String,
        message: String,
    },
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> StateError {
    StateError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// `$LAB_STATE_DIR`, else `$XDG_STATE_HOME/lab`, else `~/.local/state/lab`.
pub fn state_root() -> PathBuf {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(d) = get("LAB_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = get("XDG_STATE_HOME") {
        return PathBuf::from(d).join("lab");
    }
    let home = get("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/state/lab")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceRecord {
    pub instance: String,
    pub topology: String,
    pub file: String,
    /// Added to every host port written in the compose file.
    pub port_shift: i32,
    /// Host ports this instance publishes (after the shift), to keep instances apart.
    pub host_ports: Vec<u16>,
    pub profile: String,
    pub flavor: String,
    /// Resolved settings (name -> value) the containers were created with.
    pub settings: BTreeMap<String, String>,
    /// Image references chosen (variable -> reference).
    pub images: BTreeMap<String, String>,
    pub engine_socket: String,
}

#[derive(Debug, Clone)]
pub struct InstanceDir {
    pub name: String,
    pub dir: PathBuf,
}

impl InstanceDir {
    pub fn new(root: &Path, name: &str) -> Self {
        InstanceDir {
            name: name.to_string(),
            dir: root.join(name),
        }
    }

    pub fn password_path(&self) -> PathBuf {
        self.dir.join("password")
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("instance.json")
    }

    /// The instance's password, created on first use: 32 random alphanumerics, mode 0600.
    pub fn password(&self) -> Result<String, StateError> {
        let p = self.password_path();
        if let Ok(s) = std::fs::read_to_string(&p) {
            let s = s.trim().to_string();
            if s.len() == 32 {
                return Ok(s);
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        set_mode(&self.dir, 0o700);
        let pw = random_password();
        let mut f = open_private(&p).map_err(|e| io("write", &p, e))?;
        f.write_all(pw.as_bytes()).map_err(|e| io("write", &p, e))?;
        Ok(pw)
    }

    pub fn load(&self) -> Result<Option<InstanceRecord>, StateError> {
        let p = self.record_path();
        match std::fs::read_to_string(&p) {
            Ok(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: p.display().to_string(),
                    instance: self.name.clone(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p, e)),
        }
    }

    pub fn save(&self, rec: &InstanceRecord) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        let p = self.record_path();
        let tmp = self.dir.join("instance.json.tmp");
        let body = serde_json::to_string_pretty(rec).unwrap_or_default();
        std::fs::write(&tmp, body).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| io("write", &p, e))
    }

    /// Forgets the instance (after `down`).
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &self.dir, e)),
        }
    }
}

/// Every instance recorded under `root`.
pub fn all_instances(root: &Path) -> Vec<InstanceRecord> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            InstanceDir::new(root, &name).load().ok().flatten()
        })
        .collect()
}

fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

#[cfg(unix)]
fn open_private(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)?;
    set_mode(p, 0o600);
    Ok(f)
}

#[cfg(not(unix))]
fn open_private(p: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(p)
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_32_chars_private_and_stable() {
        let root = tempfile::tempdir().expect("tmp");
        let d = InstanceDir::new(root.path(), "a");
        let p1 = d.password().expect("pw");
        assert_eq!(p1.len(), 32);
        assert!(p1.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(d.password().expect("pw"), p1);
        let other = InstanceDir::new(root.path(), "b").password().expect("pw");
        assert_ne!(other, p1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.password_path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
