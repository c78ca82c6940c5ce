//! The seed's success criteria, checked against the live servers through published ports:
//! every master has its replica with a green link; the Sentinels agree on each master and
//! the quorum is reachable; for the cluster, `cluster_state:ok` and 16384 slots covered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::addr::AddrMap;
use super::probe::{cmd, redis_conn};
use super::Instance;
use crate::engine::Engine;
use crate::topology::{Role, Verify};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Criteria {
    pub checks: Vec<Check>,
}

impl Criteria {
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
    fn push(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }
}

impl std::fmt::Display for Criteria {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "  [{}] {}: {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    }
}

/// Parses `INFO` output into key -> value.
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const T: Duration = Duration::from_secs(2);

/// Retries the criteria until they all hold or the deadline passes (Sentinels need a few
/// hello periods to discover replicas and each other).
pub async fn verify_until(engine: &Engine, inst: &Instance, deadline: Instant) -> Criteria {
    loop {
        let c = verify_once(engine, inst).await;
        if c.all_ok() || Instant::now() + Duration::from_millis(500) > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn verify_once(engine: &Engine, inst: &Instance) -> Criteria {
    let mut c = Criteria::default();
    let map = match AddrMap::build(engine, inst).await {
        Ok(m) => m,
        Err(e) => {
            c.push("engine", false, e.to_string());
            return c;
        }
    };
    match inst.topology.lab.verify.clone() {
        None => {}
        Some(Verify::Sentinel { port, quorum }) => sentinel(inst, &map, port, quorum, &mut c).await,
        Some(Verify::Cluster { port }) => cluster(inst, port, &mut c).await,
    }
    c
}

async fn sentinel(inst: &Instance, map: &AddrMap, port: u16, quorum: u8, c: &mut Criteria) {
    let pw = inst.password.as_deref();
    let sentinels = super::role_ports(inst, Role::Sentinel, port);
    for group in inst.topology.groups() {
        let mut answers: Vec<(String, String)> = vec![];
        let mut knows_no_replica: Vec<String> = vec![];
        let mut reachable = 0;
        for (name, hp) in &sentinels {
            let Ok(mut conn) = redis_conn(*hp, pw, T).await else {
                continue;
            };
            reachable += 1;
            let r: Result<Option<(String, String)>, String> = cmd(
                &mut conn,
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&group),
                T,
            )
            .await;
            if let Ok(Some((h, p))) = r {
                answers.push((name.clone(), format!("{h}:{p}")));
            }
            // A Sentinel learns a master's replicas from its INFO, every 10 s: until then a
            // failover aborts with -failover-abort-no-good-slave, so a drill must not start.
            let replicas: Result<Vec<HashMap<String, String>>, String> = cmd(
                &mut conn,
                redis::cmd("SENTINEL").arg("replicas").arg(&group),
                T,
            )
            .await;
            let good = replicas
                .map(|rs| {
                    rs.iter()
                        .filter(|r| {
                            r.get("flags").is_some_and(|f| {
                                !f.contains("s_down") && !f.contains("disconnected")
                            })
                        })
                        .count()
                })
                .unwrap_or(0);
            if good == 0 {
                knows_no_replica.push(name.clone());
            }
        }
        c.push(
            format!("{group}: every sentinel knows a healthy replica"),
            knows_no_replica.is_empty() && reachable == sentinels.len(),
            if knows_no_replica.is_empty() {
                format!("{reachable} of {} sentinels", sentinels.len())
            } else {
                format!(
                    "no healthy replica known to {}",
                    knows_no_replica.join(", ")
                )
            },
        );
        let agreed = answers.first().map(|a| a.1.clone());
        let all_agree = answers.len() == sentinels.len()
            && answers.iter().all(|a| Some(&a.1) == agreed.as_ref());
        c.push(
            format!("{group}: sentinels agree on the master"),
            all_agree,
            if all_agree {
                format!(
                    "{} of {} sentinels name {}",
                    answers.len(),
                    sentinels.len(),
                    agreed.clone().unwrap_or_default()
                )
            } else {
                format!("answers: {answers:?}")
            },
        );
        // Quorum reachable: ask one sentinel; it counts the sentinels it can reach.
        let mut ck = (false, String::from("no sentinel answered"));
        for (_, hp) in &sentinels {
            if let Ok(mut conn) = redis_conn(*hp, pw, T).await {
                let r: Result<String, String> = cmd(
                    &mut conn,
                    redis::cmd("SENTINEL").arg("ckquorum").arg(&group),
                    T,
                )
                .await;
                ck = match r {
                    Ok(s) => (true, s),
                    Err(e) => (false, e),
                };
                break;
            }
        }
        c.push(
            format!("{group}: quorum {quorum} reachable"),
            ck.0 && reachable >= quorum as usize,
            format!("{} ({reachable} sentinels reachable)", ck.1),
        );
        // The master (as the sentinels name it) has a replica with a green link.
        let Some(addr) = agreed else {
            c.push(
                format!("{group}: master has a replica with link up"),
                false,
                "no master known",
            );
            continue;
        };
        let (h, p) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "6379"));
        let port: u16 = p.parse().unwrap_or(6379);
        let Some(hp) = map.translate(h, port) else {
            c.push(
                format!("{group}: master has a replica with link up"),
                false,
                format!("announced address {addr} maps to no published port"),
            );
            continue;
        };
        let master_name = map.service_of(h).unwrap_or(h).to_string();
        let (ok, detail) = match redis_conn(hp, pw, T).await {
            Err(e) => (false, e),
            Ok(mut conn) => {
                match cmd::<String>(&mut conn, redis::cmd("INFO").arg("replication"), T).await {
                    Err(e) => (false, e),
                    Ok(text) => {
                        let info = parse_info(&text);
                        let role = info.get("role").cloned().unwrap_or_default();
                        let online: Vec<String> = info
                            .iter()
                            .filter(|(k, v)| k.starts_with("slave") && v.contains("state=online"))
                            .map(|(_, v)| v.split(',').next().unwrap_or("").replace("ip=", ""))
                            .collect();
                        let mut links = vec![];
                        for ip in &online {
                            if let Some(rp) = map.translate(ip, 6379) {
                                if let Ok(mut rc) = redis_conn(rp, pw, T).await {
                                    if let Ok(t) = cmd::<String>(
                                        &mut rc,
                                        redis::cmd("INFO").arg("replication"),
                                        T,
                                    )
                                    .await
                                    {
                                        let ri = parse_info(&t);
                                        links.push((
                                            map.service_of(ip).unwrap_or(ip).to_string(),
                                            ri.get("master_link_status")
                                                .cloned()
                                                .unwrap_or_default(),
                                        ));
                                    }
                                }
                            }
                        }
                        let green = links.iter().any(|(_, s)| s == "up");
                        (
                            role == "master" && green,
                            format!(
                                "{master_name} is {role}; replicas: {}",
                                if links.is_empty() {
                                    "none online".to_string()
                                } else {
                                    links
                                        .iter()
                                        .map(|(n, s)| format!("{n} link {s}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                }
                            ),
                        )
                    }
                }
            }
        };
        c.push(
            format!("{group}: master has a replica with link up"),
            ok,
            detail,
        );
    }
}

async fn cluster(inst: &Instance, port: u16, c: &mut Criteria) {
    let pw = inst.password.as_deref();
    let nodes = super::role_ports(inst, Role::ClusterNode, port);
    let mut nodes_text = None;
    for (name, hp) in &nodes {
        let (ok, detail) = match redis_conn(*hp, pw, T).await {
            Err(e) => (false, e),
            Ok(mut conn) => {
                match cmd::<String>(&mut conn, &redis::cmd("CLUSTER").arg("INFO").to_owned(), T)
                    .await
                {
                    Err(e) => (false, e),
                    Ok(t) => {
                        let i = parse_info(&t);
                        let state = i.get("cluster_state").cloned().unwrap_or_default();
                        let assigned = i.get("cluster_slots_assigned").cloned().unwrap_or_default();
                        let okslots = i.get("cluster_slots_ok").cloned().unwrap_or_default();
                        if nodes_text.is_none() {
                            nodes_text =
                                cmd::<String>(&mut conn, redis::cmd("CLUSTER").arg("NODES"), T)
                                    .await
                                    .ok();
                        }
                        (
                        state == "ok" && assigned == "16384" && okslots == "16384",
                        format!("cluster_state:{state}, slots assigned {assigned}, slots ok {okslots}"),
                    )
                    }
                }
            }
        };
        c.push(format!("{name}: cluster ok, 16384 slots"), ok, detail);
        // A replica counts only once its first sync is done: `CLUSTER NODES` says
        // "connected" as soon as the bus link is up, long before the data is there.
        if let Ok(mut conn) = redis_conn(*hp, pw, T).await {
            if let Ok(t) = cmd::<String>(&mut conn, redis::cmd("INFO").arg("replication"), T).await
            {
                let i = parse_info(&t);
                if i.get("role").map(|r| r.trim()) == Some("slave") {
                    let link = i
                        .get("master_link_status")
                        .map(|l| l.trim().to_string())
                        .unwrap_or_default();
                    c.push(
                        format!("{name}: replica link up"),
                        link == "up",
                        format!("master_link_status:{link}"),
                    );
                }
            }
        }
    }
    let text = nodes_text.unwrap_or_default();
    let (ok, detail) = masters_have_replicas(&text);
    c.push("every master has a connected replica", ok, detail);
}

/// From `CLUSTER NODES`: every master serving slots has at least one connected replica.
pub fn masters_have_replicas(nodes: &str) -> (bool, String) {
    let mut masters: Vec<(String, usize)> = vec![];
    let mut replicas_of: HashMap<String, usize> = HashMap::new();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let flags = f[2];
        if flags.contains("fail") && !flags.contains("fail?") {
            continue;
        }
        if flags.contains("master") && f.len() > 8 {
            masters.push((f[0].to_string(), f.len() - 8));
        } else if flags.contains("slave") && f[7] == "connected" {
            *replicas_of.entry(f[3].to_string()).or_default() += 1;
        }
    }
    if masters.is_empty() {
        return (false, "no master serves slots".into());
    }
    let lacking: Vec<String> = masters
        .iter()
        .filter(|(id, _)| replicas_of.get(id).copied().unwrap_or(0) == 0)
        .map(|(id, _)| id.chars().take(8).collect())
        .collect();
    (
        lacking.is_empty(),
        if lacking.is_empty() {
            format!("{} masters, each with a connected replica", masters.len())
        } else {
            format!(
                "masters without a connected replica: {}",
                lacking.join(", ")
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let i = parse_info("# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.3,port=6379,state=online,offset=1,lag=0\r\n");
        assert_eq!(i["role"], "master");
        assert!(i["slave0"].contains("state=online"));
    }

    #[test]
    fn cluster_nodes_replica_check() {
        let nodes = "a1 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460\n\
                     b1 10.0.0.2:6379@16379 master - 0 0 2 connected 5461-10922\n\
                     c1 10.0.0.4:6379@16379 slave a1 0 0 1 connected\n";
        let (ok, d) = masters_have_replicas(nodes);
        assert!(!ok);
        assert!(d.contains("b1"), "{d}");
        let more = format!("{nodes}d1 10.0.0.5:6379@16379 slave b1 0 0 2 connected\n");
        assert!(masters_have_replicas(&more).0);
    }
}
