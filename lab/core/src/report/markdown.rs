//! The Markdown summary: what a person reads first. Every time figure carries its resolution.

use std::fmt::Write;

use super::fmt::{self as f, by_how_much};
use super::RunReport;
use crate::measure::{IdRange, RunSummary};

/// Lost-write ranges shown before "... and N more".
const MAX_RANGES: usize = 10;

/// Markdown table cells must not contain raw pipes or newlines.
pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn latency_line(s: &RunSummary) -> String {
    format!(
        "{} / {} / {} / {} / {}",
        f::opt_us(s.p50_us),
        f::opt_us(s.p90_us),
        f::opt_us(s.p99_us),
        f::opt_us(s.p999_us),
        f::opt_us(s.max_us)
    )
}

fn ranges(list: &[IdRange], with_times: bool) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .take(MAX_RANGES)
        .map(|r| {
            let mut s = r.to_string();
            if r.count() > 1 {
                s.push_str(&format!(" ({})", f::int(r.count())));
            }
            match (with_times, r.acked_from, r.acked_to) {
                (true, Some(a), Some(b)) if a == b => {
                    s.push_str(&format!(", acked at {:.3} s", a.as_secs_f64()))
                }
                (true, Some(a), Some(b)) => s.push_str(&format!(
                    ", acked {:.3}–{:.3} s",
                    a.as_secs_f64(),
                    b.as_secs_f64()
                )),
                _ => {}
            }
            s
        })
        .collect();
    if list.len() > MAX_RANGES {
        let rest = &list[MAX_RANGES..];
        let ids: u64 = rest.iter().map(IdRange::count).sum();
        parts.push(format!(
            "… and {} more ranges ({} ids) in the JSON report",
            f::int(rest.len() as u64),
            f::int(ids)
        ));
    }
    parts.join("; ")
}

pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let m = &r.meta;
    let s = &r.summary;
    let _ = writeln!(o, "# {}\n", m.title);
    let _ = writeln!(
        o,
        "Scenario `{}` on topology `{}` · profile `{}` · engine {} · started {}\n",
        m.scenario, m.topology, m.profile, m.engine, m.started_at
    );
    if !r.assertions.is_empty() {
        let passed = r.assertions.iter().filter(|a| a.passed).count();
        let verdict = if r.passed() { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            o,
            "**{verdict}**: {passed} of {} assertions held.\n",
            r.assertions.len()
        );
    }

    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(o, "| metric | value |\n| --- | --- |");
    let _ = writeln!(
        o,
        "| duration | {} (buckets of {}) |",
        f::secs(s.duration, s.bucket_width),
        f::res(s.bucket_width)
    );
    let _ = writeln!(
        o,
        "| throughput | {} ok ops/s (mean over the run) |",
        f::rate(s.ops_per_s)
    );
    let _ = writeln!(
        o,
        "| operations | {} ok · {} errors · {} timeouts |",
        f::int(s.ok),
        f::int(s.errors),
        f::int(s.timeouts)
    );
    let _ = writeln!(
        o,
        "| write availability | {} ({} of {} writes succeeded) |",
        f::pct(s.write_availability_pct),
        f::int(s.writes.ok),
        f::int(s.writes.attempted())
    );
    let _ = writeln!(
        o,
        "| read availability | {} ({} of {} reads succeeded) |",
        f::pct(s.read_availability_pct),
        f::int(s.reads.ok),
        f::int(s.reads.attempted())
    );
    let _ = writeln!(
        o,
        "| latency p50 / p90 / p99 / p99.9 / max | {} |",
        latency_line(s)
    );
    if let Some(lw) = &r.lost_writes {
        let _ = writeln!(
            o,
            "| lost writes | {} of {} acknowledged ({}) · {} unacknowledged but present |",
            f::int(lw.counts.acknowledged_missing),
            f::int(lw.counts.acknowledged),
            f::pct(lw.lost_pct()),
            f::int(lw.counts.unacknowledged_present)
        );
    }
    let _ = writeln!(
        o,
        "\nLatency: hdrhistogram, 1 µs to 60 s, 3 significant digits (±0.1%), over successful \
         operations and timeouts; fast errors are counted, not timed. {} latency values from {} \
         timed operations.",
        f::int(s.latency_samples),
        f::int(s.ok + s.timeouts)
    );
    if s.corrected_ops > 0 {
        let _ = writeln!(
            o,
            "Coordinated omission: {} operations recorded closed-loop with correction \
             (synthetic samples fill the sends a stalled client could not make).",
            f::int(s.corrected_ops)
        );
    }
    if s.saturated > 0 {
        let _ = writeln!(
            o,
            "{} latencies above 60 s were clamped to 60 s.",
            f::int(s.saturated)
        );
    }

    if !r.faults.is_empty() {
        let _ = writeln!(o, "\n## Faults\n");
        let _ = writeln!(
            o,
            "Times are measured from the fault. Resolution: events as stamped on arrival; \
             client-side figures no finer than the write interval or bucket width.\n"
        );
        let _ = writeln!(
            o,
            "| fault | at | detection | promotion | client-visible unavailability | recovery to full redundancy | resolution |"
        );
        let _ = writeln!(o, "| --- | --- | --- | --- | --- | --- | --- |");
        for fault in &r.faults {
            let mt = &fault.metrics;
            let ev = mt.event_resolution;
            let _ = writeln!(
                o,
                "| F{} {} | {} | {} | {} | {} | {} | events {}, writes {} |",
                fault.id,
                cell(&fault.description),
                f::secs(fault.at, ev),
                f::since_fault(mt.detection, ev, "not seen"),
                f::since_fault(mt.promotion, ev, "none"),
                cell(&f::unavailability(fault)),
                f::since_fault(
                    mt.recovery,
                    ev,
                    &format!("not {}", f::until(&fault.window_end))
                ),
                f::res(ev),
                f::res(mt.resolution)
            );
        }
        let notes: Vec<String> = r
            .faults
            .iter()
            .flat_map(|fault| {
                fault
                    .metrics
                    .notes
                    .iter()
                    .map(move |n| format!("- F{}: {n}", fault.id))
            })
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(o, "\n{}", notes.join("\n"));
        }
        let sus = &r.analysis.sustain;
        let _ = writeln!(
            o,
            "\nAn outage ends at the first write of a run of at least {} successful writes \
             spanning at least {} with no failure; shorter runs count as flapping inside the \
             outage. Definitions: docs/metrics.md.",
            sus.min_successes,
            f::res(sus.span)
        );
    }

    if !r.assertions.is_empty() {
        let _ = writeln!(o, "\n## Assertions\n");
        let _ = writeln!(
            o,
            "| result | assertion | actual | expected | by how much |\n| --- | --- | --- | --- | --- |"
        );
        for a in &r.assertions {
            let by = by_how_much(&a.actual, &a.expected).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                o,
                "| {} | `{}` | {} | {} | {} |",
                if a.passed { "✅ pass" } else { "❌ FAIL" },
                cell(&a.expr),
                cell(&a.actual),
                cell(&a.expected),
                by
            );
        }
        let failed: Vec<String> = r
            .assertions
            .iter()
            .filter(|a| !a.passed && !a.message.is_empty())
            .map(|a| format!("- `{}`: {}", cell(&a.expr), a.message))
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(o, "\n{}", failed.join("\n"));
        }
    }

    if let Some(lw) = &r.lost_writes {
        let _ = writeln!(o, "\n## Lost writes\n");
        let c = &lw.counts;
        let _ = writeln!(
            o,
            "- Acknowledged but missing after recovery: **{}** of {} ({}){}",
            f::int(c.acknowledged_missing),
            f::int(c.acknowledged),
            f::pct(lw.lost_pct()),
            if lw.acknowledged_missing.is_empty() {
                String::new()
            } else {
                format!(": {}", ranges(&lw.acknowledged_missing, true))
            }
        );
        let _ = writeln!(
            o,
            "- Not acknowledged (error or timeout) but present anyway: **{}** of {}{}",
            f::int(c.unacknowledged_present),
            f::int(c.unacknowledged),
            if lw.unacknowledged_present.is_empty() {
                String::new()
            } else {
                format!(": {}", ranges(&lw.unacknowledged_present, false))
            }
        );
        if c.unknown_present > 0 {
            let _ = writeln!(
                o,
                "- Present but never written by this run: {}",
                f::int(c.unknown_present)
            );
        }
    }

    if !s.nodes.is_empty() {
        let _ = writeln!(o, "\n## Nodes\n");
        let _ = writeln!(
            o,
            "| node | ok | errors | timeouts | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- | --- |"
        );
        for n in &s.nodes {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&n.node),
                f::int(n.counts.ok),
                f::int(n.counts.errors),
                f::int(n.counts.timeouts),
                f::opt_us(n.p50_us),
                f::opt_us(n.p99_us),
                f::opt_us(n.max_us)
            );
        }
    }

    if !m.settings.is_empty() || !m.host_notes.is_empty() {
        let _ = writeln!(o, "\n## Settings and host\n");
        for (k, v) in &m.settings {
            let _ = writeln!(o, "- {k}: {v}");
        }
        for n in &m.host_notes {
            let _ = writeln!(o, "- {n}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::testdata;

    #[test]
    fn names_the_failing_assertion_and_by_how_much() {
        let r = testdata::report();
        let md = r.to_markdown();
        assert!(md.contains("**FAILED**: 1 of 3 assertions held."), "{md}");
        let line = md
            .lines()
            .find(|l| l.contains("failover.unavailability < 5s"))
            .unwrap_or_default();
        assert!(line.contains("❌ FAIL"), "{line}");
        // Outage 10.000 -> 16.050 s: 6.05 s against < 5 s.
        assert!(
            line.contains("| 6.050 s | < 5 s | over by 1.05 s (+21%) |"),
            "{line}"
        );
        let lost = md
            .lines()
            .find(|l| l.contains("lost_writes.acknowledged == 0"))
            .unwrap_or_default();
        assert!(lost.contains("over by 53"), "{lost}");
    }

    #[test]
    fn fault_table_carries_resolution_and_figures() {
        let md = testdata::report().to_markdown();
        let f1 = md
            .lines()
            .find(|l| l.starts_with("| F1 kill redis-1"))
            .unwrap_or_default();
        // Detection at 15.010 s, promotion (role change) at 15.170 s, link up at 22.300 s.
        assert!(f1.contains("| 5.010 s | 5.170 s |"), "{f1}");
        assert!(f1.contains("6.050 s (10.000–16.050 s), flapped 1×"), "{f1}");
        assert!(
            f1.contains("| 12.300 s | events 1 ms, writes 1 ms |"),
            "{f1}"
        );
        let f2 = md
            .lines()
            .find(|l| l.starts_with("| F2 pause sentinel-1"))
            .unwrap_or_default();
        assert!(f2.contains("none (0 of"), "{f2}");
        assert!(md.contains("at least 10 successful writes spanning at least 1 s"));
    }

    #[test]
    fn lost_write_ranges_are_listed_and_truncated() {
        let mut r = testdata::report();
        let md = r.to_markdown();
        assert!(md.contains("4321, acked at 4.320 s"), "{md}");
        assert!(md.contains("9950-10000 (51), acked"), "{md}");
        let lw = r
            .lost_writes
            .as_mut()
            .expect("synthetic run has lost writes");
        lw.acknowledged_missing = (0..25u64)
            .map(|i| crate::measure::IdRange {
                first: i * 10,
                last: i * 10 + 2,
                acked_from: None,
                acked_to: None,
            })
            .collect();
        let md = r.to_markdown();
        assert!(md.contains("… and 15 more ranges (45 ids)"), "{md}");
        assert!(!md.contains("240-242"));
    }
}
