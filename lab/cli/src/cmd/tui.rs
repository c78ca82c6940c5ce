//! `lab tui`: brings the topology up (or attaches to it), starts a live session, and hands it
//! to the terminal front end, or, without a terminal, prints plain progress lines.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use lab_core::lifecycle::{self, UpOptions};
use lab_core::live::{self, Ended, FaultState, Session, WorkloadParams};
use lab_core::measure::Unavailability;

use super::Ctx;
use crate::args::TuiArgs;

pub async fn tui(ctx: &Ctx, a: TuiArgs) -> Result<u8> {
    let hold = a
        .duration
        .as_deref()
        .map(|d| {
            lab_core::topology::parse_duration(d)
                .with_context(|| format!("--for `{d}` is not a duration (like 60s)"))
        })
        .transpose()?;
    let engine = ctx.engine().await?;
    let progress = |l: &str| eprintln!("{l}");
    let (inst, criteria) = lifecycle::up(
        &engine,
        &UpOptions {
            topology: a.topology.clone(),
            instance: a.name.clone(),
            profile: a.profile.clone(),
            flavor: None,
            sets: vec![],
            images: a.images.parse().map_err(anyhow::Error::msg)?,
            port_base: a.port_base,
            timeout: Duration::from_secs(180),
            project: ctx.project.clone(),
            state_root: ctx.state_root.clone(),
        },
        &progress,
    )
    .await?;
    for c in criteria.checks.iter().filter(|c| !c.ok) {
        eprintln!("warning: {}: {}", c.name, c.detail);
    }
    let topology = inst.topology.name.clone();
    let mut opts = live::Options::new(ctx.state_root.clone(), ctx.project.clone());
    opts.report_dir = a.report_dir.clone();
    opts.load = WorkloadParams {
        rate: a.rate.max(1),
        clients: a.clients.max(1),
        ..WorkloadParams::default()
    };
    opts.load_running = !a.no_load;
    let session = live::start(engine, Arc::new(inst), opts).await?;
    let ended = if std::io::stdout().is_terminal() && !a.plain {
        let hint = ["master-kill", ""]
            .iter()
            .map(|s| format!("scenarios/{topology}-{s}.yaml"))
            .find(|f| ctx.project.join(f).is_file())
            .unwrap_or_else(|| "scenarios/".into());
        lab_tui::run(session, hint).await?
    } else {
        plain(session, hold).await?
    };
    print_ended(&ended);
    Ok(0)
}

fn print_ended(e: &Ended) {
    for h in &e.healed {
        println!("healed: {h}");
    }
    for l in &e.left {
        println!("still applied: {l}");
    }
    for f in &e.files {
        println!("wrote {}", f.display());
    }
    if e.taken_down {
        println!("topology taken down");
    } else {
        println!("topology left running");
    }
}

/// No terminal: the same session, reported as lines (new timeline events as they come, the
/// load every 5 s, each fault's figures once measured). Ends at Ctrl-C, SIGTERM or `--for`,
/// healing the session's faults and keeping the topology.
async fn plain(session: Session, hold: Option<Duration>) -> Result<Ended> {
    let mut snaps = session.snapshots.clone();
    let mut printed_events = 0usize;
    let mut reported: Vec<u32> = vec![];
    let mut last_message = None;
    let mut last_load = tokio::time::Instant::now();
    let until = hold.map(|d| tokio::time::Instant::now() + d);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    println!("live session started; Ctrl-C ends it (faults healed, topology kept)");
    loop {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            r = snaps.changed() => {
                if r.is_err() {
                    break;
                }
                let s = snaps.borrow_and_update().clone();
                // Events the snapshot no longer carries were printed already or dropped
                // from its tail window; print what is new.
                let first_new = s.events_total.saturating_sub(s.events.len());
                let skip = printed_events.saturating_sub(first_new);
                for e in s.events.iter().skip(skip) {
                    println!("t={:.3}s  {}", e.at.as_secs_f64(), e.kind);
                }
                printed_events = s.events_total;
                if let Some(m) = &s.message {
                    if last_message.as_ref() != Some(m) {
                        println!("{}", m.text);
                        last_message = Some(m.clone());
                    }
                }
                for f in &s.faults {
                    if reported.contains(&f.id) {
                        continue;
                    }
                    match (&f.state, f.phase(), &f.stopwatch) {
                        (FaultState::Refused { reason }, ..) => {
                            println!("F{} {} refused: {reason}", f.id, f.description);
                            reported.push(f.id);
                        }
                        (_, live::Phase::Measured, Some(r)) => {
                            let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.3}s", d.as_secs_f64()));
                            let u = match &r.metrics.unavailability {
                                Unavailability::Outage(w) => ms(w.duration()),
                                Unavailability::NoFailure { .. } => "none".into(),
                                Unavailability::NotMeasured => "not measured".into(),
                            };
                            println!(
                                "F{} {} measured: detection {}, promotion {}, unavailability {} (resolution {} ms)",
                                f.id,
                                f.description,
                                ms(r.metrics.detection),
                                ms(r.metrics.promotion),
                                u,
                                r.metrics.resolution.max(r.metrics.event_resolution).as_millis()
                            );
                            reported.push(f.id);
                        }
                        _ => {}
                    }
                }
                if last_load.elapsed() >= Duration::from_secs(5) {
                    last_load = tokio::time::Instant::now();
                    let w = &s.workload;
                    if w.running {
                        println!(
                            "t={:.1}s  load {:.0} ok/s, {:.0} errors/s (target {}/s)",
                            s.elapsed.as_secs_f64(), w.ops_per_s, w.errors_per_s, w.params.rate
                        );
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep_until(until.unwrap_or(far)), if until.is_some() => break,
        }
    }
    Ok(session.shutdown(true, true).await?)
}
