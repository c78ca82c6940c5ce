//! Failover maths: pure functions from a timeline and the client's write outcomes to per-fault
//! figures. The definitions here are the ones `docs/metrics.md` spells out; change both together.
//!
//! Every fault owns a window: from its own time to the next *later* fault, or to the end of the
//! run. Nothing that happens after that boundary is credited to it.
//!
//! - **Detection**: fault -> first event that marks the target as failing: a Sentinel `+sdown`
//!   (or `+odown`) naming it, or a Cluster PFAIL/FAIL flag on it.
//! - **Promotion**: fault -> first sign that another node is now master: `+promoted-slave`,
//!   `+switch-master`, or a poller seeing a role change to master on a node other than the target.
//! - **Client-visible unavailability**: from the first failed write at or after the fault to the
//!   first write of a *sustained* run of successes (see [`Sustain`]).
//! - **Recovery to full redundancy**: fault -> the target is seen as a replica with
//!   `master_link_status:up` (a `ReplicaLink { up: true }` event for it).
//!
//! Each figure is only as fine as its source: see [`FailoverMetrics::resolution`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::buckets::BucketSummary;
use super::timeline::{faults, ContainerAction, Event, EventKind, FailFlag, Role, SentinelEvent};

/// `tokio::time::sleep` and friends fire with about 1 ms granularity, so no client-side figure
/// is finer than this, whatever the probe rate.
pub const TIMER_GRANULARITY: Duration = Duration::from_millis(1);

/// When a run of successful writes counts as the end of an outage: at least `min_successes`
/// consecutive successful writes whose first and last are at least `span` apart, with no
/// failed write in between. Successes that do not meet this are flapping and stay inside the
/// outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sustain {
    pub min_successes: u32,
    #[serde(rename = "span_us", with = "super::serde_us")]
    pub span: Duration,
}

impl Default for Sustain {
    /// 10 writes over 1 s. One second covers Sentinel's 1 s INFO period during a failover (the
    /// cadence at which it reconfigures nodes and kills the old master's clients) and common
    /// client reconnect back-offs, so a success run that survives it is past the cut-over. Ten
    /// writes keep a slow probe (a few writes per second) from ending an outage on one lucky
    /// write to the old master.
    fn default() -> Self {
        Sustain {
            min_successes: 10,
            span: Duration::from_secs(1),
        }
    }
}

/// Settings of the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverConfig {
    pub sustain: Sustain,
    /// How precisely timeline events are stamped (pub/sub and engine events are stamped on
    /// arrival; 1 ms by default). Pollers should pass their poll interval if it is coarser.
    #[serde(rename = "event_resolution_us", with = "super::serde_us")]
    pub event_resolution: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            sustain: Sustain::default(),
            event_resolution: TIMER_GRANULARITY,
        }
    }
}

/// `count` writes started at `at`, all with the same outcome. Per-operation series have
/// `count == 1`; series built from buckets carry a bucket's writes in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSample {
    pub at: Duration,
    pub ok: bool,
    pub count: u32,
}

/// The client's writes over time, and how finely they resolve an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSeries {
    samples: Vec<WriteSample>,
    resolution: Duration,
}

impl WriteSeries {
    /// From individual writes `(start time, acknowledged?)`. `interval` is the time between
    /// two writes of the probe (its period, or 1/rate for a rate-driven workload): an outage
    /// cannot be resolved finer than that, nor finer than the timer ([`TIMER_GRANULARITY`]).
    pub fn from_ops(ops: impl IntoIterator<Item = (Duration, bool)>, interval: Duration) -> Self {
        let mut samples: Vec<WriteSample> = ops
            .into_iter()
            .map(|(at, ok)| WriteSample { at, ok, count: 1 })
            .collect();
        if !samples.windows(2).all(|w| w[0].at <= w[1].at) {
            samples.sort_by_key(|s| s.at);
        }
        WriteSeries {
            samples,
            resolution: interval.max(TIMER_GRANULARITY),
        }
    }

    /// From bucket roll-ups, when individual writes were not kept. Resolution is the bucket
    /// width. Within a bucket holding both outcomes the order is unknown; the samples are laid
    /// out with the fewest transitions (a bucket entered in a failing state fails first, one
    /// entered healthy succeeds first), which never invents a flap.
    pub fn from_buckets(buckets: &[BucketSummary]) -> Self {
        let mut samples = Vec::with_capacity(buckets.len());
        let mut healthy = true;
        let mut width_ms = 0;
        for b in buckets {
            width_ms = width_ms.max(b.width_ms);
            let at = Duration::from_millis(b.start_ms);
            let ok = u32::try_from(b.writes.ok).unwrap_or(u32::MAX);
            let failed = u32::try_from(b.writes.failed()).unwrap_or(u32::MAX);
            let mut push = |is_ok: bool, count: u32| {
                if count > 0 {
                    samples.push(WriteSample {
                        at,
                        ok: is_ok,
                        count,
                    });
                }
            };
            if healthy {
                push(true, ok);
                push(false, failed);
            } else {
                push(false, failed);
                push(true, ok);
            }
            if let Some(last) = samples.last() {
                healthy = last.ok;
            }
        }
        WriteSeries {
            samples,
            resolution: Duration::from_millis(width_ms).max(TIMER_GRANULARITY),
        }
    }

    pub fn samples(&self) -> &[WriteSample] {
        &self.samples
    }

    pub fn resolution(&self) -> Duration {
        self.resolution
    }
}

/// The client's view of one fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unavailability {
    /// No write was attempted in the fault's window: nothing can be said.
    NotMeasured,
    /// Writes were attempted in the window and none failed: zero unavailability, measured.
    NoFailure { writes: u64 },
    /// Writes failed.
    Outage(Window),
}

impl Unavailability {
    /// The outage's length if it ended; zero if there was none; `None` if unknown or still open.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Unavailability::NotMeasured => None,
            Unavailability::NoFailure { .. } => Some(Duration::ZERO),
            Unavailability::Outage(w) => w.duration(),
        }
    }
}

/// A client-visible outage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First failed write at or after the fault (or the fault itself, see
    /// `started_before_fault`), since run start.
    #[serde(rename = "start_us", with = "super::serde_us")]
    pub start: Duration,
    /// First write of the sustained run of successes; `None`: not recovered by `bound`.
    #[serde(rename = "end_us", with = "super::serde_us::opt")]
    pub end: Option<Duration>,
    /// Where this fault's window stops (next fault or end of run).
    #[serde(rename = "bound_us", with = "super::serde_us")]
    pub bound: Duration,
    /// Writes were already failing just before the fault; `start` is clamped to the fault.
    pub started_before_fault: bool,
    /// Failed writes from `start` to `end` (or `bound`).
    pub failed_writes: u64,
    /// Success runs inside the outage that were cut short by another failure (flapping).
    pub interruptions: u32,
}

impl Window {
    pub fn duration(&self) -> Option<Duration> {
        self.end.map(|e| e.saturating_sub(self.start))
    }

    /// For an open outage: how long it lasted at least (to the window's bound).
    pub fn at_least(&self) -> Duration {
        self.bound.saturating_sub(self.start)
    }
}

/// Per-fault figures; durations are measured from the fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverMetrics {
    #[serde(rename = "detection_us", with = "super::serde_us::opt")]
    pub detection: Option<Duration>,
    #[serde(rename = "promotion_us", with = "super::serde_us::opt")]
    pub promotion: Option<Duration>,
    pub unavailability: Unavailability,
    #[serde(rename = "recovery_us", with = "super::serde_us::opt")]
    pub recovery: Option<Duration>,
    /// Resolution of the client-side figure (unavailability): max(probe interval or 1/rate,
    /// bucket width when built from buckets, timer granularity).
    #[serde(rename = "resolution_us", with = "super::serde_us")]
    pub resolution: Duration,
    /// Resolution of the event-based figures (detection, promotion, recovery).
    #[serde(rename = "event_resolution_us", with = "super::serde_us")]
    pub event_resolution: Duration,
    /// Caveats found while computing the figures, in plain words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Where a fault's window stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WindowEnd {
    NextFault {
        id: u32,
        #[serde(rename = "at_us", with = "super::serde_us")]
        at: Duration,
    },
    EndOfRun {
        #[serde(rename = "at_us", with = "super::serde_us")]
        at: Duration,
    },
}

impl WindowEnd {
    pub fn at(&self) -> Duration {
        match self {
            WindowEnd::NextFault { at, .. } | WindowEnd::EndOfRun { at } => *at,
        }
    }
}

/// One fault and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultReport {
    pub id: u32,
    #[serde(rename = "at_us", with = "super::serde_us")]
    pub at: Duration,
    pub description: String,
    pub target: String,
    pub window_end: WindowEnd,
    pub metrics: FailoverMetrics,
}

/// Computes the figures of every fault on the timeline (events sorted by time, as a
/// [`super::timeline::Timeline`] keeps them). `run_end` is the end of the drill.
pub fn analyze(
    events: &[Event],
    writes: &WriteSeries,
    run_end: Duration,
    cfg: &FailoverConfig,
) -> Vec<FaultReport> {
    let all: Vec<_> = faults(events).collect();
    all.iter()
        .map(|f| {
            let window_end = all
                .iter()
                .find(|g| g.at > f.at)
                .map(|g| WindowEnd::NextFault { id: g.id, at: g.at })
                .unwrap_or(WindowEnd::EndOfRun {
                    at: run_end.max(f.at),
                });
            let bound = window_end.at();
            let lo = events.partition_point(|e| e.at < f.at);
            let hi = events.partition_point(|e| e.at < bound);
            let in_window = &events[lo..hi];
            let mut notes = Vec::new();

            let detection = detection(in_window, f.target, &mut notes).map(|t| t - f.at);
            let promotion = promotion(in_window, f.target).map(|t| t - f.at);
            let recovery = recovery(in_window, f.target, f.at, promotion.is_some(), &mut notes)
                .map(|t| t - f.at);
            let unavailability = unavailability(writes, f.at, bound, &cfg.sustain, &mut notes);
            FaultReport {
                id: f.id,
                at: f.at,
                description: f.fault.to_string(),
                target: f.target.to_string(),
                window_end,
                metrics: FailoverMetrics {
                    detection,
                    promotion,
                    unavailability,
                    recovery,
                    resolution: writes.resolution(),
                    event_resolution: cfg.event_resolution,
                    notes,
                },
            }
        })
        .collect()
}

/// Whether an event is about `target`. Sentinel payloads read
/// "<type> <name> <ip> <port> [@ <master> <ip> <port>]": only the part before '@' names the
/// instance the event is about.
fn names(kind: &EventKind, target: &str) -> bool {
    match kind {
        EventKind::Sentinel { detail, .. } => detail
            .split('@')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .any(|w| w == target || w.split(':').next() == Some(target)),
        EventKind::NodeFailFlag { node, .. }
        | EventKind::RoleChange { node, .. }
        | EventKind::ClusterState { node, .. }
        | EventKind::Container { node, .. }
        | EventKind::ReplicaLink { node, .. } => node == target,
        _ => false,
    }
}

fn detection(window: &[Event], target: &str, notes: &mut Vec<String>) -> Option<Duration> {
    let marks_failing = |k: &EventKind| {
        matches!(
            k,
            EventKind::Sentinel {
                event: SentinelEvent::Sdown | SentinelEvent::Odown,
                ..
            } | EventKind::NodeFailFlag {
                flag: FailFlag::Pfail | FailFlag::Fail,
                ..
            }
        )
    };
    let mut first_any = None;
    for e in window {
        if marks_failing(&e.kind) {
            if names(&e.kind, target) {
                return Some(e.at);
            }
            first_any.get_or_insert(e);
        }
    }
    first_any.map(|e| {
        notes.push(format!(
            "detection: no failure mark names {target}; used the first one, \"{}\"",
            e.kind
        ));
        e.at
    })
}

fn promotion(window: &[Event], target: &str) -> Option<Duration> {
    window
        .iter()
        .find(|e| match &e.kind {
            EventKind::Sentinel {
                event: SentinelEvent::PromotedSlave | SentinelEvent::SwitchMaster,
                ..
            } => true,
            EventKind::RoleChange {
                node,
                to: Role::Master,
                ..
            } => node != target,
            _ => false,
        })
        .map(|e| e.at)
}

fn recovery(
    window: &[Event],
    target: &str,
    fault_at: Duration,
    promoted: bool,
    notes: &mut Vec<String>,
) -> Option<Duration> {
    let link_up = window.iter().find(|e| {
        e.at > fault_at
            && matches!(&e.kind, EventKind::ReplicaLink { node, up: true } if node == target)
    });
    if let Some(e) = link_up {
        return Some(e.at);
    }
    let back = window.iter().find(|e| {
        matches!(
            &e.kind,
            EventKind::Container { node, action: ContainerAction::Start | ContainerAction::Unpause }
                if node == target
        )
    });
    notes.push(match (back, promoted) {
        (None, _) => format!("recovery: {target} did not come back within the fault's window"),
        (Some(b), true) => format!(
            "recovery: {target} came back at {:.3} s but was not seen as a replica with a green link",
            b.at.as_secs_f64()
        ),
        (Some(b), false) => format!(
            "recovery: {target} came back at {:.3} s and no failover happened, so it never became a replica",
            b.at.as_secs_f64()
        ),
    });
    None
}

fn unavailability(
    writes: &WriteSeries,
    fault_at: Duration,
    bound: Duration,
    sustain: &Sustain,
    notes: &mut Vec<String>,
) -> Unavailability {
    let all = writes.samples();
    let lo = all.partition_point(|s| s.at < fault_at);
    let hi = all.partition_point(|s| s.at < bound);
    let win = &all[lo..hi];
    let started_before_fault = lo > 0 && !all[lo - 1].ok;
    if win.is_empty() {
        if started_before_fault {
            notes.push(
                "unavailability: writes were failing before the fault and none was attempted in its window"
                    .into(),
            );
        }
        return Unavailability::NotMeasured;
    }
    let first_fail = win.iter().position(|s| !s.ok);
    let from = match (first_fail, started_before_fault) {
        (None, false) => {
            return Unavailability::NoFailure {
                writes: win.iter().map(|s| u64::from(s.count)).sum(),
            }
        }
        (_, true) => 0,
        (Some(i), false) => i,
    };
    let start = if started_before_fault {
        fault_at
    } else {
        win[from].at
    };
    if from == 0 && !started_before_fault && lo == 0 && start - fault_at > writes.resolution() {
        notes.push(format!(
            "unavailability: no write was observed between the fault and the first failure at {:.3} s; the outage may have begun earlier",
            start.as_secs_f64()
        ));
    }
    let mut failed_writes = 0u64;
    let mut interruptions = 0u32;
    let mut run: Option<(Duration, u64)> = None;
    let mut end = None;
    for s in &win[from..] {
        if !s.ok {
            failed_writes += u64::from(s.count);
            if run.take().is_some() {
                interruptions += 1;
            }
            continue;
        }
        let (run_start, n) = run.get_or_insert((s.at, 0));
        *n += u64::from(s.count);
        if *n >= u64::from(sustain.min_successes) && s.at - *run_start >= sustain.span {
            end = Some(*run_start);
            break;
        }
    }
    Unavailability::Outage(Window {
        start,
        end,
        bound,
        started_before_fault,
        failed_writes,
        interruptions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::buckets::{Outcome, Recorder};
    use crate::measure::timeline::Timeline;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn fault(t: &mut Timeline, at: u64, id: u32, target: &str) {
        t.push(
            ms(at),
            EventKind::Fault {
                id,
                fault: format!("kill {target}"),
                target: target.into(),
            },
        );
    }

    fn sentinel(t: &mut Timeline, at: u64, event: &str, detail: &str) {
        t.push(
            ms(at),
            EventKind::Sentinel {
                sentinel: "sentinel-1".into(),
                event: SentinelEvent::parse(event),
                detail: detail.into(),
            },
        );
    }

    /// One write every 10 ms from `from` to `to` (exclusive); `ok(t)` decides each outcome.
    fn writes(from: u64, to: u64, ok: impl Fn(u64) -> bool) -> WriteSeries {
        WriteSeries::from_ops((from..to).step_by(10).map(|t| (ms(t), ok(t))), ms(10))
    }

    fn outage(m: &FailoverMetrics) -> &Window {
        match &m.unavailability {
            Unavailability::Outage(w) => w,
            other => panic!("expected an outage, got {other:?}"),
        }
    }

    fn clean_timeline() -> Timeline {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-1");
        sentinel(
            &mut t,
            1400,
            "+sdown",
            "sentinel abc 10.0.0.9 26379 @ mymaster redis-1 6379",
        );
        sentinel(&mut t, 1500, "+sdown", "master mymaster redis-1 6379");
        sentinel(
            &mut t,
            1510,
            "+odown",
            "master mymaster redis-1 6379 #quorum 2/2",
        );
        sentinel(
            &mut t,
            2600,
            "+promoted-slave",
            "slave redis-2:6379 redis-2 6379 @ mymaster redis-1 6379",
        );
        sentinel(
            &mut t,
            2650,
            "+switch-master",
            "mymaster redis-1 6379 redis-2 6379",
        );
        t.push(
            ms(6000),
            EventKind::Container {
                node: "redis-1".into(),
                action: ContainerAction::Start,
            },
        );
        t.push(
            ms(6300),
            EventKind::RoleChange {
                node: "redis-1".into(),
                from: Role::Master,
                to: Role::Replica,
            },
        );
        t.push(
            ms(7100),
            EventKind::ReplicaLink {
                node: "redis-1".into(),
                up: true,
            },
        );
        t
    }

    #[test]
    fn clean_failover() {
        let t = clean_timeline();
        let w = writes(0, 10_000, |t| !(1000..2700).contains(&t));
        let r = analyze(t.events(), &w, ms(10_000), &FailoverConfig::default());
        assert_eq!(r.len(), 1);
        let m = &r[0].metrics;
        // The sentinel's own +sdown at 1400 names the master only after '@': not a detection.
        assert_eq!(m.detection, Some(ms(500)));
        assert_eq!(m.promotion, Some(ms(1600)));
        assert_eq!(m.recovery, Some(ms(6100)));
        let o = outage(m);
        assert_eq!((o.start, o.end), (ms(1000), Some(ms(2700))));
        assert_eq!(m.unavailability.duration(), Some(ms(1700)));
        assert_eq!(o.failed_writes, 170);
        assert_eq!(o.interruptions, 0);
        assert!(!o.started_before_fault);
        assert_eq!(m.resolution, ms(10));
        assert_eq!(r[0].window_end, WindowEnd::EndOfRun { at: ms(10_000) });
        assert!(m.notes.is_empty(), "{:?}", m.notes);
    }

    #[test]
    fn outage_still_open_at_end_of_run() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-1");
        // Writes come back at 4500 but the run ends at 5000: 0.5 s is not sustained.
        let w = writes(0, 5000, |t| !(1000..4500).contains(&t));
        let r = analyze(t.events(), &w, ms(5000), &FailoverConfig::default());
        let m = &r[0].metrics;
        let o = outage(m);
        assert_eq!(o.end, None);
        assert_eq!(o.at_least(), ms(4000));
        assert_eq!(m.unavailability.duration(), None);
        assert_eq!(m.detection, None);
        assert_eq!(m.promotion, None);
        assert_eq!(m.recovery, None);
        assert!(m.notes.iter().any(|n| n.contains("did not come back")));
    }

    #[test]
    fn failure_already_running_before_the_fault_and_before_the_first_bucket() {
        let mut t = Timeline::new();
        fault(&mut t, 300, 1, "redis-1");
        // Buckets: writes fail from the very first bucket until 2 s.
        let mut rec = Recorder::new();
        for i in 0..400u64 {
            let at = ms(i * 10);
            let ok = at >= ms(2000);
            let outcome = if ok { Outcome::Ok } else { Outcome::Error };
            rec.record(at, ms(1), outcome, None, true);
        }
        let roll = rec.rollup(ms(4000));
        let w = WriteSeries::from_buckets(&roll.buckets);
        assert_eq!(w.resolution(), ms(100));
        let r = analyze(t.events(), &w, ms(4000), &FailoverConfig::default());
        let m = &r[0].metrics;
        let o = outage(m);
        assert!(o.started_before_fault);
        assert_eq!(o.start, ms(300), "clamped to the fault");
        assert_eq!(o.end, Some(ms(2000)));
        assert_eq!(m.resolution, ms(100));

        // The fault comes before any write, and the first write already fails.
        let mut t = Timeline::new();
        fault(&mut t, 0, 1, "redis-1");
        let w = writes(800, 4000, |t| t >= 2000);
        let m = &analyze(t.events(), &w, ms(4000), &FailoverConfig::default())[0].metrics;
        let o = outage(m);
        assert_eq!((o.start, o.end), (ms(800), Some(ms(2000))));
        assert!(!o.started_before_fault);
        assert!(m.notes.iter().any(|n| n.contains("may have begun earlier")));
    }

    #[test]
    fn flapping_successes_stay_inside_the_outage() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-1");
        // Fails 1000..2000, 300 ms of successes (not sustained), fails again 2300..2600,
        // 20 ms of success, fails 2620..3000, then healthy.
        let bad = |t: u64| {
            (1000..2000).contains(&t) || (2300..2600).contains(&t) || (2620..3000).contains(&t)
        };
        let w = writes(0, 8000, |t| !bad(t));
        let m = &analyze(t.events(), &w, ms(8000), &FailoverConfig::default())[0].metrics;
        let o = outage(m);
        assert_eq!((o.start, o.end), (ms(1000), Some(ms(3000))));
        assert_eq!(o.interruptions, 2);
        assert_eq!(o.failed_writes, 100 + 30 + 38);
    }

    #[test]
    fn sustained_needs_both_the_count_and_the_span() {
        let mut t = Timeline::new();
        fault(&mut t, 0, 1, "redis-1");
        // A slow probe: one write every 200 ms. After the outage, 1 s of successes holds only
        // 6 writes, so the default rule needs 10 writes (1.8 s) before it ends the outage.
        let w = WriteSeries::from_ops(
            (0..50u64).map(|i| (ms(i * 200), !(5..10).contains(&i))),
            ms(200),
        );
        let m = &analyze(t.events(), &w, ms(10_000), &FailoverConfig::default())[0].metrics;
        assert_eq!(outage(m).end, Some(ms(2000)));
        assert_eq!(m.resolution, ms(200));
        // The same, but the run breaks after 8 writes at 3.6 s: the outage goes on until a
        // new run of 10 writes starts at 3.8 s.
        let w = WriteSeries::from_ops(
            (0..50u64).map(|i| (ms(i * 200), !(5..10).contains(&i) && i != 18)),
            ms(200),
        );
        let m = &analyze(t.events(), &w, ms(10_000), &FailoverConfig::default())[0].metrics;
        assert_eq!(outage(m).end, Some(ms(3800)));
        assert_eq!(outage(m).interruptions, 1);
    }

    #[test]
    fn no_recovery_of_the_old_master() {
        let mut t = clean_timeline();
        // Same drill, but redis-1 comes back and never gets a green link.
        t = Timeline::from_events(
            t.into_events()
                .into_iter()
                .filter(|e| !matches!(e.kind, EventKind::ReplicaLink { .. }))
                .collect(),
        );
        let w = writes(0, 10_000, |t| !(1000..2700).contains(&t));
        let m = &analyze(t.events(), &w, ms(10_000), &FailoverConfig::default())[0].metrics;
        assert_eq!(m.recovery, None);
        assert_eq!(m.promotion, Some(ms(1600)));
        assert!(
            m.notes.iter().any(|n| n.contains("came back at 6.000 s")),
            "{:?}",
            m.notes
        );
    }

    #[test]
    fn no_failure_is_zero_and_no_writes_is_unknown() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-3");
        let w = writes(0, 5000, |_| true);
        let m = &analyze(t.events(), &w, ms(5000), &FailoverConfig::default())[0].metrics;
        assert_eq!(m.unavailability, Unavailability::NoFailure { writes: 400 });
        assert_eq!(m.unavailability.duration(), Some(Duration::ZERO));

        let w = writes(0, 900, |_| true);
        let m = &analyze(t.events(), &w, ms(5000), &FailoverConfig::default())[0].metrics;
        assert_eq!(m.unavailability, Unavailability::NotMeasured);
        assert_eq!(m.unavailability.duration(), None);
    }

    #[test]
    fn two_faults_each_stop_at_the_next() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-1");
        sentinel(&mut t, 1500, "+sdown", "master mymaster redis-1 6379");
        sentinel(
            &mut t,
            2500,
            "+switch-master",
            "mymaster redis-1 6379 redis-2 6379",
        );
        fault(&mut t, 5000, 2, "redis-2");
        sentinel(&mut t, 5700, "+sdown", "master mymaster redis-2 6379");
        sentinel(
            &mut t,
            7000,
            "+switch-master",
            "mymaster redis-2 6379 redis-3 6379",
        );
        t.push(
            ms(7500),
            EventKind::ReplicaLink {
                node: "redis-1".into(),
                up: true,
            },
        );
        let bad = |t: u64| (1000..2600).contains(&t) || (5000..7100).contains(&t);
        let w = writes(0, 12_000, |t| !bad(t));
        let r = analyze(t.events(), &w, ms(12_000), &FailoverConfig::default());
        assert_eq!(r.len(), 2);
        let (a, b) = (&r[0], &r[1]);
        assert_eq!(
            a.window_end,
            WindowEnd::NextFault {
                id: 2,
                at: ms(5000)
            }
        );
        assert_eq!(a.metrics.detection, Some(ms(500)));
        assert_eq!(a.metrics.promotion, Some(ms(1500)));
        assert_eq!(outage(&a.metrics).end, Some(ms(2600)));
        // redis-1's link came up after fault 2: not credited to fault 1.
        assert_eq!(a.metrics.recovery, None);
        assert_eq!(b.metrics.detection, Some(ms(700)));
        assert_eq!(b.metrics.promotion, Some(ms(2000)));
        let o = outage(&b.metrics);
        assert_eq!((o.start, o.end), (ms(5000), Some(ms(7100))));
        assert_eq!(o.failed_writes, 210);
    }

    #[test]
    fn cluster_flags_and_role_changes_count() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "node-a");
        t.push(
            ms(1200),
            EventKind::NodeFailFlag {
                node: "node-b".into(),
                flag: FailFlag::Pfail,
                reporter: "node-c".into(),
            },
        );
        t.push(
            ms(2000),
            EventKind::NodeFailFlag {
                node: "node-a".into(),
                flag: FailFlag::Pfail,
                reporter: "node-c".into(),
            },
        );
        t.push(
            ms(3100),
            EventKind::RoleChange {
                node: "node-a-replica".into(),
                from: Role::Replica,
                to: Role::Master,
            },
        );
        let w = writes(0, 6000, |_| true);
        let m = &analyze(t.events(), &w, ms(6000), &FailoverConfig::default())[0].metrics;
        assert_eq!(m.detection, Some(ms(1000)));
        assert_eq!(m.promotion, Some(ms(2100)));
    }

    /// With hostnames a replica's events name it as `redis-2:6379 redis-2 6379` before the
    /// '@'; after a failover the old master is a replica and its `+sdown` names it the same way.
    #[test]
    fn hostname_payloads_name_the_replica_before_the_at() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-2");
        sentinel(
            &mut t,
            1200,
            "-sdown",
            "slave redis-1:6379 redis-1 6379 @ g1 redis-2 6379",
        );
        sentinel(
            &mut t,
            4100,
            "+sdown",
            "slave redis-2:6379 redis-2 6379 @ g1 redis-1 6379",
        );
        let w = writes(0, 6000, |_| true);
        let m = &analyze(t.events(), &w, ms(6000), &FailoverConfig::default())[0].metrics;
        assert_eq!(m.detection, Some(ms(3100)));
        assert!(
            !m.notes.iter().any(|n| n.starts_with("detection:")),
            "{:?}",
            m.notes
        );
        assert_eq!(m.promotion, None);
    }

    #[test]
    fn detection_falls_back_with_a_note_when_nothing_names_the_target() {
        let mut t = Timeline::new();
        fault(&mut t, 1000, 1, "redis-1");
        sentinel(&mut t, 1800, "+sdown", "master mymaster 10.0.0.2 6379");
        let w = writes(0, 3000, |_| true);
        let m = &analyze(t.events(), &w, ms(3000), &FailoverConfig::default())[0].metrics;
        assert_eq!(m.detection, Some(ms(800)));
        assert!(m.notes.iter().any(|n| n.starts_with("detection:")));
    }
}
