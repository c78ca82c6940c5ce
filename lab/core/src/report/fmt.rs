//! Number formatting shared by the renderers. Figures are printed no finer than they were
//! measured: a duration carries as many decimals as its resolution supports.

use std::time::Duration;

use crate::measure::{FaultReport, Unavailability, WindowEnd};

/// Thousands separators: 1234567 -> "1,234,567".
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with thousands separators and no false decimals.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        int(v.round() as u64)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if (99.995..100.0).contains(&v) => "99.99+%".into(),
        Some(v) => format!("{v:.2}%"),
        None => "n/a".into(),
    }
}

/// A latency in microseconds with three significant digits and a fitting unit.
pub fn us(v: u64) -> String {
    let v = v as f64;
    let (x, unit) = if v < 1000.0 {
        (v, "µs")
    } else if v < 1_000_000.0 {
        (v / 1000.0, "ms")
    } else {
        (v / 1_000_000.0, "s")
    };
    let decimals = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    // Whole microseconds need no decimals.
    let decimals = if unit == "µs" { 0 } else { decimals };
    format!("{x:.decimals$} {unit}")
}

pub fn opt_us(v: Option<u64>) -> String {
    v.map(us).unwrap_or_else(|| "—".into())
}

/// A resolution or width: "100 ms", "1 ms", "250 µs", "2 s".
pub fn res(d: Duration) -> String {
    let micros = d.as_micros();
    if micros >= 1_000_000 && micros % 1_000_000 == 0 {
        format!("{} s", micros / 1_000_000)
    } else if micros >= 1000 && micros % 1000 == 0 {
        format!("{} ms", micros / 1000)
    } else if micros >= 1000 {
        format!("{:.1} ms", micros as f64 / 1000.0)
    } else {
        format!("{micros} µs")
    }
}

/// Decimal places of seconds that a resolution supports: 100 ms -> 1, 10 ms -> 2, 1 ms -> 3.
pub fn decimals_for(resolution: Duration) -> usize {
    let r = resolution.as_secs_f64();
    if r <= 0.0 {
        return 3;
    }
    (-r.log10()).ceil().clamp(0.0, 6.0) as usize
}

/// A duration in seconds, rounded to what `resolution` supports.
pub fn secs(d: Duration, resolution: Duration) -> String {
    let decimals = decimals_for(resolution);
    format!("{:.decimals$} s", d.as_secs_f64())
}

/// A time on the run's axis, in milliseconds precision.
pub fn at(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Where a fault's window stopped, for "not ... by ..." phrases.
pub fn until(end: &WindowEnd) -> String {
    match end {
        WindowEnd::NextFault { id, .. } => format!("before F{id}"),
        WindowEnd::EndOfRun { .. } => "by end of run".into(),
    }
}

/// Client-visible unavailability of a fault, in words.
pub fn unavailability(f: &FaultReport) -> String {
    let m = &f.metrics;
    match &m.unavailability {
        Unavailability::NotMeasured => "not measured (no writes in window)".into(),
        Unavailability::NoFailure { writes } => {
            format!("none (0 of {} writes failed)", int(*writes))
        }
        Unavailability::Outage(w) => {
            let mut s = match w.duration() {
                Some(d) => {
                    let n = decimals_for(m.resolution);
                    format!(
                        "{} ({:.n$}–{:.n$} s)",
                        secs(d, m.resolution),
                        w.start.as_secs_f64(),
                        w.end.unwrap_or(w.start).as_secs_f64()
                    )
                }
                None => format!(
                    "≥ {}, not recovered {}",
                    secs(w.at_least(), m.resolution),
                    until(&f.window_end)
                ),
            };
            if w.started_before_fault {
                s.push_str(", writes already failing at the fault");
            }
            if w.interruptions > 0 {
                s.push_str(&format!(", flapped {}×", w.interruptions));
            }
            s
        }
    }
}

/// A duration metric measured from the fault, or what its absence means.
pub fn since_fault(d: Option<Duration>, resolution: Duration, absent: &str) -> String {
    match d {
        Some(d) => secs(d, resolution),
        None => absent.into(),
    }
}

/// A measured quantity read back from an assertion's text: "7.4 s", "< 5s", ">= 99.5%".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// In base units: seconds for times, percent for percentages, as written otherwise.
    pub value: f64,
    pub dim: Dim,
    /// Factor from base units to the unit it was written in (ms -> 1000).
    pub shown_scale: f64,
    /// Unit of a difference in the written unit: " ms", " pp", "".
    pub diff_unit: &'static str,
    pub comparison: Comparison,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Time,
    Percent,
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    AtMost,
    AtLeast,
    Equal,
}

pub fn parse_quantity(text: &str) -> Option<Quantity> {
    let t = text.trim();
    let (comparison, rest) = [
        ("<=", Comparison::AtMost),
        ("≤", Comparison::AtMost),
        (">=", Comparison::AtLeast),
        ("≥", Comparison::AtLeast),
        ("==", Comparison::Equal),
        ("<", Comparison::AtMost),
        (">", Comparison::AtLeast),
        ("=", Comparison::Equal),
    ]
    .iter()
    .find_map(|(p, c)| t.strip_prefix(p).map(|r| (*c, r)))
    .unwrap_or((Comparison::Equal, t));
    let rest = rest.trim().replace(',', "");
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(rest.len());
    let value: f64 = rest[..split].parse().ok()?;
    let unit = rest[split..].trim();
    let (dim, scale, diff_unit) = match unit {
        "µs" | "us" => (Dim::Time, 1e6, " µs"),
        "ms" => (Dim::Time, 1e3, " ms"),
        "s" => (Dim::Time, 1.0, " s"),
        "min" | "m" => (Dim::Time, 1.0 / 60.0, " min"),
        "%" => (Dim::Percent, 1.0, " pp"),
        "" => (Dim::Plain, 1.0, ""),
        _ => return None,
    };
    Some(Quantity {
        value: value / scale,
        dim,
        shown_scale: scale,
        diff_unit,
        comparison,
    })
}

/// How far an actual value is from the expected one, in the expected value's unit:
/// "over by 2.4 s (+48%)", "short by 0.30%", "off by 42".
pub fn by_how_much(actual: &str, expected: &str) -> Option<String> {
    let a = parse_quantity(actual)?;
    let e = parse_quantity(expected)?;
    if a.dim != e.dim {
        return None;
    }
    let diff = a.value - e.value;
    let shown = (diff * e.shown_scale).abs();
    let unit = e.diff_unit;
    let amount = if shown == shown.trunc() {
        format!("{shown:.0}{unit}")
    } else if shown >= 10.0 {
        format!("{shown:.1}{unit}")
    } else {
        format!("{shown:.2}{unit}")
    };
    let word = match (diff >= 0.0, e.comparison) {
        (true, _) => "over by",
        (false, Comparison::AtLeast) => "short by",
        (false, _) => "under by",
    };
    let relative = if e.value != 0.0 && e.dim != Dim::Percent {
        format!(" ({:+.0}%)", diff * 100.0 / e.value.abs())
    } else {
        String::new()
    };
    Some(format!("{word} {amount}{relative}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(999), "999");
        assert_eq!(us(312), "312 µs");
        assert_eq!(us(4_520), "4.52 ms");
        assert_eq!(us(45_200), "45.2 ms");
        assert_eq!(us(2_000_000), "2.00 s");
        assert_eq!(res(Duration::from_millis(100)), "100 ms");
        assert_eq!(res(Duration::from_micros(1500)), "1.5 ms");
        assert_eq!(
            secs(Duration::from_millis(1712), Duration::from_millis(100)),
            "1.7 s"
        );
        assert_eq!(
            secs(Duration::from_millis(1712), Duration::from_millis(10)),
            "1.71 s"
        );
        assert_eq!(
            secs(Duration::from_millis(1712), Duration::from_millis(1)),
            "1.712 s"
        );
        assert_eq!(
            secs(Duration::from_millis(1712), Duration::from_millis(200)),
            "1.7 s"
        );
    }

    #[test]
    fn amounts() {
        assert_eq!(
            by_how_much("7.4 s", "< 5 s").as_deref(),
            Some("over by 2.40 s (+48%)")
        );
        assert_eq!(
            by_how_much("7400ms", "<= 5 s").as_deref(),
            Some("over by 2.40 s (+48%)")
        );
        assert_eq!(
            by_how_much("99.2%", ">= 99.5%").as_deref(),
            Some("short by 0.30 pp")
        );
        assert_eq!(by_how_much("42", "== 0").as_deref(), Some("over by 42"));
        assert_eq!(by_how_much("fast", "< 5 s"), None);
        assert_eq!(by_how_much("7 s", "< 5%"), None);
    }
}
