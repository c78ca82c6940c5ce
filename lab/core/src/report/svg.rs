//! A self-contained SVG chart: throughput (ok ops/s and errors/s) and latency (p99, p50; log
//! scale) per bucket on two stacked panels sharing the time axis, with faults (red), key events
//! (grey), healing (green) and client-visible outages (shaded). Hand-written SVG: no fonts,
//! scripts or external references, so it renders the same in a browser, a CI artifact viewer or
//! rsvg-convert.

use std::fmt::Write;
use std::time::Duration;

use super::fmt as f;
use super::junit::xml_escape as esc;
use super::RunReport;
use crate::measure::{
    BucketSummary, ContainerAction, EventKind, FailFlag, Role, SentinelEvent, Unavailability,
};

const W: f64 = 1000.0;
const ML: f64 = 80.0;
const MR: f64 = 24.0;
const PLOT_W: f64 = W - ML - MR;
const LANES: usize = 5;
const LANE_H: f64 = 15.0;
const LANE_BOTTOM: f64 = 126.0;
const P1_TOP: f64 = 132.0;
const P_H: f64 = 190.0;
const P2_TOP: f64 = P1_TOP + P_H + 24.0;
const P2_BOTTOM: f64 = P2_TOP + P_H;
const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";
/// Average advance of a character at 11 px in the fonts above; used to keep labels apart.
const CHAR_W: f64 = 6.4;

const C_OPS: &str = "#1f77b4";
const C_ERR: &str = "#e6550d";
const C_P99: &str = "#6a3d9a";
const C_P50: &str = "#9e9ac8";
const C_FAULT: &str = "#d62728";
const C_HEAL: &str = "#2ca02c";
const C_EVENT: &str = "#666666";
const C_GRID: &str = "#e5e5e5";
const C_AXIS: &str = "#333333";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkKind {
    Fault,
    Healed,
    Event,
}

#[derive(Debug, Clone)]
struct Marker {
    at: Duration,
    label: String,
    kind: MarkKind,
    /// What the event is regardless of node ("link up"), to fold bursts into one marker.
    family: String,
    /// Events folded into this marker, and when the latest of them happened.
    count: usize,
    last_at: Duration,
}

/// The events worth a vertical line: the first of each kind after each fault. Three Sentinels
/// announcing the same +switch-master make one marker, not three, and a burst of the same
/// event on many nodes within `fold` makes one marker "node-0 link up +13".
fn markers(r: &RunReport, fold: Duration) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut last_fault: Option<(Duration, &str)> = None;
    for e in &r.timeline {
        let label = match &e.kind {
            EventKind::Fault { target, .. } => {
                seen.clear();
                last_fault = Some((e.at, target.as_str()));
                out.push(Marker {
                    at: e.at,
                    label: e.kind.label(),
                    kind: MarkKind::Fault,
                    family: String::new(),
                    count: 1,
                    last_at: e.at,
                });
                continue;
            }
            EventKind::FaultHealed { id, .. } => {
                out.push(Marker {
                    at: e.at,
                    label: format!("F{id} healed"),
                    kind: MarkKind::Healed,
                    family: String::new(),
                    count: 1,
                    last_at: e.at,
                });
                continue;
            }
            EventKind::Sentinel { event, .. } => match event {
                SentinelEvent::Sdown
                | SentinelEvent::MinusSdown
                | SentinelEvent::Odown
                | SentinelEvent::PromotedSlave
                | SentinelEvent::SwitchMaster
                | SentinelEvent::ConvertToSlave => Some(event.to_string()),
                _ => None,
            },
            EventKind::RoleChange {
                node,
                to: Role::Master,
                ..
            } => Some(format!("{node} → master")),
            EventKind::RoleChange { .. } => None,
            EventKind::ClusterState { state, .. } => Some(format!("cluster {state}")),
            EventKind::NodeFailFlag {
                node,
                flag: FailFlag::Fail,
                ..
            } => Some(format!("{node} FAIL")),
            EventKind::NodeFailFlag { .. } => None,
            EventKind::Container { node, action } => {
                // The engine's echo of the fault itself adds nothing.
                let echo = matches!(
                    action,
                    ContainerAction::Die
                        | ContainerAction::Kill
                        | ContainerAction::Stop
                        | ContainerAction::Pause
                ) && last_fault.is_some_and(|(at, target)| {
                    target == node && e.at.saturating_sub(at) < Duration::from_millis(500)
                });
                (!echo).then(|| format!("{action} {node}"))
            }
            EventKind::ReplicaLink { node, up } => {
                Some(format!("{node} link {}", if *up { "up" } else { "down" }))
            }
            EventKind::Note { .. } => None,
        };
        let Some(label) = label else { continue };
        if seen.contains(&label) {
            continue;
        }
        seen.push(label.clone());
        let family = family(&e.kind);
        if let Some(last) = out.last_mut() {
            if last.kind == MarkKind::Event
                && last.family == family
                && e.at.saturating_sub(last.last_at) <= fold
            {
                last.count += 1;
                last.last_at = e.at;
                let first = last.label.split(" +").next().unwrap_or("").to_string();
                last.label = format!("{first} +{}", last.count - 1);
                continue;
            }
        }
        out.push(Marker {
            at: e.at,
            label,
            kind: MarkKind::Event,
            family,
            count: 1,
            last_at: e.at,
        });
    }
    out
}

/// The event without its node, e.g. "link up" or "cluster fail".
fn family(kind: &EventKind) -> String {
    match kind {
        EventKind::Sentinel { event, .. } => event.to_string(),
        EventKind::RoleChange { to, .. } => format!("-> {to}"),
        EventKind::ClusterState { state, .. } => format!("cluster {state}"),
        EventKind::NodeFailFlag { flag, .. } => flag.to_string(),
        EventKind::Container { action, .. } => action.to_string(),
        EventKind::ReplicaLink { up, .. } => format!("link {up}"),
        other => other.label(),
    }
}

/// Where a marker's label ended up.
struct Placed {
    /// The marker's position on the time axis.
    x: f64,
    /// Left edge of the label; away from `x` when the label had to move aside.
    label_x: f64,
    lane: Option<usize>,
    text: String,
    kind: MarkKind,
}

impl Placed {
    fn shifted(&self) -> bool {
        (self.label_x - (self.x + 3.0)).abs() > 0.5
    }
}

fn label_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W + 2.0
}

/// Packs labels into lanes above the plot so that none overlaps another. Faults get first pick;
/// then events in time order. A label goes right of its line when there is room, else moves
/// right (at most `MAX_SHIFT`) in whichever lane needs the least move, and a leader line joins
/// it to its marker. A label that fits nowhere becomes a number explained under the chart.
fn place(marks: &[Marker], x_of: impl Fn(Duration) -> f64) -> (Vec<Placed>, Vec<String>) {
    const GAP: f64 = 10.0;
    const MAX_SHIFT: f64 = 160.0;
    const RIGHT: f64 = W - 4.0;
    let mut lanes: Vec<Vec<(f64, f64)>> = vec![Vec::new(); LANES];
    let mut placed = Vec::new();
    let mut footnotes = Vec::new();
    let fit = |x: f64, text: &str, lanes: &mut Vec<Vec<(f64, f64)>>| -> Option<(usize, f64)> {
        let w = label_width(text);
        let want = (x + 3.0).min(RIGHT - w);
        let mut best: Option<(usize, f64)> = None;
        for (i, lane) in lanes.iter().enumerate() {
            let mut s = want;
            for &(a, b) in lane {
                if s + w + GAP <= a {
                    break;
                }
                if b + GAP > s {
                    s = b + GAP;
                }
            }
            let ok = s + w <= RIGHT && s - want <= MAX_SHIFT;
            if ok && best.is_none_or(|(_, bs)| s < bs) {
                best = Some((i, s));
            }
        }
        let (i, s) = best?;
        let lane = &mut lanes[i];
        let pos = lane.partition_point(|&(a, _)| a < s);
        lane.insert(pos, (s, s + w));
        Some((i, s))
    };
    let mut order: Vec<&Marker> = marks.iter().filter(|m| m.kind == MarkKind::Fault).collect();
    let mut rest: Vec<&Marker> = marks.iter().filter(|m| m.kind != MarkKind::Fault).collect();
    rest.sort_by_key(|m| m.at);
    order.extend(rest);
    for m in order {
        let x = x_of(m.at);
        let (lane, label_x, text) = match fit(x, &m.label, &mut lanes) {
            Some((lane, lx)) => (Some(lane), lx, m.label.clone()),
            None => {
                let n = footnotes.len() + 1;
                footnotes.push(format!("[{n}] {} at {}", m.label, f::at(m.at)));
                let short = format!("[{n}]");
                match fit(x, &short, &mut lanes) {
                    Some((lane, lx)) => (Some(lane), lx, short),
                    None => (None, x + 3.0, short),
                }
            }
        };
        placed.push(Placed {
            x,
            label_x,
            lane,
            text,
            kind: m.kind,
        });
    }
    (placed, footnotes)
}

/// 1-2-5 steps giving at most `max_ticks` intervals up to `max`.
fn nice_step(max: f64, max_ticks: f64) -> f64 {
    let raw = (max / max_ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

fn time_step(t_max: f64) -> f64 {
    [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
        1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| t_max / s <= 14.0)
    .unwrap_or(7200.0)
}

fn si(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if v >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if v >= 1e3 {
        format!("{}k", trim(format!("{:.2}", v / 1e3)))
    } else {
        trim(format!("{v:.2}"))
    }
}

/// Splits a "a · b · c" line at its separators so that no piece is longer than `max` chars;
/// the flag marks continuation lines, which are indented.
fn wrap(line: &str, max: usize) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut cur = String::new();
    for (i, part) in line.split(" · ").enumerate() {
        let sep = if i == 0 { "" } else { " · " };
        if !cur.is_empty() && cur.chars().count() + sep.len() + part.chars().count() > max {
            out.push((!out.is_empty(), std::mem::take(&mut cur)));
            cur.push_str(part);
        } else {
            cur.push_str(sep);
            cur.push_str(part);
        }
    }
    out.push((!out.is_empty(), cur));
    out
}

fn decade_label(us: f64) -> String {
    f::res(Duration::from_micros(us.round() as u64))
}

/// Folds every `group` consecutive buckets into one: rates averaged over the time covered,
/// p99 the worst of the group (a chart must not hide a spike), p50 the mean of those with data.
fn condense(buckets: &[BucketSummary], group: usize) -> Vec<BucketSummary> {
    if group <= 1 {
        return buckets.to_vec();
    }
    buckets
        .chunks(group)
        .map(|c| {
            let width_ms: u64 = c.iter().map(|b| b.width_ms).sum();
            let w = width_ms.max(1) as f64;
            let rate = |get: fn(&BucketSummary) -> f64| {
                c.iter().map(|b| get(b) * b.width_ms as f64).sum::<f64>() / w
            };
            let p50s: Vec<u64> = c.iter().filter_map(|b| b.p50_us).collect();
            let mut out = c[0].clone();
            out.width_ms = width_ms;
            out.ops_per_s = rate(|b| b.ops_per_s);
            out.errors_per_s = rate(|b| b.errors_per_s);
            out.p99_us = c.iter().filter_map(|b| b.p99_us).max();
            out.p50_us = (!p50s.is_empty()).then(|| p50s.iter().sum::<u64>() / p50s.len() as u64);
            out
        })
        .collect()
}

/// A step line over the buckets: flat across each bucket, broken where `value` is `None`.
fn step_path(
    buckets: &[BucketSummary],
    value: impl Fn(&BucketSummary) -> Option<f64>,
    x_of: &impl Fn(f64) -> f64,
    y_of: impl Fn(f64) -> f64,
) -> String {
    let mut d = String::new();
    let mut pen = false;
    for b in buckets {
        let t0 = b.start_ms as f64 / 1000.0;
        let t1 = t0 + b.width_ms as f64 / 1000.0;
        match value(b) {
            Some(v) => {
                let y = y_of(v);
                if pen {
                    let _ = write!(d, "V{y:.1}H{:.1}", x_of(t1));
                } else {
                    let _ = write!(d, "M{:.1} {y:.1}H{:.1}", x_of(t0), x_of(t1));
                    pen = true;
                }
            }
            None => pen = false,
        }
    }
    d
}

fn text(o: &mut String, x: f64, y: f64, size: f64, fill: &str, extra: &str, s: &str) {
    let _ = writeln!(
        o,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" fill="{fill}" {extra}>{}</text>"#,
        esc(s)
    );
}

/// `s` cut to at most `max` characters, with an ellipsis when cut (a long drill description
/// would otherwise run off the right edge; the full text is in the SVG's <title>).
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text that stays readable when a marker line runs behind it.
const HALO: &str =
    r##"stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke""##;

pub fn render(r: &RunReport) -> String {
    let s = &r.summary;
    // More buckets than pixels would draw a scribble: fold them into steps of `group` buckets.
    let group = r.buckets.len().div_ceil(PLOT_W as usize).max(1);
    let condensed = condense(&r.buckets, group);
    let b = &condensed;
    let t_max = s
        .duration
        .as_secs_f64()
        .max(
            b.last()
                .map(|l| (l.start_ms + l.width_ms) as f64 / 1000.0)
                .unwrap_or(0.0),
        )
        .max(0.001);
    let x_of = |t: f64| ML + t / t_max * PLOT_W;
    let x_at = |d: Duration| x_of(d.as_secs_f64());

    // Events closer than 8 px of the same family fold into one marker.
    let fold = Duration::from_secs_f64(t_max * 8.0 / PLOT_W);
    let marks = markers(r, fold);
    let (placed, footnotes) = place(&marks, x_at);
    let fault_lines: Vec<String> = r
        .faults
        .iter()
        .map(|fr| {
            let m = &fr.metrics;
            let (ev, wr) = (m.event_resolution, m.resolution);
            format!(
                "F{} {}: detection {} · promotion {} · unavailability {} · recovery {} · resolution: events {}, writes {}",
                fr.id,
                fr.description,
                f::since_fault(m.detection, ev, "not seen"),
                f::since_fault(m.promotion, ev, "none"),
                f::unavailability(fr),
                f::since_fault(m.recovery, ev, &format!("not {}", f::until(&fr.window_end))),
                f::res(ev),
                f::res(wr)
            )
        })
        .collect();

    let lines: Vec<(bool, String)> = std::iter::once(
        "Operations are placed at their start time (planned send time in open loop); latency \
         is over successful operations and timeouts."
            .to_string(),
    )
    .chain(fault_lines)
    .collect::<Vec<_>>()
    .iter()
    .flat_map(|l| wrap(l, ((W - ML - MR - 16.0) / CHAR_W) as usize))
    .chain(footnotes.into_iter().map(|n| (false, n)))
    .collect();
    let legend_y = P2_BOTTOM + 62.0;
    let notes_top = legend_y + 40.0;
    let height = notes_top + 16.0 * lines.len() as f64 + 8.0;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0}" viewBox="0 0 {W} {height:.0}" font-family="{FONT}">"#
    );
    let _ = writeln!(o, "<title>{}</title>", esc(&r.meta.title));
    let _ = writeln!(
        o,
        r##"<rect x="0" y="0" width="{W}" height="{height:.0}" fill="#ffffff"/>"##
    );
    text(
        &mut o,
        ML,
        24.0,
        16.0,
        "#111",
        r#"font-weight="bold""#,
        &fit(
            &r.meta.title,
            ((W - ML - MR) / (CHAR_W * 16.0 / 11.5 * 1.08)) as usize,
        ),
    );
    let mut sub = format!(
        "{} on {} · started {} · {} buckets",
        r.meta.scenario,
        r.meta.topology,
        r.meta.started_at,
        f::res(s.bucket_width)
    );
    if group > 1 {
        sub.push_str(&format!(
            " · each step {group} buckets: rates averaged, worst p99"
        ));
    }
    text(&mut o, ML, 42.0, 11.5, "#555", "", &sub);

    // Panels: frame and grid.
    // 8% headroom so a steady line does not merge with the frame.
    let ymax_ops = b
        .iter()
        .map(|b| b.ops_per_s.max(b.errors_per_s))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.08;
    let step = nice_step(ymax_ops, 5.0);
    let ymax_ops = (ymax_ops / step).ceil() * step;
    let y_ops = |v: f64| P1_TOP + P_H - v / ymax_ops * P_H;

    let lat_vals = b.iter().flat_map(|b| [b.p50_us, b.p99_us]).flatten();
    let (lo, hi) = lat_vals.fold((u64::MAX, 0u64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (mut dlo, mut dhi) = if hi == 0 {
        (2.0, 4.0)
    } else {
        (
            (lo.max(1) as f64).log10().floor(),
            (hi.max(1) as f64).log10().ceil(),
        )
    };
    if dhi - dlo < 2.0 {
        dlo = (dhi - 2.0).max(0.0);
        dhi = dlo + 2.0;
    }
    let y_lat = |us: f64| P2_BOTTOM - (us.max(1.0).log10() - dlo) / (dhi - dlo) * P_H;

    for (top, title) in [
        (P1_TOP, "operations per second"),
        (P2_TOP, "latency (log scale)"),
    ] {
        let _ = writeln!(
            o,
            r##"<rect x="{ML}" y="{top}" width="{PLOT_W}" height="{P_H}" fill="#fcfcfc" stroke="{C_AXIS}" stroke-width="1"/>"##
        );
        let cy = top + P_H / 2.0;
        text(
            &mut o,
            18.0,
            cy,
            11.5,
            "#333",
            &format!(r#"text-anchor="middle" transform="rotate(-90 18 {cy:.1})""#),
            title,
        );
    }
    let mut v = 0.0;
    while v <= ymax_ops + step / 2.0 {
        let y = y_ops(v);
        let _ = writeln!(
            o,
            r#"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{C_GRID}"/>"#,
            ML + PLOT_W
        );
        text(
            &mut o,
            ML - 6.0,
            y + 4.0,
            10.5,
            "#333",
            r#"text-anchor="end""#,
            &si(v),
        );
        v += step;
    }
    let mut d = dlo;
    while d <= dhi + 0.01 {
        let us = 10f64.powf(d);
        let y = y_lat(us);
        let _ = writeln!(
            o,
            r#"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{C_GRID}"/>"#,
            ML + PLOT_W
        );
        text(
            &mut o,
            ML - 6.0,
            y + 4.0,
            10.5,
            "#333",
            r#"text-anchor="end""#,
            &decade_label(us),
        );
        if d < dhi {
            for m in [2.0, 5.0] {
                let y = y_lat(us * m);
                let _ = writeln!(
                    o,
                    r#"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{C_GRID}" stroke-dasharray="2 3"/>"#,
                    ML + PLOT_W
                );
            }
        }
        d += 1.0;
    }
    let ts = time_step(t_max);
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        let x = x_of(t);
        for (top, bottom) in [(P1_TOP, P1_TOP + P_H), (P2_TOP, P2_BOTTOM)] {
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{C_GRID}"/>"#
            );
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{:.1}" stroke="{C_AXIS}"/>"#,
                bottom + 4.0
            );
        }
        let label = if ts < 1.0 {
            format!("{t:.1}")
        } else {
            format!("{t:.0}")
        };
        text(
            &mut o,
            x,
            P2_BOTTOM + 16.0,
            10.5,
            "#333",
            r#"text-anchor="middle""#,
            &label,
        );
        t += ts;
    }
    text(
        &mut o,
        ML + PLOT_W / 2.0,
        P2_BOTTOM + 34.0,
        11.5,
        "#333",
        r#"text-anchor="middle""#,
        "time since start of run (s)",
    );

    // Outages, behind the data.
    for fr in &r.faults {
        if let Unavailability::Outage(w) = &fr.metrics.unavailability {
            let x0 = x_at(w.start);
            let x1 = x_at(w.end.unwrap_or(w.bound)).max(x0 + 1.0);
            for top in [P1_TOP, P2_TOP] {
                let _ = writeln!(
                    o,
                    r#"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{P_H}" fill="{C_FAULT}" fill-opacity="0.10"/>"#,
                    x1 - x0
                );
            }
            let label = match w.duration() {
                Some(d) => format!("write outage {}", f::secs(d, fr.metrics.resolution)),
                None => format!("write outage, not recovered {}", f::until(&fr.window_end)),
            };
            let anchor_end = x0 + 4.0 + label.chars().count() as f64 * 6.0 > ML + PLOT_W;
            let (x, extra) = if anchor_end {
                (
                    x1 - 4.0,
                    format!(r#"text-anchor="end" font-style="italic" {HALO}"#),
                )
            } else {
                (x0 + 4.0, format!(r#"font-style="italic" {HALO}"#))
            };
            text(&mut o, x, P1_TOP + 13.0, 10.5, C_FAULT, &extra, &label);
        }
    }

    // Data.
    let ops_line = step_path(b, |b| Some(b.ops_per_s), &x_of, y_ops);
    if !ops_line.is_empty() {
        let base = y_ops(0.0);
        let first = b.first().map(|b| b.start_ms as f64 / 1000.0).unwrap_or(0.0);
        let _ = writeln!(
            o,
            r#"<path d="{ops_line}V{base:.1}H{:.1}Z" fill="{C_OPS}" fill-opacity="0.12" stroke="none"/>"#,
            x_of(first)
        );
        let _ = writeln!(
            o,
            r#"<path d="{ops_line}" fill="none" stroke="{C_OPS}" stroke-width="1.4"/>"#
        );
    }
    let err_line = step_path(
        b,
        |b| (b.errors_per_s > 0.0).then_some(b.errors_per_s),
        &x_of,
        y_ops,
    );
    if !err_line.is_empty() {
        let _ = writeln!(
            o,
            r#"<path d="{err_line}" fill="none" stroke="{C_ERR}" stroke-width="1.4"/>"#
        );
    }
    let p50 = step_path(b, |b| b.p50_us.map(|v| v as f64), &x_of, y_lat);
    let _ = writeln!(
        o,
        r#"<path d="{p50}" fill="none" stroke="{C_P50}" stroke-width="1.2" stroke-dasharray="4 2"/>"#
    );
    let p99 = step_path(b, |b| b.p99_us.map(|v| v as f64), &x_of, y_lat);
    let _ = writeln!(
        o,
        r#"<path d="{p99}" fill="none" stroke="{C_P99}" stroke-width="1.5"/>"#
    );
    if b.is_empty() {
        text(
            &mut o,
            ML + PLOT_W / 2.0,
            P1_TOP + P_H / 2.0,
            13.0,
            "#999",
            r#"text-anchor="middle""#,
            "no operations recorded",
        );
    }

    // Markers, over the data, labels in lanes above the top panel.
    let mut labels = Vec::new();
    for p in &placed {
        let (color, dash, width, weight) = match p.kind {
            MarkKind::Fault => (C_FAULT, "", 1.6, r#"font-weight="bold""#),
            MarkKind::Healed => (C_HEAL, r#"stroke-dasharray="5 3""#, 1.3, ""),
            MarkKind::Event => (C_EVENT, r#"stroke-dasharray="3 3""#, 1.0, ""),
        };
        let Some(lane) = p.lane else {
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{P1_TOP}" x2="{x:.1}" y2="{P2_BOTTOM}" stroke="{color}" stroke-width="{width}" {dash}/>"#,
                x = p.x
            );
            continue;
        };
        let label_y = LANE_BOTTOM - lane as f64 * LANE_H;
        if p.shifted() {
            // Line through the panels, and a thin leader from the panel top to the label.
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{P1_TOP}" x2="{x:.1}" y2="{P2_BOTTOM}" stroke="{color}" stroke-width="{width}" {dash}/>"#,
                x = p.x
            );
            let _ = writeln!(
                o,
                r#"<polyline points="{x:.1},{P1_TOP} {x:.1},{:.1} {lx:.1},{:.1}" fill="none" stroke="{color}" stroke-width="0.8"/>"#,
                P1_TOP - 3.0,
                label_y + 3.0,
                x = p.x,
                lx =
                    p.x.clamp(p.label_x - 1.0, p.label_x + label_width(&p.text) + 1.0),
            );
        } else {
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{P2_BOTTOM}" stroke="{color}" stroke-width="{width}" {dash}/>"#,
                label_y - 9.0,
                x = p.x
            );
        }
        labels.push((p.label_x, label_y, color, weight, p.text.as_str()));
    }
    // Labels last, each on a white ground, so lines of other markers pass behind them.
    for (x, y, color, weight, label) in labels {
        let _ = writeln!(
            o,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="13" fill="#ffffff" fill-opacity="0.9"/>"##,
            x - 1.0,
            y - 10.5,
            label_width(label) + 1.0
        );
        text(&mut o, x, y, 11.0, color, weight, label);
    }

    // Legend, wrapped to the width.
    let items: [(&str, &str, &str); 8] = [
        (C_OPS, "", "ok ops/s"),
        (C_ERR, "", "errors + timeouts /s"),
        (C_P99, "", "p99 latency"),
        (C_P50, "4 2", "p50 latency"),
        (C_FAULT, "", "fault"),
        (C_HEAL, "5 3", "fault healed"),
        (C_EVENT, "3 3", "event"),
        (C_FAULT, "box", "client-visible write outage"),
    ];
    let mut x = ML;
    let mut y = legend_y;
    for (color, dash, label) in items {
        let w = 28.0 + label.chars().count() as f64 * CHAR_W + 18.0;
        if x + w > W - MR {
            x = ML;
            y += 18.0;
        }
        if dash == "box" {
            let _ = writeln!(
                o,
                r#"<rect x="{x:.1}" y="{:.1}" width="22" height="10" fill="{color}" fill-opacity="0.15"/>"#,
                y - 8.0
            );
        } else {
            let _ = writeln!(
                o,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2" stroke-dasharray="{}"/>"#,
                y - 3.0,
                x + 22.0,
                y - 3.0,
                if dash.is_empty() { "none" } else { dash }
            );
        }
        text(&mut o, x + 28.0, y + 1.0, 11.0, "#333", "", label);
        x += w;
    }

    let mut y = notes_top;
    for (indent, line) in &lines {
        let x = if *indent { ML + 16.0 } else { ML };
        text(&mut o, x, y, 11.0, "#333", "", line);
        y += 16.0;
    }
    let _ = writeln!(o, "</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    #[test]
    fn chart_has_panels_markers_and_outage() {
        let svg = testdata::report().to_svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">F1 kill redis-1</text>"));
        assert!(svg.contains(">+switch-master</text>") || svg.contains("+switch-master at"));
        assert_eq!(
            svg.matches(">+switch-master").count(),
            1,
            "one marker for three sentinels"
        );
        assert!(svg.contains("write outage 6.050 s"));
        assert!(svg.contains("time since start of run (s)"));
        // No echo marker for the kill's own "die".
        assert!(!svg.contains(">die redis-1<"));
        // Nothing unescaped slipped in.
        assert!(!svg.contains("<&"));
    }

    #[test]
    fn a_long_title_is_cut_to_the_chart_width_and_kept_whole_in_the_tooltip() {
        let mut r = testdata::report();
        r.meta.title = "word ".repeat(60).trim_end().to_string();
        let svg = r.to_svg();
        let shown = svg
            .lines()
            .find(|l| l.contains(r#"font-weight="bold""#) && l.contains("word"))
            .expect("title line");
        let text = shown
            .split('>')
            .nth(1)
            .expect("text")
            .trim_end_matches("</text");
        assert!(text.ends_with('…'), "{text}");
        // 16 px bold is at most ~9.6 px per character: the cut text fits W - ML - MR.
        assert!(text.chars().count() as f64 * 9.6 <= W - ML - MR, "{text}");
        assert!(svg.contains(&format!("<title>{}</title>", r.meta.title)));
        assert_eq!(fit("short", 10), "short");
    }

    #[test]
    fn labels_do_not_overlap() {
        let r = testdata::report();
        let t_max = r.summary.duration.as_secs_f64();
        let x_of = |d: Duration| ML + d.as_secs_f64() / t_max * PLOT_W;
        let (placed, _) = place(&markers(&r, Duration::from_millis(100)), x_of);
        let boxes: Vec<(usize, f64, f64)> = placed
            .iter()
            .filter_map(|p| {
                let w = label_width(&p.text);
                p.lane.map(|lane| (lane, p.label_x, p.label_x + w))
            })
            .collect();
        assert_eq!(boxes.len(), placed.len(), "every marker got a label");
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(a.0 != b.0 || a.2 < b.1 || b.2 < a.1, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn bursts_fold_into_one_marker() {
        let mut r = testdata::report();
        for i in 0..14u64 {
            r.timeline.push(crate::measure::Event::new(
                Duration::from_millis(33_000 + i * 20),
                EventKind::ReplicaLink {
                    node: format!("node-{i}"),
                    up: true,
                },
            ));
        }
        let m = markers(&r, Duration::from_millis(300));
        let burst: Vec<&Marker> = m.iter().filter(|m| m.label.starts_with("node-")).collect();
        assert_eq!(burst.len(), 1);
        assert_eq!(burst[0].label, "node-0 link up +13");
        assert!(r.to_svg().contains(">node-0 link up +13</text>"));
    }

    #[test]
    fn long_runs_are_condensed_without_hiding_spikes() {
        let mut r = testdata::report();
        let one = r.buckets[0].clone();
        r.buckets = (0..6000u64)
            .map(|i| BucketSummary {
                start_ms: i * 100,
                p99_us: Some(if i == 4321 { 2_000_000 } else { 500 }),
                ..one.clone()
            })
            .collect();
        let c = condense(&r.buckets, 7);
        assert_eq!(c.len(), 858);
        assert_eq!(c[4321 / 7].p99_us, Some(2_000_000));
        assert_eq!(c[0].width_ms, 700);
        assert!((c[0].ops_per_s - one.ops_per_s).abs() < 1e-9);
        let svg = r.to_svg();
        assert!(svg.contains("each step 7 buckets"));
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
    }

    #[test]
    fn empty_run_still_renders() {
        let mut r = testdata::report();
        r.buckets.clear();
        r.timeline.clear();
        r.faults.clear();
        let svg = r.to_svg();
        assert!(svg.contains("no operations recorded"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
