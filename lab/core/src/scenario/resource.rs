//! Drill-file side of the resource faults and multi-node targets: `stress`, `disk_full` and
//! `clock_skew` steps, and `sentinels: {part: minority|majority}` targets. Kept apart from the
//! process faults so each family of faults reads (and merges) on its own.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::form::{parse_dur, Dur};
use super::model::Target;

/// A resource fault on one target, healed after `duration` if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFault {
    pub target: Target,
    pub kind: ResourceKind,
    /// YAML: `for`.
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `cpu` busy workers and `memory` bytes held (stress-ng inside the node).
    Stress { cpu: u32, memory: u64 },
    /// The data directory filled, `leave` bytes left free.
    DiskFull { leave: u64 },
    /// The node's wall clock moved by this many seconds.
    ClockSkew { offset_s: i64 },
    /// The node's block I/O throttled (its cgroup, for its data directory's disk).
    SlowDisk { limits: crate::fault::disk::Limits },
}

impl ResourceFault {
    pub fn key(&self) -> &'static str {
        match self.kind {
            ResourceKind::Stress { .. } => "stress",
            ResourceKind::DiskFull { .. } => "disk_full",
            ResourceKind::ClockSkew { .. } => "clock_skew",
            ResourceKind::SlowDisk { .. } => "slow_disk",
        }
    }

    /// The journal's kind for this fault.
    pub fn fault_kind(&self) -> crate::fault::Kind {
        use crate::fault::Kind;
        match self.kind {
            ResourceKind::Stress { cpu, memory } => Kind::Stress { cpu, memory },
            ResourceKind::DiskFull { leave } => Kind::DiskFull {
                leave,
                dir: String::new(),
            },
            ResourceKind::ClockSkew { offset_s } => Kind::ClockSkew { offset_s },
            ResourceKind::SlowDisk { limits } => Kind::SlowDisk {
                limits,
                place: None,
            },
        }
    }
}

impl fmt::Display for ResourceFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.target;
        match self.kind {
            ResourceKind::Stress { cpu, memory: 0 } => write!(f, "stress {t} ({cpu} cpu)")?,
            ResourceKind::Stress { cpu, memory } => {
                write!(f, "stress {t} ({cpu} cpu, {} MiB)", memory >> 20)?
            }
            ResourceKind::DiskFull { leave: 0 } => write!(f, "fill the disk of {t}")?,
            ResourceKind::DiskFull { leave } => {
                write!(f, "fill the disk of {t} ({leave} bytes left)")?
            }
            ResourceKind::ClockSkew { offset_s } => {
                write!(f, "skew the clock of {t} by {offset_s:+}s")?
            }
            ResourceKind::SlowDisk { limits } => write!(f, "slow the disk of {t} ({limits})")?,
        }
        match self.duration {
            Some(d) => write!(f, " for {}", super::fmt::dur(d)),
            None => Ok(()),
        }
    }
}

/// A share of the Sentinels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The largest number that is not a majority: (n-1)/2, so the rest can still elect.
    Minority,
    /// The smallest majority: n/2+1, so the rest cannot elect a failover leader.
    Majority,
    /// Every one of them.
    All,
}

impl Part {
    /// How many of `n` nodes make this part.
    pub fn of(self, n: usize) -> usize {
        match self {
            Part::Minority => n.saturating_sub(1) / 2,
            Part::Majority => n / 2 + 1,
            Part::All => n,
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Minority => "minority",
            Part::Majority => "majority",
            Part::All => "all",
        })
    }
}

// ------------------------------------------------------------------ YAML forms

/// A byte size: `64m`, `1g`, `512k` or a plain number of bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bytes(pub u64);

pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{s}` is not a size; write it like 64m, 512k or 1g"))
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like 64m, 512k or 1g")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Bytes, E> {
                parse_bytes(s).map(Bytes).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bytes, E> {
                Ok(Bytes(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// A signed duration in whole seconds: `+90s`, `-2m`, `30s`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offset(pub i64);

pub fn parse_offset(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let d = parse_dur(rest)?;
    if d.subsec_nanos() != 0 || d.is_zero() {
        return Err(format!(
            "`{s}` must be a whole, non-zero number of seconds, like +90s or -2m"
        ));
    }
    Ok(sign * d.as_secs() as i64)
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Offset;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a signed duration like +90s or -2m")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Offset, E> {
                parse_offset(s).map(Offset).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StressForm {
    target: Target,
    #[serde(default)]
    cpu: Option<u32>,
    #[serde(default)]
    memory: Option<Bytes>,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiskFullForm {
    target: Target,
    #[serde(default)]
    leave: Option<Bytes>,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClockSkewForm {
    target: Target,
    offset: Offset,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

/// `slow_disk: {...}`, checked as it is read so a drill without a limit is an error at its
/// line and column.
#[derive(Deserialize)]
#[serde(try_from = "SlowDiskRaw")]
pub(super) struct SlowDiskForm(pub(super) ResourceFault);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowDiskRaw {
    target: Target,
    #[serde(default)]
    write_bps: Option<Bytes>,
    #[serde(default)]
    read_bps: Option<Bytes>,
    /// Both read and write operations per second.
    #[serde(default)]
    iops: Option<u64>,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SentinelsForm {
    pub(super) part: Part,
    #[serde(default)]
    pub(super) seed: Option<u64>,
}

impl From<StressForm> for ResourceFault {
    fn from(s: StressForm) -> Self {
        let memory = s.memory.map_or(0, |b| b.0);
        ResourceFault {
            target: s.target,
            // With only `memory` given, no CPU workers: the two pressures stay separable.
            kind: ResourceKind::Stress {
                cpu: s.cpu.unwrap_or(if memory > 0 { 0 } else { 1 }),
                memory,
            },
            duration: s.lasts.map(|d| d.0),
        }
    }
}

impl From<DiskFullForm> for ResourceFault {
    fn from(s: DiskFullForm) -> Self {
        ResourceFault {
            target: s.target,
            kind: ResourceKind::DiskFull {
                leave: s.leave.map_or(0, |b| b.0),
            },
            duration: s.lasts.map(|d| d.0),
        }
    }
}

impl From<ClockSkewForm> for ResourceFault {
    fn from(s: ClockSkewForm) -> Self {
        ResourceFault {
            target: s.target,
            kind: ResourceKind::ClockSkew {
                offset_s: s.offset.0,
            },
            duration: s.lasts.map(|d| d.0),
        }
    }
}

impl TryFrom<SlowDiskRaw> for SlowDiskForm {
    type Error = String;
    fn try_from(s: SlowDiskRaw) -> Result<Self, String> {
        let iops = s.iops.unwrap_or(0);
        let limits = crate::fault::disk::Limits {
            read_bps: s.read_bps.map_or(0, |b| b.0),
            write_bps: s.write_bps.map_or(0, |b| b.0),
            read_iops: iops,
            write_iops: iops,
        };
        if limits.is_empty() {
            return Err(
                "slow_disk needs at least one non-zero limit: write_bps, read_bps or iops".into(),
            );
        }
        Ok(SlowDiskForm(ResourceFault {
            target: s.target,
            kind: ResourceKind::SlowDisk { limits },
            duration: s.lasts.map(|d| d.0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_sentinel_sets() {
        assert_eq!((Part::Minority.of(3), Part::Majority.of(3)), (1, 2));
        assert_eq!((Part::Minority.of(5), Part::Majority.of(5)), (2, 3));
        assert_eq!((Part::Minority.of(4), Part::Majority.of(4)), (1, 3));
        assert_eq!(Part::Minority.of(1), 0);
    }

    #[test]
    fn sizes_and_offsets() {
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("512kb"), Ok(512 << 10));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_offset("+90s"), Ok(90));
        assert_eq!(parse_offset("-2m"), Ok(-120));
        assert_eq!(parse_offset("30s"), Ok(30));
        assert!(parse_offset("500ms").is_err());
        assert!(parse_offset("90").is_err());
    }
}
