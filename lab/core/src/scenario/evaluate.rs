//! Checks a drill's assertions against what the run measured. Every result says what was
//! measured, what was required and by how much it passed or failed, with the resolution the
//! figure can honestly claim; a figure that could not be measured fails and says why.

use std::collections::HashMap;
use std::time::Duration;

use super::assertion::{Assertion, FaultFigure, Metric, Op, Threshold, Unit};
use super::fmt;
use crate::measure::{
    ContainerAction, Event, EventKind, FaultReport, Role, SentinelEvent, Unavailability, WindowEnd,
};
use crate::report::{AssertionResult, RunReport};

/// Checks each assertion against the run; one result per assertion, in order.
pub fn evaluate(assertions: &[Assertion], report: &RunReport) -> Vec<AssertionResult> {
    assertions.iter().map(|a| evaluate_one(a, report)).collect()
}

/// What the run says about a metric. Values are in the metric's base unit: nanoseconds for
/// durations, percent, a count, operations per second.
#[derive(Debug, Clone, PartialEq)]
enum Obs {
    Value(f64),
    /// Only a lower bound is known (an outage still open at the end of its window); the text
    /// says why.
    AtLeast(f64, String),
    /// A measured zero that also means "did not happen" (no write failed).
    Zero(String),
    /// The figure did not happen (no promotion seen...), in words.
    Absent(String),
    /// Nothing can be said, and why.
    Unknown(String),
}

/// How to print values of one metric.
struct Scale {
    unit: Unit,
    /// Resolution of a failover figure; `None` for latencies (hdrhistogram, 3 digits).
    resolution: Option<Duration>,
    /// Decimal places for percentages.
    pct_decimals: usize,
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn from_nanos(v: f64) -> Duration {
    Duration::from_nanos(v.max(0.0).round() as u64)
}

impl Scale {
    fn new(metric: Metric, threshold: &Threshold, resolution: Option<Duration>) -> Self {
        let pct_decimals = match threshold {
            Threshold::Percent(p) => {
                let s = p.to_string();
                let given = s.split_once('.').map_or(0, |(_, d)| d.len());
                (given + 1).max(2)
            }
            _ => 2,
        };
        Scale {
            unit: metric.unit(),
            resolution,
            pct_decimals,
        }
    }

    fn show(&self, v: f64) -> String {
        match self.unit {
            Unit::Duration => match self.resolution {
                Some(r) => fmt::secs(from_nanos(v), r),
                None => fmt::us((v / 1000.0).round() as u64),
            },
            Unit::Percent => fmt::pct(v, self.pct_decimals),
            Unit::Count => fmt::int(v.max(0.0).round() as u64),
            Unit::Rate => fmt::rate(v),
        }
    }

    fn show_diff(&self, d: f64) -> String {
        match self.unit {
            Unit::Percent => format!("{d:.prec$} points", prec = self.pct_decimals),
            _ => self.show(d),
        }
    }

    /// " (resolution 10 ms)", or a warning when the margin is within it.
    fn resolution_note(&self, diff: f64) -> String {
        match self.resolution {
            Some(r) if diff < nanos(r) => format!(" (within the {} resolution)", fmt::dur(r)),
            Some(r) => format!(" (resolution {})", fmt::dur(r)),
            None => String::new(),
        }
    }
}

fn base_value(t: &Threshold) -> Option<f64> {
    match t {
        Threshold::Duration(d) => Some(nanos(*d)),
        Threshold::Percent(p) | Threshold::Rate(p) => Some(*p),
        Threshold::Count(n) => Some(*n as f64),
        Threshold::None => None,
    }
}

/// One observation judged: passed, the actual value as text, and the sentence.
struct Verdict {
    passed: bool,
    actual: String,
    message: String,
    /// Distance from the threshold, to pick the closest call among faults.
    margin: Option<f64>,
}

fn judge(name: &str, obs: &Obs, op: Op, threshold: &Threshold, scale: &Scale) -> Verdict {
    let thr = threshold.to_string();
    let verdict = |passed: bool, actual: String, message: String| Verdict {
        passed,
        actual,
        message,
        margin: None,
    };
    let Some(t) = base_value(threshold) else {
        // `none`: == must not happen, != must happen.
        let must_not = op == Op::Eq;
        return match obs {
            Obs::Unknown(why) => verdict(false, "n/a".into(), why.clone()),
            Obs::Absent(why) if must_not => {
                verdict(true, "none".into(), format!("{why}, as required"))
            }
            Obs::Absent(why) => verdict(
                false,
                "none".into(),
                format!("{why}, and the assertion requires it"),
            ),
            Obs::Zero(text) if must_not => verdict(
                true,
                text.clone(),
                format!("{name} was {text}, as required"),
            ),
            Obs::Zero(text) => verdict(
                false,
                text.clone(),
                format!("{name} was {text}, and the assertion requires one"),
            ),
            Obs::Value(v) => {
                let a = scale.show(*v);
                if must_not {
                    verdict(
                        false,
                        a.clone(),
                        format!("{name} was {a}, and the assertion says it must not happen"),
                    )
                } else {
                    verdict(true, a.clone(), format!("{name} was {a}, as required"))
                }
            }
            Obs::AtLeast(v, why) => {
                let a = format!("≥ {}, {why}", scale.show(*v));
                verdict(!must_not, a.clone(), format!("{name} was {a}"))
            }
        };
    };
    let (v, a) = match obs {
        Obs::Value(v) => (*v, scale.show(*v)),
        Obs::Zero(text) => (0.0, text.clone()),
        Obs::Absent(why) => return verdict(false, "none".into(), why.clone()),
        Obs::Unknown(why) => return verdict(false, "n/a".into(), why.clone()),
        Obs::AtLeast(v, why) => {
            let a = format!("≥ {}, {why}", scale.show(*v));
            let d = scale.show_diff((v - t).abs());
            return match op {
                Op::Gt | Op::Ge | Op::Ne if op.holds(*v, t) && (op != Op::Ne || *v > t) => verdict(
                    true,
                    a.clone(),
                    format!("{name} was {a}, already {d} past {thr}"),
                ),
                Op::Lt | Op::Le if *v >= t => verdict(
                    false,
                    a.clone(),
                    format!("{name} was {a}, at least {d} over the limit {thr}"),
                ),
                _ => verdict(
                    false,
                    a.clone(),
                    format!("{name} was {a}, so it cannot be shown to be {op} {thr}"),
                ),
            };
        }
    };
    let diff = (v - t).abs();
    let d = scale.show_diff(diff);
    let res = scale.resolution_note(diff);
    let passed = op.holds(v, t);
    let message = match (op, passed) {
        (Op::Lt | Op::Le, true) if diff == 0.0 => {
            format!("{name} was {a}, exactly at the limit {thr}{res}")
        }
        (Op::Lt | Op::Le, true) => format!("{name} was {a}, {d} under the limit {thr}{res}"),
        (Op::Lt, false) if diff == 0.0 => {
            format!("{name} was {a}, at the limit {thr}, which `<` excludes{res}")
        }
        (Op::Lt | Op::Le, false) => format!("{name} was {a}, {d} over the limit {thr}{res}"),
        (Op::Gt | Op::Ge, true) if diff == 0.0 => {
            format!("{name} was {a}, exactly at the minimum {thr}{res}")
        }
        (Op::Gt | Op::Ge, true) => format!("{name} was {a}, {d} above the minimum {thr}{res}"),
        (Op::Gt, false) if diff == 0.0 => {
            format!("{name} was {a}, at the minimum {thr}, which `>` excludes{res}")
        }
        (Op::Gt | Op::Ge, false) => format!("{name} was {a}, {d} short of the minimum {thr}{res}"),
        (Op::Eq, true) => format!("{name} was {a}, as required"),
        (Op::Eq, false) => format!("{name} was {a}, not {thr}{res}"),
        (Op::Ne, true) => format!("{name} was {a}, not {thr}, as required"),
        (Op::Ne, false) => format!("{name} was {a}, which the assertion rules out"),
    };
    Verdict {
        passed,
        actual: a,
        message,
        margin: Some(diff),
    }
}

fn until(end: &WindowEnd) -> String {
    match end {
        WindowEnd::NextFault { id, .. } => format!("before F{id}"),
        WindowEnd::EndOfRun { .. } => "by the end of the run".into(),
    }
}

/// The analysis' own explanation for a missing figure, if it left one.
fn note(f: &FaultReport, prefix: &str) -> Option<String> {
    f.metrics
        .notes
        .iter()
        .find_map(|n| n.strip_prefix(prefix).map(|s| s.trim().to_string()))
}

/// A failover figure of one fault, and the resolution it can claim.
fn fault_obs(f: &FaultReport, figure: FaultFigure) -> (Obs, Duration) {
    let m = &f.metrics;
    let id = f.id;
    let event = |v: Option<Duration>, what: &str, prefix: &str| -> Obs {
        match v {
            Some(d) => Obs::Value(nanos(d)),
            None => Obs::Absent(note(f, prefix).unwrap_or_else(|| {
                format!("no {what} was seen for F{id} {}", until(&f.window_end))
            })),
        }
    };
    match figure {
        FaultFigure::Detection => (
            event(m.detection, "detection", "detection:"),
            m.event_resolution,
        ),
        FaultFigure::Promotion => (
            event(m.promotion, "promotion", "promotion:"),
            m.event_resolution,
        ),
        FaultFigure::Recovery => (
            event(m.recovery, "recovery to full redundancy", "recovery:"),
            m.event_resolution,
        ),
        FaultFigure::Unavailable => {
            let obs = match &m.unavailability {
                Unavailability::NotMeasured => Obs::Unknown(format!(
                    "client-visible unavailability of F{id} was not measured: no write was attempted in its window"
                )),
                Unavailability::NoFailure { writes } => Obs::Zero(format!(
                    "none (0 of {} writes failed)",
                    fmt::int(*writes)
                )),
                Unavailability::Outage(w) => match w.duration() {
                    Some(d) => Obs::Value(nanos(d)),
                    None => Obs::AtLeast(
                        nanos(w.at_least()),
                        format!("not recovered {}", until(&f.window_end)),
                    ),
                },
            };
            (obs, m.resolution)
        }
    }
}

fn evaluate_one(a: &Assertion, report: &RunReport) -> AssertionResult {
    let expected = format!("{} {}", a.op, a.threshold);
    let name = a.metric.to_string();
    let result = |passed: bool, actual: String, message: String| AssertionResult {
        expr: a.text.clone(),
        passed,
        actual,
        expected: expected.clone(),
        message,
    };
    let Metric::Failover { fault, figure } = a.metric else {
        let scale = Scale::new(a.metric, &a.threshold, None);
        let v = judge(
            &name,
            &run_obs(a.metric, report),
            a.op,
            &a.threshold,
            &scale,
        );
        return result(v.passed, v.actual, v.message);
    };
    let faults: Vec<&FaultReport> = match fault {
        Some(n) => report.faults.iter().filter(|f| f.id == n).collect(),
        None => report.faults.iter().collect(),
    };
    if faults.is_empty() {
        let why = match fault {
            Some(n) => format!(
                "fault {n} is not in this run's report ({} recorded), so {name} has nothing to measure",
                report.faults.len()
            ),
            None => format!("no fault was recorded in this run, so {name} has nothing to measure"),
        };
        return result(false, "n/a".into(), why);
    }
    let verdicts: Vec<(u32, Verdict)> = faults
        .iter()
        .map(|f| {
            let (obs, res) = fault_obs(f, figure);
            let scale = Scale::new(a.metric, &a.threshold, Some(res));
            (f.id, judge(&name, &obs, a.op, &a.threshold, &scale))
        })
        .collect();
    if let [(_, v)] = verdicts.as_slice() {
        return result(v.passed, v.actual.clone(), v.message.clone());
    }
    let actual = verdicts
        .iter()
        .map(|(id, v)| format!("F{id} {}", v.actual))
        .collect::<Vec<_>>()
        .join(", ");
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| !v.passed)
        .map(|(id, v)| format!("F{id}: {}", v.message))
        .collect();
    if !failed.is_empty() {
        return result(false, actual, failed.join("; "));
    }
    let closest = verdicts
        .iter()
        .min_by(|(_, x), (_, y)| {
            let (x, y) = (x.margin.unwrap_or(f64::MAX), y.margin.unwrap_or(f64::MAX));
            x.total_cmp(&y)
        })
        .map(|(id, v)| format!("; closest, F{id}: {}", v.message))
        .unwrap_or_default();
    result(
        true,
        actual,
        format!("held for all {} faults{closest}", verdicts.len()),
    )
}

fn run_obs(metric: Metric, report: &RunReport) -> Obs {
    let s = &report.summary;
    let not_checked = || {
        Obs::Unknown(
            "lost writes were not checked in this run (track_writes off, or the read-back failed)"
                .into(),
        )
    };
    let latency = |v: Option<u64>| match v {
        Some(us) => Obs::Value(us as f64 * 1000.0),
        None => Obs::Unknown("no latency was recorded in this run".into()),
    };
    match metric {
        Metric::LostWrites => report.lost_writes.as_ref().map_or_else(not_checked, |l| {
            Obs::Value(l.counts.acknowledged_missing as f64)
        }),
        Metric::LostWritesPct => match &report.lost_writes {
            None => not_checked(),
            Some(l) => l.lost_pct().map_or_else(
                || {
                    Obs::Unknown(
                        "no write was acknowledged in this run, so no share of them was lost"
                            .into(),
                    )
                },
                Obs::Value,
            ),
        },
        Metric::UnackedPresent => report.lost_writes.as_ref().map_or_else(not_checked, |l| {
            Obs::Value(l.counts.unacknowledged_present as f64)
        }),
        Metric::Availability => {
            let attempted = s.ok + s.errors + s.timeouts;
            if attempted == 0 {
                Obs::Unknown("no operation was attempted in this run".into())
            } else {
                Obs::Value(s.ok as f64 * 100.0 / attempted as f64)
            }
        }
        Metric::Throughput => Obs::Value(s.ops_per_s),
        Metric::Errors => Obs::Value((s.errors + s.timeouts) as f64),
        Metric::P50 => latency(s.p50_us),
        Metric::P99 => latency(s.p99_us),
        Metric::P999 => latency(s.p999_us),
        Metric::Max => latency(s.max_us),
        Metric::Promotions => Obs::Value(promotions(&report.timeline) as f64),
        Metric::ReplicationRtt | Metric::ReplicationRttBefore | Metric::ReplicationRttAdded => {
            let Some(r) = &report.replication else {
                return Obs::Unknown(
                    "replication round trips are measured only in drills with a latency fault"
                        .into(),
                );
            };
            let (v, when) = match metric {
                Metric::ReplicationRtt => (r.during, "while the latency fault was in force"),
                Metric::ReplicationRttBefore => (r.before, "before the first fault"),
                _ => (
                    r.during.zip(r.before).map(|(d, b)| d.saturating_sub(b)),
                    "both before the first fault and while the latency fault was in force",
                ),
            };
            match v {
                Some(d) => Obs::Value(d.as_nanos() as f64),
                None => Obs::Unknown(format!(
                    "no replication round trip of {} was acknowledged {when}",
                    r.group
                )),
            }
        }
        Metric::Failover { .. } => Obs::Unknown("a failover figure is measured per fault".into()),
    }
}

/// Promotions on the timeline: the largest count any one source reports, since each may miss
/// some (no poller, unresolved addresses) but none counts one twice:
/// - role pollers: a node going replica -> master (a restarted master coming back as master
///   is not a promotion);
/// - Sentinel `+switch-master`, once per distinct switch per group (every Sentinel announces it);
/// - Sentinel `+promoted-slave`, likewise.
pub(crate) fn promotions(events: &[Event]) -> u64 {
    let mut by_role = 0u64;
    let mut roles: HashMap<&str, Role> = HashMap::new();
    let mut restarted: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut switches = 0u64;
    let mut last_switch: HashMap<&str, &str> = HashMap::new();
    let mut promoted = 0u64;
    let mut last_promoted: HashMap<&str, &str> = HashMap::new();
    for e in events {
        match &e.kind {
            // A node that restarts comes up in the role its config gives it (a master, for an
            // old master) until Sentinel converts it: that is a reboot, not a promotion.
            EventKind::Container {
                node,
                action: ContainerAction::Start,
            } => {
                restarted.insert(node.as_str());
            }
            EventKind::RoleChange { node, from, to } => {
                if *from == Role::Replica
                    && *to == Role::Master
                    && roles.get(node.as_str()) != Some(&Role::Master)
                    && !restarted.contains(node.as_str())
                {
                    by_role += 1;
                }
                restarted.remove(node.as_str());
                roles.insert(node, *to);
            }
            EventKind::Sentinel { event, detail, .. } => {
                let (group, last, count) = match event {
                    // "<group> <old-ip> <old-port> <new-ip> <new-port>"
                    SentinelEvent::SwitchMaster => (
                        detail.split_whitespace().next(),
                        &mut last_switch,
                        &mut switches,
                    ),
                    // "slave <name> <ip> <port> @ <group> <ip> <port>"
                    SentinelEvent::PromotedSlave => (
                        detail
                            .split_once('@')
                            .and_then(|(_, r)| r.split_whitespace().next()),
                        &mut last_promoted,
                        &mut promoted,
                    ),
                    _ => continue,
                };
                let group = group.unwrap_or("");
                if last.get(group) != Some(&detail.as_str()) {
                    *count += 1;
                    last.insert(group, detail);
                }
            }
            _ => {}
        }
    }
    by_role.max(switches).max(promoted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Unavailability, Window};
    use crate::report::testdata;
    use crate::scenario::assertion;

    fn a(text: &str) -> Assertion {
        let (metric, op, threshold) = assertion::parse(text).expect("valid assertion");
        Assertion {
            text: text.into(),
            metric,
            op,
            threshold,
            line: 1,
        }
    }

    fn check(report: &RunReport, text: &str) -> AssertionResult {
        evaluate(&[a(text)], report).remove(0)
    }

    /// The sample run: F1 kills redis-1 at 10 s; writes fail from 10.000 s to 16.050 s, with
    /// 1 ms resolution; promotion at 15.170 s (a poller), detection at 15.010 s; F2 pauses a
    /// Sentinel at 26 s, which clients do not notice.
    fn sample() -> RunReport {
        testdata::report()
    }

    #[test]
    fn failover_figures_hold_for_every_fault() {
        let r = sample();
        let res = check(&r, "fault[1].unavailable < 3s");
        assert!(!res.passed);
        assert_eq!(res.actual, "6.050 s");
        assert_eq!(res.expected, "< 3 s");
        assert_eq!(
            res.message,
            "fault[1].unavailable was 6.050 s, 3.050 s over the limit 3 s (resolution 1 ms)"
        );
        let res = check(&r, "fault[1].unavailable < 10s");
        assert!(res.passed);
        assert_eq!(
            res.message,
            "fault[1].unavailable was 6.050 s, 3.950 s under the limit 10 s (resolution 1 ms)"
        );
        // Every fault: F2 saw no failure, F1 did.
        let res = check(&r, "failover.unavailable < 10s");
        assert!(res.passed, "{}", res.message);
        assert_eq!(res.actual, "F1 6.050 s, F2 none (0 of 9,000 writes failed)");
        assert!(
            res.message.starts_with(
                "held for all 2 faults; closest, F1: failover.unavailable was 6.050 s"
            ),
            "{}",
            res.message
        );
        // The Sentinel pause promotes nobody: `failover.promotion` fails for F2 and says so.
        let res = check(&r, "failover.promotion < 10s");
        assert!(!res.passed);
        assert_eq!(
            res.message,
            "F2: no promotion was seen for F2 by the end of the run"
        );
        assert!(check(&r, "fault[2].promotion == none").passed);
        assert!(check(&r, "fault[1].promotion != none").passed);
        let res = check(&r, "fault[1].promotion == none");
        assert!(!res.passed);
        assert_eq!(
            res.message,
            "fault[1].promotion was 5.170 s, and the assertion says it must not happen"
        );
        assert!(check(&r, "fault[2].unavailable == none").passed);
        assert!(!check(&r, "fault[1].unavailable == none").passed);
        let res = check(&r, "fault[3].detection < 1s");
        assert!(!res.passed);
        assert_eq!(res.actual, "n/a");
    }

    #[test]
    fn margins_within_resolution_are_flagged() {
        let r = sample();
        let res = check(&r, "fault[1].unavailable <= 6055ms");
        assert!(res.passed);
        assert_eq!(
            res.message,
            "fault[1].unavailable was 6.050 s, 0.005 s under the limit 6.055 s (resolution 1 ms)"
        );
        let res = check(&r, "fault[1].unavailable > 6.0505s");
        assert!(!res.passed);
        assert!(
            res.message.ends_with("(within the 1 ms resolution)"),
            "{}",
            res.message
        );
    }

    #[test]
    fn open_and_unmeasured_outages() {
        let mut r = sample();
        let f = &mut r.faults[0];
        f.metrics.unavailability = Unavailability::Outage(Window {
            start: Duration::from_secs(10),
            end: None,
            bound: Duration::from_secs(26),
            started_before_fault: false,
            failed_writes: 10,
            interruptions: 0,
        });
        let res = check(&r, "fault[1].unavailable < 30s");
        assert!(!res.passed);
        assert_eq!(
            res.message,
            "fault[1].unavailable was ≥ 16.000 s, not recovered before F2, so it cannot be shown to be < 30 s"
        );
        let res = check(&r, "fault[1].unavailable < 10s");
        assert_eq!(
            res.message,
            "fault[1].unavailable was ≥ 16.000 s, not recovered before F2, at least 6.000 s over the limit 10 s"
        );
        assert!(check(&r, "fault[1].unavailable >= 15s").passed);
        r.faults[0].metrics.unavailability = Unavailability::NotMeasured;
        let res = check(&r, "fault[1].unavailable < 30s");
        assert!(!res.passed);
        assert_eq!(
            res.message,
            "client-visible unavailability of F1 was not measured: no write was attempted in its window"
        );
    }

    #[test]
    fn run_metrics() {
        let r = sample();
        let lost = r
            .lost_writes
            .as_ref()
            .map(|l| l.counts.acknowledged_missing)
            .unwrap_or(0);
        assert!(lost > 0);
        let res = check(&r, "lost_writes == 0");
        assert!(!res.passed);
        assert_eq!(res.message, format!("lost_writes was {lost}, not 0"));
        assert!(check(&r, &format!("lost_writes <= {lost}")).passed);
        assert!(check(&r, "lost_writes_pct < 1%").passed);
        assert!(check(&r, "unacked_present >= 1").passed);
        let res = check(&r, "availability >= 99.9%");
        assert!(!res.passed);
        assert!(
            res.message.contains("points short of the minimum 99.9%"),
            "{}",
            res.message
        );
        assert_eq!(res.actual.matches('.').count(), 1);
        assert!(check(&r, "availability >= 80%").passed);
        assert!(check(&r, "throughput > 1000").passed);
        assert!(check(&r, "errors > 0").passed);
        let res = check(&r, "p50 < 1s");
        assert!(res.passed, "{}", res.message);
        assert!(res.message.contains("under the limit 1 s"));
        assert!(check(&r, "max >= 1s").passed);
        assert!(
            check(&r, "promotions == 1").passed,
            "{}",
            check(&r, "promotions == 1").message
        );
        let mut none = r.clone();
        none.lost_writes = None;
        none.summary.p99_us = None;
        assert_eq!(
            check(&none, "lost_writes == 0").message,
            "lost writes were not checked in this run (track_writes off, or the read-back failed)"
        );
        assert_eq!(
            check(&none, "p99 < 1s").message,
            "no latency was recorded in this run"
        );
    }

    #[test]
    fn counts_each_promotion_once() {
        use std::time::Duration as D;
        let ev = |ms: u64, kind: EventKind| Event::new(D::from_millis(ms), kind);
        let switch = |s: &str, d: &str| EventKind::Sentinel {
            sentinel: s.into(),
            event: SentinelEvent::SwitchMaster,
            detail: d.into(),
        };
        let role = |n: &str, from: Role, to: Role| EventKind::RoleChange {
            node: n.into(),
            from,
            to,
        };
        // g1 fails over 1 -> 2 (three Sentinels announce it), then back 2 -> 1; the killed
        // master restarting as master is not a promotion.
        let events = vec![
            ev(1, switch("s1", "g1 redis-1 6379 redis-2 6379")),
            ev(2, switch("s2", "g1 redis-1 6379 redis-2 6379")),
            ev(3, switch("s3", "g1 redis-1 6379 redis-2 6379")),
            ev(4, role("redis-2", Role::Replica, Role::Master)),
            ev(5, role("redis-1", Role::Unknown, Role::Master)),
            ev(6, role("redis-1", Role::Master, Role::Replica)),
            ev(7, switch("s1", "g1 redis-2 6379 redis-1 6379")),
            ev(8, switch("s2", "g1 redis-2 6379 redis-1 6379")),
        ];
        assert_eq!(promotions(&events), 2);
        // Without Sentinel events, the pollers alone.
        let polled: Vec<Event> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RoleChange { .. }))
            .cloned()
            .collect();
        assert_eq!(promotions(&polled), 1);
        assert_eq!(promotions(&[]), 0);
        // A killed replica that restarts as a master (its config's role) before Sentinel
        // converts it back was rebooted, not promoted.
        let reboot = vec![
            ev(1, role("redis-1", Role::Master, Role::Replica)),
            ev(
                2,
                EventKind::Container {
                    node: "redis-1".into(),
                    action: ContainerAction::Start,
                },
            ),
            ev(3, role("redis-1", Role::Replica, Role::Master)),
            ev(4, role("redis-1", Role::Master, Role::Replica)),
        ];
        assert_eq!(promotions(&reboot), 0);
    }
}
