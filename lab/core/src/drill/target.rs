//! Fault targets resolved live: "the master of g1" is whichever node of g1 reports
//! `role:master` right now (asked over its published port), not what the file said at start.
//! The choices themselves (seeded picks, a part of the Sentinels, a zone) are pure functions
//! of the candidates, so they are tested without containers and repeat for the same seed.

use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::lifecycle::probe::{cmd, redis_conn};
use crate::lifecycle::verify::parse_info;
use crate::lifecycle::Instance;
use crate::scenario::{Part, Target};
use crate::topology::{Role, Topology};

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
            pick_one(&candidates, *seed)
                .map(str::to_string)
                .ok_or_else(|| format!("no node is a {role} right now"))
        }
        Target::SentinelLeader(g) => sentinel_leader(inst, g).await,
        Target::Sentinels { .. } | Target::Zone(_) => {
            Err(format!("{t} can be several nodes; name one node instead"))
        }
    }
}

/// What one Sentinel says of a group: the `flags` of its `SENTINEL MASTER` reply and whether
/// it flags one of the group's replicas `promoted`; `flags` is `None` when it did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelView {
    pub node: String,
    pub flags: Option<String>,
    pub promoted_replica: bool,
}

/// The value of `field` in a `SENTINEL MASTER` / `SENTINEL REPLICAS` entry (a flat list of
/// field, value, field, value...).
pub fn field<'a>(reply: &'a [String], name: &str) -> Option<&'a str> {
    reply
        .chunks_exact(2)
        .find(|kv| kv[0] == name)
        .map(|kv| kv[1].as_str())
}

fn has_flag(flags: &str, flag: &str) -> bool {
    flags.split(',').any(|f| f.trim() == flag)
}

/// The Sentinel failing over `group`, from every Sentinel's view. Sentinel sets
/// `failover_in_progress` on the master when it starts an attempt (`+try-failover`), before
/// the vote, and only on itself; two Sentinels can try at once, and the one that lost the
/// vote keeps the flag until its attempt times out. The leader is then the one that has
/// picked a replica to promote (flagged `promoted` in its `SENTINEL REPLICAS`).
pub fn failover_leader(group: &str, views: &[SentinelView]) -> Result<String, String> {
    let trying: Vec<&SentinelView> = views
        .iter()
        .filter(|v| {
            v.flags
                .as_deref()
                .is_some_and(|f| has_flag(f, "failover_in_progress"))
        })
        .collect();
    match trying.as_slice() {
        [one] => Ok(one.node.clone()),
        [] => {
            let silent: Vec<&str> = views
                .iter()
                .filter(|v| v.flags.is_none())
                .map(|v| v.node.as_str())
                .collect();
            Err(if silent.is_empty() {
                format!("no Sentinel is failing over {group} now")
            } else {
                format!(
                    "no Sentinel is failing over {group} now (no answer from {})",
                    silent.join(", ")
                )
            })
        }
        many => {
            let picked: Vec<&&SentinelView> = many.iter().filter(|v| v.promoted_replica).collect();
            match picked.as_slice() {
                [one] => Ok(one.node.clone()),
                _ => Err(format!(
                    "{} Sentinels ({}) are trying to fail over {group} and none has picked a \
                     replica yet: the vote is not over",
                    many.len(),
                    many.iter()
                        .map(|v| v.node.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
}

/// Asks one Sentinel for its view of `group`.
async fn sentinel_view(inst: &Instance, node: &str, group: &str) -> SentinelView {
    let mut v = SentinelView {
        node: node.to_string(),
        flags: None,
        promoted_replica: false,
    };
    let Some(port) = inst.host_port(node, 26379) else {
        return v;
    };
    let Ok(mut c) = redis_conn(port, inst.password.as_deref(), T).await else {
        return v;
    };
    let Ok(master) =
        cmd::<Vec<String>>(&mut c, redis::cmd("SENTINEL").arg("MASTER").arg(group), T).await
    else {
        return v;
    };
    v.flags = field(&master, "flags").map(str::to_string);
    if let Ok(replicas) =
        cmd::<Vec<Vec<String>>>(&mut c, redis::cmd("SENTINEL").arg("REPLICAS").arg(group), T).await
    {
        v.promoted_replica = replicas
            .iter()
            .any(|r| field(r, "flags").is_some_and(|f| has_flag(f, "promoted")));
    }
    v
}

/// The Sentinel failing over `group` now, every Sentinel asked at once. An open vote (two
/// Sentinels trying) is asked again for up to a second: it ends within a few of Sentinel's
/// 100 ms ticks.
async fn sentinel_leader(inst: &Instance, group: &str) -> Result<String, String> {
    let sentinels = names_with_role(&inst.topology, Role::Sentinel);
    let mut result = Err(format!("the topology has no Sentinel to fail over {group}"));
    for attempt in 0..6 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let views =
            futures_util::future::join_all(sentinels.iter().map(|s| sentinel_view(inst, s, group)))
                .await;
        result = failover_leader(group, &views);
        // None in progress is the answer; only an open vote is worth asking again.
        if result.is_ok() || result.as_ref().is_err_and(|e| e.starts_with("no Sentinel")) {
            break;
        }
    }
    result
}

/// Resolves a target to every node it names: one for most targets, several for a part of
/// the Sentinels or a zone.
pub async fn resolve_all(inst: &Instance, t: &Target) -> Result<Vec<String>, String> {
    match t {
        Target::Sentinels { part, seed } => {
            let all = names_with_role(&inst.topology, Role::Sentinel);
            let chosen = pick_part(&all, *part, *seed);
            if chosen.is_empty() {
                return Err(format!(
                    "{t} is nobody: the topology has {} Sentinel(s)",
                    all.len()
                ));
            }
            Ok(chosen.into_iter().map(str::to_string).collect())
        }
        Target::Zone(z) => {
            let nodes = in_zone(&inst.topology, z);
            if nodes.is_empty() {
                return Err(format!("no node is in zone {z}"));
            }
            Ok(nodes.into_iter().map(str::to_string).collect())
        }
        other => Ok(vec![resolve(inst, other).await?]),
    }
}

/// Every node a target could resolve to at any time (the members of a group for
/// `master_of`, every Sentinel for a part of them...): the nodes a fault's capability is
/// checked on before the drill starts.
pub fn candidates<'a>(topo: &'a Topology, t: &Target) -> Vec<&'a str> {
    let data = |s: &&crate::topology::ServicePlan| {
        matches!(s.role, Role::Master | Role::Replica | Role::ClusterNode)
    };
    match t {
        Target::Node(n) => topo
            .service(n)
            .map(|s| s.name.as_str())
            .into_iter()
            .collect(),
        Target::MasterOf(g) | Target::ReplicaOf(g) => topo
            .services
            .iter()
            .filter(data)
            .filter(|s| s.group.as_deref() == Some(g.as_str()))
            .map(|s| s.name.as_str())
            .collect(),
        Target::AnyOf { role, .. } => topo
            .services
            .iter()
            .filter(|s| match role {
                Role::Master | Role::Replica => data(s),
                other => s.role == *other,
            })
            .map(|s| s.name.as_str())
            .collect(),
        Target::Sentinels { .. } | Target::SentinelLeader(_) => {
            names_with_role(topo, Role::Sentinel)
        }
        Target::Zone(z) => in_zone(topo, z),
    }
}

fn names_with_role(topo: &Topology, role: Role) -> Vec<&str> {
    topo.services
        .iter()
        .filter(|s| s.role == role)
        .map(|s| s.name.as_str())
        .collect()
}

/// Nodes whose `x-lab` zone is `zone`, in file order.
pub fn in_zone<'a>(topo: &'a Topology, zone: &str) -> Vec<&'a str> {
    topo.services
        .iter()
        .filter(|s| s.zone.as_deref() == Some(zone))
        .map(|s| s.name.as_str())
        .collect()
}

/// One candidate, at random; the same seed and candidates always give the same node.
pub fn pick_one<'a>(candidates: &[&'a str], seed: Option<u64>) -> Option<&'a str> {
    if candidates.is_empty() {
        return None;
    }
    let seed = seed.unwrap_or_else(|| rand::rng().random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Some(candidates[rng.random_range(0..candidates.len())])
}

/// A minority or majority of `all`: the first ones in file order without a seed (so the drill
/// reads plainly), a seeded sample otherwise; always returned in file order.
pub fn pick_part<'a>(all: &[&'a str], part: Part, seed: Option<u64>) -> Vec<&'a str> {
    let k = part.of(all.len());
    let Some(seed) = seed else {
        return all[..k].to_vec();
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut idx: Vec<usize> = rand::seq::index::sample(&mut rng, all.len(), k).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| all[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [&str; 5] = [
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
        "sentinel-4",
        "sentinel-5",
    ];

    #[test]
    fn seeded_picks_repeat() {
        let c = ["redis-2", "redis-4", "redis-6"];
        let a = pick_one(&c, Some(42));
        for _ in 0..20 {
            assert_eq!(pick_one(&c, Some(42)), a);
        }
        // Different seeds reach every candidate: the pick is not stuck on one.
        let mut seen: Vec<&str> = (0..64).filter_map(|s| pick_one(&c, Some(s))).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, c.to_vec());
        assert_eq!(pick_one(&[], Some(1)), None);
    }

    /// The shipped Sentinel topology, with zones given by hand (no shipped file has zones yet).
    fn zoned() -> Topology {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../compose/redis-sentinel.yaml");
        let mut t = crate::topology::load(&path, &Default::default()).expect("topology");
        for s in &mut t.services {
            s.zone = match s.name.as_str() {
                "redis-1" | "redis-3" | "sentinel-1" => Some("a".into()),
                "redis-2" | "sentinel-2" => Some("b".into()),
                _ => None,
            };
        }
        t
    }

    #[test]
    fn zones_and_candidates_from_the_topology() {
        let t = zoned();
        assert_eq!(in_zone(&t, "a"), vec!["redis-1", "redis-3", "sentinel-1"]);
        assert_eq!(in_zone(&t, "b"), vec!["redis-2", "sentinel-2"]);
        assert!(in_zone(&t, "c").is_empty());
        assert_eq!(
            candidates(&t, &Target::Zone("b".into())),
            vec!["redis-2", "sentinel-2"]
        );
        // A group's master can be any of its data nodes, whatever the file says.
        assert_eq!(
            candidates(&t, &Target::MasterOf("g1".into())),
            vec!["redis-1", "redis-2"]
        );
        assert_eq!(
            candidates(
                &t,
                &Target::Sentinels {
                    part: Part::Majority,
                    seed: None
                }
            ),
            vec!["sentinel-1", "sentinel-2", "sentinel-3"]
        );
        assert_eq!(
            candidates(
                &t,
                &Target::AnyOf {
                    role: Role::Replica,
                    seed: Some(1)
                }
            )
            .len(),
            6,
            "any data node can be a replica after failovers"
        );
        assert_eq!(
            candidates(&t, &Target::Node("nope".into())),
            Vec::<&str>::new()
        );
    }

    /// A `SENTINEL MASTER` reply as valkey 8.1 sends it (flat field/value list), trimmed.
    fn master_reply(flags: &str) -> Vec<String> {
        [
            "name",
            "g1",
            "ip",
            "redis-1",
            "port",
            "6379",
            "runid",
            "",
            "flags",
            flags,
            "link-pending-commands",
            "0",
            "num-slaves",
            "1",
            "quorum",
            "2",
            "failover-timeout",
            "10000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn view(node: &str, flags: Option<&str>, promoted: bool) -> SentinelView {
        SentinelView {
            node: node.into(),
            flags: flags.map(|f| field(&master_reply(f), "flags").expect("flags").to_string()),
            promoted_replica: promoted,
        }
    }

    #[test]
    fn the_failover_leader_from_sentinel_master_replies() {
        let leading = "master,s_down,o_down,failover_in_progress";
        let watching = "master,s_down,o_down";
        assert_eq!(
            failover_leader(
                "g1",
                &[
                    view("sentinel-1", Some(watching), false),
                    view("sentinel-2", Some(leading), false),
                    view("sentinel-3", Some(watching), false),
                ]
            ),
            Ok("sentinel-2".into())
        );
        // Nobody failing over: one plain sentence, naming who did not answer.
        assert_eq!(
            failover_leader("g1", &[view("sentinel-1", Some("master"), false)]),
            Err("no Sentinel is failing over g1 now".into())
        );
        assert_eq!(
            failover_leader(
                "g1",
                &[
                    view("sentinel-1", Some("master"), false),
                    view("sentinel-2", None, false)
                ]
            ),
            Err("no Sentinel is failing over g1 now (no answer from sentinel-2)".into())
        );
        // A flag is matched whole, not as a substring of another.
        assert!(failover_leader(
            "g1",
            &[view(
                "sentinel-1",
                Some("master,failover_in_progress_x"),
                false
            )]
        )
        .is_err());
        // Two trying at once: the one that picked a replica won the vote.
        assert_eq!(
            failover_leader(
                "g1",
                &[
                    view("sentinel-1", Some(leading), false),
                    view("sentinel-2", Some(leading), true),
                ]
            ),
            Ok("sentinel-2".into())
        );
        let e = failover_leader(
            "g1",
            &[
                view("sentinel-1", Some(leading), false),
                view("sentinel-3", Some(leading), false),
            ],
        )
        .expect_err("open vote");
        assert!(
            e.contains("sentinel-1, sentinel-3") && e.contains("vote"),
            "{e}"
        );
    }

    #[test]
    fn parts_of_the_sentinels() {
        assert_eq!(pick_part(&S[..3], Part::Minority, None), vec!["sentinel-1"]);
        assert_eq!(
            pick_part(&S[..3], Part::Majority, None),
            vec!["sentinel-1", "sentinel-2"]
        );
        let m = pick_part(&S, Part::Majority, Some(9));
        assert_eq!(m.len(), 3);
        assert_eq!(
            pick_part(&S, Part::Majority, Some(9)),
            m,
            "same seed, same part"
        );
        let mut sorted = m.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, m, "in file order");
        let m2 = pick_part(&S, Part::Minority, Some(9));
        assert_eq!(m2.len(), 2);
        assert!(m2.iter().all(|n| S.contains(n)));
    }
}
