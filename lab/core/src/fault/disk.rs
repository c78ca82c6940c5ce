//! Slow disk: the node's block I/O throttled through its cgroup, from the host. cgroup v1
//! writes `blkio.throttle.{read,write}_{bps,iops}_device`, cgroup v2 writes `io.max`, for the
//! block device that holds the server's data directory (found from the host through the
//! server's `/proc/<pid>/cwd` and `mountinfo`). Heal writes the limits back to unlimited.
//!
//! What it slows is I/O submitted by the node's own processes: direct I/O and the writeback an
//! `fsync` starts. Under cgroup v1, buffered writes flushed later by the kernel's writeback
//! threads are charged to no container and are not throttled.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FaultError, Kind};
use crate::engine::Engine;

/// Limits per second; 0 leaves that one unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub read_bps: u64,
    #[serde(default)]
    pub write_bps: u64,
    #[serde(default)]
    pub read_iops: u64,
    #[serde(default)]
    pub write_iops: u64,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        let rate = |b: u64| {
            if b >= 1 << 20 {
                format!("{:.1} MiB/s", b as f64 / f64::from(1u32 << 20))
            } else {
                format!("{:.0} KiB/s", b as f64 / 1024.0)
            }
        };
        if self.read_bps > 0 {
            parts.push(format!("read {}", rate(self.read_bps)));
        }
        if self.write_bps > 0 {
            parts.push(format!("write {}", rate(self.write_bps)));
        }
        match (self.read_iops, self.write_iops) {
            (0, 0) => {}
            (r, w) if r == w => parts.push(format!("{r} iops")),
            (r, w) => {
                if r > 0 {
                    parts.push(format!("{r} read iops"));
                }
                if w > 0 {
                    parts.push(format!("{w} write iops"));
                }
            }
        }
        f.write_str(&parts.join(", "))
    }
}

/// Where the throttle goes, found when the fault is prepared and journalled so that a heal
/// after a killed `lab` needs nothing but the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The container's cgroup directory on the host (`/sys/fs/cgroup/blkio/docker/<id>`).
    pub cgroup: String,
    /// `io.max` (v2) rather than the blkio throttle files (v1).
    pub v2: bool,
    /// `major:minor` of the whole disk throttled.
    pub device: String,
    /// The data directory, as the node sees it, and its filesystem.
    pub dir: String,
    pub fs: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on disk {} ({} at {}) in {}",
            if self.v2 {
                "cgroup v2 io.max"
            } else {
                "cgroup v1 blkio throttle"
            },
            self.device,
            self.fs,
            self.dir,
            self.cgroup
        )
    }
}

/// The v1 throttle files, in the order of [`v1_lines`].
pub const V1_FILES: [&str; 4] = [
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
];

/// `(file, line)` writes that put `limits` in force under cgroup v1; `None` limits heal (every
/// file back to 0, which the kernel reads as "no limit"). Pure, so it is unit-tested.
pub fn v1_lines(device: &str, limits: Option<&Limits>) -> Vec<(&'static str, String)> {
    let values = limits.map_or([0; 4], |l| {
        [l.read_bps, l.write_bps, l.read_iops, l.write_iops]
    });
    V1_FILES
        .iter()
        .zip(values)
        // Applying writes only what is limited; healing clears all four.
        .filter(|(_, v)| limits.is_none() || *v > 0)
        .map(|(f, v)| (*f, format!("{device} {v}")))
        .collect()
}

/// The `io.max` line for cgroup v2; `None` heals (every key `max`).
pub fn v2_line(device: &str, limits: Option<&Limits>) -> String {
    let l = limits.copied().unwrap_or_default();
    let v = |x: u64| {
        if x == 0 {
            "max".to_string()
        } else {
            x.to_string()
        }
    };
    format!(
        "{device} rbps={} wbps={} riops={} wiops={}",
        v(l.read_bps),
        v(l.write_bps),
        v(l.read_iops),
        v(l.write_iops)
    )
}

/// One line of `/proc/<pid>/mountinfo`, the parts used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub point: String,
    pub fs: String,
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The mount holding `dir`: the longest mount point that is `dir` or a parent of it (the
/// last such line wins, as a later mount over the same point hides the earlier one).
pub fn mount_of(mountinfo: &str, dir: &str) -> Option<Mount> {
    let under = |point: &str| {
        point == "/"
            || dir == point
            || dir
                .strip_prefix(point)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
        let mut f = line.split(' ');
        let (_, _, dev, _, point) = (f.next(), f.next(), f.next()?, f.next(), f.next()?);
        let point = unescape(point);
        // After the optional fields comes ` - <fstype> <source> <options>`.
        let fs = line.split(" - ").nth(1)?.split(' ').next()?.to_string();
        let (maj, min) = dev.split_once(':')?;
        let m = Mount {
            major: maj.parse().ok()?,
            minor: min.parse().ok()?,
            point,
            fs,
        };
        if under(&m.point) && best.as_ref().is_none_or(|b| m.point.len() >= b.point.len()) {
            best = Some(m);
        }
    }
    best
}

/// The container's cgroup paths from `/proc/<pid>/cgroup`: (v1 blkio, v2 unified).
pub fn cgroup_paths(proc_cgroup: &str) -> (Option<String>, Option<String>) {
    let mut v1 = None;
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrl.is_empty() {
            v2 = Some(path.to_string());
        } else if ctrl.split(',').any(|c| c == "blkio") {
            v1 = Some(path.to_string());
        }
    }
    (v1, v2)
}

/// Where the host mounts the cgroup v2 hierarchy: `/sys/fs/cgroup` itself (pure v2) or
/// `/sys/fs/cgroup/unified` (the hybrid layout).
fn v2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
}

/// Whether this host can throttle block I/O per cgroup at all (for `lab doctor`).
pub fn host_support() -> (bool, String) {
    if Path::new("/sys/fs/cgroup/blkio").join(V1_FILES[1]).exists() {
        return (
            true,
            "cgroup v1 blkio throttle, written from the host; buffered writes flushed by the \
             kernel's writeback threads are not throttled, direct I/O and fsync are"
                .into(),
        );
    }
    if let Some(root) = v2_root() {
        let ctrls = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if ctrls.split_whitespace().any(|c| c == "io") {
            return (true, "cgroup v2 io.max, written from the host".into());
        }
    }
    (
        false,
        "no cgroup v1 blkio throttle and no cgroup v2 io controller on this host".into(),
    )
}

/// The whole disk of a device: blkio throttles disks, not partitions.
fn whole_disk(major: u32, minor: u32) -> Result<String, String> {
    let dev = format!("{major}:{minor}");
    let sys = PathBuf::from("/sys/dev/block").join(&dev);
    if !sys.exists() {
        return Err(format!(
            "its device {dev} is not a block device the host knows (/sys/dev/block/{dev} is missing)"
        ));
    }
    if !sys.join("partition").exists() {
        return Ok(dev);
    }
    let parent = std::fs::canonicalize(&sys)
        .ok()
        .and_then(|p| p.parent().map(|p| p.join("dev")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string());
    parent.ok_or_else(|| format!("cannot find the disk that partition {dev} belongs to"))
}

fn refuse(node: &str, reason: impl Into<String>) -> FaultError {
    FaultError::NotOnNode {
        node: node.to_string(),
        kind: "slow_disk",
        reason: reason.into(),
    }
}

/// Finds the cgroup and the data directory's disk of a running node. Nothing is changed.
pub async fn prepare(
    engine: &Engine,
    node: &str,
    container: &str,
    limits: Limits,
) -> Result<Kind, FaultError> {
    if limits.is_empty() {
        return Err(refuse(
            node,
            "no limit given; set at least one of write-bps, read-bps, iops",
        ));
    }
    let pid = engine
        .inspect_container(container)
        .await?
        .and_then(|c| c.state)
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .ok_or_else(|| refuse(node, "its container has no running process"))?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let read = |p: &str| {
        std::fs::read_to_string(proc.join(p)).map_err(|e| {
            refuse(
                node,
                format!("cannot read /proc/{pid}/{p} from the host ({e}); lab must run as root beside a rootful engine"),
            )
        })
    };
    // The server chdir()s into its data directory, so its cwd is it.
    let dir = std::fs::read_link(proc.join("cwd"))
        .map_err(|e| {
            refuse(
                node,
                format!("cannot read its data directory from the host ({e}); lab must run as root beside a rootful engine"),
            )
        })?
        .display()
        .to_string();
    let m = mount_of(&read("mountinfo")?, &dir)
        .ok_or_else(|| refuse(node, format!("no mount holds its data directory {dir}")))?;
    if m.major == 0 {
        return Err(refuse(
            node,
            format!(
                "its data directory {dir} is on {} ({}), not on a block device, so there is no \
                 disk to slow down; run the servers with their data on a volume (data-dir=/data)",
                m.fs, m.point
            ),
        ));
    }
    let device = whole_disk(m.major, m.minor).map_err(|e| refuse(node, e))?;
    let (v1, v2) = cgroup_paths(&read("cgroup")?);
    let v1_dir = v1
        .map(|p| PathBuf::from(format!("/sys/fs/cgroup/blkio{p}")))
        .filter(|d| d.join(V1_FILES[1]).exists());
    let place = if let Some(d) = v1_dir {
        (d, false)
    } else {
        let d = v2_root()
            .zip(v2)
            .map(|(root, p)| root.join(p.trim_start_matches('/')))
            .filter(|d| d.join("io.max").exists())
            .ok_or_else(|| {
                refuse(
                    node,
                    "its cgroup has no block I/O controller (no cgroup v1 blkio throttle, no \
                     cgroup v2 io.max)",
                )
            })?;
        (d, true)
    };
    Ok(Kind::SlowDisk {
        limits,
        place: Some(Place {
            cgroup: place.0.display().to_string(),
            v2: place.1,
            device,
            dir,
            fs: m.fs,
        }),
    })
}

fn write_all(
    node: &str,
    what: &str,
    place: &Place,
    limits: Option<&Limits>,
) -> Result<(), FaultError> {
    let dir = Path::new(&place.cgroup);
    let writes: Vec<(&str, String)> = if place.v2 {
        vec![("io.max", v2_line(&place.device, limits))]
    } else {
        v1_lines(&place.device, limits)
    };
    for (file, line) in writes {
        let p = dir.join(file);
        if let Err(e) = std::fs::write(&p, &line) {
            // The cgroup is gone with its container (stopped or removed): nothing to heal.
            if limits.is_none() && !dir.exists() {
                return Ok(());
            }
            return Err(FaultError::Apply {
                node: node.to_string(),
                what: what.to_string(),
                detail: format!("writing `{line}` to {}: {e}", p.display()),
            });
        }
    }
    Ok(())
}

/// Puts a prepared throttle in force.
pub fn apply(node: &str, limits: &Limits, place: &Place) -> Result<(), FaultError> {
    write_all(node, "throttle its disk", place, Some(limits))
}

/// Writes the limits back to unlimited. A cgroup that is gone (container stopped, restarted
/// into a fresh one, or removed) held the only copy of them.
pub fn heal(node: &str, place: &Place) -> Result<(), FaultError> {
    if !Path::new(&place.cgroup).exists() {
        return Ok(());
    }
    write_all(node, "lift its disk throttle", place, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
381 300 0:52 / / rw,relatime master:200 - overlay overlay rw,lowerdir=/x
398 381 254:0 /var/lib/docker/volumes/x_redis-1-data/_data /data rw,relatime master:1 - ext4 /dev/vda rw
399 381 0:60 / /data-limited rw,nosuid,nodev - tmpfs tmpfs rw,size=65536k
400 381 254:0 /work/configs/redis /etc/lab ro,relatime - ext4 /dev/vda ro
";

    #[test]
    fn data_dir_mount_is_the_longest_parent() {
        let m = mount_of(MOUNTINFO, "/data").expect("data");
        assert_eq!((m.major, m.minor, m.fs.as_str()), (254, 0, "ext4"));
        let t = mount_of(MOUNTINFO, "/data-limited").expect("tmpfs");
        assert_eq!((t.major, t.fs.as_str()), (0, "tmpfs"));
        // `/data-limited` is not under `/data`; `/data/x` is.
        assert_eq!(mount_of(MOUNTINFO, "/data/x").expect("x").point, "/data");
        assert_eq!(mount_of(MOUNTINFO, "/srv").expect("root").fs, "overlay");
        assert_eq!(mount_of("garbage", "/data"), None);
    }

    #[test]
    fn cgroup_paths_for_both_engines() {
        let docker = "7:blkio:/docker/abc\n6:freezer:/docker/abc\n0::/docker/abc\n";
        assert_eq!(
            cgroup_paths(docker),
            (Some("/docker/abc".into()), Some("/docker/abc".into()))
        );
        let podman = "3:cpu,blkio:/libpod_parent/libpod-f\n";
        assert_eq!(
            cgroup_paths(podman),
            (Some("/libpod_parent/libpod-f".into()), None)
        );
        assert_eq!(
            cgroup_paths("0::/system.slice/x.scope\n").1.as_deref(),
            Some("/system.slice/x.scope")
        );
    }

    #[test]
    fn v1_writes_only_the_limits_given_and_heal_clears_all_four() {
        let l = Limits {
            write_bps: 1 << 20,
            write_iops: 20,
            ..Default::default()
        };
        assert_eq!(
            v1_lines("254:0", Some(&l)),
            vec![
                (
                    "blkio.throttle.write_bps_device",
                    "254:0 1048576".to_string()
                ),
                ("blkio.throttle.write_iops_device", "254:0 20".to_string()),
            ]
        );
        let heal = v1_lines("254:0", None);
        assert_eq!(heal.len(), 4);
        assert!(heal.iter().all(|(_, line)| line == "254:0 0"));
    }

    #[test]
    fn v2_line_uses_max_for_unlimited() {
        let l = Limits {
            read_bps: 2048,
            ..Default::default()
        };
        assert_eq!(
            v2_line("8:0", Some(&l)),
            "8:0 rbps=2048 wbps=max riops=max wiops=max"
        );
        assert_eq!(
            v2_line("8:0", None),
            "8:0 rbps=max wbps=max riops=max wiops=max"
        );
    }

    #[test]
    fn limits_read_plainly() {
        let l = Limits {
            write_bps: 1 << 20,
            read_iops: 50,
            write_iops: 50,
            ..Default::default()
        };
        assert_eq!(l.to_string(), "write 1.0 MiB/s, 50 iops");
        assert!(Limits::default().is_empty());
    }
}
