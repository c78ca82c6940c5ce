//! One function per subcommand; each prints plain lines (or JSON with --json).

mod doctor;
mod drill;
mod lifecycle;
mod tui;

use std::path::PathBuf;

use anyhow::{Context, Result};
use lab_core::engine::{Engine, EngineChoice};

use crate::args::{BenchCmd, Cli, Command, ImagesCmd};

pub struct Ctx {
    pub engine_req: Option<String>,
    pub project: PathBuf,
    pub state_root: PathBuf,
}

impl Ctx {
    pub async fn engine(&self) -> Result<Engine> {
        Ok(Engine::connect(&EngineChoice::from_env(self.engine_req.clone())).await?)
    }
}

pub async fn run(cli: Cli) -> Result<u8> {
    let ctx = Ctx {
        engine_req: cli.engine.clone(),
        project: cli
            .home
            .clone()
            .unwrap_or_else(lab_core::topology::project_dir),
        state_root: lab_core::state::state_root(),
    };
    let Some(command) = cli.command else {
        return tui::tui(
            &ctx,
            crate::args::TuiArgs {
                topology: "redis-sentinel".into(),
                images: "auto".into(),
                rate: 600,
                clients: 6,
                report_dir: "reports".into(),
                ..Default::default()
            },
        )
        .await;
    };
    match command {
        Command::Tui(a) => tui::tui(&ctx, a).await,
        Command::Up(a) => lifecycle::up(&ctx, a).await,
        Command::Status(a) => lifecycle::status(&ctx, a).await,
        Command::Logs(a) => lifecycle::logs(&ctx, a).await,
        Command::Down(a) => lifecycle::down(&ctx, a).await,
        Command::Doctor(a) => doctor::doctor(&ctx, a.json).await,
        Command::Drill(a) => drill::drill(&ctx, a).await,
        Command::Report(r) => drill::report(r),
        Command::Fault(a) => drill::fault(&ctx, *a).await,
        Command::Heal(a) => drill::heal(&ctx, a).await,
        Command::Topologies => {
            for t in lab_core::topology::known(&ctx.project) {
                let f = lab_core::topology::find(&t, &ctx.project)?;
                let desc = lab_core::topology::load_meta(&f, &std::env::vars().collect())
                    .map(|m| m.description)
                    .unwrap_or_else(|e| format!("(invalid: {e})"));
                println!("{t:<20} {desc}");
            }
            Ok(0)
        }
        Command::Images(ImagesCmd::Build { names, force }) => {
            let engine = ctx.engine().await?;
            let outcomes = lab_core::images::build(&engine, &names, force)
                .await
                .context("image build failed")?;
            for o in outcomes {
                println!(
                    "{:<16} {:<20} {:>6.1}s  {}",
                    o.recipe,
                    o.status.to_string(),
                    o.seconds,
                    o.tags.join(" ")
                );
            }
            Ok(0)
        }
        Command::Bench(BenchCmd::Redis {
            topology,
            name,
            clients,
            requests,
            pipeline,
            value_size,
            no_peer,
            rounds,
            path,
            json,
        }) => {
            let engine = ctx.engine().await?;
            let name = name.unwrap_or(topology);
            let inst =
                lab_core::lifecycle::open(&engine, &name, &ctx.project, &ctx.state_root).await?;
            let params = lab_core::bench::BenchParams {
                clients,
                requests,
                pipelines: pipeline,
                value_size,
                peer: !no_peer,
                rounds,
                path,
                ..Default::default()
            };
            let r = lab_core::bench::redis(&engine, std::sync::Arc::new(inst), &params)
                .await
                .map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(0);
            }
            println!(
                "target {}; {} clients, {} requests per run, {} rounds per case after one warm-up run of each tool; {}",
                r.target, clients, requests, rounds, r.peer_note
            );
            println!(
                "{:<18} {:<4} {:>3} {:>5} {:>12} {:>9} {:>9} {:>10} {:>7}",
                "TOOL", "TEST", "P", "ROUND", "OPS/S", "P50 ms", "P99 ms", "CPU us/op", "ERRORS"
            );
            for row in &r.rows {
                let ms =
                    |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
                println!(
                    "{:<18} {:<4} {:>3} {:>5} {:>12.0} {:>9} {:>9} {:>10.2} {:>7}",
                    row.tool,
                    row.test,
                    row.pipeline,
                    row.round,
                    row.ops_per_s,
                    ms(row.p50_ms),
                    ms(row.p99_ms),
                    row.cpu_us_per_op(),
                    row.errors
                );
            }
            for c in &r.cases {
                let (t, u) = (c.throughput_ratio, c.cpu_ratio);
                println!(
                    "lab/peer {} -P {} over {} rounds: throughput {:.2}x (range {:.2}-{:.2}), CPU per op {:.2}x (range {:.2}-{:.2})",
                    c.test, c.pipeline, c.rounds, t.median, t.min, t.max, u.median, u.min, u.max
                );
            }
            println!("resolution: lab's clock ns, the peer's ms (±1 ms per run); CPU from getrusage; latency in 1 us histogram buckets (lab), the peer's own histogram");
            Ok(0)
        }
        Command::Images(ImagesCmd::List) => {
            let engine = ctx.engine().await?;
            for (tag, present) in lab_core::images::list(&engine).await? {
                println!("{:<8} {tag}", if present { "present" } else { "missing" });
            }
            Ok(0)
        }
    }
}
