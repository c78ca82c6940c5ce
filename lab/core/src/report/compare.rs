//! Two runs side by side (`lab report compare A.json B.json`), with deltas. A difference smaller
//! than either run's resolution is marked as such rather than presented as a change.

use std::fmt::Write;
use std::time::Duration;

use super::fmt as f;
use super::markdown::cell;
use super::RunReport;
use crate::measure::{FaultReport, Unavailability};

fn signed(v: f64, body: String) -> String {
    let sign = if v > 0.0 {
        "+"
    } else if v < 0.0 {
        "-"
    } else {
        "±"
    };
    format!("{sign}{body}")
}

fn rel(a: f64, b: f64) -> String {
    if a == 0.0 {
        return String::new();
    }
    format!(" ({:+.1}%)", (b - a) * 100.0 / a)
}

fn delta_rate(a: f64, b: f64) -> String {
    format!("{}{}", signed(b - a, f::rate((b - a).abs())), rel(a, b))
}

fn delta_count(a: u64, b: u64) -> String {
    let d = b as f64 - a as f64;
    signed(d, f::int(a.abs_diff(b)))
}

fn delta_us(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!(
            "{}{}",
            signed(b as f64 - a as f64, f::us(a.abs_diff(b))),
            rel(a as f64, b as f64)
        ),
        _ => "—".into(),
    }
}

fn delta_pct(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => signed(b - a, format!("{:.2} pp", (b - a).abs())),
        _ => "—".into(),
    }
}

/// Difference of two durations, at the coarser of the two resolutions.
fn delta_dur(a: Option<Duration>, b: Option<Duration>, res: Duration) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let d = b.as_secs_f64() - a.as_secs_f64();
            let body = f::secs(a.abs_diff(b), res);
            if a.abs_diff(b) < res {
                format!("{} (within resolution)", signed(d, body))
            } else {
                signed(d, body)
            }
        }
        _ => "—".into(),
    }
}

fn row(o: &mut String, metric: &str, a: String, b: String, delta: String) {
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} |",
        cell(metric),
        cell(&a),
        cell(&b),
        cell(&delta)
    );
}

type FaultFigure = fn(&FaultReport) -> Option<Duration>;

/// One event-based figure of a fault pair, compared at resolution `res`.
fn figure_row(
    o: &mut String,
    metric: &str,
    (a, b): (Option<&FaultReport>, Option<&FaultReport>),
    res: Duration,
    get: FaultFigure,
    absent: &str,
) {
    let show = |x: Option<&FaultReport>| {
        x.map(|x| f::since_fault(get(x), res, absent))
            .unwrap_or_else(|| "—".into())
    };
    row(
        o,
        metric,
        show(a),
        show(b),
        delta_dur(a.and_then(get), b.and_then(get), res),
    );
}

fn fault_rows(o: &mut String, a: Option<&FaultReport>, b: Option<&FaultReport>) {
    let name = |x: Option<&FaultReport>| {
        x.map(|x| format!("F{} {}", x.id, x.description))
            .unwrap_or_else(|| "—".into())
    };
    let label = match (a, b) {
        (Some(x), Some(y)) if x.description == y.description => name(a),
        _ => format!("{} / {}", name(a), name(b)),
    };
    // Each figure is compared at the coarser of the two runs' resolutions.
    let coarser = |get: fn(&FaultReport) -> Duration| {
        a.map(get)
            .max(b.map(get))
            .unwrap_or(Duration::from_millis(1))
    };
    let ev = coarser(|x| x.metrics.event_resolution);
    let wr = coarser(|x| x.metrics.resolution);
    let metric = |m: &str, res: Duration| format!("{label}: {m} (res {})", f::res(res));
    figure_row(
        o,
        &metric("detection", ev),
        (a, b),
        ev,
        |x| x.metrics.detection,
        "not seen",
    );
    figure_row(
        o,
        &metric("promotion", ev),
        (a, b),
        ev,
        |x| x.metrics.promotion,
        "none",
    );
    let shown = |x: Option<&FaultReport>| {
        x.map(|x| match &x.metrics.unavailability {
            Unavailability::Outage(w) if w.end.is_some() => {
                f::secs(w.duration().unwrap_or_default(), x.metrics.resolution)
            }
            _ => f::unavailability(x),
        })
        .unwrap_or_else(|| "—".into())
    };
    let unavail = |x: &FaultReport| x.metrics.unavailability.duration();
    row(
        o,
        &metric("unavailability", wr),
        shown(a),
        shown(b),
        delta_dur(a.and_then(unavail), b.and_then(unavail), wr),
    );
    figure_row(
        o,
        &metric("recovery", ev),
        (a, b),
        ev,
        |x| x.metrics.recovery,
        "not recovered",
    );
}

/// A Markdown table of two runs side by side, deltas as B − A.
pub fn compare(a: &RunReport, b: &RunReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {} vs {}\n", a.meta.title, b.meta.title);
    let _ = writeln!(
        o,
        "A: `{}` on `{}`, started {} · B: `{}` on `{}`, started {}\n",
        a.meta.scenario,
        a.meta.topology,
        a.meta.started_at,
        b.meta.scenario,
        b.meta.topology,
        b.meta.started_at
    );
    let _ = writeln!(
        o,
        "| metric | A | B | Δ (B − A) |\n| --- | ---: | ---: | ---: |"
    );
    let (sa, sb) = (&a.summary, &b.summary);
    row(
        &mut o,
        "throughput (ok ops/s)",
        f::rate(sa.ops_per_s),
        f::rate(sb.ops_per_s),
        delta_rate(sa.ops_per_s, sb.ops_per_s),
    );
    type Pick = fn(&crate::measure::RunSummary) -> Option<u64>;
    let lat: [(&str, Pick); 5] = [
        ("latency p50", |s| s.p50_us),
        ("latency p90", |s| s.p90_us),
        ("latency p99", |s| s.p99_us),
        ("latency p99.9", |s| s.p999_us),
        ("latency max", |s| s.max_us),
    ];
    for (name, get) in lat {
        row(
            &mut o,
            name,
            f::opt_us(get(sa)),
            f::opt_us(get(sb)),
            delta_us(get(sa), get(sb)),
        );
    }
    row(
        &mut o,
        "write availability",
        f::pct(sa.write_availability_pct),
        f::pct(sb.write_availability_pct),
        delta_pct(sa.write_availability_pct, sb.write_availability_pct),
    );
    row(
        &mut o,
        "read availability",
        f::pct(sa.read_availability_pct),
        f::pct(sb.read_availability_pct),
        delta_pct(sa.read_availability_pct, sb.read_availability_pct),
    );
    row(
        &mut o,
        "errors",
        f::int(sa.errors),
        f::int(sb.errors),
        delta_count(sa.errors, sb.errors),
    );
    row(
        &mut o,
        "timeouts",
        f::int(sa.timeouts),
        f::int(sb.timeouts),
        delta_count(sa.timeouts, sb.timeouts),
    );
    let faults = a.faults.len().max(b.faults.len());
    for i in 0..faults {
        fault_rows(&mut o, a.faults.get(i), b.faults.get(i));
    }
    let lost = |r: &RunReport| r.lost_writes.as_ref().map(|l| l.counts);
    match (lost(a), lost(b)) {
        (None, None) => {}
        (la, lb) => {
            let show = |l: Option<crate::measure::LostCounts>,
                        pick: fn(&crate::measure::LostCounts) -> u64| {
                l.map(|l| f::int(pick(&l)))
                    .unwrap_or_else(|| "not checked".into())
            };
            let delta = |pick: fn(&crate::measure::LostCounts) -> u64| match (la, lb) {
                (Some(x), Some(y)) => delta_count(pick(&x), pick(&y)),
                _ => "—".into(),
            };
            row(
                &mut o,
                "lost acknowledged writes",
                show(la, |c| c.acknowledged_missing),
                show(lb, |c| c.acknowledged_missing),
                delta(|c| c.acknowledged_missing),
            );
            row(
                &mut o,
                "unacknowledged writes present",
                show(la, |c| c.unacknowledged_present),
                show(lb, |c| c.unacknowledged_present),
                delta(|c| c.unacknowledged_present),
            );
        }
    }
    let passed = |r: &RunReport| {
        format!(
            "{} of {}",
            r.assertions.iter().filter(|x| x.passed).count(),
            r.assertions.len()
        )
    };
    row(
        &mut o,
        "assertions held",
        passed(a),
        passed(b),
        String::new(),
    );

    if a.faults.len() != b.faults.len() {
        let _ = writeln!(
            o,
            "\nThe runs injected different numbers of faults ({} and {}); faults are paired by order.",
            a.faults.len(),
            b.faults.len()
        );
    }
    let mut diffs = Vec::new();
    for (k, va) in &a.meta.settings {
        match b.meta.settings.get(k) {
            Some(vb) if vb == va => {}
            Some(vb) => diffs.push(format!("- {k}: {va} → {vb}")),
            None => diffs.push(format!("- {k}: {va} → (unset)")),
        }
    }
    for (k, vb) in &b.meta.settings {
        if !a.meta.settings.contains_key(k) {
            diffs.push(format!("- {k}: (unset) → {vb}"));
        }
    }
    if !diffs.is_empty() {
        let _ = writeln!(o, "\nSettings that differ:\n\n{}", diffs.join("\n"));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    #[test]
    fn side_by_side_with_deltas() {
        let a = testdata::report();
        let mut b = testdata::report_with("Faster clients", 0.5, 13_000);
        b.meta
            .settings
            .insert("down-after-milliseconds".into(), "2000".into());
        let md = compare(&a, &b);
        assert!(md.starts_with("# Kill the Sentinel master vs Faster clients"));
        let un = md
            .lines()
            .find(|l| l.contains("F1 kill redis-1: unavailability"))
            .unwrap_or_default();
        assert!(un.contains("| 6.050 s | 3.000 s | -3.050 s |"), "{un}");
        let p50 = md
            .lines()
            .find(|l| l.starts_with("| latency p50"))
            .unwrap_or_default();
        assert!(
            p50.contains("| -"),
            "half the latency must show as a decrease: {p50}"
        );
        assert!(md.contains("- down-after-milliseconds: 5000 → 2000"));
        let det = md
            .lines()
            .find(|l| l.contains("F1 kill redis-1: detection"))
            .unwrap_or_default();
        assert!(det.contains("±0.000 s (within resolution)"), "{det}");
    }
}
