//! The drill as the runner sees it: typed, checked, with every default filled in. Built from
//! the file by `parse`; nothing here is read from YAML directly except through the forms in
//! `form.rs`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;

use super::assertion::Assertion;
use super::locate::{locate, YamlPath};
pub use super::resource::{Part, ResourceFault};
use super::ScenarioError;
use crate::measure::SentinelEvent;
use crate::topology::Role;

/// A drill: the load to run, what to do to the topology and when, and what must hold after.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub description: String,
    /// A topology name in `compose/` (or a path to a compose file); the runner resolves it.
    pub topology: String,
    /// Topology profile (`drill`, `seed`...); `None`: the topology's default.
    pub profile: Option<String>,
    /// Server flavour (`valkey`, `redis`); `None`: the topology's first.
    pub flavor: Option<String>,
    /// Setting overrides by setting name, applied like `--set name=value`.
    pub set: IndexMap<String, String>,
    pub workload: WorkloadSpec,
    pub pinned_clients: Vec<PinnedClient>,
    /// How long load runs before the timeline's t=0.
    pub warmup: Duration,
    /// Hard bound on the whole timeline (from t=0).
    pub timeout: Duration,
    pub steps: Vec<Step>,
    pub assertions: Vec<Assertion>,
    /// The file as read, to point at its lines in later errors.
    pub source: SourceText,
}

impl Scenario {
    /// The drill's name: its file name without the extension.
    pub fn name(&self) -> &str {
        Path::new(&self.source.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&self.source.file)
    }

    /// The fault steps with their ids (1-based, in the order they appear) and step indices.
    pub fn faults(&self) -> impl Iterator<Item = (u32, usize, &FaultSpec)> {
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.action {
                Action::Fault(f) => Some((i, f)),
                _ => None,
            })
            .zip(1u32..)
            .map(|((i, f), id)| (id, i, f))
    }
}

/// A drill file's name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    /// As shown in messages (relative to the working directory when below it).
    pub file: String,
    pub text: String,
}

impl SourceText {
    pub(crate) fn pos(&self, path: &YamlPath) -> (usize, usize) {
        locate(&self.text, path)
    }

    pub(crate) fn error_at(
        &self,
        (line, column): (usize, usize),
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::At {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(crate) fn error(&self, path: &YamlPath, message: impl Into<String>) -> ScenarioError {
        self.error_at(self.pos(path), message)
    }
}

/// The load driven through the whole drill, following failovers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub mode: LoadMode,
    /// Connections (open loop) or concurrent clients each with one request in flight per
    /// pipeline slot (closed loop).
    pub clients: u32,
    /// Requests sent per round trip.
    pub pipeline: u32,
    /// Distinct keys.
    pub keyspace: u64,
    /// Bytes per value written.
    pub value_size: u32,
    /// Share of reads, 0..=1.
    pub read_ratio: f64,
    /// Every write gets a unique ordered id, checked after recovery (lost writes).
    pub track_writes: bool,
    /// A request without an answer after this long counts as a timeout.
    pub op_timeout: Duration,
    /// Only these groups (Sentinel masters / cluster shards) get load; empty: all of them.
    pub groups: Vec<String>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            mode: LoadMode::Closed,
            clients: 16,
            pipeline: 1,
            keyspace: 10_000,
            value_size: 64,
            read_ratio: 0.5,
            track_writes: true,
            op_timeout: Duration::from_secs(1),
            groups: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Requests are sent at `rate` per second whatever the answers; latency is measured from
    /// the intended send time, so stalls show up in full.
    Open { rate: u32 },
    /// Each client sends its next request when the previous one is answered.
    Closed,
}

/// A client that does not follow failover: it keeps writing to the node its target resolved
/// to when the drill started (a client left on the old master's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedClient {
    pub name: String,
    /// Resolved once, at the start of the drill.
    pub target: Target,
    /// Writes per second (open loop).
    pub rate: u32,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub timing: Timing,
    pub action: Action,
    /// Line of the step in the drill file, for messages.
    pub line: usize,
}

/// When a step starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// This long after t=0 (right away if that time has passed).
    At(Duration),
    /// This long after the previous step finished.
    After(Duration),
    /// As soon as the previous step finished.
    Now,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Inject a fault; faults are numbered from 1 in the order their steps appear.
    Fault(FaultSpec),
    /// Undo faults.
    Heal(HealSpec),
    /// Block until the condition holds; failing the drill after `timeout`.
    Wait { until: Condition, timeout: Duration },
    /// Put a note on the timeline.
    Note(String),
}

/// A fault. Each variant is one YAML key (`kill`, `stop`, ...), so new kinds (isolate,
/// partition, latency, loss) are new variants with their own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultSpec {
    /// Send a signal to the container's main process (SIGKILL: a crash).
    Kill { target: Target, signal: String },
    /// Stop the container: SIGTERM, then SIGKILL after `grace`.
    Stop { target: Target, grace: Duration },
    /// Stop and start again; heals by itself.
    Restart { target: Target },
    /// SIGKILL and start again every `every` while in force (the first at once); with
    /// `duration` (YAML `for`), healed after it. YAML: `restart_loop`.
    RestartLoop {
        target: Target,
        every: Duration,
        duration: Option<Duration>,
    },
    /// Freeze the container's processes (cgroup freezer); with `duration`, thaw after it.
    /// YAML: `for`.
    Pause {
        target: Target,
        duration: Option<Duration>,
    },
    /// A network fault (`scenario/net.rs`); with `duration` (YAML `for`), healed after it.
    Net {
        net: super::net::NetSpec,
        duration: Option<Duration>,
    },
    /// Resource faults (stress, disk full, clock skew): see `resource.rs`.
    Resource(ResourceFault),
    /// The targeted Sentinels armed so that the next one elected failover leader crashes
    /// right after its election; disarmed after `within` without one. YAML: `leader_crash`.
    LeaderCrash { target: Target, within: Duration },
}

impl FaultSpec {
    /// The YAML key of this kind of fault.
    pub fn key(&self) -> &'static str {
        match self {
            FaultSpec::Kill { .. } => "kill",
            FaultSpec::Stop { .. } => "stop",
            FaultSpec::Restart { .. } => "restart",
            FaultSpec::RestartLoop { .. } => "restart_loop",
            FaultSpec::Pause { .. } => "pause",
            FaultSpec::Net { net, .. } => net.key(),
            FaultSpec::Resource(r) => r.key(),
            FaultSpec::LeaderCrash { .. } => "leader_crash",
        }
    }

    /// Every node selection the fault uses (one today; two sides for a future partition).
    pub fn targets(&self) -> Vec<&Target> {
        match self {
            FaultSpec::Kill { target, .. }
            | FaultSpec::Stop { target, .. }
            | FaultSpec::Restart { target }
            | FaultSpec::RestartLoop { target, .. }
            | FaultSpec::Pause { target, .. }
            | FaultSpec::LeaderCrash { target, .. } => vec![target],
            FaultSpec::Net { net, .. } => net.targets_at().into_iter().map(|(_, _, t)| t).collect(),
            FaultSpec::Resource(r) => vec![&r.target],
        }
    }

    /// Whether the fault undoes itself, so that a `heal` naming it makes no sense.
    pub fn heals_itself(&self) -> bool {
        matches!(self, FaultSpec::Restart { .. })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultSpec::Kill { target, signal } => write!(f, "kill {target} ({signal})"),
            FaultSpec::Stop { target, grace } => {
                write!(f, "stop {target} (grace {})", super::fmt::dur(*grace))
            }
            FaultSpec::Restart { target } => write!(f, "restart {target}"),
            FaultSpec::RestartLoop {
                target,
                every,
                duration,
            } => {
                write!(f, "restart {target} every {}", super::fmt::dur(*every))?;
                match duration {
                    Some(d) => write!(f, " for {}", super::fmt::dur(*d)),
                    None => Ok(()),
                }
            }
            FaultSpec::Pause { target, duration } => match duration {
                Some(d) => write!(f, "pause {target} for {}", super::fmt::dur(*d)),
                None => write!(f, "pause {target}"),
            },
            FaultSpec::Net { net, duration } => match duration {
                Some(d) => write!(f, "{net} for {}", super::fmt::dur(*d)),
                None => net.fmt(f),
            },
            FaultSpec::Resource(r) => r.fmt(f),
            FaultSpec::LeaderCrash { target, within } => write!(
                f,
                "crash the next elected leader among {target} (armed up to {})",
                super::fmt::dur(*within)
            ),
        }
    }
}

/// Which faults a heal step undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealSpec {
    /// Every fault injected so far that is still in force.
    All,
    /// The fault with this id (1-based).
    Fault(u32),
}

impl fmt::Display for HealSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealSpec::All => f.write_str("heal all faults"),
            HealSpec::Fault(n) => write!(f, "heal fault {n}"),
        }
    }
}

/// Which node a fault or a pinned client acts on. Roles and groups are resolved when the
/// step runs (pinned clients: when the drill starts), from the live replication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A node (service) by name.
    Node(String),
    /// The current master of a group (Sentinel master name or cluster shard).
    MasterOf(String),
    /// A current replica of a group (the first, in file order).
    ReplicaOf(String),
    /// A node with this role, picked at random; `seed` makes the pick repeatable.
    AnyOf { role: Role, seed: Option<u64> },
    /// Several Sentinels: a minority, a majority or all of them (see `resource.rs`).
    Sentinels { part: Part, seed: Option<u64> },
    /// Every node whose `x-lab` zone is this label.
    Zone(String),
    /// The Sentinel failing over this group right now: the one whose `SENTINEL MASTER`
    /// flags say `failover_in_progress`, asked of every Sentinel when the step runs.
    SentinelLeader(String),
}

impl Target {
    /// The YAML key of this kind of target.
    pub fn key(&self) -> &'static str {
        match self {
            Target::Node(_) => "node",
            Target::MasterOf(_) => "master_of",
            Target::ReplicaOf(_) => "replica_of",
            Target::AnyOf { .. } => "any_of",
            Target::Sentinels { .. } => "sentinels",
            Target::Zone(_) => "zone",
            Target::SentinelLeader(_) => "sentinel_leader",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => f.write_str(n),
            Target::MasterOf(g) => write!(f, "the master of {g}"),
            Target::ReplicaOf(g) => write!(f, "a replica of {g}"),
            Target::AnyOf { role, seed: None } => write!(f, "any {role}"),
            Target::AnyOf {
                role,
                seed: Some(s),
            } => write!(f, "any {role} (seed {s})"),
            Target::Sentinels {
                part: Part::All, ..
            } => f.write_str("every Sentinel"),
            Target::Sentinels { part, seed: None } => write!(f, "a {part} of the Sentinels"),
            Target::Sentinels {
                part,
                seed: Some(s),
            } => write!(f, "a {part} of the Sentinels (seed {s})"),
            Target::Zone(z) => write!(f, "zone {z}"),
            Target::SentinelLeader(g) => write!(f, "the Sentinel failing over {g}"),
        }
    }
}

/// What a `wait` step waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A node of this group was promoted to master after the latest fault step started.
    Promoted(String),
    /// The topology's success criteria hold (its `x-lab.verify`, as after `lab up`).
    Healthy,
    /// The node reports this replication role.
    Role { node: String, is: NodeRole },
    /// The node is a replica whose link to its master is up (`master_link_status:up`).
    LinkUp(String),
    /// A Sentinel announced this event after the previous step started.
    Event(SentinelEvent),
    /// This long has passed since the wait started.
    Elapsed(Duration),
}

impl Condition {
    /// The YAML key (or word) of this condition.
    pub fn key(&self) -> &'static str {
        match self {
            Condition::Promoted(_) => "promoted",
            Condition::Healthy => "healthy",
            Condition::Role { .. } => "role",
            Condition::LinkUp(_) => "link_up",
            Condition::Event(_) => "event",
            Condition::Elapsed(_) => "elapsed",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Promoted(g) => write!(f, "a new master in {g}"),
            Condition::Healthy => f.write_str("the topology to be healthy"),
            Condition::Role { node, is } => write!(f, "{node} to be a {is}"),
            Condition::LinkUp(n) => write!(f, "{n}'s replication link up"),
            Condition::Event(e) => write!(f, "Sentinel event {e}"),
            Condition::Elapsed(d) => write!(f, "{} to pass", super::fmt::dur(*d)),
        }
    }
}

/// A replication role a node can be waited into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Master,
    Replica,
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::Master => "master",
            NodeRole::Replica => "replica",
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Fault(x) => x.fmt(f),
            Action::Heal(h) => h.fmt(f),
            Action::Wait { until, timeout } => {
                write!(f, "wait for {until} (up to {})", super::fmt::dur(*timeout))
            }
            Action::Note(t) => write!(f, "note: {t}"),
        }
    }
}
