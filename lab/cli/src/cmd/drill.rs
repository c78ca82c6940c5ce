//! `lab drill`, `lab report`, `lab fault`, `lab heal`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lab_core::drill::{self, Options};
use lab_core::fault::net::{self, Effect};
use lab_core::fault::{self, Journal, Kind};
use lab_core::measure::Unavailability;
use lab_core::observe::ObserveConfig;
use lab_core::report::RunReport;
use lab_core::scenario::{self, Target};

use super::Ctx;
use crate::args::{DrillArgs, FaultArgs, HealArgs, ReportCmd};

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}s", d.as_secs_f64()))
        .unwrap_or_else(|| "not seen".into())
}

/// The figures a person looks at first, then every assertion with its verdict.
pub fn summary(r: &RunReport) -> String {
    let mut o = String::new();
    let s = &r.summary;
    o.push_str(&format!(
        "{}: {:.0} ops/s over {:.1}s, availability {}, p50 {} p99 {} max {} (1 us histogram buckets)\n",
        r.meta.title,
        s.ops_per_s,
        s.duration.as_secs_f64(),
        s.writes
            .availability_pct()
            .map(|p| format!("{p:.2}% of writes"))
            .unwrap_or_else(|| "-".into()),
        us(s.p50_us),
        us(s.p99_us),
        us(s.max_us)
    ));
    for f in &r.faults {
        let m = &f.metrics;
        let unavail = match &m.unavailability {
            Unavailability::NotMeasured => "not measured (no writes)".to_string(),
            Unavailability::NoFailure { writes } => format!("none ({writes} writes, all ok)"),
            Unavailability::Outage(w) => match w.duration() {
                Some(d) => format!(
                    "{:.2}s ({} failed writes)",
                    d.as_secs_f64(),
                    w.failed_writes
                ),
                None => format!(
                    "at least {:.2}s (not over by the end)",
                    w.at_least().as_secs_f64()
                ),
            },
        };
        o.push_str(&format!(
            "F{} {} at {:.2}s: detection {}, promotion {}, unavailable {}, recovery {} (resolution: events {} ms, writes {:.1} ms)\n",
            f.id,
            f.description,
            f.at.as_secs_f64(),
            ms(m.detection),
            ms(m.promotion),
            unavail,
            ms(m.recovery),
            m.event_resolution.as_millis(),
            m.resolution.as_secs_f64() * 1000.0
        ));
    }
    if let Some(l) = &r.lost_writes {
        let c = &l.counts;
        o.push_str(&format!(
            "lost writes: {} of {} acknowledged writes missing{}; {} unacknowledged writes present anyway\n",
            c.acknowledged_missing,
            c.acknowledged,
            if l.acknowledged_missing.is_empty() {
                String::new()
            } else {
                format!(
                    " (ids {})",
                    l.acknowledged_missing
                        .iter()
                        .take(8)
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            c.unacknowledged_present
        ));
    }
    for a in &r.assertions {
        o.push_str(&format!(
            "{} {}: {} (expected {}){}\n",
            if a.passed { "PASS" } else { "FAIL" },
            a.expr,
            a.actual,
            a.expected,
            if a.message.is_empty() {
                String::new()
            } else {
                format!(" - {}", a.message)
            }
        ));
    }
    o
}

fn us(v: Option<u64>) -> String {
    v.map(|u| format!("{:.2}ms", u as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

pub async fn drill(ctx: &Ctx, a: DrillArgs) -> Result<u8> {
    let sc = scenario::load(&a.file)?;
    drill::check(&sc, &ctx.project)?;
    if a.check {
        println!(
            "{}: ok ({} steps, {} assertions)",
            sc.source.file,
            sc.steps.len(),
            sc.assertions.len()
        );
        return Ok(0);
    }
    let settle = lab_core::topology::parse_duration(&a.settle)
        .with_context(|| format!("--settle `{}` is not a duration (like 60s)", a.settle))?;
    let engine = ctx.engine().await?;
    let opts = Options {
        instance: a.name.clone(),
        port_base: a.port_base,
        project: ctx.project.clone(),
        state_root: ctx.state_root.clone(),
        images: a.images.parse().map_err(anyhow::Error::msg)?,
        report_dir: a.report_dir.clone(),
        up_timeout: Duration::from_secs(180),
        observe: ObserveConfig::default(),
        settle,
    };
    let json = a.json;
    let progress = move |line: &str| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let out = drill::run(&engine, &sc, &opts, &progress).await?;
    if json {
        println!("{}", out.report.to_json()?);
    } else {
        print!("{}", summary(&out.report));
        for f in &out.files {
            println!("wrote {}", f.display());
        }
    }
    if out.passed() {
        Ok(0)
    } else {
        let failed: Vec<String> = out
            .report
            .assertions
            .iter()
            .filter(|a| !a.passed)
            .map(|a| {
                format!(
                    "{} (measured {}, expected {})",
                    a.expr, a.actual, a.expected
                )
            })
            .collect();
        eprintln!("lab: drill {} failed: {}", sc.name(), failed.join("; "));
        Ok(1)
    }
}

fn read_report(p: &std::path::Path) -> Result<RunReport> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read report {}", p.display()))?;
    RunReport::from_json(&text).with_context(|| format!("{}", p.display()))
}

pub fn report(r: ReportCmd) -> Result<u8> {
    match r {
        ReportCmd::Compare { a, b } => {
            let (ra, rb) = (read_report(&a)?, read_report(&b)?);
            print!("{}", lab_core::report::compare(&ra, &rb));
        }
        ReportCmd::Show { file } => print!("{}", read_report(&file)?.to_markdown()),
    }
    Ok(0)
}

fn instance(topology: &str, name: &Option<String>) -> String {
    name.clone().unwrap_or_else(|| {
        std::path::Path::new(topology)
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .unwrap_or_else(|| topology.to_string())
    })
}

fn parse_target(s: &str) -> Target {
    if let Some(g) = s.strip_prefix("master-of:") {
        Target::MasterOf(g.to_string())
    } else if let Some(g) = s.strip_prefix("replica-of:") {
        Target::ReplicaOf(g.to_string())
    } else {
        Target::Node(s.to_string())
    }
}

fn dur(flag: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|d| {
            lab_core::topology::parse_duration(d)
                .with_context(|| format!("--{flag} `{d}` is not a duration (like 10s)"))
        })
        .transpose()
}

/// The network effect `lab fault <kind>` asks for, targets resolved live; `None` for a
/// process fault.
async fn net_effect(inst: &lab_core::lifecycle::Instance, a: &FaultArgs) -> Result<Option<Effect>> {
    let one = |t: String| async move {
        drill::target::resolve(inst, &parse_target(&t))
            .await
            .map_err(anyhow::Error::msg)
    };
    let to = || {
        a.to.clone()
            .with_context(|| format!("`lab fault {}` needs --to <node>", a.kind))
    };
    Ok(Some(match a.kind.as_str() {
        "isolate" => Effect::Isolate {
            node: one(a.target.clone()).await?,
        },
        "cut-clients" => Effect::CutClients {
            node: one(a.target.clone()).await?,
        },
        "partition" => {
            let mut sides = vec![];
            for side in std::iter::once(&a.target).chain(&a.side) {
                let mut nodes = vec![];
                for t in side.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    nodes.push(one(t.to_string()).await?);
                }
                sides.push(nodes);
            }
            Effect::Partition { sides }
        }
        "one-way" => Effect::OneWay {
            from: one(a.target.clone()).await?,
            to: one(to()?).await?,
        },
        "loss" => {
            let percent = a
                .percent
                .context("`lab fault loss` needs --percent 1-100")?;
            if !(1..=100).contains(&percent) {
                bail!("--percent must be between 1 and 100, not {percent}");
            }
            Effect::Loss {
                node: one(a.target.clone()).await?,
                percent,
            }
        }
        "latency" => Effect::Latency {
            from: one(a.target.clone()).await?,
            to: one(to()?).await?,
            delay: dur("delay", &a.delay)?
                .context("`lab fault latency` needs --delay (like 100ms)")?,
            jitter: dur("jitter", &a.jitter)?.unwrap_or_default(),
            bandwidth_kbit: a.bandwidth_kbit,
        },
        _ => return Ok(None),
    }))
}

pub async fn fault(ctx: &Ctx, a: FaultArgs) -> Result<u8> {
    let process = match a.kind.as_str() {
        "kill" => Some(Kind::Kill {
            signal: a.signal.clone(),
        }),
        "stop" => Some(Kind::Stop {
            grace: Duration::from_secs(10),
        }),
        "restart" => Some(Kind::Restart),
        "pause" => Some(Kind::Pause),
        "isolate" | "partition" | "one-way" | "cut-clients" | "loss" | "latency" => None,
        other => {
            bail!("unknown fault kind `{other}`; this build injects kill, stop, restart, pause, isolate, partition, one-way, cut-clients, loss and latency")
        }
    };
    let hold = dur("for", &a.duration)?;
    let engine = ctx.engine().await?;
    let name = instance(&a.topology, &a.name);
    let inst = lab_core::lifecycle::open(&engine, &name, &ctx.project, &ctx.state_root).await?;
    let journal = Journal::new(&ctx.state_root, &name);
    let applied = match process {
        Some(kind) => {
            let node = drill::target::resolve(&inst, &parse_target(&a.target))
                .await
                .map_err(anyhow::Error::msg)?;
            fault::apply(
                &engine,
                &journal,
                kind,
                &node,
                &inst.container_name(&node),
                "lab fault",
            )
            .await?
        }
        None => {
            let effect = net_effect(&inst, &a)
                .await?
                .context("not a network fault")?;
            let (f, addrs) = net::prepare(&engine, &inst, effect).await?;
            println!("mechanism: {}", f.mechanism);
            fault::apply_net(&engine, &journal, f, &addrs, "lab fault").await?
        }
    };
    println!("{} applied: {}", applied.id, applied.describe());
    let needs_lab = matches!(&applied.kind, Kind::Net(n) if n.effect.needs_proxy());
    let hold = match hold {
        Some(d) => d,
        None if needs_lab => {
            // The proxy lives in this process: hold until Ctrl-C rather than leave the link
            // pointed at a proxy that is gone.
            println!("the proxy runs in this process: Ctrl-C (or `lab heal`) ends the fault");
            Duration::from_secs(365 * 24 * 3600)
        }
        None => {
            if !matches!(applied.kind, Kind::Restart) {
                println!("it stays until `lab heal {} {}`", a.topology, applied.id);
            }
            return Ok(0);
        }
    };
    // Hold the fault, healing on time or on Ctrl-C, whichever comes first.
    let started = std::time::Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(hold) => {}
        _ = tokio::signal::ctrl_c() => { println!("interrupted"); }
    }
    fault::heal(&engine, &journal, &applied).await?;
    println!(
        "{} healed after {:.1}s",
        applied.id,
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

pub async fn heal(ctx: &Ctx, a: HealArgs) -> Result<u8> {
    let name = instance(&a.topology, &a.name);
    let journal = Journal::new(&ctx.state_root, &name);
    let faults = journal.list()?;
    if a.list {
        if faults.is_empty() {
            println!("no fault in force on `{name}`");
        }
        for f in &faults {
            println!(
                "{:<5} {:<24} {} since {}",
                f.id,
                f.describe(),
                f.origin,
                f.since
            );
        }
        return Ok(0);
    }
    let engine = ctx.engine().await?;
    let chosen: Vec<_> = match &a.fault {
        Some(id) => {
            let f: Vec<_> = faults.into_iter().filter(|f| &f.id == id).collect();
            if f.is_empty() {
                bail!(
                    "no fault `{id}` in force on `{name}`; `lab heal {} --list` shows them",
                    a.topology
                );
            }
            f
        }
        None => faults,
    };
    if chosen.is_empty() {
        println!("nothing to heal on `{name}`");
    }
    for f in chosen {
        fault::heal(&engine, &journal, &f).await?;
        println!("healed {} ({})", f.id, f.describe());
    }
    Ok(0)
}
