//! Measurement: what a drill observed, reduced to figures that mean something.
//!
//! - [`timeline`]: faults, Sentinel and Cluster events, role and container changes, on one
//!   monotonic time axis.
//! - [`buckets`]: per-operation results rolled into 100 ms buckets with latency histograms;
//!   one `Recorder` per workload task, merged without locks.
//! - [`failover`]: per-fault detection, promotion, client-visible unavailability and recovery,
//!   each with the resolution it can honestly claim.
//! - [`lostwrites`]: acknowledged writes missing after recovery, and the reverse.
//!
//! Nothing here does I/O or knows about a terminal. Definitions: `docs/metrics.md`.

pub mod buckets;
pub mod failover;
pub mod lostwrites;
pub mod replication;
pub(crate) mod serde_us;
pub mod timeline;

pub use buckets::{
    latency_histogram, BucketSummary, Counts, MeasureError, NodeSummary, Outcome, Recorder, Rollup,
    RunSummary,
};
pub use failover::{
    analyze, FailoverConfig, FailoverMetrics, FaultReport, Sustain, Unavailability, Window,
    WindowEnd, WriteSample, WriteSeries,
};
pub use lostwrites::{lost_writes, IdRange, LostCounts, LostWrites};
pub use timeline::{
    ClusterHealth, ContainerAction, Event, EventKind, FailFlag, Role, SentinelEvent, Timeline,
};
