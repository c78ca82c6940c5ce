//! Numbers in messages, printed no finer than they were measured (the same rules as the
//! reports: a duration carries as many decimals as its resolution supports).

use std::time::Duration;

/// Thousands separators: 1234567 -> "1,234,567".
pub(crate) fn int(n: u64) -> String {
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

/// A duration as a person would write a threshold: "3 s", "500 ms", "1.5 s", "250 µs".
pub(crate) fn dur(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0 s".into()
    } else if us % 1_000_000 == 0 {
        format!("{} s", us / 1_000_000)
    } else if us >= 1_000_000 {
        let s = format!("{:.6}", d.as_secs_f64());
        format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
    } else if us % 1000 == 0 {
        format!("{} ms", us / 1000)
    } else if us >= 1000 {
        let s = format!("{:.3}", us as f64 / 1000.0);
        format!("{} ms", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{us} µs")
    }
}

/// Decimal places of seconds that a resolution supports: 100 ms -> 1, 10 ms -> 2, 1 ms -> 3.
fn decimals_for(resolution: Duration) -> usize {
    let r = resolution.as_secs_f64();
    if r <= 0.0 {
        return 3;
    }
    (-r.log10()).ceil().clamp(0.0, 6.0) as usize
}

/// A measured duration in seconds, rounded to what `resolution` supports: "4.81 s".
pub(crate) fn secs(d: Duration, resolution: Duration) -> String {
    let decimals = decimals_for(resolution);
    format!("{:.decimals$} s", d.as_secs_f64())
}

/// A latency in microseconds with three significant digits (hdrhistogram's precision).
pub(crate) fn us(v: u64) -> String {
    let v = v as f64;
    let (x, unit) = if v < 1000.0 {
        (v, "µs")
    } else if v < 1_000_000.0 {
        (v / 1000.0, "ms")
    } else {
        (v / 1_000_000.0, "s")
    };
    let decimals = if unit == "µs" || x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.decimals$} {unit}")
}

/// A percentage with `decimals` places.
pub(crate) fn pct(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}%")
}

/// An operation rate with no false decimals.
pub(crate) fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{} ops/s", int(v.round() as u64))
    } else {
        format!("{v:.1} ops/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_thresholds() {
        assert_eq!(dur(Duration::from_secs(3)), "3 s");
        assert_eq!(dur(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(dur(Duration::from_millis(500)), "500 ms");
        assert_eq!(dur(Duration::from_micros(2500)), "2.5 ms");
        assert_eq!(dur(Duration::from_micros(250)), "250 µs");
        assert_eq!(
            secs(Duration::from_millis(4812), Duration::from_millis(10)),
            "4.81 s"
        );
        assert_eq!(
            secs(Duration::from_millis(4812), Duration::from_millis(1)),
            "4.812 s"
        );
        assert_eq!(us(7410), "7.41 ms");
        assert_eq!(int(1_234_567), "1,234,567");
    }
}
