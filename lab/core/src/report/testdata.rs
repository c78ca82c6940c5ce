//! A synthetic but realistic drill, built through the real pipeline (Recorder, Timeline,
//! analyze, lost_writes), for the renderers' tests and for looking at the chart.

use std::time::Duration;

use super::{AssertionResult, RunMeta, RunReport};
use crate::measure::{
    analyze, lost_writes, ContainerAction, EventKind, FailoverConfig, Outcome, Recorder, Role,
    SentinelEvent, Timeline, WriteSeries,
};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// xorshift: deterministic noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A Sentinel drill: kill the master at 10 s (down-after 5 s), bring it back at 20 s; pause a
/// Sentinel at 26 s, which clients must not notice; 35 s in all. `slow` scales latency.
pub fn report_with(title: &str, slow: f64, outage_end_ms: u64) -> RunReport {
    let mut t = Timeline::new();
    let sentinel = |t: &mut Timeline, at: u64, s: &str, e: &str, d: &str| {
        t.push(
            ms(at),
            EventKind::Sentinel {
                sentinel: s.into(),
                event: SentinelEvent::parse(e),
                detail: d.into(),
            },
        );
    };
    t.push(
        ms(0),
        EventKind::Note {
            text: "warm-up done".into(),
        },
    );
    t.push(
        ms(10_000),
        EventKind::Fault {
            id: 1,
            fault: "kill redis-1".into(),
            target: "redis-1".into(),
        },
    );
    t.push(
        ms(10_004),
        EventKind::Container {
            node: "redis-1".into(),
            action: ContainerAction::Die,
        },
    );
    for (i, s) in ["sentinel-1", "sentinel-2", "sentinel-3"]
        .iter()
        .enumerate()
    {
        let at = 15_010 + 40 * i as u64;
        sentinel(&mut t, at, s, "+sdown", "master mymaster redis-1 6379");
    }
    sentinel(
        &mut t,
        15_060,
        "sentinel-2",
        "+odown",
        "master mymaster redis-1 6379 #quorum 2/2",
    );
    sentinel(
        &mut t,
        15_070,
        "sentinel-2",
        "+try-failover",
        "master mymaster redis-1 6379",
    );
    sentinel(
        &mut t,
        15_090,
        "sentinel-2",
        "+elected-leader",
        "master mymaster redis-1 6379",
    );
    sentinel(
        &mut t,
        15_160,
        "sentinel-2",
        "+selected-slave",
        "slave redis-2:6379 redis-2 6379 @ mymaster redis-1 6379",
    );
    t.push(
        ms(15_170),
        EventKind::RoleChange {
            node: "redis-2".into(),
            from: Role::Replica,
            to: Role::Master,
        },
    );
    sentinel(
        &mut t,
        16_020,
        "sentinel-2",
        "+promoted-slave",
        "slave redis-2:6379 redis-2 6379 @ mymaster redis-1 6379",
    );
    for (i, s) in ["sentinel-2", "sentinel-1", "sentinel-3"]
        .iter()
        .enumerate()
    {
        let at = 16_100 + 15 * i as u64;
        sentinel(
            &mut t,
            at,
            s,
            "+switch-master",
            "mymaster redis-1 6379 redis-2 6379",
        );
    }
    t.push(
        ms(20_000),
        EventKind::FaultHealed {
            id: 1,
            target: "redis-1".into(),
        },
    );
    t.push(
        ms(20_600),
        EventKind::Container {
            node: "redis-1".into(),
            action: ContainerAction::Start,
        },
    );
    sentinel(
        &mut t,
        21_500,
        "sentinel-2",
        "+convert-to-slave",
        "slave redis-1:6379 redis-1 6379 @ mymaster redis-2 6379",
    );
    t.push(
        ms(22_300),
        EventKind::ReplicaLink {
            node: "redis-1".into(),
            up: true,
        },
    );
    t.push(
        ms(26_000),
        EventKind::Fault {
            id: 2,
            fault: "pause sentinel-1".into(),
            target: "sentinel-1".into(),
        },
    );
    t.push(
        ms(26_003),
        EventKind::Container {
            node: "sentinel-1".into(),
            action: ContainerAction::Pause,
        },
    );
    t.push(
        ms(29_000),
        EventKind::Container {
            node: "sentinel-1".into(),
            action: ContainerAction::Unpause,
        },
    );

    // Workload: one write and one read every 2 ms per client, 4 clients; writes to the master,
    // reads spread over replicas.
    let run_end = ms(35_000);
    let mut rec = Recorder::new();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut write_log = Vec::new();
    let mut acked = Vec::new();
    let mut unacked = Vec::new();
    let mut id = 0u64;
    let step = Duration::from_micros(500);
    let mut at = Duration::ZERO;
    while at < run_end {
        let t_ms = at.as_millis() as u64;
        let master = if t_ms < 16_000 { "redis-1" } else { "redis-2" };
        let base = 180.0 + 250.0 * noise.next() + if noise.next() > 0.995 { 4000.0 } else { 0.0 };
        let spike = if (16_000..18_000).contains(&t_ms) {
            6.0
        } else {
            1.0
        };
        let lat = Duration::from_micros((base * slow * spike) as u64);
        let down = (10_000..outage_end_ms).contains(&t_ms);
        // Flap once: a few writes reach the old master's address before clients move.
        let flap = (15_300..15_400).contains(&t_ms);
        let is_write = (at.as_micros() / 500) % 2 == 0;
        let (outcome, lat) = if down && !flap && is_write {
            if t_ms < 10_500 {
                (Outcome::Timeout, ms(1000))
            } else {
                (Outcome::Error, Duration::from_micros(60))
            }
        } else {
            (Outcome::Ok, lat)
        };
        rec.record(
            at,
            lat,
            outcome,
            Some(if is_write { master } else { "redis-3" }),
            is_write,
        );
        if is_write {
            id += 1;
            write_log.push((at, outcome == Outcome::Ok));
            if outcome == Outcome::Ok {
                acked.push((id, at + lat));
            } else {
                unacked.push(id);
            }
        }
        at += step;
    }
    let rollup = rec.rollup(run_end);
    let writes = WriteSeries::from_ops(write_log, ms(1));
    let cfg = FailoverConfig::default();
    let faults = analyze(t.events(), &writes, run_end, &cfg);

    // The store lost the last writes acknowledged by redis-1 before it died, and kept a few
    // that timed out.
    let found: Vec<u64> = acked
        .iter()
        .map(|&(id, _)| id)
        .filter(|&id| !(9_950..=10_000).contains(&id) && id != 9_000 && id != 4_321)
        .chain([10_003, 10_004, 10_010])
        .collect();
    let lost = lost_writes(acked, unacked, found);

    let mut settings = indexmap::IndexMap::new();
    settings.insert("down-after-milliseconds".into(), "5000".into());
    settings.insert("clients".into(), "4".into());
    settings.insert("rate".into(), "2000 ops/s (open loop)".into());
    let meta = RunMeta {
        title: title.into(),
        topology: "sentinel-3x3".into(),
        scenario: "kill-master".into(),
        started_at: "2025-05-04T10:00:00Z".into(),
        profile: "quick".into(),
        settings,
        engine: "docker 27.3".into(),
        host_notes: vec!["2 cores; generator used 31% of one core".into()],
    };
    let mut r = RunReport::new(meta, cfg, rollup, t, faults);
    r.lost_writes = Some(lost);
    let outage = r.faults[0].metrics.unavailability.duration();
    let unavail = outage
        .map(|d| format!("{:.3} s", d.as_secs_f64()))
        .unwrap_or_else(|| "not recovered".into());
    r.assertions = vec![
        AssertionResult {
            expr: "failover.unavailability < 5s".into(),
            passed: outage.is_some_and(|d| d < Duration::from_secs(5)),
            actual: unavail,
            expected: "< 5 s".into(),
            message: "clients could not write for longer than allowed".into(),
        },
        AssertionResult {
            expr: "availability.writes >= 80%".into(),
            passed: true,
            actual: format!("{:.2}%", r.summary.write_availability_pct.unwrap_or(0.0)),
            expected: ">= 80%".into(),
            message: String::new(),
        },
        AssertionResult {
            expr: "lost_writes.acknowledged == 0".into(),
            passed: false,
            actual: r
                .lost_writes
                .as_ref()
                .map(|l| l.counts.acknowledged_missing.to_string())
                .unwrap_or_default(),
            expected: "== 0".into(),
            message: "acknowledged writes went missing <& \"quoted\">".into(),
        },
    ];
    r
}

pub fn report() -> RunReport {
    report_with("Kill the Sentinel master", 1.0, 16_050)
}
