//! `lab up`, `status`, `logs`, `down`.

use anyhow::{bail, Context, Result};
use lab_core::lifecycle::{self, status::status as node_status, UpOptions};
use lab_core::topology::Role;

use super::Ctx;
use crate::args::{DownArgs, InstanceArgs, LogsArgs, UpArgs};

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("--set `{s}` is not KEY=VALUE"))
        })
        .collect()
}

fn instance_name(a: &InstanceArgs, ctx: &Ctx) -> String {
    a.name.clone().unwrap_or_else(|| {
        // The instance defaults to the topology's name (the file stem for a path).
        std::path::Path::new(&a.topology)
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .filter(|_| ctx.project.exists())
            .unwrap_or_else(|| a.topology.clone())
    })
}

pub async fn up(ctx: &Ctx, a: UpArgs) -> Result<u8> {
    let timeout = lab_core::topology::parse_duration(&a.timeout)
        .with_context(|| format!("--timeout `{}` is not a duration (like 180s)", a.timeout))?;
    let images = a.images.parse().map_err(anyhow::Error::msg)?;
    let opts = UpOptions {
        topology: a.inst.topology.clone(),
        instance: a.inst.name.clone(),
        profile: a.profile.clone(),
        flavor: a.flavor.clone(),
        sets: parse_sets(&a.sets)?,
        images,
        port_base: a.port_base,
        timeout,
        project: ctx.project.clone(),
        state_root: ctx.state_root.clone(),
    };
    let engine = ctx.engine().await?;
    let json = a.inst.json;
    let progress = move |line: &str| {
        if !json {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    };
    let (inst, criteria) = lifecycle::up(&engine, &opts, &progress).await?;
    if json {
        let v = serde_json::json!({
            "instance": inst.name,
            "topology": inst.topology.name,
            "profile": inst.topology.profile,
            "flavor": inst.topology.flavor,
            "settings": inst.topology.settings,
            "password_file": inst.password_file,
            "criteria": criteria,
            "nodes": inst.topology.services.iter().map(|s| serde_json::json!({
                "name": s.name, "role": s.role, "group": s.group,
                "ports": s.ports.iter().filter_map(|p| inst.host_port(&s.name, p.container_port).map(|h| serde_json::json!({"container": p.container_port, "host": h}))).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!();
    println!(
        "{} is up as instance `{}` (profile {}, flavor {}, engine {} {})",
        inst.topology.name,
        inst.name,
        inst.topology.profile,
        inst.topology.flavor,
        engine.info.kind,
        engine.info.version
    );
    for (k, v) in &inst.topology.settings {
        println!("  {k} = {} ({:?})", v.value, v.source);
    }
    println!("success criteria:");
    print!("{criteria}");
    println!("connect (all ports on 127.0.0.1):");
    for s in &inst.topology.services {
        let ports: Vec<String> = s
            .ports
            .iter()
            .filter_map(|p| inst.host_port(&s.name, p.container_port))
            .map(|h| format!("127.0.0.1:{h}"))
            .collect();
        println!(
            "  {:<16} {:<12} {:<8} {}",
            s.name,
            s.role.to_string(),
            s.group.clone().unwrap_or_default(),
            ports.join(" ")
        );
    }
    if let Some(pf) = &inst.password_file {
        let example = inst
            .topology
            .services
            .iter()
            .find(|s| matches!(s.role, Role::Master | Role::ClusterNode))
            .and_then(|s| inst.host_port(&s.name, 6379));
        println!("password file: {}", pf.display());
        if let Some(p) = example {
            let c = if inst
                .topology
                .lab
                .verify
                .as_ref()
                .is_some_and(|v| matches!(v, lab_core::topology::Verify::Cluster { .. }))
            {
                " -c"
            } else {
                ""
            };
            println!(
                "  e.g. REDISCLI_AUTH=\"$(cat {})\" redis-cli{c} -p {p} ping",
                pf.display()
            );
        }
    }
    Ok(0)
}

pub async fn status(ctx: &Ctx, a: InstanceArgs) -> Result<u8> {
    let name = instance_name(&a, ctx);
    let engine = ctx.engine().await?;
    let inst = lifecycle::open(&engine, &name, &ctx.project, &ctx.state_root).await?;
    let nodes = node_status(&engine, &inst).await?;
    if a.json {
        let v = serde_json::json!({
            "instance": inst.name,
            "topology": inst.topology.name,
            "password_file": inst.password_file,
            "nodes": nodes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "{:<16} {:<12} {:<8} {:<8} {:<10} {:<14} PORT",
        "NODE", "ROLE", "GROUP", "STATE", "HEALTH", "LINK"
    );
    for n in &nodes {
        let role = n
            .live_role
            .clone()
            .unwrap_or_else(|| n.declared_role.to_string());
        let health: String = n.health.chars().take(30).collect();
        println!(
            "{:<16} {:<12} {:<8} {:<8} {:<10} {:<14} {}",
            n.name,
            role,
            n.group.clone().unwrap_or_else(|| "-".into()),
            n.state,
            health,
            n.link.clone().unwrap_or_else(|| "-".into()),
            n.ports
                .iter()
                .map(|(_, h)| format!("127.0.0.1:{h}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(0)
}

pub async fn logs(ctx: &Ctx, a: LogsArgs) -> Result<u8> {
    let engine = ctx.engine().await?;
    let instances = lab_core::state::all_instances(&ctx.state_root);
    let candidates: Vec<_> = instances
        .iter()
        .filter(|r| a.name.as_ref().is_none_or(|n| *n == r.instance))
        .collect();
    let mut hits = vec![];
    for r in candidates {
        if let Ok(inst) = lifecycle::open(&engine, &r.instance, &ctx.project, &ctx.state_root).await
        {
            if inst.topology.service(&a.node).is_some() {
                hits.push(inst);
            }
        }
    }
    match hits.len() {
        0 => bail!(
            "no running lab instance has a node named `{}`; see `lab status <topology>` for node names",
            a.node
        ),
        1 => {
            let text = engine
                .logs(&hits[0].container_name(&a.node), a.tail)
                .await?;
            print!("{text}");
            Ok(0)
        }
        _ => bail!(
            "several instances have a node named `{}` ({}); pick one with --name",
            a.node,
            hits.iter().map(|i| i.name.clone()).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub async fn down(ctx: &Ctx, a: DownArgs) -> Result<u8> {
    let name = a.name.clone().unwrap_or_else(|| {
        std::path::Path::new(&a.topology)
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .unwrap_or_else(|| a.topology.clone())
    });
    let engine = ctx.engine().await?;
    let progress = |line: &str| println!("{line}");
    let r = lifecycle::down(&engine, &name, a.volumes, &ctx.state_root, &progress).await?;
    println!(
        "instance `{name}` is down: {} containers, {} networks, {} volumes removed{}",
        r.containers.len(),
        r.networks.len(),
        r.volumes.len(),
        if a.volumes {
            ""
        } else {
            " (volumes kept; --volumes drops them)"
        }
    );
    Ok(0)
}
