//! Fault targets resolved live: "the master of g1" is whichever node of g1 reports
//! `role:master` right now (asked over its published port), not what the file said at start.

use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::lifecycle::probe::{cmd, redis_conn};
use crate::lifecycle::verify::parse_info;
use crate::lifecycle::Instance;
use crate::scenario::Target;
use crate::topology::Role;

const T: Duration = Duration::from_secs(2);

/// A data node's replication role as it reports it (`master`, `slave`), `None` if it did not
/// answer.
pub async fn live_role(inst: &Instance, node: &str) -> Option<String> {
    let port = inst.host_port(node, 6379)?;
    let mut c = redis_conn(port, inst.password.as_deref(), T).await.ok()?;
    let text: String = cmd(&mut c, redis::cmd("INFO").arg("replication"), T)
        .await
        .ok()?;
    parse_info(&text).get("role").cloned()
}

/// Whether a replica's link to its master is up.
pub async fn link_up(inst: &Instance, node: &str) -> bool {
    let Some(port) = inst.host_port(node, 6379) else {
        return false;
    };
    let Ok(mut c) = redis_conn(port, inst.password.as_deref(), T).await else {
        return false;
    };
    let Ok(text) = cmd::<String>(&mut c, redis::cmd("INFO").arg("replication"), T).await else {
        return false;
    };
    let info = parse_info(&text);
    info.get("role").map(String::as_str) == Some("slave")
        && info.get("master_link_status").map(String::as_str) == Some("up")
}

fn data_nodes<'a>(inst: &'a Instance, group: Option<&str>) -> Vec<&'a str> {
    inst.topology
        .services
        .iter()
        .filter(|s| matches!(s.role, Role::Master | Role::Replica | Role::ClusterNode))
        .filter(|s| group.is_none() || s.group.as_deref() == group)
        .map(|s| s.name.as_str())
        .collect()
}

async fn with_role<'a>(inst: &'a Instance, group: Option<&str>, role: &str) -> Vec<&'a str> {
    let mut out = vec![];
    for n in data_nodes(inst, group) {
        if live_role(inst, n).await.as_deref() == Some(role) {
            out.push(n);
        }
    }
    out
}

/// Resolves a target to one node name, or says why it cannot.
pub async fn resolve(inst: &Instance, t: &Target) -> Result<String, String> {
    match t {
        Target::Node(n) => inst
            .topology
            .service(n)
            .map(|s| s.name.clone())
            .ok_or_else(|| format!("no node named {n}")),
        Target::MasterOf(g) => {
            let m = with_role(inst, Some(g), "master").await;
            match m.as_slice() {
                [one] => Ok(one.to_string()),
                [] => Err(format!("no node of {g} reports role:master right now")),
                // Two masters (a split brain in progress): the one with replicas attached is
                // the one clients are sent to.
                many => {
                    for n in many {
                        if let Some(port) = inst.host_port(n, 6379) {
                            if let Ok(mut c) = redis_conn(port, inst.password.as_deref(), T).await {
                                if let Ok(text) =
                                    cmd::<String>(&mut c, redis::cmd("INFO").arg("replication"), T)
                                        .await
                                {
                                    let info = parse_info(&text);
                                    if info.get("connected_slaves").map(String::as_str) != Some("0")
                                    {
                                        return Ok(n.to_string());
                                    }
                                }
                            }
                        }
                    }
                    Ok(many[0].to_string())
                }
            }
        }
        Target::ReplicaOf(g) => with_role(inst, Some(g), "slave")
            .await
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| format!("no node of {g} reports role:slave right now")),
        Target::AnyOf { role, seed } => {
            let candidates: Vec<&str> = match role {
                Role::Master => with_role(inst, None, "master").await,
                Role::Replica => with_role(inst, None, "slave").await,
                other => inst
                    .topology
                    .services
                    .iter()
                    .filter(|s| s.role == *other)
                    .map(|s| s.name.as_str())
                    .collect(),
            };
            if candidates.is_empty() {
                return Err(format!("no node is a {role} right now"));
            }
            let seed = seed.unwrap_or_else(|| rand::rng().random());
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            Ok(candidates[rng.random_range(0..candidates.len())].to_string())
        }
    }
}
