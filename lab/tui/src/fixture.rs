//! Hand-built snapshots of the key states (healthy, node down, failover in progress, failover
//! measured, unsupported fault refused), for the snapshot tests and the render benchmark.
//! Times are fixed, so the pictures are stable.

use std::time::Duration;

use lab_core::live::{
    ChartPoint, FaultState, FaultView, Level, Message, NodeState, NodeView, Snapshot,
    WorkloadParams, WorkloadView,
};
use lab_core::measure::{
    Event, EventKind, FailoverMetrics, FaultReport, Role, SentinelEvent, Unavailability, Window,
    WindowEnd,
};
use lab_core::topology::Role as NodeKind;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn node(name: &str, group: Option<&str>, kind: NodeKind, port: u16) -> NodeView {
    NodeView {
        name: name.into(),
        group: group.map(str::to_string),
        kind,
        role: match kind {
            NodeKind::Master => Some(Role::Master),
            NodeKind::Replica => Some(Role::Replica),
            _ => None,
        },
        state: NodeState::Up,
        link_up: (kind == NodeKind::Replica).then_some(true),
        replicas: (kind == NodeKind::Master).then_some(1),
        port: Some(port),
        fault: None,
    }
}

fn sentinel_nodes() -> Vec<NodeView> {
    let mut v = vec![];
    for g in 1..=3u16 {
        let group = format!("g{g}");
        v.push(node(
            &format!("redis-{}", 2 * g - 1),
            Some(&group),
            NodeKind::Master,
            16000 + 2 * g - 1,
        ));
        v.push(node(
            &format!("redis-{}", 2 * g),
            Some(&group),
            NodeKind::Replica,
            16000 + 2 * g,
        ));
    }
    for s in 1..=3u16 {
        v.push(node(
            &format!("sentinel-{s}"),
            None,
            NodeKind::Sentinel,
            26000 + s,
        ));
    }
    v.push(node("redis-exporter", None, NodeKind::Exporter, 19121));
    v
}

/// Steady load up to `end`, with an outage of the given share of writes in `[from, to)`.
fn chart(end: Duration, outage: Option<(Duration, Duration)>) -> Vec<ChartPoint> {
    let start = end.saturating_sub(Duration::from_secs(60));
    let n = ((end - start).as_millis() / 100) as u64;
    (0..n)
        .map(|i| {
            let at = start + ms(i * 100);
            let down = outage.is_some_and(|(a, b)| at >= a && at < b);
            // A gentle wave so the line is not flat.
            let wave = ((i % 50) as f64 / 50.0 * std::f64::consts::TAU).sin() * 15.0;
            ChartPoint {
                at,
                ops_per_s: if down { 400.0 } else { 598.0 + wave },
                errors_per_s: if down { 200.0 } else { 0.0 },
                p50_us: Some(if down { 900 } else { 310 }),
                p99_us: Some(if down {
                    1_000_000
                } else {
                    1_200 + (i % 7) * 40
                }),
                p999_us: Some(if down {
                    1_000_000
                } else {
                    2_400 + (i % 11) * 90
                }),
            }
        })
        .collect()
}

fn base(elapsed: Duration) -> Snapshot {
    Snapshot {
        seq: 1,
        instance: "tui-demo".into(),
        topology: "redis-sentinel".into(),
        engine: "docker 27.5.1".into(),
        elapsed,
        nodes: sentinel_nodes(),
        workload: WorkloadView {
            running: true,
            params: WorkloadParams::default(),
            ops_per_s: 600.0,
            errors_per_s: 0.0,
        },
        chart: chart(elapsed, None),
        events: vec![
            Event::new(
                ms(3_000),
                EventKind::Note {
                    text: "session started".into(),
                },
            ),
            Event::new(
                ms(3_100),
                EventKind::ReplicaLink {
                    node: "redis-2".into(),
                    up: true,
                },
            ),
        ],
        events_total: 2,
        faults: vec![],
        drill: None,
        message: None,
        event_resolution: ms(250),
    }
}

pub fn healthy() -> Snapshot {
    base(ms(120_000))
}

fn sentinel(at: u64, event: SentinelEvent, detail: &str) -> Event {
    Event::new(
        ms(at),
        EventKind::Sentinel {
            sentinel: "sentinel-1".into(),
            event,
            detail: detail.into(),
        },
    )
}

fn kill_fault(state: FaultState, metrics: Option<FailoverMetrics>) -> FaultView {
    FaultView {
        id: 1,
        description: "kill redis-1".into(),
        target: "redis-1".into(),
        state,
        stopwatch: metrics.map(|m| FaultReport {
            id: 1,
            at: ms(100_000),
            description: "kill redis-1".into(),
            target: "redis-1".into(),
            window_end: WindowEnd::EndOfRun { at: ms(120_000) },
            metrics: m,
        }),
    }
}

fn metrics(
    detection: Option<u64>,
    promotion: Option<u64>,
    outage_end: Option<u64>,
    now: u64,
) -> FailoverMetrics {
    FailoverMetrics {
        detection: detection.map(ms),
        promotion: promotion.map(ms),
        unavailability: Unavailability::Outage(Window {
            start: ms(100_010),
            end: outage_end.map(ms),
            bound: ms(now),
            started_before_fault: false,
            failed_writes: 600,
            interruptions: 0,
        }),
        recovery: None,
        resolution: ms(100),
        event_resolution: ms(250),
        notes: vec![],
    }
}

fn with_kill(now: u64) -> Snapshot {
    let mut s = base(ms(now));
    s.nodes[0].fault = Some(1);
    s.nodes[0].state = NodeState::Down;
    s.nodes[0].replicas = None;
    s.nodes[1].link_up = Some(false);
    s.chart = chart(ms(now), Some((ms(100_000), ms(now.min(103_000)))));
    s.workload.ops_per_s = 400.0;
    s.workload.errors_per_s = 200.0;
    s.events.push(Event::new(
        ms(100_000),
        EventKind::Fault {
            id: 1,
            fault: "kill redis-1".into(),
            target: "redis-1".into(),
        },
    ));
    s.events.push(Event::new(
        ms(100_001),
        EventKind::Container {
            node: "redis-1".into(),
            action: lab_core::measure::ContainerAction::Die,
        },
    ));
    s
}

/// The master of g1 was just killed: down, its replica's link down, writes to g1 failing.
pub fn node_down() -> Snapshot {
    let mut s = with_kill(100_400);
    s.faults = vec![kill_fault(
        FaultState::Active { at: ms(100_000) },
        Some(metrics(None, None, None, 100_400)),
    )];
    s.events_total = s.events.len();
    s
}

/// Sentinels agreed the master is down and are electing a leader; no promotion yet.
pub fn failover_in_progress() -> Snapshot {
    let mut s = with_kill(102_300);
    s.events.push(sentinel(
        101_020,
        SentinelEvent::Sdown,
        "master g1 redis-1 6379",
    ));
    s.events.push(sentinel(
        101_090,
        SentinelEvent::Odown,
        "master g1 redis-1 6379 #quorum 2/2",
    ));
    s.events.push(sentinel(
        101_100,
        SentinelEvent::TryFailover,
        "master g1 redis-1 6379",
    ));
    s.faults = vec![kill_fault(
        FaultState::Active { at: ms(100_000) },
        Some(metrics(Some(1_020), None, None, 102_300)),
    )];
    s.events_total = s.events.len();
    s
}

/// redis-2 took over and writes succeed again: every figure is measured.
pub fn failover_measured() -> Snapshot {
    let mut s = failover_in_progress();
    s.elapsed = ms(110_000);
    s.chart = chart(ms(110_000), Some((ms(100_000), ms(103_000))));
    s.workload.ops_per_s = 600.0;
    s.workload.errors_per_s = 0.0;
    s.nodes[1].role = Some(Role::Master);
    s.nodes[1].link_up = None;
    s.nodes[1].replicas = Some(0);
    s.events.push(sentinel(
        102_410,
        SentinelEvent::SwitchMaster,
        "g1 redis-1 6379 redis-2 6379",
    ));
    s.events.push(Event::new(
        ms(102_500),
        EventKind::RoleChange {
            node: "redis-2".into(),
            from: Role::Replica,
            to: Role::Master,
        },
    ));
    s.faults = vec![kill_fault(
        FaultState::Active { at: ms(100_000) },
        Some(metrics(Some(1_020), Some(2_410), Some(102_980), 110_000)),
    )];
    s.events_total = s.events.len();
    s
}

/// An isolate request on a host that cannot put rules in a container's network namespace
/// (the refusal `fault::net::prepare` gives, before anything is applied).
pub fn fault_refused() -> Snapshot {
    let mut s = healthy();
    let reason = "this host cannot inject `isolate`: iptables cannot run in a container's \
         network namespace (not root)";
    s.faults = vec![FaultView {
        id: 1,
        description: "isolate redis-3".into(),
        target: "redis-3".into(),
        state: FaultState::Refused {
            reason: reason.into(),
        },
        stopwatch: None,
    }];
    s.message = Some(Message {
        level: Level::Warn,
        text: format!("isolate redis-3 refused: {reason}"),
        at: ms(119_000),
    });
    s
}

/// A large state for the render benchmark: `nodes` nodes, a timeline of `minutes` minutes
/// with an event every second, a full chart and a few faults.
pub fn large(nodes: usize, minutes: u64) -> Snapshot {
    let end = ms(minutes * 60_000);
    let mut s = base(end);
    s.nodes = (0..nodes)
        .map(|i| {
            let kind = if i % 2 == 0 {
                NodeKind::Master
            } else {
                NodeKind::Replica
            };
            node(
                &format!("redis-{}", i + 1),
                Some(&format!("g{}", i / 2 + 1)),
                kind,
                16000 + i as u16,
            )
        })
        .collect();
    let events: Vec<Event> = (0..minutes * 60)
        .map(|i| {
            sentinel(
                i * 1000,
                SentinelEvent::Other("+reboot".into()),
                "slave redis-2 6379 @ g1 redis-1 6379",
            )
        })
        .collect();
    s.events_total = events.len();
    s.events = events[events.len().saturating_sub(lab_core::live::EVENTS_KEPT)..].to_vec();
    s.faults = (1..=3)
        .map(|id| {
            let mut f = kill_fault(
                FaultState::Active { at: ms(100_000) },
                Some(metrics(Some(1_020), Some(2_410), Some(102_980), 110_000)),
            );
            f.id = id;
            f
        })
        .collect();
    s
}
