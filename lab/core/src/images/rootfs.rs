//! Builds a recipe's rootfs tarball with mmdebstrap and keeps it in the user cache, so a
//! second engine (Docker and Podman on one host) imports it without downloading packages again.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead};

use super::progress::Step;
use super::recipes::Recipe;
use super::ImageError;

/// The slowest recipe (zookeeper, with a JRE) downloads a few hundred MB; a mirror that
/// stalls longer than this is not going to finish.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Lines of mmdebstrap output quoted when it fails: the last ones, plus the first error lines,
/// which dpkg prints long before apt gives up.
const TAIL_LINES: usize = 15;
const ERROR_LINES: usize = 8;

/// `$LAB_CACHE_DIR`, else `$XDG_CACHE_HOME/lab`, else `~/.cache/lab`.
pub fn cache_dir() -> Result<PathBuf, ImageError> {
    cache_dir_from(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .ok_or(ImageError::NoCacheDir)
}

fn cache_dir_from(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = get("LAB_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = get("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("lab"));
    }
    get("HOME").map(|h| PathBuf::from(h).join(".cache").join("lab"))
}

/// Where the tarball of a recipe with this hash lives.
pub fn cached_tar(hash: &str) -> Result<PathBuf, ImageError> {
    Ok(cache_dir()?.join("rootfs").join(format!("{hash}.tar")))
}

/// Runs mmdebstrap for `recipe` and leaves the tarball at `out` (only once it is complete).
pub(crate) async fn build_rootfs(
    recipe: &Recipe,
    out: &Path,
    step: &Step,
) -> Result<(), ImageError> {
    let dir = out.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| ImageError::Cache {
            action: "create cache directory",
            path: dir.to_path_buf(),
            source,
        })?;
    // mmdebstrap picks the output format from the extension, so the partial file keeps `.tar`;
    // the pid keeps two concurrent builds of one recipe from writing the same file.
    let partial = out.with_extension(format!("{}.partial.tar", std::process::id()));

    let mut cmd = tokio::process::Command::new("mmdebstrap");
    cmd.args(recipe.mmdebstrap_args())
        .arg(&recipe.suite)
        .arg(&partial)
        .arg(&recipe.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::MmdebstrapMissing)
        }
        Err(e) => {
            return Err(ImageError::Rootfs {
                recipe: recipe.name.clone(),
                detail: format!("cannot start mmdebstrap: {e}"),
            })
        }
    };

    let mut lines = stream::select(lines_of(child.stdout.take()), lines_of(child.stderr.take()));
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut errors: Vec<String> = Vec::new();
    let mut chosen_mode: Option<String> = None;
    let run = async {
        while let Some(line) = lines.next().await {
            let line = clip(line.trim_end());
            if line.is_empty() {
                continue;
            }
            if let Some(mode) = line.strip_prefix("I: automatically chosen mode: ") {
                chosen_mode = Some(mode.to_string());
            }
            step.set_message(line.trim_start_matches("I: "));
            if errors.len() < ERROR_LINES && line.to_ascii_lowercase().contains("error") {
                errors.push(line.clone());
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        child.wait().await
    };
    let waited = tokio::time::timeout(BUILD_TIMEOUT, run).await;
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(ImageError::Rootfs {
                recipe: recipe.name.clone(),
                detail: format!("lost track of mmdebstrap: {e}"),
            })
        }
        Err(_) => {
            let _ = child.kill().await;
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ImageError::Rootfs {
                recipe: recipe.name.clone(),
                detail: format!(
                    "mmdebstrap did not finish within {} minutes (is {} reachable?)",
                    BUILD_TIMEOUT.as_secs() / 60,
                    recipe.mirror
                ),
            });
        }
    };
    if !status.success() {
        let _ = tokio::fs::remove_file(&partial).await;
        let mut detail = format!("mmdebstrap {} exited with {status}", recipe.suite);
        if !errors.is_empty() {
            detail.push_str(&format!("; first errors:\n  {}", errors.join("\n  ")));
        }
        detail.push_str(&format!(
            "\nlast output:\n  {}",
            tail.iter().cloned().collect::<Vec<_>>().join("\n  ")
        ));
        if !running_as_root() {
            let mode = chosen_mode.as_deref().unwrap_or("unknown");
            detail.push_str(&format!(
                "\nlab is not running as root, so mmdebstrap picked its {mode} mode. Unshare mode \
                 needs unprivileged user namespaces and ranges for your user in /etc/subuid and \
                 /etc/subgid, and fakechroot mode often cannot install a newer suite than the \
                 host's; run `lab images build` as root (sudo) or set up subuid/subgid ranges."
            ));
        }
        return Err(ImageError::Rootfs {
            recipe: recipe.name.clone(),
            detail,
        });
    }
    tokio::fs::rename(&partial, out)
        .await
        .map_err(|source| ImageError::Cache {
            action: "move the finished rootfs into",
            path: out.to_path_buf(),
            source,
        })
}

/// Lines of a child's pipe, lossily decoded (apt may print non-UTF-8), until it closes. Reading
/// to the end matters: an unread pipe would block mmdebstrap once its buffer fills.
fn lines_of<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> BoxStream<'static, String> {
    let Some(pipe) = pipe else {
        return stream::empty().boxed();
    };
    stream::unfold(tokio::io::BufReader::new(pipe), |mut r| async move {
        let mut buf = Vec::new();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some((String::from_utf8_lossy(&buf).into_owned(), r)),
        }
    })
    .boxed()
}

/// One output line, cut to a readable length (apt echoes whole command lines on failure).
fn clip(line: &str) -> String {
    const MAX: usize = 300;
    match line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user; no libc call needed.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Installed package versions of the rootfs in `tar` (from its dpkg status file).
pub(crate) async fn installed_versions(tar: &Path) -> Result<HashMap<String, String>, ImageError> {
    let path = tar.to_path_buf();
    let read = tokio::task::spawn_blocking(move || read_tar_member(&path, "var/lib/dpkg/status"))
        .await
        .map_err(|e| ImageError::Versions {
            path: tar.to_path_buf(),
            detail: format!("reader task failed: {e}"),
        })?;
    match read {
        Ok(Some(bytes)) => Ok(parse_dpkg_status(&String::from_utf8_lossy(&bytes))),
        Ok(None) => Err(ImageError::Versions {
            path: tar.to_path_buf(),
            detail: "it has no var/lib/dpkg/status; delete it and build again".into(),
        }),
        Err(e) => Err(ImageError::Versions {
            path: tar.to_path_buf(),
            detail: format!("{e}; delete it and build again"),
        }),
    }
}

/// Package -> version of every package dpkg lists as installed.
pub(crate) fn parse_dpkg_status(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for para in text.split("\n\n") {
        let (mut pkg, mut ver, mut installed) = (None, None, false);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                pkg = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                ver = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(p), Some(v), true) = (pkg, ver, installed) {
            out.insert(p.to_string(), v.to_string());
        }
    }
    out
}

/// Reads one regular file out of a tar archive (ustar, GNU long names, pax paths), seeking
/// past everything else. `wanted` is compared without a leading `./`.
pub(crate) fn read_tar_member(path: &Path, wanted: &str) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Error, ErrorKind};
    let mut f = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut header = [0u8; 512];
    let mut next_name: Option<String> = None;
    loop {
        match f.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        if header.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let size = header_size(&header[124..136])
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad size in a tar header"))?;
        let padded = size.div_ceil(512) * 512;
        let name = next_name.take().unwrap_or_else(|| {
            let name = c_str(&header[0..100]);
            let prefix = if &header[257..262] == b"ustar" {
                c_str(&header[345..500])
            } else {
                String::new()
            };
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        let typeflag = header[156];
        let read_data = |f: &mut BufReader<std::fs::File>| -> std::io::Result<Vec<u8>> {
            let mut data = vec![0u8; size as usize];
            f.read_exact(&mut data)?;
            f.seek_relative((padded - size) as i64)?;
            Ok(data)
        };
        match typeflag {
            // GNU long name: the data is the next entry's name.
            b'L' => next_name = Some(c_str(&read_data(&mut f)?)),
            // pax extended header: may carry the next entry's path.
            b'x' => next_name = pax_path(&read_data(&mut f)?),
            b'0' | 0 if name.trim_start_matches("./") == wanted => {
                return read_data(&mut f).map(Some);
            }
            _ => f.seek_relative(padded as i64)?,
        }
    }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Octal size, or GNU base-256 for files past 8 GiB.
fn header_size(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = c_str(field);
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The `path` record of a pax header ("<len> path=<value>\n" records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = rest.get(len..)?;
    }
    None
}

/// Size of a finished tarball, for messages.
pub(crate) fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether a finished tarball is in the cache.
pub(crate) fn is_cached(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(name: &str, size: usize, typeflag: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{size:011o}\0");
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn entry(out: &mut Vec<u8>, name: &str, data: &[u8], typeflag: u8) {
        out.extend_from_slice(&header(name, data.len(), typeflag));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn reads_one_member_past_others_and_long_names() {
        let mut tar = Vec::new();
        entry(&mut tar, "./etc/", b"", b'5');
        entry(&mut tar, "./etc/big", &[b'x'; 1500], b'0');
        let long = format!("./{}/status", "d".repeat(120));
        entry(&mut tar, "././@LongLink", long.as_bytes(), b'L');
        entry(&mut tar, "./dddd", b"wrong one", b'0');
        entry(&mut tar, "x", b"29 path=./var/lib/dpkg/other\n", b'x');
        entry(&mut tar, "./var/lib/dpkg/status", b"also wrong", b'0');
        entry(&mut tar, "./var/lib/dpkg/status", b"Package: a\n", b'0');
        tar.extend_from_slice(&[0u8; 1024]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.tar");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&tar))
            .expect("write tar");
        let got = read_tar_member(&path, "var/lib/dpkg/status").expect("read");
        assert_eq!(got.as_deref(), Some(&b"Package: a\n"[..]));
        assert_eq!(
            read_tar_member(&path, &long[2..]).expect("read").as_deref(),
            Some(&b"wrong one"[..])
        );
        assert_eq!(read_tar_member(&path, "nope").expect("read"), None);
    }

    #[test]
    fn clip_cuts_long_lines_on_char_boundaries() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(400);
        let c = clip(&long);
        assert_eq!(c.chars().count(), 303);
        assert!(c.ends_with("..."));
    }

    #[test]
    fn parses_installed_packages_only() {
        let text = "Package: valkey-server\nStatus: install ok installed\nVersion: 8.1.1+dfsg1-3\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0-1\n\n\
                    Package: redis-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5:8.0.2-3\nDescription: x\n y\n";
        let v = parse_dpkg_status(text);
        assert_eq!(
            v.get("valkey-server").map(String::as_str),
            Some("8.1.1+dfsg1-3")
        );
        assert_eq!(v.get("redis-server").map(String::as_str), Some("5:8.0.2-3"));
        assert!(!v.contains_key("gone"));
    }

    #[test]
    fn cache_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            cache_dir_from(env(&[
                ("LAB_CACHE_DIR", "/c"),
                ("XDG_CACHE_HOME", "/x"),
                ("HOME", "/h")
            ])),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            cache_dir_from(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/lab"))
        );
        assert_eq!(
            cache_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/lab"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }
}
