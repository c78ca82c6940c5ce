//! Init steps run after every node is ready. `cluster_create` forms a Redis Cluster natively
//! (MEET, ADDSLOTSRANGE, REPLICATE) so it works the same for Valkey and Redis images, and is
//! idempotent: a cluster that already covers its slots is left alone.

use std::time::{Duration, Instant};

use super::probe::{cmd, redis_conn};
use super::verify::parse_info;
use super::{Instance, LabError, Progress};
use crate::engine::Engine;
use crate::topology::InitStep;

const T: Duration = Duration::from_secs(3);

pub async fn run_init(
    engine: &Engine,
    inst: &Instance,
    step: &InitStep,
    deadline: Instant,
    progress: Progress<'_>,
) -> Result<(), LabError> {
    match step {
        InitStep::Exec { service, command } => {
            let out = engine
                .exec_ok(&inst.container_name(service), command)
                .await?;
            progress(&format!("init    exec in {service}: {}", out.trim()));
            Ok(())
        }
        InitStep::ClusterCreate { nodes, replicas } => {
            cluster_create(engine, inst, nodes, *replicas, deadline, progress).await
        }
    }
}

/// Splits 16384 slots into `n` contiguous ranges.
pub fn slot_ranges(n: usize) -> Vec<(u16, u16)> {
    // Same split as `redis-cli --cluster create`, so slot maps match what people know.
    let n = n.max(1);
    let per = 16384.0 / n as f64;
    let mut first = 0u32;
    let mut cursor = 0.0f64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut last = (cursor + per - 1.0).round() as u32;
        if last > 16383 || i == n - 1 {
            last = 16383;
        }
        last = last.max(first);
        out.push((first as u16, last as u16));
        first = last + 1;
        cursor += per;
    }
    out
}

async fn cluster_create(
    engine: &Engine,
    inst: &Instance,
    nodes: &[String],
    replicas: u8,
    deadline: Instant,
    progress: Progress<'_>,
) -> Result<(), LabError> {
    let pw = inst.password.as_deref();
    let err = |m: String| LabError::Init(format!("cluster_create: {m}"));
    let mut conns = vec![];
    for n in nodes {
        let hp = inst
            .host_port(n, 6379)
            .ok_or_else(|| err(format!("{n} does not publish port 6379")))?;
        conns.push((
            n.clone(),
            redis_conn(hp, pw, T)
                .await
                .map_err(|e| err(format!("{n}: {e}")))?,
        ));
    }
    let info: String = cmd(&mut conns[0].1, redis::cmd("CLUSTER").arg("INFO"), T)
        .await
        .map_err(err)?;
    if parse_info(&info)
        .get("cluster_slots_assigned")
        .map(String::as_str)
        == Some("16384")
    {
        progress("init    cluster already formed (16384 slots assigned)");
        return Ok(());
    }
    // Container IPs on the lab network: nodes meet over it, not over host ports.
    let mut ips = vec![];
    for n in nodes {
        let c = engine
            .inspect_container(&inst.container_name(n))
            .await?
            .ok_or_else(|| err(format!("container of {n} is gone")))?;
        let ip = c
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|m| {
                m.into_values()
                    .find_map(|e| e.ip_address.filter(|i| !i.is_empty()))
            })
            .ok_or_else(|| err(format!("{n} has no address on the lab network")))?;
        ips.push(ip);
    }
    let masters = nodes.len() / (replicas as usize + 1);
    if masters == 0 {
        return Err(err("not enough nodes for one master".into()));
    }
    let mut ids = vec![];
    for (n, c) in conns.iter_mut() {
        let id: String = cmd(c, redis::cmd("CLUSTER").arg("MYID"), T)
            .await
            .map_err(|e| err(format!("{n}: {e}")))?;
        ids.push(id);
    }
    for ip in ips.iter().skip(1) {
        let _: String = cmd(
            &mut conns[0].1,
            redis::cmd("CLUSTER").arg("MEET").arg(ip).arg(6379),
            T,
        )
        .await
        .map_err(err)?;
    }
    // Wait until every node knows every other (gossip), bounded by the deadline.
    loop {
        let mut all = true;
        for (_, c) in conns.iter_mut() {
            let t: String = cmd(c, redis::cmd("CLUSTER").arg("NODES"), T)
                .await
                .map_err(err)?;
            if t.lines().filter(|l| !l.trim().is_empty()).count() < nodes.len() {
                all = false;
            }
        }
        if all {
            break;
        }
        if Instant::now() > deadline {
            return Err(err("nodes did not all meet before the deadline".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, (lo, hi)) in slot_ranges(masters).into_iter().enumerate() {
        let _: String = cmd(
            &mut conns[i].1,
            redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(lo).arg(hi),
            T,
        )
        .await
        .map_err(|e| err(format!("{}: {e}", nodes[i])))?;
    }
    for r in masters..nodes.len() {
        let master_id = ids[(r - masters) % masters].clone();
        // A replica can only follow a master it has heard of; gossip may still be on its way.
        loop {
            let res: Result<String, String> = cmd(
                &mut conns[r].1,
                redis::cmd("CLUSTER").arg("REPLICATE").arg(&master_id),
                T,
            )
            .await;
            match res {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("replicate retry: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(err(format!("{}: {e}", nodes[r]))),
            }
        }
    }
    progress(&format!(
        "init    cluster formed: {masters} masters with {} slots each, {} replicas",
        16384 / masters,
        nodes.len() - masters
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_everything_once() {
        let r = slot_ranges(3);
        assert_eq!(r, vec![(0, 5460), (5461, 10922), (10923, 16383)]);
        let total: u32 = r.iter().map(|(a, b)| (*b - *a) as u32 + 1).sum();
        assert_eq!(total, 16384);
    }
}
