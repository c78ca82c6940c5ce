//! What a live session publishes: a self-contained picture of the cluster, the load, the
//! timeline and every fault's stopwatch. Front ends only read it; nothing here does I/O, so a
//! test can build any state (healthy, node down, failover in progress...) by hand.

use std::time::Duration;

use crate::measure::{BucketSummary, Event, FaultReport, Role, Unavailability};
use crate::topology::Role as NodeKind;

/// One picture of the session, published at a bounded rate when something changed.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every publication; a front end redraws when it changes.
    pub seq: u64,
    pub instance: String,
    pub topology: String,
    /// "docker 27.3.1".
    pub engine: String,
    /// Since the session started (the time axis of every event and chart point).
    pub elapsed: Duration,
    pub nodes: Vec<NodeView>,
    pub workload: WorkloadView,
    /// The last [`CHART_SPAN`] of load, one point per bucket (100 ms), oldest first.
    pub chart: Vec<ChartPoint>,
    /// The most recent timeline events, oldest first (at most [`EVENTS_KEPT`]).
    pub events: Vec<Event>,
    /// Events on the whole timeline so far (the list above may be a tail of it).
    pub events_total: usize,
    /// Every fault of this session, oldest first.
    pub faults: Vec<FaultView>,
    /// A drill started from the session, if any.
    pub drill: Option<DrillView>,
    /// The last thing the session wants the user to read (a refusal, a saved report...).
    pub message: Option<Message>,
    /// Resolution of the polled events (roles, links).
    pub event_resolution: Duration,
}

/// How much load history the charts get.
pub const CHART_SPAN: Duration = Duration::from_secs(60);
/// How many timeline events a snapshot carries.
pub const EVENTS_KEPT: usize = 200;

/// A node of the topology as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// Sentinel group or cluster shard.
    pub group: Option<String>,
    /// What the topology file declares.
    pub kind: NodeKind,
    /// Replication role the server reports (data nodes only).
    pub role: Option<Role>,
    pub state: NodeState,
    /// Replicas: whether `master_link_status` is up.
    pub link_up: Option<bool>,
    /// Masters: connected replicas.
    pub replicas: Option<u32>,
    /// 127.0.0.1 port of its main service.
    pub port: Option<u16>,
    /// Id of the session's fault in force on it.
    pub fault: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running and answering its probe.
    Up,
    /// Running but not answering (starting, overloaded, cut off).
    Unhealthy,
    Paused,
    /// Exited or killed.
    Down,
    /// No container.
    Missing,
    Unknown,
}

impl NodeState {
    pub fn label(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Unhealthy => "sick",
            NodeState::Paused => "paused",
            NodeState::Down => "down",
            NodeState::Missing => "gone",
            NodeState::Unknown => "?",
        }
    }
}

/// The session's load generator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadView {
    pub running: bool,
    pub params: WorkloadParams,
    /// Over the last second.
    pub ops_per_s: f64,
    pub errors_per_s: f64,
}

/// What the load looks like; changeable while the session runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadParams {
    /// Target operations per second over all groups (open loop: latency counts from the
    /// planned send time, so a stall shows).
    pub rate: u32,
    /// Connections over all groups (at least one per group).
    pub clients: u32,
    /// Share of reads, 0..=1.
    pub read_ratio: f64,
    pub value_size: usize,
    pub op_timeout: Duration,
}

impl Default for WorkloadParams {
    /// A light load a 2-core laptop carries beside the servers, fine enough to time an
    /// outage: 600 ops/s is one write every ~2 ms per group.
    fn default() -> Self {
        WorkloadParams {
            rate: 600,
            clients: 6,
            read_ratio: 0.2,
            value_size: 64,
            op_timeout: Duration::from_secs(1),
        }
    }
}

/// One chart sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    /// Bucket start since the session started.
    pub at: Duration,
    pub ops_per_s: f64,
    pub errors_per_s: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
}

impl From<&BucketSummary> for ChartPoint {
    fn from(b: &BucketSummary) -> Self {
        ChartPoint {
            at: Duration::from_millis(b.start_ms),
            ops_per_s: b.ops_per_s,
            errors_per_s: b.errors_per_s,
            p50_us: b.p50_us,
            p99_us: b.p99_us,
            p999_us: b.p999_us,
        }
    }
}

/// A fault the user asked for, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultView {
    pub id: u32,
    /// "kill redis-1".
    pub description: String,
    pub target: String,
    pub state: FaultState,
    /// Figures so far, computed with `measure::failover` on the timeline up to now (the same
    /// maths as a drill's report). `None` until the fault is on the timeline.
    pub stopwatch: Option<FaultReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultState {
    /// Sent to the engine; not yet confirmed.
    Applying,
    /// In force since `at`.
    Active { at: Duration },
    /// In force from `at`, undone at `healed`.
    Healed { at: Duration, healed: Duration },
    /// Applied and undone by itself (restart).
    Done { at: Duration },
    /// Not applied: this build or host cannot inject it.
    Refused { reason: String },
    /// The engine call failed.
    Failed { error: String },
}

/// Where a fault's failover stands, from its stopwatch: what a front end shows as the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not yet on the timeline, refused or failed.
    NotStarted,
    /// Fault in force; no promotion yet, or clients still failing.
    InProgress,
    /// Promotion seen and the client outage ended (or none happened).
    Measured,
    /// No promotion is expected or seen and writes never failed (a replica, a Sentinel).
    NoFailover,
}

impl FaultView {
    pub fn phase(&self) -> Phase {
        let Some(sw) = &self.stopwatch else {
            return Phase::NotStarted;
        };
        let m = &sw.metrics;
        let outage_over = !matches!(
            m.unavailability,
            Unavailability::Outage(crate::measure::Window { end: None, .. })
        );
        match (m.promotion, &m.unavailability) {
            (Some(_), _) if outage_over => Phase::Measured,
            (None, Unavailability::NoFailure { .. }) | (None, Unavailability::NotMeasured)
                if !matches!(self.state, FaultState::Active { .. }) =>
            {
                Phase::NoFailover
            }
            _ => Phase::InProgress,
        }
    }
}

/// A drill file being played from the session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrillView {
    pub name: String,
    /// Its progress lines, oldest first (the last few).
    pub lines: Vec<String>,
    /// Set when it finished: passed or not, and where its reports went.
    pub finished: Option<DrillResult>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrillResult {
    pub passed: bool,
    pub summary: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub level: Level,
    pub text: String,
    pub at: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}
