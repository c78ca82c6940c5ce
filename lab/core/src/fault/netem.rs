//! The `tc netem` path for latency, jitter, bandwidth and loss, used where the kernel has
//! `sch_netem` (the host check tries it in a throwaway namespace). Qdiscs go on the node's
//! interface, entered from the host with `nsenter -t <pid> -n tc`:
//! - per node (`loss`): a netem root qdisc on the node's interface;
//! - per pair (`latency from -> to`): a `prio` root qdisc with a fourth band that the default
//!   priomap never uses, netem under that band, and a u32 filter sending the packets for the
//!   peer's address there; on both ends, so each direction is delayed, as with the proxy.
//!
//! Each fault's root qdisc has its own handle (from its id), and heal deletes a root qdisc
//! only when it carries that handle. One netem fault per interface: a second is refused by
//! the kernel (the root is taken) and rolled back.

use std::net::IpAddr;
use std::time::Duration;

use super::net::{Addr, Effect};
use super::FaultError;
use crate::engine::Engine;

/// What netem does to the packets it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netem {
    pub delay: Duration,
    pub jitter: Duration,
    pub loss_percent: u8,
    pub rate_kbit: Option<u32>,
}

impl Netem {
    /// The netem arguments (`netem delay 100000us 10000us loss 30% rate 800kbit`).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["netem".to_string()];
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            a.push("delay".into());
            a.push(format!("{}us", self.delay.as_micros()));
            if !self.jitter.is_zero() {
                a.push(format!("{}us", self.jitter.as_micros()));
            }
        }
        if self.loss_percent > 0 {
            a.push("loss".into());
            a.push(format!("{}%", self.loss_percent));
        }
        if let Some(r) = self.rate_kbit {
            a.push("rate".into());
            a.push(format!("{r}kbit"));
        }
        a
    }
}

/// One container's part of a netem fault: netem on all its traffic, or only on what it sends
/// to `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub container: String,
    pub peer: Option<IpAddr>,
    pub netem: Netem,
}

/// The root qdisc handle of fault `id` (`f7` -> `1007`), unique per fault.
pub fn root_handle(id: &str) -> String {
    let n = super::timeline::number(id) % 0x3000;
    format!("{:x}", 0x1000 + n)
}

/// Which containers get what. Pure, so it is unit-tested.
pub fn plan(effect: &Effect, addrs: &[Addr]) -> Result<Vec<Part>, String> {
    let find = |n: &str| {
        addrs
            .iter()
            .find(|a| a.node == n)
            .ok_or_else(|| format!("{n} has no address on the project network (is it running?)"))
    };
    match effect {
        Effect::Loss { node, percent } => Ok(vec![Part {
            container: find(node)?.container.clone(),
            peer: None,
            netem: Netem {
                delay: Duration::ZERO,
                jitter: Duration::ZERO,
                loss_percent: *percent,
                rate_kbit: None,
            },
        }]),
        Effect::Latency {
            from,
            to,
            delay,
            jitter,
            bandwidth_kbit,
        } => {
            let (f, t) = (find(from)?, find(to)?);
            let netem = Netem {
                delay: *delay,
                jitter: *jitter,
                loss_percent: 0,
                rate_kbit: *bandwidth_kbit,
            };
            Ok(vec![
                Part {
                    container: f.container.clone(),
                    peer: Some(t.ip),
                    netem,
                },
                Part {
                    container: t.container.clone(),
                    peer: Some(f.ip),
                    netem,
                },
            ])
        }
        Effect::NodeLatency {
            node,
            delay,
            jitter,
            bandwidth_kbit,
        } => {
            let n = find(node)?;
            let netem = Netem {
                delay: *delay,
                jitter: *jitter,
                loss_percent: 0,
                rate_kbit: *bandwidth_kbit,
            };
            // Its whole egress (towards clients too), and each peer's egress towards it.
            let mut parts = vec![Part {
                container: n.container.clone(),
                peer: None,
                netem,
            }];
            parts.extend(addrs.iter().filter(|a| a.node != n.node).map(|a| Part {
                container: a.container.clone(),
                peer: Some(n.ip),
                netem,
            }));
            Ok(parts)
        }
        other => Err(format!("{} is not injected with netem", other.name())),
    }
}

/// The `tc` argument lists that put a part in force on `dev`, in order. Pure.
pub fn tc_commands(dev: &str, id: &str, part: &Part) -> Vec<Vec<String>> {
    let root = root_handle(id);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let Some(peer) = part.peer else {
        let mut c = s(&[
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "handle",
            &format!("{root}:"),
        ]);
        c.extend(part.netem.args());
        return vec![c];
    };
    let child = format!("{:x}", 0x9000 + super::timeline::number(id) % 0x3000);
    let mut netem = s(&[
        "qdisc",
        "add",
        "dev",
        dev,
        "parent",
        &format!("{root}:4"),
        "handle",
        &format!("{child}:"),
    ]);
    netem.extend(part.netem.args());
    let (proto, matcher, len) = match peer {
        IpAddr::V4(_) => ("ip", "ip", 32),
        IpAddr::V6(_) => ("ipv6", "ip6", 128),
    };
    vec![
        // Bands 1-3 take all traffic by the default priomap; band 4 only what the filter sends.
        s(&[
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "handle",
            &format!("{root}:"),
            "prio",
            "bands",
            "4",
        ]),
        netem,
        s(&[
            "filter",
            "add",
            "dev",
            dev,
            "parent",
            &format!("{root}:0"),
            "protocol",
            proto,
            "prio",
            "1",
            "u32",
            "match",
            matcher,
            "dst",
            &format!("{peer}/{len}"),
            "flowid",
            &format!("{root}:4"),
        ]),
    ]
}

/// The device of `ip -o route get <addr>` output (`... dev eth0 src ...`).
pub fn route_dev(out: &str) -> Option<String> {
    let mut w = out.split_whitespace();
    while let Some(x) = w.next() {
        if x == "dev" {
            return w.next().map(str::to_string);
        }
    }
    None
}

async fn ns(pid: i64, cmd: &str, args: &[String]) -> Result<String, String> {
    let o = tokio::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", cmd])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run nsenter: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

async fn pid_of(engine: &Engine, container: &str) -> Result<Option<i64>, FaultError> {
    let Some(c) = engine.inspect_container(container).await? else {
        return Ok(None);
    };
    let st = c.state.unwrap_or_default();
    Ok(match (st.running, st.pid) {
        (Some(true), Some(p)) if p > 0 => Some(p),
        _ => None,
    })
}

fn err(container: &str, message: String) -> FaultError {
    FaultError::Net {
        container: container.to_string(),
        message,
    }
}

/// Puts fault `id` in force. The caller journalled it first and heals it if this fails.
pub async fn apply(
    engine: &Engine,
    id: &str,
    effect: &Effect,
    addrs: &[Addr],
) -> Result<(), FaultError> {
    let parts = plan(effect, addrs).map_err(|e| err(effect.primary(), e))?;
    for p in &parts {
        let pid = pid_of(engine, &p.container)
            .await?
            .ok_or_else(|| err(&p.container, "not running".into()))?;
        // The interface that reaches the peer (or the gateway: where clients come from).
        let via = p
            .peer
            .or_else(|| {
                addrs
                    .iter()
                    .find(|a| a.container == p.container)
                    .map(|a| a.gateway)
            })
            .ok_or_else(|| err(&p.container, "no address on the project network".into()))?;
        let route = ns(
            pid,
            "ip",
            &["-o".into(), "route".into(), "get".into(), via.to_string()],
        )
        .await
        .map_err(|e| err(&p.container, e))?;
        let dev = route_dev(&route).ok_or_else(|| {
            err(
                &p.container,
                format!("no device in route `{}`", route.trim()),
            )
        })?;
        for c in tc_commands(&dev, id, p) {
            ns(pid, "tc", &c)
                .await
                .map_err(|e| err(&p.container, format!("tc {} refused: {e}", c.join(" "))))?;
        }
    }
    Ok(())
}

/// Removes fault `id`'s root qdisc from every interface of each container that carries it;
/// a container not running has a fresh namespace when it starts, with nothing to remove.
pub async fn heal(engine: &Engine, id: &str, containers: &[String]) -> Result<(), FaultError> {
    let root = format!("{}:", root_handle(id));
    for c in containers {
        let Some(pid) = pid_of(engine, c).await? else {
            continue;
        };
        let links = ns(pid, "ip", &["-o".into(), "link".into(), "show".into()])
            .await
            .map_err(|e| err(c, e))?;
        for dev in links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|d| d.split('@').next().unwrap_or(d))
            .filter(|d| *d != "lo")
        {
            let show = ns(
                pid,
                "tc",
                &[
                    "qdisc".into(),
                    "show".into(),
                    "dev".into(),
                    dev.into(),
                    "root".into(),
                ],
            )
            .await
            .unwrap_or_default();
            if show.split_whitespace().any(|w| w == root) {
                ns(
                    pid,
                    "tc",
                    &[
                        "qdisc".into(),
                        "del".into(),
                        "dev".into(),
                        dev.into(),
                        "root".into(),
                    ],
                )
                .await
                .map_err(|e| err(c, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(node: &str, ip: &str) -> Addr {
        Addr {
            node: node.into(),
            container: format!("x-{node}"),
            ip: ip.parse().expect("ip"),
            gateway: "10.0.0.1".parse().expect("ip"),
            ports: vec![6379],
        }
    }

    #[test]
    fn loss_is_a_netem_root_on_the_node() {
        let p = plan(
            &Effect::Loss {
                node: "a".into(),
                percent: 30,
            },
            &[addr("a", "10.0.0.2")],
        )
        .expect("plan");
        assert_eq!(p.len(), 1);
        let c: Vec<String> = tc_commands("eth0", "f7", &p[0])
            .into_iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            c,
            vec!["qdisc add dev eth0 root handle 1007: netem loss 30%"]
        );
    }

    #[test]
    fn node_latency_is_its_root_and_each_peer_towards_it() {
        let addrs = [
            addr("a", "10.0.0.2"),
            addr("b", "10.0.0.3"),
            addr("c", "10.0.0.4"),
        ];
        let p = plan(
            &Effect::NodeLatency {
                node: "b".into(),
                delay: Duration::from_millis(50),
                jitter: Duration::ZERO,
                bandwidth_kbit: None,
            },
            &addrs,
        )
        .expect("plan");
        let got: Vec<(&str, Option<IpAddr>)> =
            p.iter().map(|p| (p.container.as_str(), p.peer)).collect();
        let b: IpAddr = "10.0.0.3".parse().expect("ip");
        assert_eq!(got, vec![("x-b", None), ("x-a", Some(b)), ("x-c", Some(b))]);
    }

    #[test]
    fn latency_is_per_pair_on_both_ends() {
        let addrs = [addr("a", "10.0.0.2"), addr("b", "10.0.0.3")];
        let p = plan(
            &Effect::Latency {
                from: "a".into(),
                to: "b".into(),
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(10),
                bandwidth_kbit: Some(800),
            },
            &addrs,
        )
        .expect("plan");
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].container.as_str(), p[0].peer),
            ("x-a", Some("10.0.0.3".parse().expect("ip")))
        );
        assert_eq!(
            (p[1].container.as_str(), p[1].peer),
            ("x-b", Some("10.0.0.2".parse().expect("ip")))
        );
        let c: Vec<String> = tc_commands("eth0", "f12", &p[0])
            .into_iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            c,
            vec![
                "qdisc add dev eth0 root handle 100c: prio bands 4",
                "qdisc add dev eth0 parent 100c:4 handle 900c: netem delay 100000us 10000us rate 800kbit",
                "filter add dev eth0 parent 100c:0 protocol ip prio 1 u32 match ip dst 10.0.0.3/32 flowid 100c:4",
            ]
        );
    }

    #[test]
    fn partitions_are_not_netem() {
        let e = plan(
            &Effect::Isolate { node: "a".into() },
            &[addr("a", "10.0.0.2")],
        )
        .expect_err("isolate");
        assert!(e.contains("isolate is not injected with netem"), "{e}");
    }

    #[test]
    fn route_device_is_read() {
        assert_eq!(
            route_dev("10.0.0.3 dev eth0 src 10.0.0.2 uid 0 \\    cache ").as_deref(),
            Some("eth0")
        );
        assert_eq!(route_dev("garbage"), None);
        assert_ne!(root_handle("f1"), root_handle("f2"));
    }
}
