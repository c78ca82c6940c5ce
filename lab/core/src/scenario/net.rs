//! Network faults as a drill file states them: which nodes, cut or slowed how, and by which
//! mechanism. Targets are resolved when the step runs, as for the process faults.

use std::fmt;
use std::time::Duration;

use super::model::Target;

/// A network fault step (YAML keys `isolate`, `partition`, `one_way`, `cut_clients`, `loss`,
/// `latency`, `node_latency`, `timeout`, `reset`).
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
    /// Every link of the node slowed by `delay` (+/- `jitter`) each way, rate-capped: the
    /// connections it opens to its peers and those they open to it.
    NodeLatency {
        target: Target,
        delay: Duration,
        jitter: Duration,
        bandwidth_kbit: Option<u32>,
        via: Via,
    },
    /// Connections `from` opens to `to` stay open but pass no data; closed after
    /// `close_after` if given (through lab's proxy).
    Timeout {
        from: Target,
        to: Target,
        close_after: Option<Duration>,
    },
    /// Connections `from` opens to `to` are reset (TCP RST) `after` they open (through lab's
    /// proxy); those open when it is applied, `after` that.
    Reset {
        from: Target,
        to: Target,
        after: Duration,
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
            NetSpec::NodeLatency { .. } => "node_latency",
            NetSpec::Timeout { .. } => "timeout",
            NetSpec::Reset { .. } => "reset",
        }
    }

    /// Each target with its place under the fault's key.
    pub fn targets_at(&self) -> Vec<TargetAt<'_>> {
        match self {
            NetSpec::Isolate { target }
            | NetSpec::CutClients { target }
            | NetSpec::Loss { target, .. }
            | NetSpec::NodeLatency { target, .. } => vec![("target", None, target)],
            NetSpec::OneWay { from, to }
            | NetSpec::Latency { from, to, .. }
            | NetSpec::Timeout { from, to, .. }
            | NetSpec::Reset { from, to, .. } => {
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
            NetSpec::NodeLatency { target, delay, .. } => write!(
                f,
                "slow every link of {target} (+{} each way)",
                super::fmt::dur(*delay)
            ),
            NetSpec::Timeout {
                from,
                to,
                close_after,
            } => {
                write!(f, "silence the link {from} -> {to}")?;
                match close_after {
                    Some(d) => write!(f, " (closed after {})", super::fmt::dur(*d)),
                    None => Ok(()),
                }
            }
            NetSpec::Reset { from, to, after } if after.is_zero() => {
                write!(f, "reset the link {from} -> {to}")
            }
            NetSpec::Reset { from, to, after } => write!(
                f,
                "reset the link {from} -> {to} after {}",
                super::fmt::dur(*after)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::scenario::{parse, validate, Action, FaultSpec};
    use crate::topology;

    fn fault(body: &str) -> Result<FaultSpec, String> {
        let text = format!("description: d\ntopology: redis-cluster\nsteps:\n  - fault: {body}\n");
        let s = parse("t.yaml", &text).map_err(|e| e.to_string())?;
        let topo = topology::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compose/redis-cluster.yaml"),
            &Default::default(),
        )
        .map_err(|e| e.to_string())?;
        validate(&s, &topo).map_err(|e| e.to_string())?;
        match &s.steps[0].action {
            Action::Fault(f) => Ok(f.clone()),
            other => Err(format!("not a fault: {other}")),
        }
    }

    #[test]
    fn every_network_kind_reads_with_its_defaults() {
        let n = |s: &str| Target::Node(s.into());
        let net = |f: FaultSpec| match f {
            FaultSpec::Net { net, duration } => (net, duration),
            other => panic!("{other}"),
        };
        assert_eq!(
            net(fault("{isolate: {target: {node: node-1}, for: 5s}}").expect("isolate")),
            (
                NetSpec::Isolate {
                    target: n("node-1")
                },
                Some(Duration::from_secs(5))
            )
        );
        assert_eq!(
            net(
                fault("{partition: {sides: [[{node: node-1}, {master_of: shard-2}]]}}")
                    .expect("partition")
            )
            .0,
            NetSpec::Partition {
                sides: vec![vec![n("node-1"), Target::MasterOf("shard-2".into())]]
            }
        );
        assert_eq!(
            net(fault("{one_way: {from: {node: node-1}, to: {node: node-2}}}").expect("one_way")).0,
            NetSpec::OneWay {
                from: n("node-1"),
                to: n("node-2")
            }
        );
        assert_eq!(
            net(fault("{loss: {target: {node: node-1}, percent: 30}}").expect("loss")).0,
            NetSpec::Loss {
                target: n("node-1"),
                percent: 30
            }
        );
        assert_eq!(
            net(
                fault("{latency: {from: {node: node-4}, to: {node: node-1}, delay: 100ms}}")
                    .expect("latency")
            )
            .0,
            NetSpec::Latency {
                from: n("node-4"),
                to: n("node-1"),
                delay: Duration::from_millis(100),
                jitter: Duration::ZERO,
                bandwidth_kbit: None,
                via: Via::Auto
            }
        );
        assert_eq!(
            net(
                fault("{node_latency: {target: {master_of: shard-1}, delay: 50ms, jitter: 5ms, via: proxy, for: 20s}}")
                    .expect("node_latency")
            ),
            (
                NetSpec::NodeLatency {
                    target: Target::MasterOf("shard-1".into()),
                    delay: Duration::from_millis(50),
                    jitter: Duration::from_millis(5),
                    bandwidth_kbit: None,
                    via: Via::Proxy
                },
                Some(Duration::from_secs(20))
            )
        );
        assert!(
            fault("{node_latency: {target: {node: node-1}, to: {node: node-2}, delay: 1ms}}")
                .is_err_and(|e| e.contains("unknown field `to`"))
        );
        assert!(fault("{cut_clients: {target: {node: node-1}}}").is_ok());
        assert_eq!(
            net(
                fault("{timeout: {from: {node: node-4}, to: {master_of: shard-1}, for: 10s}}")
                    .expect("timeout")
            ),
            (
                NetSpec::Timeout {
                    from: n("node-4"),
                    to: Target::MasterOf("shard-1".into()),
                    close_after: None
                },
                Some(Duration::from_secs(10))
            )
        );
        assert_eq!(
            net(
                fault("{timeout: {from: {node: node-4}, to: {node: node-1}, close_after: 2s}}")
                    .expect("timeout close_after")
            )
            .0,
            NetSpec::Timeout {
                from: n("node-4"),
                to: n("node-1"),
                close_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            net(fault("{reset: {from: {node: node-4}, to: {node: node-1}}}").expect("reset")).0,
            NetSpec::Reset {
                from: n("node-4"),
                to: n("node-1"),
                after: Duration::ZERO
            }
        );
        assert_eq!(
            net(
                fault("{reset: {from: {node: node-4}, to: {node: node-1}, after: 500ms}}")
                    .expect("reset after")
            )
            .0,
            NetSpec::Reset {
                from: n("node-4"),
                to: n("node-1"),
                after: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn network_fault_errors_point_at_the_value() {
        let e = fault("{loss: {target: {node: node-1}, percent: 0}}").expect_err("0%");
        assert!(e.contains("t.yaml:4:") && e.contains("1 to 100"), "{e}");
        let e = fault("{one_way: {from: {node: node-1}, to: {node: node-9}}}").expect_err("node-9");
        assert!(e.starts_with("t.yaml:4:56:") && e.contains("node-9"), "{e}");
        let e = fault("{partition: {sides: [[{node: node-1}, {node: nod-2}]]}}").expect_err("typo");
        assert!(e.contains("did you mean `node-2`"), "{e}");
        let e = fault("{latency: {from: {node: node-4}, to: {node: node-1}, delay: 100}}")
            .expect_err("unitless");
        assert!(e.contains("t.yaml:4:"), "{e}");
        let e = fault("{reset: {from: {node: node-4}, to: {node: node-1}, after: 2}}")
            .expect_err("unitless");
        assert!(e.contains("t.yaml:4:") && e.contains("no unit"), "{e}");
        let e = fault("{timeout: {from: {node: node-4}, to: {node: node-1}, close: 2s}}")
            .expect_err("typo");
        assert!(e.contains("t.yaml:4:") && e.contains("close_after"), "{e}");
    }
}
