//! `lab doctor`: what this machine can do, found by asking the engine and trying the host.

use anyhow::Result;
use lab_core::engine::host_capabilities;

use super::Ctx;

pub async fn doctor(ctx: &Ctx, json: bool) -> Result<u8> {
    let engine = ctx.engine().await?;
    let caps = host_capabilities(engine.info.rootless);
    let images = lab_core::images::list(&engine).await.unwrap_or_default();
    if json {
        let v = serde_json::json!({
            "engine": engine.info,
            "capabilities": caps,
            "images": images.iter().map(|(t, p)| serde_json::json!({"image": t, "present": p})).collect::<Vec<_>>(),
            "state_dir": ctx.state_root,
            "project": ctx.project,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let i = &engine.info;
    println!(
        "engine      {} {} (API {})",
        i.kind, i.version, i.api_version
    );
    println!("socket      {} (from {})", i.socket, i.socket_source);
    println!("rootless    {}", if i.rootless { "yes" } else { "no" });
    println!("cgroups     v{}", i.cgroup_version);
    println!("faults:");
    for c in caps.all() {
        println!(
            "  {:<20} {:<4} {}",
            c.name,
            if c.supported { "yes" } else { "no" },
            c.how
        );
    }
    // Which mechanism each network fault would use here, so nobody has to guess.
    let want = lab_core::fault::net::Want::from_env().map_err(anyhow::Error::msg)?;
    println!(
        "  network faults ({}={}):",
        lab_core::fault::net::MECHANISM_VAR,
        std::env::var(lab_core::fault::net::MECHANISM_VAR).unwrap_or_else(|_| "auto".into())
    );
    {
        use lab_core::fault::net::{choose, Family};
        for f in [
            Family::Isolate,
            Family::CutClients,
            Family::Partition,
            Family::OneWay,
            Family::Loss,
            Family::Latency,
            Family::Toxic,
        ] {
            let how = match choose(f, want, &caps) {
                Ok(m) => m.to_string(),
                Err(why) => format!("refused: {why}"),
            };
            println!("    {:<12} {how}", f.name());
        }
    }
    println!("  restart-loop: SIGKILL then start, every period, by a task of the `lab` process that applied it (engine API)");
    println!("  leader-crash: SENTINEL SIMULATE-FAILURE crash-after-election on the Sentinels (engine exec), disarmed by a task of the `lab` process once one crashed");
    println!("images:");
    for (tag, present) in &images {
        println!(
            "  {:<8} {tag}",
            if *present { "present" } else { "missing" }
        );
    }
    println!("state dir   {}", ctx.state_root.display());
    println!("project     {}", ctx.project.display());
    Ok(0)
}
