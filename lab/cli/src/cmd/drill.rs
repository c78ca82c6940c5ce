//! `lab drill`, `lab report`, `lab fault`, `lab heal`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lab_core::drill::{self, Options};
use lab_core::fault::net::{self, Effect};
use lab_core::fault::{self, Journal, Kind};
use lab_core::measure::{EventKind, Unavailability};
use lab_core::observe::ObserveConfig;
use lab_core::report::RunReport;
use lab_core::scenario::{self, Part, Target};
use lab_core::topology::Role;

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
    let out = match drill::run(&engine, &sc, &opts, &progress).await {
        Ok(out) => out,
        // Exit 3: the drill needs what this host or image lacks; said, never silently skipped.
        Err(drill::DrillError::Unsupported(why)) => {
            eprintln!(
                "lab: drill {} needs a capability this host lacks: {why}",
                sc.name()
            );
            return Ok(3);
        }
        Err(e) => return Err(e.into()),
    };
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

fn parse_target(s: &str) -> Result<Target> {
    let seed = |rest: Option<&str>| -> Result<Option<u64>> {
        rest.map(|r| {
            r.parse::<u64>()
                .with_context(|| format!("`{r}` in target `{s}` is not a seed (a whole number)"))
        })
        .transpose()
    };
    Ok(if let Some(g) = s.strip_prefix("master-of:") {
        Target::MasterOf(g.to_string())
    } else if let Some(g) = s.strip_prefix("replica-of:") {
        Target::ReplicaOf(g.to_string())
    } else if let Some(z) = s.strip_prefix("zone:") {
        Target::Zone(z.to_string())
    } else if let Some(g) = s.strip_prefix("sentinel-leader:") {
        Target::SentinelLeader(g.to_string())
    } else if let Some(rest) = s.strip_prefix("any:") {
        let (role, rest) = rest
            .split_once(':')
            .map_or((rest, None), |(a, b)| (a, Some(b)));
        let role = match role {
            "master" => Role::Master,
            "replica" => Role::Replica,
            "sentinel" => Role::Sentinel,
            "cluster-node" => Role::ClusterNode,
            other => bail!("`{other}` in target `{s}` is not a role; write master, replica, sentinel or cluster-node"),
        };
        Target::AnyOf {
            role,
            seed: seed(rest)?,
        }
    } else if let Some(rest) = s.strip_prefix("sentinels:") {
        let (part, rest) = rest
            .split_once(':')
            .map_or((rest, None), |(a, b)| (a, Some(b)));
        let part = match part {
            "minority" => Part::Minority,
            "majority" => Part::Majority,
            "all" => Part::All,
            other => bail!("`{other}` in target `{s}` is not minority, majority or all"),
        };
        Target::Sentinels {
            part,
            seed: seed(rest)?,
        }
    } else {
        Target::Node(s.to_string())
    })
}

fn dur(flag: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|d| {
            lab_core::topology::parse_duration(d)
                .with_context(|| format!("--{flag} `{d}` is not a duration (like 10s)"))
        })
        .transpose()
}

/// The journal's kind for a process or resource fault; `None` for a network fault.
fn fault_kind(a: &FaultArgs) -> Result<Option<Kind>> {
    let bytes = |flag: &str, v: &Option<String>| -> Result<u64> {
        v.as_deref()
            .map(|v| scenario::parse_bytes(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
            .map(|b| b.unwrap_or(0))
    };
    Ok(Some(match a.kind.as_str() {
        "kill" => Kind::Kill {
            signal: a.signal.clone(),
        },
        "stop" => Kind::Stop {
            grace: Duration::from_secs(10),
        },
        "restart" => Kind::Restart,
        "restart-loop" => {
            let every = dur("every", &a.every)?
                .context("`lab fault restart-loop` needs --every (like 5s)")?;
            if every < Duration::from_secs(1) {
                bail!(
                    "--every must be at least 1s (a restart itself takes about that long), not {}",
                    a.every.as_deref().unwrap_or_default()
                );
            }
            Kind::RestartLoop { every }
        }
        "pause" => Kind::Pause,
        "leader-crash" => Kind::LeaderCrash {
            within: dur("within", &a.within)?
                .unwrap_or(scenario::DEFAULT_LEADER_CRASH_WITHIN),
        },
        "stress" => {
            let memory = bytes("memory", &a.memory)?;
            Kind::Stress {
                cpu: a.cpu.unwrap_or(if memory > 0 { 0 } else { 1 }),
                memory,
            }
        }
        "disk-full" => Kind::DiskFull {
            leave: bytes("leave", &a.leave)?,
            dir: String::new(),
        },
        "clock-skew" => {
            let Some(o) = &a.offset else {
                bail!("clock-skew needs --offset, e.g. --offset +90s");
            };
            Kind::ClockSkew {
                offset_s: scenario::parse_offset(o)
                    .map_err(|e| anyhow::anyhow!("--offset: {e}"))?,
            }
        }
        "slow-disk" => {
            let iops = a.iops.unwrap_or(0);
            let limits = fault::disk::Limits {
                read_bps: bytes("read-bps", &a.read_bps)?,
                write_bps: bytes("write-bps", &a.write_bps)?,
                read_iops: iops,
                write_iops: iops,
            };
            if limits.is_empty() {
                bail!(
                    "slow-disk needs a non-zero limit: --write-bps 1m, --read-bps 1m or --iops 20"
                );
            }
            Kind::SlowDisk {
                limits,
                place: None,
            }
        }
        "isolate" | "partition" | "one-way" | "cut-clients" | "loss" | "latency" | "timeout"
        | "reset" => return Ok(None),
        other => bail!(
            "unknown fault kind `{other}`; this build injects kill, stop, restart, \
             restart-loop, pause, leader-crash, stress, disk-full, clock-skew, slow-disk, isolate, partition, \
             one-way, cut-clients, loss, latency, timeout and reset"
        ),
    }))
}

/// The network effect `lab fault <kind>` asks for, targets resolved live; `None` for a
/// process fault.
async fn net_effect(inst: &lab_core::lifecycle::Instance, a: &FaultArgs) -> Result<Option<Effect>> {
    let one = |t: String| async move {
        drill::target::resolve(inst, &parse_target(&t)?)
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
        "latency" => {
            let delay = dur("delay", &a.delay)?
                .context("`lab fault latency` needs --delay (like 100ms)")?;
            let jitter = dur("jitter", &a.jitter)?.unwrap_or_default();
            match &a.to {
                Some(to) => Effect::Latency {
                    from: one(a.target.clone()).await?,
                    to: one(to.clone()).await?,
                    delay,
                    jitter,
                    bandwidth_kbit: a.bandwidth_kbit,
                },
                // No --to: every link of the node.
                None => Effect::NodeLatency {
                    node: one(a.target.clone()).await?,
                    delay,
                    jitter,
                    bandwidth_kbit: a.bandwidth_kbit,
                },
            }
        }
        "timeout" => Effect::Timeout {
            from: one(a.target.clone()).await?,
            to: one(to()?).await?,
            close_after: dur("close-after", &a.close_after)?,
        },
        "reset" => Effect::Reset {
            from: one(a.target.clone()).await?,
            to: one(to()?).await?,
            after: dur("after", &a.after)?.unwrap_or_default(),
        },
        _ => return Ok(None),
    }))
}

pub async fn fault(ctx: &Ctx, a: FaultArgs) -> Result<u8> {
    let process = fault_kind(&a)?;
    let hold = dur("for", &a.duration)?;
    let engine = ctx.engine().await?;
    let name = instance(&a.topology, &a.name);
    let inst = lab_core::lifecycle::open(&engine, &name, &ctx.project, &ctx.state_root).await?;
    let journal = Journal::new(&ctx.state_root, &name);
    let timeline = journal.timeline();
    let mut applied = vec![];
    match process {
        Some(kind) => {
            let nodes = drill::target::resolve_all(&inst, &parse_target(&a.target)?)
                .await
                .map_err(anyhow::Error::msg)?;
            if let Kind::LeaderCrash { within } = kind {
                return leader_crash(&engine, &inst, &journal, &nodes, within, hold).await;
            }
            // Every node is checked before any is touched: refused whole, never half-applied.
            if kind.is_resource() {
                for n in &nodes {
                    fault::resource::prepare(&engine, n, &inst.container_name(n), kind.clone())
                        .await?;
                }
            }
            for n in &nodes {
                let r = match kind {
                    Kind::RestartLoop { every } => {
                        let (tl, node) = (timeline.clone(), n.clone());
                        let on_restart: fault::restart_loop::OnRestart = Arc::new(move |k, r| {
                            let text = match r {
                                Ok(()) => format!("restart {k} of {node} (restart loop)"),
                                Err(e) => {
                                    format!("restart {k} of {node} (restart loop) failed: {e}")
                                }
                            };
                            println!("{text}");
                            let _ = tl.push(EventKind::Note { text });
                        });
                        fault::apply_restart_loop(
                            &engine,
                            &journal,
                            every,
                            n,
                            &inst.container_name(n),
                            "lab fault",
                            on_restart,
                        )
                        .await
                    }
                    _ => {
                        fault::apply(
                            &engine,
                            &journal,
                            kind.clone(),
                            n,
                            &inst.container_name(n),
                            "lab fault",
                        )
                        .await
                    }
                };
                match r {
                    Ok(f) => {
                        timeline.applied(&f)?;
                        if let Kind::SlowDisk { place: Some(p), .. } = &f.kind {
                            println!("mechanism: {p}");
                        }
                        println!("{} applied: {}", f.id, f.describe());
                        applied.push(f);
                    }
                    Err(e) => {
                        for f in &applied {
                            fault::heal(&engine, &journal, f).await?;
                            timeline.healed(f)?;
                        }
                        return Err(e.into());
                    }
                }
            }
        }
        None => {
            let effect = net_effect(&inst, &a)
                .await?
                .context("not a network fault")?;
            let (f, addrs) = net::prepare(&engine, &inst, effect).await?;
            println!("mechanism: {}", f.mechanism);
            let f = fault::apply_net(&engine, &journal, f, &addrs, "lab fault").await?;
            timeline.applied(&f)?;
            println!("{} applied: {}", f.id, f.describe());
            applied.push(f);
        }
    }
    let needs_lab = applied.iter().any(|f| match &f.kind {
        Kind::Net(n) => n.effect.needs_proxy(),
        Kind::RestartLoop { .. } => true,
        _ => false,
    });
    let hold = match hold {
        Some(d) => d,
        None if needs_lab => {
            // The proxy or the loop lives in this process: hold until Ctrl-C rather than
            // leave the link pointed at a proxy that is gone.
            println!("the fault runs in this process: Ctrl-C (or `lab heal`) ends it");
            Duration::from_secs(365 * 24 * 3600)
        }
        None => {
            for f in applied.iter().filter(|f| !matches!(f.kind, Kind::Restart)) {
                println!("{} stays until `lab heal {} {}`", f.id, a.topology, f.id);
            }
            return Ok(0);
        }
    };
    // Hold the fault, healing on time or on Ctrl-C, whichever comes first.
    let started = std::time::Instant::now();
    // `lab heal` from elsewhere forgets the faults: then there is nothing left to hold.
    let healed_elsewhere = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(left) = journal.list() {
                if !applied.iter().any(|f| left.iter().any(|l| l.id == f.id)) {
                    return;
                }
            }
        }
    };
    let mut elsewhere = false;
    tokio::select! {
        _ = tokio::time::sleep(hold) => {}
        _ = tokio::signal::ctrl_c() => { println!("interrupted"); }
        _ = healed_elsewhere => {
            println!("healed by another `lab heal`");
            elsewhere = true;
        }
    }
    for f in &applied {
        // Healed already, it still stops what runs here (proxy, restart loop).
        fault::heal(&engine, &journal, f).await?;
        if elsewhere {
            continue;
        }
        timeline.healed(f)?;
        println!(
            "{} healed after {:.1}s",
            f.id,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}

/// `lab fault leader-crash`: arms the Sentinels, then holds until one crashes on its election
/// (it stays down until `lab heal`, or until `--for` ends), no election comes within the
/// limit, Ctrl-C, or a heal from elsewhere; all but a crash leave nothing applied.
async fn leader_crash(
    engine: &lab_core::engine::Engine,
    inst: &lab_core::lifecycle::Instance,
    journal: &Journal,
    nodes: &[String],
    within: Duration,
    hold: Option<Duration>,
) -> Result<u8> {
    use lab_core::fault::leader_crash::{self, Outcome};
    use lab_core::topology::Role;
    if let Some(n) = nodes.iter().find(|n| {
        inst.topology
            .service(n)
            .is_none_or(|s| s.role != Role::Sentinel)
    }) {
        bail!("leader-crash arms Sentinels, and {n} is not one; target them, e.g. sentinels:all");
    }
    let members: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.clone(), inst.container_name(n)))
        .collect();
    let timeline = journal.timeline();
    let (tx, mut rx) = tokio::sync::watch::channel(None::<Outcome>);
    let tl = timeline.clone();
    let on_end: leader_crash::OnEnd = Arc::new(move |o| {
        let _ = tl.push(EventKind::Note {
            text: format!("leader crash: {o}"),
        });
        let _ = tx.send(Some(o.clone()));
    });
    let applied =
        leader_crash::apply(engine, journal, &members, within, "lab fault", on_end).await?;
    for f in &applied {
        timeline.applied(f)?;
        println!("{} applied: {}", f.id, f.describe());
    }
    println!(
        "armed: the next Sentinel elected failover leader crashes; waiting up to {:.0}s for an election (Ctrl-C ends it)",
        within.as_secs_f64()
    );
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        r = rx.wait_for(Option::is_some) => r.ok().and_then(|o| o.clone()),
        _ = tokio::signal::ctrl_c() => { println!("interrupted"); None }
    };
    let applied = &applied;
    let timeline = &timeline;
    let heal_all = |why: &'static str| async move {
        for f in applied {
            fault::heal(engine, journal, f).await?;
            timeline.healed(f)?;
            println!("{} healed ({why})", f.id);
        }
        anyhow::Ok(())
    };
    match outcome {
        Some(o @ Outcome::Crashed { .. }) => {
            println!("{o}");
            match hold {
                Some(d) => {
                    let left = d.saturating_sub(started.elapsed());
                    tokio::select! {
                        _ = tokio::time::sleep(left) => {}
                        _ = tokio::signal::ctrl_c() => { println!("interrupted"); }
                    }
                    heal_all("the crashed Sentinel started again, the others disarmed").await?;
                }
                None => {
                    let ids: Vec<&str> = applied.iter().map(|f| f.id.as_str()).collect();
                    println!(
                        "{} stay until `lab heal {}` (it starts the crashed Sentinel again)",
                        ids.join(", "),
                        inst.name
                    );
                }
            }
        }
        Some(Outcome::Healed) => println!("healed by another `lab heal`"),
        Some(o) => {
            println!("{o}");
            heal_all("disarmed").await?;
        }
        None => heal_all("disarmed").await?,
    }
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
    // Process faults first: a resource fault is undone inside a thawed, running container.
    let mut chosen = chosen;
    chosen.sort_by_key(|f| f.kind.heals_inside());
    for f in chosen {
        fault::heal(&engine, &journal, &f).await?;
        journal.timeline().healed(&f)?;
        println!("healed {} ({})", f.id, f.describe());
    }
    Ok(0)
}
