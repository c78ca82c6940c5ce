//! Resource faults, run inside the node's container through the engine's exec: CPU and memory
//! pressure (stress-ng), a full data directory (a file filling a size-limited filesystem) and
//! wall-clock skew (libfaketime's offset file, preloaded by the start scripts).
//!
//! Each kind is checked against the node before anything is journalled ([`prepare`]), so a
//! node that cannot take it is refused up front, never half-applied. Every heal is idempotent.

use crate::engine::{Engine, ExecOutput};

use super::{FaultError, Kind};

/// The offset file libfaketime reads (the start scripts point FAKETIME_TIMESTAMP_FILE at it
/// and write `+0` into it at every start).
pub const FAKETIME_FILE: &str = "/tmp/lab-faketime";
/// A data directory on a filesystem larger than this is refused for `disk_full`: it is the
/// host's disk (a volume or the container's layer), and filling it would fill the host.
pub const MAX_FILL_BYTES: u64 = 1 << 30;
/// Fill files are named `lab-fill-<fault id>`; the start script removes leftovers.
pub const FILL_PREFIX: &str = "lab-fill-";

fn sh(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

async fn run(engine: &Engine, container: &str, script: String) -> Result<ExecOutput, FaultError> {
    Ok(engine.exec(container, &sh(script)).await?)
}

fn unsupported(node: &str, kind: &Kind, reason: impl Into<String>) -> FaultError {
    FaultError::NotOnNode {
        node: node.to_string(),
        kind: kind.name(),
        reason: reason.into(),
    }
}

/// Marker argument that makes a fault's stress-ng processes findable by `pkill -f`: a temp
/// path no other process uses (the `.d` ends it, so `f1`'s never matches `f12`'s).
pub fn stress_marker(id: &str) -> String {
    format!("/tmp/lab-stress-{id}.d")
}

/// The `pgrep -f` pattern for a marker. It matches the marker but not its own text, so the
/// shell running pgrep/pkill (whose command line holds the pattern) is never matched.
fn stress_pattern(id: &str) -> String {
    format!("'[/]tmp/lab-stress-{id}[.]d'")
}

pub fn fill_path(dir: &str, id: &str) -> String {
    format!("{}/{FILL_PREFIX}{id}", dir.trim_end_matches('/'))
}

/// Checks that the node can take the fault and fills in what the journal needs to heal it
/// (the data directory of a `disk_full`). Nothing is changed on the node.
pub async fn prepare(
    engine: &Engine,
    node: &str,
    container: &str,
    kind: Kind,
) -> Result<Kind, FaultError> {
    let running = engine
        .inspect_container(container)
        .await?
        .and_then(|c| c.state)
        .is_some_and(|s| s.running == Some(true) && s.paused != Some(true));
    if !running {
        return Err(unsupported(
            node,
            &kind,
            "its container is not running (stopped, paused or killed by another fault)",
        ));
    }
    match kind {
        Kind::Stress { .. } => {
            let out = run(
                engine,
                container,
                "command -v stress-ng && command -v pkill".into(),
            )
            .await?;
            if out.code != 0 {
                return Err(unsupported(
                    node,
                    &kind,
                    "its image has no stress-ng or pkill; rebuild the offline images with \
                     `lab images build valkey redis --force` and recreate the instance",
                ));
            }
            Ok(kind)
        }
        Kind::DiskFull { leave, .. } => {
            // The server chdir()s into its data directory, so PID 1's cwd is it.
            let out = run(
                engine,
                container,
                "command -v fallocate >/dev/null && d=$(readlink /proc/1/cwd) && \
                 df -B1 --output=size,avail \"$d\" | tail -n 1 && echo \"$d\""
                    .into(),
            )
            .await?;
            if out.code != 0 {
                return Err(unsupported(
                    node,
                    &kind,
                    format!(
                        "cannot find its data directory's free space: {}",
                        out.output.trim()
                    ),
                ));
            }
            let (size, _avail, dir) = parse_df(&out.output).ok_or_else(|| {
                unsupported(
                    node,
                    &kind,
                    format!("unexpected df output: {}", out.output.trim()),
                )
            })?;
            if size > MAX_FILL_BYTES {
                return Err(unsupported(
                    node,
                    &kind,
                    format!(
                        "its data directory {dir} is on a {} filesystem, not a size-limited one, \
                         and filling it would fill the host's disk; give the nodes a \
                         size-limited data directory (`set: {{data-dir: /data-limited}}` in \
                         redis-sentinel)",
                        bytes(size)
                    ),
                ));
            }
            Ok(Kind::DiskFull { leave, dir })
        }
        Kind::ClockSkew { .. } => {
            let out = run(
                engine,
                container,
                format!("grep -q libfaketime /proc/1/maps && test -w {FAKETIME_FILE}"),
            )
            .await?;
            if out.code != 0 {
                return Err(unsupported(
                    node,
                    &kind,
                    "its server does not run with libfaketime preloaded, and the lab's \
                     valkey/redis images cannot: libfaketime deadlocks at start-up in servers \
                     linked with jemalloc, as both are",
                ));
            }
            Ok(kind)
        }
        Kind::SlowDisk { limits, .. } => {
            super::disk::prepare(engine, node, container, limits).await
        }
        other => Ok(other),
    }
}

/// (filesystem size, bytes available, directory) from the `prepare` script's output.
fn parse_df(out: &str) -> Option<(u64, u64, String)> {
    let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut nums = lines.next()?.split_whitespace().map(str::parse::<u64>);
    let size = nums.next()?.ok()?;
    let avail = nums.next()?.ok()?;
    let dir = lines.next()?.to_string();
    Some((size, avail, dir))
}

fn bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn failed(node: &str, what: &str, out: &ExecOutput) -> FaultError {
    FaultError::Apply {
        node: node.to_string(),
        what: what.to_string(),
        detail: format!("exit {}: {}", out.code, out.output.trim()),
    }
}

/// Applies a prepared resource fault whose journal id is `id`.
pub async fn apply(
    engine: &Engine,
    node: &str,
    container: &str,
    id: &str,
    kind: &Kind,
) -> Result<(), FaultError> {
    match kind {
        Kind::Stress { cpu, memory } => {
            let m = stress_marker(id);
            let mut cmd: Vec<String> = vec![
                "stress-ng".into(),
                "--temp-path".into(),
                m.clone(),
                "--quiet".into(),
            ];
            if *cpu > 0 {
                cmd.extend(["--cpu".into(), cpu.to_string()]);
            }
            if *memory > 0 {
                cmd.extend([
                    "--vm".into(),
                    "1".into(),
                    "--vm-bytes".into(),
                    memory.to_string(),
                    "--vm-keep".into(),
                ]);
            }
            let out = run(engine, container, format!("mkdir -p {m}")).await?;
            if out.code != 0 {
                return Err(failed(node, "create the stress marker directory", &out));
            }
            // A detached exec: the runtime, not the server, is its parent and reaps it.
            engine.exec_detached(container, &cmd).await?;
            let p = stress_pattern(id);
            let out = run(
                engine,
                container,
                format!(
                    "for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -f {p} >/dev/null && exit 0; \
                     sleep 0.2; done; exit 1"
                ),
            )
            .await?;
            if out.code != 0 {
                return Err(failed(node, "start stress-ng", &out));
            }
            Ok(())
        }
        Kind::DiskFull { leave, dir } => {
            let f = fill_path(dir, id);
            // Some filesystems keep blocks back for metadata: step down until it fits.
            let out = run(
                engine,
                container,
                format!(
                    "a=$(df -B1 --output=avail {dir} | tail -n 1); n=$((a - {leave})); \
                     for s in 0 65536 1048576 4194304; do \
                       [ $((n - s)) -gt 0 ] || exit 0; \
                       fallocate -l $((n - s)) {f} 2>/dev/null && exit 0; rm -f {f}; \
                     done; exit 1"
                ),
            )
            .await?;
            if out.code != 0 {
                return Err(failed(node, &format!("fill {dir}"), &out));
            }
            Ok(())
        }
        Kind::SlowDisk {
            limits,
            place: Some(place),
        } => super::disk::apply(node, limits, place),
        Kind::SlowDisk { place: None, .. } => Err(FaultError::Apply {
            node: node.to_string(),
            what: "throttle its disk".into(),
            detail: "the fault was not prepared (no cgroup or device found)".into(),
        }),
        Kind::ClockSkew { offset_s } => {
            let out = run(
                engine,
                container,
                format!("printf '%+d\\n' {offset_s} > {FAKETIME_FILE}"),
            )
            .await?;
            if out.code != 0 {
                return Err(failed(node, "write the clock offset", &out));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Undoes a resource fault. A container that is not running holds no stress process, and its
/// start script resets the clock offset and removes fill files, so there is nothing to do.
pub async fn heal(
    engine: &Engine,
    node: &str,
    container: &str,
    id: &str,
    kind: &Kind,
) -> Result<(), FaultError> {
    // A throttle lives on the host side of the container, paused or not: lift it there.
    if let Kind::SlowDisk { place, .. } = kind {
        return place
            .as_ref()
            .map_or(Ok(()), |p| super::disk::heal(node, p));
    }
    let Some(state) = engine
        .inspect_container(container)
        .await?
        .and_then(|c| c.state)
    else {
        return Ok(());
    };
    if state.running != Some(true) {
        return Ok(());
    }
    if state.paused == Some(true) {
        return Err(FaultError::Apply {
            node: node.to_string(),
            what: format!("heal {id}"),
            detail: "the container is paused; heal the pause first".into(),
        });
    }
    let (what, script) = match kind {
        Kind::Stress { .. } => {
            let p = stress_pattern(id);
            // The marker directory by a glob (`[.]`), so this script's own command line never
            // holds the marker and pkill cannot match the shell running it.
            let dir = format!("/tmp/lab-stress-{id}[.]d");
            (
                "stop stress-ng",
                // SIGTERM first: stress-ng then ends and reaps its workers itself. SIGKILL what
                // is left after 2 s. A heal that returns is a heal that happened.
                format!(
                    "pkill -TERM -f {p}; for i in $(seq 1 25); do \
                       pgrep -f {p} >/dev/null || {{ rm -rf {dir}; exit 0; }}; \
                       [ $i -eq 10 ] && pkill -KILL -f {p}; sleep 0.2; \
                     done; exit 1"
                ),
            )
        }
        Kind::DiskFull { dir, .. } => (
            "remove the fill file",
            format!("rm -f {}", fill_path(dir, id)),
        ),
        Kind::ClockSkew { .. } => (
            "reset the clock offset",
            format!("printf '+0\\n' > {FAKETIME_FILE}"),
        ),
        _ => return Ok(()),
    };
    let out = run(engine, container, script).await?;
    if out.code != 0 {
        return Err(failed(node, what, &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_is_read() {
        let out = "  67108864  67100000\n/data-limited\n";
        assert_eq!(
            parse_df(out),
            Some((67_108_864, 67_100_000, "/data-limited".into()))
        );
        assert_eq!(parse_df("garbage\n"), None);
    }

    #[test]
    fn markers_are_unique_per_fault() {
        // pkill -f matches substrings: f1's marker must not be found in f12's.
        assert!(!stress_marker("f12").contains(&stress_marker("f1")));
        assert_eq!(fill_path("/data/", "f3"), "/data/lab-fill-f3");
    }
}
