//! One function per subcommand; each prints plain lines (or JSON with --json).

mod doctor;
mod lifecycle;

use std::path::PathBuf;

use anyhow::{Context, Result};
use lab_core::engine::{Engine, EngineChoice};

use crate::args::{Cli, Command, ImagesCmd};

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
    match cli.command {
        Command::Up(a) => lifecycle::up(&ctx, a).await,
        Command::Status(a) => lifecycle::status(&ctx, a).await,
        Command::Logs(a) => lifecycle::logs(&ctx, a).await,
        Command::Down(a) => lifecycle::down(&ctx, a).await,
        Command::Doctor(a) => doctor::doctor(&ctx, a.json).await,
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
        Command::Images(ImagesCmd::List) => {
            let engine = ctx.engine().await?;
            for (tag, present) in lab_core::images::list(&engine).await? {
                println!("{:<8} {tag}", if present { "present" } else { "missing" });
            }
            Ok(0)
        }
    }
}
