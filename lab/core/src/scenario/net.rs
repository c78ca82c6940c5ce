//! Network faults as a drill file states them: which nodes, cut or slowed how, and by which
//! mechanism. Targets are resolved when the step runs, as for the process faults.

use std::fmt;
use std::time::Duration;

use super::model::Target;

/// A network fault step (YAML keys `isolate`, `partition`, `one_way`, `cut_clients`, `loss`,
/// `latency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    /// The node reaches nobody and nobody reaches it, clients included.
    Isolate { target: Target },
    /// Nodes on different sides cannot talk; nodes in no side form one more side.
    Partition { sides: Vec<Vec<Target>> },
    /// `from` cannot reach `to`; `to` still reaches `from`.
    OneWay { from: Target, to: Target },
    /// Clients (published ports) lose the node; its peers do not.
    CutClients { target: Target },
    /// This share of the packets the node sends is dropped.
    Loss { target: Target, percent: u8 },
    /// The link `from` -> `to` is slowed by `delay` (+/- `jitter`) each way, rate-capped.
    Latency {
        from: Target,
        to: Target,
        delay: Duration,
        jitter: Duration,
        bandwidth_kbit: Option<u32>,
        via: Via,
    },
}

/// How a latency fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Whatever this host supports (today: lab's proxy).
    #[default]
    Auto,
    /// lab's userspace TCP proxy.
    Proxy,
    /// `tc netem` in the node's namespace: refused where the kernel lacks `sch_netem`.
    Netem,
}

/// A target and where it sits under the fault's key: the key (`target`, `from`, `to`,
/// `sides`) and, within `sides`, (side, position).
pub type TargetAt<'a> = (&'static str, Option<(usize, usize)>, &'a Target);

impl NetSpec {
    /// The YAML key.
    pub fn key(&self) -> &'static str {
        match self {
            NetSpec::Isolate { .. } => "isolate",
            NetSpec::Partition { .. } => "partition",
            NetSpec::OneWay { .. } => "one_way",
            NetSpec::CutClients { .. } => "cut_clients",
            NetSpec::Loss { .. } => "loss",
            NetSpec::Latency { .. } => "latency",
        }
    }

    /// Each target with its place under the fault's key.
    pub fn targets_at(&self) -> Vec<TargetAt<'_>> {
        match self {
            NetSpec::Isolate { target }
            | NetSpec::CutClients { target }
            | NetSpec::Loss { target, .. } => vec![("target", None, target)],
            NetSpec::OneWay { from, to } | NetSpec::Latency { from, to, .. } => {
                vec![("from", None, from), ("to", None, to)]
            }
            NetSpec::Partition { sides } => sides
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    s.iter()
                        .enumerate()
                        .map(move |(j, t)| ("sides", Some((i, j)), t))
                })
                .collect(),
        }
    }
}

impl fmt::Display for NetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetSpec::Isolate { target } => write!(f, "isolate {target}"),
            NetSpec::Partition { sides } => {
                let s: Vec<String> = sides
                    .iter()
                    .map(|s| {
                        s.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect();
                write!(f, "partition {} | the rest", s.join(" | "))
            }
            NetSpec::OneWay { from, to } => write!(f, "one-way: {from} cannot reach {to}"),
            NetSpec::CutClients { target } => write!(f, "cut clients off {target}"),
            NetSpec::Loss { target, percent } => write!(f, "drop {percent}% of {target}'s packets"),
            NetSpec::Latency {
                from, to, delay, ..
            } => write!(
                f,
                "slow link {from} -> {to} (+{} each way)",
                super::fmt::dur(*delay)
            ),
        }
    }
}
