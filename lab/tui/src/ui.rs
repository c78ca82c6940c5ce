//! Drawing: one function per panel, each a pure function of the snapshot and the UI state.
//! Colours are the terminal's own named colours plus bold/reverse, never a fixed background,
//! so the screen reads the same on light and dark themes; nothing relies on colour alone
//! (states are also words or marks). Laid out to fit 80x24.

use std::time::Duration;

use lab_core::live::{
    FaultState, FaultView, Level, NodeState, NodeView, Phase, Snapshot, CHART_SPAN,
};
use lab_core::measure::{Event, EventKind, Role, Unavailability};
use lab_core::topology::Role as NodeKind;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Clear, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{active_faults, display_order, App, Overlay, KEYS};

const GOOD: Color = Color::Green;
const BAD: Color = Color::Red;
const WARN: Color = Color::Yellow;

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App, snap: &Snapshot) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(10),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let left_w = 38.min(f.area().width / 2).max(24);
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_w), Constraint::Min(30)]).areas(body);
    let [thr, lat, faults, timeline] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Min(4),
        Constraint::Min(4),
    ])
    .areas(right);
    draw_header(f, header, snap);
    draw_topology(f, left, app, snap);
    draw_throughput(f, thr, snap);
    draw_latency(f, lat, snap);
    draw_faults(f, faults, snap);
    draw_timeline(f, timeline, snap);
    draw_footer(f, footer, snap);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => draw_help(f),
        Overlay::Drill { input } => draw_prompt(
            f,
            " run a drill ",
            &[
                "Drill file (Enter runs it, Esc cancels):".into(),
                format!("> {input}_"),
                "The session's own load pauses while it runs.".into(),
            ],
        ),
        Overlay::QuitHeal => draw_prompt(
            f,
            " quit ",
            &[format!(
                "Heal the {} fault(s) this session has in force? [y/n]",
                active_faults(snap)
            )],
        ),
        Overlay::QuitKeep { .. } => draw_prompt(
            f,
            " quit ",
            &[format!(
                "Keep the topology {} running? [y/n]  (Esc: stay)",
                snap.instance
            )],
        ),
        Overlay::Leaving => draw_prompt(f, " quit ", &["Stopping the session...".into()]),
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn secs2(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn block(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(Span::styled(
        title,
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

fn draw_header(f: &mut Frame, area: Rect, snap: &Snapshot) {
    let w = &snap.workload;
    let load = if w.running {
        Span::raw(format!(
            "load {}/s x{}: {:.0} ok/s {:.0} err/s",
            w.params.rate, w.params.clients, w.ops_per_s, w.errors_per_s
        ))
    } else {
        Span::styled("load stopped (w starts it)", Style::new().fg(WARN))
    };
    let line = Line::from(vec![
        Span::styled(
            " lab ",
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ),
        Span::raw(format!(
            " {} ({}) {} t={}  ",
            snap.topology,
            snap.instance,
            snap.engine,
            secs(snap.elapsed)
        )),
        load,
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn role_label(n: &NodeView) -> &'static str {
    // A stopped server has no role; the last one it reported would mislead.
    let role = match n.state {
        NodeState::Down | NodeState::Missing => None,
        _ => n.role,
    };
    match (n.kind, role) {
        (NodeKind::Sentinel, _) => "sentinel",
        (NodeKind::Exporter, _) => "exporter",
        (NodeKind::Service, _) => "service",
        (_, Some(Role::Master)) => "master",
        (_, Some(Role::Replica)) => "replica",
        (NodeKind::Master | NodeKind::Replica | NodeKind::ClusterNode, _) => "-",
    }
}

fn state_style(s: NodeState) -> Style {
    match s {
        NodeState::Up => Style::new().fg(GOOD),
        NodeState::Unhealthy | NodeState::Paused => Style::new().fg(WARN),
        NodeState::Down | NodeState::Missing => Style::new().fg(BAD).add_modifier(Modifier::BOLD),
        NodeState::Unknown => Style::new(),
    }
}

fn draw_topology(f: &mut Frame, area: Rect, app: &App, snap: &Snapshot) {
    let order = display_order(snap);
    let selected = app.selected.min(order.len().saturating_sub(1));
    let mut lines = vec![];
    let mut last_group: Option<Option<&str>> = None;
    for (pos, &i) in order.iter().enumerate() {
        let n = &snap.nodes[i];
        let g = n.group.as_deref();
        if last_group != Some(g) {
            let title = match g {
                Some(g) => g.to_string(),
                None => "other".to_string(),
            };
            lines.push(Line::from(Span::styled(
                title,
                Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            )));
            last_group = Some(g);
        }
        let (role, role_style) = match (role_label(n), n.link_up) {
            (r, Some(false)) => (format!("{r}!"), Style::new().fg(BAD)),
            (r, _) => (r.to_string(), Style::new()),
        };
        let mark = match n.fault {
            Some(id) => Span::styled(
                format!(" F{id}!"),
                Style::new().fg(BAD).add_modifier(Modifier::BOLD),
            ),
            None => Span::raw(""),
        };
        let sel = pos == selected;
        let mut spans = vec![
            Span::raw(if sel { ">" } else { " " }),
            Span::raw(format!("{:<11}", truncate(&n.name, 10))),
            Span::styled(format!("{role:<9}"), role_style),
            Span::styled(format!("{:<5}", n.state.label()), state_style(n.state)),
            Span::raw(n.port.map_or(String::new(), |p| format!("{p:>6}"))),
            mark,
        ];
        if sel {
            for s in &mut spans {
                s.style = s.style.add_modifier(Modifier::REVERSED);
            }
        }
        lines.push(Line::from(spans));
    }
    f.render_widget(Paragraph::new(lines).block(block(" topology ")), area);
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['~']).collect()
    }
}

/// X bounds of the charts: the last [`CHART_SPAN`] ending now.
fn x_bounds(snap: &Snapshot) -> [f64; 2] {
    let end = snap.elapsed.as_secs_f64();
    [(end - CHART_SPAN.as_secs_f64()).max(0.0), end.max(1.0)]
}

fn draw_throughput(f: &mut Frame, area: Rect, snap: &Snapshot) {
    let ok: Vec<(f64, f64)> = snap
        .chart
        .iter()
        .map(|p| (p.at.as_secs_f64(), p.ops_per_s))
        .collect();
    let err: Vec<(f64, f64)> = snap
        .chart
        .iter()
        .map(|p| (p.at.as_secs_f64(), p.errors_per_s))
        .collect();
    let max = ok.iter().chain(&err).map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let title = format!(
        " ops/s: ok {:.0}, errors {:.0} ",
        snap.workload.ops_per_s, snap.workload.errors_per_s
    );
    let chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(GOOD))
            .data(&ok),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(BAD))
            .data(&err),
    ])
    .block(block(&title))
    .x_axis(Axis::default().bounds(x_bounds(snap)))
    .y_axis(
        Axis::default()
            .bounds([0.0, max])
            .labels([Span::raw("0"), Span::raw(format!("{max:.0}"))]),
    );
    f.render_widget(chart, area);
}

fn draw_latency(f: &mut Frame, area: Rect, snap: &Snapshot) {
    let series = |get: fn(&lab_core::live::ChartPoint) -> Option<u64>| -> Vec<(f64, f64)> {
        snap.chart
            .iter()
            .filter_map(|p| get(p).map(|us| (p.at.as_secs_f64(), us as f64 / 1000.0)))
            .collect()
    };
    let p50 = series(|p| p.p50_us);
    let p99 = series(|p| p.p99_us);
    let p999 = series(|p| p.p999_us);
    let max = p50
        .iter()
        .chain(&p99)
        .chain(&p999)
        .map(|p| p.1)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let last = |v: &[(f64, f64)]| v.last().map_or("-".to_string(), |p| format!("{:.1}", p.1));
    let title = format!(
        " latency ms: p50 {} p99 {} p99.9 {} ",
        last(&p50),
        last(&p99),
        last(&p999)
    );
    let chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .style(Style::new().fg(GOOD))
            .graph_type(GraphType::Line)
            .data(&p50),
        Dataset::default()
            .marker(Marker::Braille)
            .style(Style::new().fg(WARN))
            .graph_type(GraphType::Line)
            .data(&p99),
        Dataset::default()
            .marker(Marker::Braille)
            .style(Style::new().fg(BAD))
            .graph_type(GraphType::Line)
            .data(&p999),
    ])
    .block(block(&title))
    .x_axis(Axis::default().bounds(x_bounds(snap)))
    .y_axis(
        Axis::default()
            .bounds([0.0, max])
            .labels([Span::raw("0"), Span::raw(format!("{max:.0}"))]),
    );
    f.render_widget(chart, area);
}

/// The stopwatch of one fault, as two lines.
pub fn fault_lines(fv: &FaultView, now: Duration) -> Vec<Line<'static>> {
    let (status, style) = match (&fv.state, fv.phase()) {
        (FaultState::Refused { .. }, _) => ("REFUSED", Style::new().fg(WARN)),
        (FaultState::Failed { .. }, _) => ("FAILED", Style::new().fg(BAD)),
        (FaultState::Applying, _) => ("applying", Style::new().fg(WARN)),
        (_, Phase::Measured) => ("measured", Style::new().fg(GOOD)),
        (_, Phase::NoFailover) => ("no outage", Style::new().fg(GOOD)),
        (_, _) => (
            "in progress",
            Style::new().fg(WARN).add_modifier(Modifier::BOLD),
        ),
    };
    let at = match &fv.state {
        FaultState::Active { at } | FaultState::Done { at } => format!(" @{}", secs(*at)),
        FaultState::Healed { at, healed } => {
            format!(" @{} healed @{}", secs(*at), secs(*healed))
        }
        _ => String::new(),
    };
    let head = Line::from(vec![
        Span::styled(
            format!("F{} {}", fv.id, fv.description),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(at),
        Span::raw(" "),
        Span::styled(status, style),
    ]);
    let mut lines = vec![head];
    match (&fv.state, &fv.stopwatch) {
        (FaultState::Refused { reason }, _) => lines.push(Line::from(format!(" {reason}"))),
        (FaultState::Failed { error }, _) => lines.push(Line::from(format!(" {error}"))),
        (_, None) => lines.push(Line::from(" waiting for the engine to confirm it")),
        (_, Some(r)) => {
            let m = &r.metrics;
            // Not seen yet: at least the time since the fault, still counting.
            let running = |d: Option<Duration>| match d {
                Some(d) => secs2(d),
                None => format!(">{}", secs(now.saturating_sub(r.at))),
            };
            let outage = match &m.unavailability {
                Unavailability::NotMeasured => "not measured (no load)".to_string(),
                Unavailability::NoFailure { .. } => "none".to_string(),
                Unavailability::Outage(w) => match w.duration() {
                    Some(d) => secs2(d),
                    None => format!(">{}", secs(now.saturating_sub(w.start))),
                },
            };
            lines.push(Line::from(format!(
                " detect {}  promote {}",
                running(m.detection),
                running(m.promotion)
            )));
            lines.push(Line::from(format!(" unavailability {outage}")));
        }
    }
    lines
}

fn draw_faults(f: &mut Frame, area: Rect, snap: &Snapshot) {
    let mut lines: Vec<Line> = vec![];
    if let Some(d) = &snap.drill {
        let state = match &d.finished {
            None => Span::styled("running", Style::new().fg(WARN)),
            Some(r) if r.passed => Span::styled("passed", Style::new().fg(GOOD)),
            Some(_) => Span::styled("FAILED", Style::new().fg(BAD)),
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("drill {} ", d.name),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            state,
        ]));
        match &d.finished {
            Some(r) => lines.push(Line::from(format!("  {}", r.summary))),
            None => {
                if let Some(l) = d.lines.last() {
                    lines.push(Line::from(format!("  {l}")));
                }
            }
        }
    }
    // Newest first: the fault being watched is the one just injected.
    for fv in snap.faults.iter().rev() {
        lines.extend(fault_lines(fv, snap.elapsed));
    }
    if lines.is_empty() {
        lines.push(Line::from(
            "no fault yet: select a node, press k to kill it".to_string(),
        ));
    }
    // Every figure is only as fine as its coarsest source: the write buckets or the pollers.
    let res = snap
        .faults
        .iter()
        .filter_map(|f| f.stopwatch.as_ref())
        .map(|r| r.metrics.resolution.max(r.metrics.event_resolution))
        .max()
        .unwrap_or(snap.event_resolution);
    let title = format!(
        " stopwatch +-{}ms, {} in force ",
        res.as_millis(),
        active_faults(snap)
    );
    f.render_widget(
        Paragraph::new(lines)
            .block(block(&title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn event_style(e: &Event) -> Style {
    match &e.kind {
        EventKind::Fault { .. } => Style::new().fg(BAD).add_modifier(Modifier::BOLD),
        EventKind::FaultHealed { .. } => Style::new().fg(GOOD),
        EventKind::Sentinel { .. } | EventKind::NodeFailFlag { .. } => Style::new().fg(WARN),
        EventKind::RoleChange { .. } => Style::new().add_modifier(Modifier::BOLD),
        _ => Style::new(),
    }
}

/// The event as one short line; which Sentinel said it matters less than what it said.
fn event_text(k: &EventKind) -> String {
    match k {
        EventKind::Sentinel { event, detail, .. } => format!("{event} {detail}"),
        other => other.to_string(),
    }
}

fn draw_timeline(f: &mut Frame, area: Rect, snap: &Snapshot) {
    let rows = area.height.saturating_sub(2) as usize;
    let shown = &snap.events[snap.events.len().saturating_sub(rows)..];
    let lines: Vec<Line> = shown
        .iter()
        .map(|e| {
            Line::from(vec![
                Span::raw(format!("{:>7.2} ", e.at.as_secs_f64())),
                Span::styled(event_text(&e.kind), event_style(e)),
            ])
        })
        .collect();
    let title = format!(" timeline ({} events) ", snap.events_total);
    f.render_widget(Paragraph::new(lines).block(block(&title)), area);
}

fn draw_footer(f: &mut Frame, area: Rect, snap: &Snapshot) {
    let line = match &snap.message {
        Some(m) => {
            let style = match m.level {
                Level::Info => Style::new(),
                Level::Warn => Style::new().fg(WARN).add_modifier(Modifier::BOLD),
                Level::Error => Style::new().fg(BAD).add_modifier(Modifier::BOLD),
            };
            Line::from(Span::styled(m.text.clone(), style))
        }
        None => Line::from("k kill  p pause  h heal  w load  d drill  R report  ? help  q quit"),
    };
    f.render_widget(Paragraph::new(line), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_help(f: &mut Frame) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:<13}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    let area = centered(f.area(), 62, KEYS.len() as u16 + 2);
    f.render_widget(Clear, area);
    f.render_widget(Paragraph::new(lines).block(block(" keys ")), area);
}

fn draw_prompt(f: &mut Frame, title: &str, text: &[String]) {
    let area = centered(f.area(), 64, text.len() as u16 + 2);
    f.render_widget(Clear, area);
    let lines: Vec<Line> = text.iter().map(|t| Line::from(t.clone())).collect();
    f.render_widget(
        Paragraph::new(lines)
            .block(block(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}
