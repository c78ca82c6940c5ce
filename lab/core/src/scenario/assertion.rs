//! Assertions: `<metric> <op> <value>` strings, parsed into typed checks. A value must carry
//! the unit its metric is measured in (a duration for times, `%` for shares, a plain number
//! for counts and rates), so `availability >= 99` or `failover.unavailable < 30` are errors,
//! not silent misreadings.

use std::fmt;
use std::time::Duration;

/// One checked expectation of a drill.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    /// As written in the file.
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    pub threshold: Threshold,
    /// Line in the drill file.
    pub line: usize,
}

/// What an assertion measures. See the module documentation of `scenario` for definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A per-fault figure: for every fault (`failover.<figure>`) or for one
    /// (`fault[N].<figure>`, N from 1).
    Failover {
        fault: Option<u32>,
        figure: FaultFigure,
    },
    /// Acknowledged writes missing after recovery.
    LostWrites,
    /// Lost writes as a share of acknowledged writes.
    LostWritesPct,
    /// Writes that failed or timed out for the client but are in the store.
    UnackedPresent,
    /// Successful operations / attempted operations over the run.
    Availability,
    /// Successful operations per second over the run.
    Throughput,
    /// Failed operations (errors and timeouts) over the run.
    Errors,
    P50,
    P99,
    P999,
    /// Highest latency over the run.
    Max,
    /// Promotions seen on the timeline.
    Promotions,
    /// Median replication round trip (write + `WAIT 1`) while the drill's latency fault was
    /// in force.
    ReplicationRtt,
    /// The same before the first fault.
    ReplicationRttBefore,
    /// `ReplicationRtt` less `ReplicationRttBefore`: what the fault added, whatever the host's
    /// own round trip.
    ReplicationRttAdded,
}

/// The per-fault figures of `measure::FailoverMetrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultFigure {
    Detection,
    Promotion,
    Unavailable,
    Recovery,
}

impl FaultFigure {
    const ALL: [FaultFigure; 4] = [
        FaultFigure::Detection,
        FaultFigure::Promotion,
        FaultFigure::Unavailable,
        FaultFigure::Recovery,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultFigure::Detection => "detection",
            FaultFigure::Promotion => "promotion",
            FaultFigure::Unavailable => "unavailable",
            FaultFigure::Recovery => "recovery",
        }
    }
}

/// How a metric's values are expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Duration,
    Percent,
    Count,
    /// Operations per second.
    Rate,
}

const RUN_METRICS: [(&str, Metric); 14] = [
    ("lost_writes", Metric::LostWrites),
    ("lost_writes_pct", Metric::LostWritesPct),
    ("unacked_present", Metric::UnackedPresent),
    ("availability", Metric::Availability),
    ("throughput", Metric::Throughput),
    ("errors", Metric::Errors),
    ("p50", Metric::P50),
    ("p99", Metric::P99),
    ("p999", Metric::P999),
    ("max", Metric::Max),
    ("promotions", Metric::Promotions),
    ("replication_rtt", Metric::ReplicationRtt),
    ("replication_rtt_before", Metric::ReplicationRttBefore),
    ("replication_rtt_added", Metric::ReplicationRttAdded),
];

impl Metric {
    pub fn unit(self) -> Unit {
        match self {
            Metric::Failover { .. }
            | Metric::P50
            | Metric::P99
            | Metric::P999
            | Metric::Max
            | Metric::ReplicationRtt
            | Metric::ReplicationRttBefore
            | Metric::ReplicationRttAdded => Unit::Duration,
            Metric::LostWritesPct | Metric::Availability => Unit::Percent,
            Metric::LostWrites | Metric::UnackedPresent | Metric::Errors | Metric::Promotions => {
                Unit::Count
            }
            Metric::Throughput => Unit::Rate,
        }
    }

    /// Whether the metric needs `track_writes`.
    pub fn needs_tracked_writes(self) -> bool {
        matches!(
            self,
            Metric::LostWrites | Metric::LostWritesPct | Metric::UnackedPresent
        )
    }

    /// Every metric name an assertion may use (per-fault ones in their `failover.` form).
    pub fn names() -> Vec<String> {
        FaultFigure::ALL
            .iter()
            .map(|f| format!("failover.{}", f.name()))
            .chain(RUN_METRICS.iter().map(|(n, _)| n.to_string()))
            .collect()
    }

    fn parse(s: &str) -> Result<Metric, String> {
        if let Some((_, m)) = RUN_METRICS.iter().find(|(n, _)| *n == s) {
            return Ok(*m);
        }
        let figure = |name: &str| FaultFigure::ALL.into_iter().find(|f| f.name() == name);
        if let Some(name) = s.strip_prefix("failover.") {
            if let Some(figure) = figure(name) {
                return Ok(Metric::Failover {
                    fault: None,
                    figure,
                });
            }
        }
        if let Some(rest) = s.strip_prefix("fault[") {
            let Some((n, name)) = rest.split_once("].") else {
                return Err(format!(
                    "`{s}` is not a metric; a single fault's figure reads like fault[1].unavailable"
                ));
            };
            let fault = match n.parse::<u32>() {
                Ok(0) => {
                    return Err("faults are numbered from 1: write fault[1] for the first".into())
                }
                Ok(n) => n,
                Err(_) => {
                    return Err(format!(
                        "`fault[{n}]` needs a fault number, like fault[1].unavailable"
                    ))
                }
            };
            let name = name.strip_prefix("failover.").unwrap_or(name);
            return match figure(name) {
                Some(figure) => Ok(Metric::Failover {
                    fault: Some(fault),
                    figure,
                }),
                None => Err(format!(
                    "`{name}` is not a fault figure; use detection, promotion, unavailable or recovery"
                )),
            };
        }
        let names = Metric::names();
        Err(match super::closest(s, names.iter().map(String::as_str)) {
            Some(near) => format!("unknown metric `{s}`; did you mean `{near}`?"),
            None => format!(
                "unknown metric `{s}`; known metrics: {} (see docs/drills.md)",
                names.join(", ")
            ),
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Failover {
                fault: None,
                figure,
            } => write!(f, "failover.{}", figure.name()),
            Metric::Failover {
                fault: Some(n),
                figure,
            } => write!(f, "fault[{n}].{}", figure.name()),
            other => {
                let name = RUN_METRICS
                    .iter()
                    .find(|(_, m)| m == other)
                    .map(|(n, _)| *n)
                    .unwrap_or("?");
                f.write_str(name)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `a op b` holds.
    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The value an assertion compares with, in its metric's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Duration(Duration),
    /// 0..=100.
    Percent(f64),
    Count(u64),
    /// Operations per second.
    Rate(f64),
    /// `none`: the failover figure did not happen (with `==`) or did (with `!=`).
    None,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Duration(d) => f.write_str(&super::fmt::dur(*d)),
            Threshold::Percent(p) => write!(f, "{p}%"),
            Threshold::Count(n) => write!(f, "{n}"),
            Threshold::Rate(r) => write!(f, "{r} ops/s"),
            Threshold::None => f.write_str("none"),
        }
    }
}

/// A problem in an assertion's text, at a character offset into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub offset: usize,
    pub message: String,
}

fn err(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        message: message.into(),
    }
}

const OPS: &str = "<, <=, >, >=, == or !=";

/// Splits and checks `<metric> <op> <value>`.
pub(crate) fn parse(text: &str) -> Result<(Metric, Op, Threshold), ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let take = |i: &mut usize, f: &dyn Fn(char) -> bool| -> (usize, String) {
        let start = *i;
        while *i < chars.len() && f(chars[*i]) {
            *i += 1;
        }
        (start, chars[start..*i].iter().collect())
    };

    skip_ws(&mut i);
    let (m_at, m_text) = take(&mut i, &|c| c.is_ascii_alphanumeric() || "._[]".contains(c));
    if m_text.is_empty() {
        return Err(err(
            m_at,
            "an assertion reads `<metric> <op> <value>`, like `lost_writes == 0`",
        ));
    }
    let metric = Metric::parse(&m_text).map_err(|m| err(m_at, m))?;

    skip_ws(&mut i);
    let (op_at, op_text) = take(&mut i, &|c| "<>=!".contains(c));
    let op = match op_text.as_str() {
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "==" => Op::Eq,
        "!=" => Op::Ne,
        "" => {
            return Err(err(
                op_at,
                format!("expected an operator ({OPS}) after `{m_text}`"),
            ))
        }
        "=" => return Err(err(op_at, "`=` is not an operator; write `==`")),
        "=>" => return Err(err(op_at, "`=>` is not an operator; write `>=`")),
        "=<" => return Err(err(op_at, "`=<` is not an operator; write `<=`")),
        other => {
            return Err(err(
                op_at,
                format!("`{other}` is not an operator; use {OPS}"),
            ))
        }
    };

    skip_ws(&mut i);
    let v_at = i;
    let value: String = chars[i..].iter().collect::<String>().trim_end().to_string();
    if value.is_empty() {
        return Err(err(
            v_at,
            format!("expected a value after `{op}`, like 30s, 99% or 0"),
        ));
    }
    let threshold = threshold(metric, op, &value).map_err(|m| err(v_at, m))?;
    if threshold == Threshold::None && !matches!(op, Op::Eq | Op::Ne) {
        return Err(err(
            op_at,
            "`none` compares only with `==` (must not happen) or `!=` (must happen)",
        ));
    }
    Ok((metric, op, threshold))
}

fn example(metric: Metric) -> &'static str {
    match metric {
        Metric::Failover { .. } => "30s",
        Metric::P50 | Metric::P99 | Metric::P999 | Metric::Max => "5ms",
        Metric::ReplicationRtt | Metric::ReplicationRttBefore | Metric::ReplicationRttAdded => {
            "200ms"
        }
        Metric::Availability => "99.9%",
        Metric::LostWritesPct => "0.1%",
        Metric::Throughput => "1000",
        _ => "0",
    }
}

fn unit_phrase(unit: Unit) -> &'static str {
    match unit {
        Unit::Duration => "a duration",
        Unit::Percent => "a percentage",
        Unit::Count => "a count",
        Unit::Rate => "a rate in operations per second",
    }
}

fn threshold(metric: Metric, op: Op, value: &str) -> Result<Threshold, String> {
    let unit = metric.unit();
    let mismatch = || {
        format!(
            "{metric} is {}; write it like `{metric} {op} {}`, not `{value}`",
            unit_phrase(unit),
            example(metric)
        )
    };
    let number = |s: &str| -> Option<f64> {
        let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || ".+-eE".contains(c));
        s.parse::<f64>().ok().filter(|v| plain && v.is_finite())
    };
    if value == "none" {
        return match metric {
            Metric::Failover { .. } => Ok(Threshold::None),
            _ => Err(format!(
                "`none` (did not happen) applies to failover figures only; for {metric} write a number, like `{metric} == 0`"
            )),
        };
    }
    if let Some(p) = value.strip_suffix('%') {
        let Some(p) = number(p) else {
            return Err(format!(
                "`{value}` is not a percentage; write it like 99.9%"
            ));
        };
        if unit != Unit::Percent {
            return Err(mismatch());
        }
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("`{value}` is not between 0% and 100%"));
        }
        return Ok(Threshold::Percent(p));
    }
    if let Some(n) = number(value) {
        if n < 0.0 {
            return Err(format!(
                "{metric} cannot be negative; `{value}` never matches"
            ));
        }
        return match unit {
            Unit::Count if n.fract() == 0.0 => Ok(Threshold::Count(n as u64)),
            Unit::Count => Err(format!(
                "{metric} is a count; write a whole number, like `{metric} {op} 0`"
            )),
            Unit::Rate => Ok(Threshold::Rate(n)),
            Unit::Duration => Err(format!(
                "`{value}` has no unit; {metric} is a duration, write `{value}s` or `{value}ms`"
            )),
            Unit::Percent => Err(format!("{metric} is a percentage; write `{value}%`")),
        };
    }
    match super::duration(value) {
        Some(d) if unit == Unit::Duration => Ok(Threshold::Duration(d)),
        Some(_) => Err(mismatch()),
        None => Err(format!(
            "`{value}` is not a value; write a duration (30s, 500ms), a percentage (99%) or a number (0)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (Metric, Op, Threshold) {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn bad(s: &str) -> (usize, String) {
        match parse(s) {
            Ok(v) => panic!("{s} parsed as {v:?}"),
            Err(e) => (e.offset, e.message),
        }
    }

    #[test]
    fn reads_every_metric_with_its_unit() {
        use FaultFigure::*;
        assert_eq!(
            ok("failover.unavailable < 30s"),
            (
                Metric::Failover {
                    fault: None,
                    figure: Unavailable
                },
                Op::Lt,
                Threshold::Duration(Duration::from_secs(30))
            )
        );
        assert_eq!(
            ok("fault[2].promotion == none"),
            (
                Metric::Failover {
                    fault: Some(2),
                    figure: Promotion
                },
                Op::Eq,
                Threshold::None
            )
        );
        assert_eq!(
            ok("fault[1].failover.detection<=500ms").0.to_string(),
            "fault[1].detection"
        );
        assert_eq!(ok("lost_writes == 0").2, Threshold::Count(0));
        assert_eq!(ok("lost_writes_pct < 0.1%").2, Threshold::Percent(0.1));
        assert_eq!(ok("availability >= 99.9%").2, Threshold::Percent(99.9));
        assert_eq!(ok("throughput > 1500.5").2, Threshold::Rate(1500.5));
        assert_eq!(
            ok("p999 < 1m").2,
            Threshold::Duration(Duration::from_secs(60))
        );
        assert_eq!(ok("  promotions   !=   1  ").1, Op::Ne);
        for name in Metric::names() {
            let m = Metric::parse(&name).expect("listed names parse");
            assert_eq!(m.to_string(), name);
        }
    }

    #[test]
    fn points_at_the_offending_part() {
        assert_eq!(
            bad("failover.unavalable < 30s"),
            (
                0,
                "unknown metric `failover.unavalable`; did you mean `failover.unavailable`?".into()
            )
        );
        assert!(bad("speed > 3")
            .1
            .contains("known metrics: failover.detection"));
        assert_eq!(
            bad("lost_writes = 0"),
            (12, "`=` is not an operator; write `==`".into())
        );
        assert_eq!(
            bad("lost_writes => 0").1,
            "`=>` is not an operator; write `>=`"
        );
        assert_eq!(
            bad("lost_writes 0").1,
            "expected an operator (<, <=, >, >=, == or !=) after `lost_writes`"
        );
        assert_eq!(bad("lost_writes <").0, 13);
        assert_eq!(
            bad("availability >= 99"),
            (16, "availability is a percentage; write `99%`".into())
        );
        assert_eq!(
            bad("failover.unavailable < 30"),
            (
                23,
                "`30` has no unit; failover.unavailable is a duration, write `30s` or `30ms`"
                    .into()
            )
        );
        assert_eq!(
            bad("failover.unavailable < 99%").1,
            "failover.unavailable is a duration; write it like `failover.unavailable < 30s`, not `99%`"
        );
        assert_eq!(
            bad("lost_writes < 2s").1,
            "lost_writes is a count; write it like `lost_writes < 0`, not `2s`"
        );
        assert_eq!(
            bad("lost_writes < 0.5").1,
            "lost_writes is a count; write a whole number, like `lost_writes < 0`"
        );
        assert_eq!(
            bad("availability > 101%").1,
            "`101%` is not between 0% and 100%"
        );
        assert_eq!(bad("failover.promotion < none").0, 19);
        assert!(bad("lost_writes == none")
            .1
            .starts_with("`none` (did not happen) applies to failover"));
        assert_eq!(
            bad("fault[0].unavailable < 1s").1,
            "faults are numbered from 1: write fault[1] for the first"
        );
        assert_eq!(bad("throughput > fast").1, "`fast` is not a value; write a duration (30s, 500ms), a percentage (99%) or a number (0)");
        assert_eq!(bad("throughput > inf").1, "`inf` is not a value; write a duration (30s, 500ms), a percentage (99%) or a number (0)");
        assert_eq!(
            bad("").1,
            "an assertion reads `<metric> <op> <value>`, like `lost_writes == 0`"
        );
    }
}
