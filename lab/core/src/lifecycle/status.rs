//! Per-node status read live: container state from the engine, role and replication link
//! from the server itself (not from lab's own records).

use std::time::Duration;

use super::probe::{cmd, probe_once, redis_conn};
use super::verify::parse_info;
use super::Instance;
use crate::engine::{Engine, EngineError};
use crate::topology::{Probe, Role};

#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub container: String,
    /// Role declared in the topology file.
    pub declared_role: Role,
    /// Role the server reports now (`master`, `slave`, `sentinel`...), if reachable.
    pub live_role: Option<String>,
    pub group: Option<String>,
    /// Engine state: running, paused, exited, missing...
    pub state: String,
    /// Readiness probe result: ok, or the error.
    pub health: String,
    /// Replicas: master_link_status; masters: connected replicas.
    pub link: Option<String>,
    /// 127.0.0.1 ports (container port -> host port).
    pub ports: Vec<(u16, u16)>,
}

pub async fn status(engine: &Engine, inst: &Instance) -> Result<Vec<NodeStatus>, EngineError> {
    let mut out = vec![];
    let t = Duration::from_secs(2);
    for s in &inst.topology.services {
        let container = inst.container_name(&s.name);
        let state = match engine.inspect_container(&container).await? {
            None => "missing".to_string(),
            Some(c) => {
                let st = c.state.unwrap_or_default();
                if st.paused == Some(true) {
                    "paused".into()
                } else {
                    st.status
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "unknown".into())
                }
            }
        };
        let ports: Vec<(u16, u16)> = s
            .ports
            .iter()
            .filter_map(|p| {
                inst.host_port(&s.name, p.container_port)
                    .map(|h| (p.container_port, h))
            })
            .collect();
        let mut health = "no probe".to_string();
        let mut live_role = None;
        let mut link = None;
        if let Some(probe) = &s.probe {
            if let Some(hp) = inst.host_port(&s.name, probe.port()) {
                health = if state != "running" {
                    format!("down ({state})")
                } else {
                    match probe_once(probe, hp, inst.password.as_deref()).await {
                        Ok(()) => "ok".into(),
                        Err(e) => e,
                    }
                };
                if matches!(probe, Probe::Redis { .. }) && health == "ok" {
                    if let Ok(mut c) = redis_conn(hp, inst.password.as_deref(), t).await {
                        if s.role == Role::Sentinel {
                            live_role = Some("sentinel".into());
                        } else if let Ok(text) =
                            cmd::<String>(&mut c, redis::cmd("INFO").arg("replication"), t).await
                        {
                            let i = parse_info(&text);
                            live_role = i.get("role").cloned();
                            link = match live_role.as_deref() {
                                Some("slave") => {
                                    i.get("master_link_status").map(|l| format!("link {l}"))
                                }
                                Some("master") => {
                                    i.get("connected_slaves").map(|n| format!("{n} replica(s)"))
                                }
                                _ => None,
                            };
                        }
                    }
                }
            }
        }
        out.push(NodeStatus {
            name: s.name.clone(),
            container,
            declared_role: s.role,
            live_role,
            group: s.group.clone(),
            state,
            health,
            link,
            ports,
        });
    }
    Ok(out)
}
