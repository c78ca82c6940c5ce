//! Network faults: iptables rules in lab-owned chains (`LAB-<fault id>-I/O/N`) inside the
//! nodes' network namespaces, entered from the host with `nsenter`; slow links through a
//! userspace TCP proxy that `lab` runs (Toxiproxy-style toxics: latency, jitter, bandwidth,
//! timeout, reset), reached by a DNAT rule in the sending node's namespace. Heal deletes the jumps and the chains, and tolerates them
//! being gone (a restarted container has a fresh namespace); a proxy fault's heal first resets
//! the connections the proxy held while conntrack can still translate them (`heal_proxy`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::FaultError;
use crate::engine::{Engine, HostCapabilities};

/// What a network fault does, by node (service) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The node can talk to nobody but itself: peers and clients alike.
    Isolate { node: String },
    /// Nodes on different sides cannot talk to each other; clients still reach every node.
    Partition { sides: Vec<Vec<String>> },
    /// `from` cannot open or use connections to `to`; `to` still reaches `from`.
    OneWay { from: String, to: String },
    /// Clients (everything reaching the node through its published ports) are cut off; its
    /// peers still reach it.
    CutClients { node: String },
    /// A share of the packets the node sends are dropped (egress, as netem on its interface).
    Loss { node: String, percent: u8 },
    /// Connections from `from` to `to` go through lab's proxy, which delays each chunk by
    /// `delay` (+/- `jitter`, order kept) in each direction and caps the rate.
    Latency {
        from: String,
        to: String,
        #[serde(with = "crate::measure::serde_us", rename = "delay_us")]
        delay: Duration,
        #[serde(with = "crate::measure::serde_us", rename = "jitter_us")]
        jitter: Duration,
        #[serde(default)]
        bandwidth_kbit: Option<u32>,
    },
    /// Every link of the node slowed as `Latency` slows one: the connections it opens to each
    /// peer on the project network and those each peer opens to it (a proxy per link and
    /// port, DNAT in the opener's namespace; with netem, its interface and each peer's filter
    /// towards it). Clients on the host, through published ports, are not slowed.
    NodeLatency {
        node: String,
        #[serde(with = "crate::measure::serde_us", rename = "delay_us")]
        delay: Duration,
        #[serde(with = "crate::measure::serde_us", rename = "jitter_us")]
        jitter: Duration,
        #[serde(default)]
        bandwidth_kbit: Option<u32>,
    },
    /// Connections from `from` to `to` go through lab's proxy, which accepts them and passes
    /// nothing either way (Toxiproxy's `timeout`); each is closed `close_after` after it was
    /// accepted, if given, else held open until heal.
    Timeout {
        from: String,
        to: String,
        #[serde(
            default,
            with = "crate::measure::serde_us::opt",
            rename = "close_after_us"
        )]
        close_after: Option<Duration>,
    },
    /// Connections from `from` to `to` are reset (TCP RST: closed with `SO_LINGER` 0) `after`
    /// they opened, through lab's proxy; those open when the fault is applied are reset
    /// `after` it was applied (`ss -K` in `from`'s namespace).
    Reset {
        from: String,
        to: String,
        #[serde(default, with = "crate::measure::serde_us", rename = "after_us")]
        after: Duration,
    },
}

impl Effect {
    pub fn name(&self) -> &'static str {
        match self {
            Effect::Isolate { .. } => "isolate",
            Effect::Partition { .. } => "partition",
            Effect::OneWay { .. } => "one-way",
            Effect::CutClients { .. } => "cut-clients",
            Effect::Loss { .. } => "loss",
            Effect::Latency { .. } => "latency",
            Effect::NodeLatency { .. } => "node-latency",
            Effect::Timeout { .. } => "timeout",
            Effect::Reset { .. } => "reset",
        }
    }

    /// The node the fault is about (for figures keyed by target: the isolated master...).
    pub fn primary(&self) -> &str {
        match self {
            Effect::Isolate { node }
            | Effect::CutClients { node }
            | Effect::Loss { node, .. }
            | Effect::NodeLatency { node, .. } => node,
            Effect::Partition { sides } => sides
                .first()
                .and_then(|s| s.first())
                .map_or("", String::as_str),
            Effect::OneWay { from, .. }
            | Effect::Latency { from, .. }
            | Effect::Timeout { from, .. }
            | Effect::Reset { from, .. } => from,
        }
    }

    /// Whether lab's process must stay alive for the fault to keep its effect (with the
    /// proxy; netem needs no process).
    pub fn needs_proxy(&self) -> bool {
        self.toxic().is_some()
    }

    /// What the proxy does to each connection of a proxy fault; `None` for drop rules.
    pub fn toxic(&self) -> Option<Toxic> {
        match self {
            Effect::NodeLatency {
                delay,
                jitter,
                bandwidth_kbit,
                ..
            } => Some(Toxic::Slow(Toxics {
                delay: *delay,
                jitter: *jitter,
                bandwidth_kbit: *bandwidth_kbit,
            })),
            e => e.proxied().map(|(_, _, t)| t),
        }
    }

    /// The link a one-link proxy fault sits on, `(from, to)`, and what its proxy does to each
    /// connection; `None` for faults made of drop rules and for `NodeLatency` (see
    /// [`proxy_links`]).
    pub fn proxied(&self) -> Option<(&str, &str, Toxic)> {
        match self {
            Effect::Latency {
                from,
                to,
                delay,
                jitter,
                bandwidth_kbit,
            } => Some((
                from,
                to,
                Toxic::Slow(Toxics {
                    delay: *delay,
                    jitter: *jitter,
                    bandwidth_kbit: *bandwidth_kbit,
                }),
            )),
            Effect::Timeout {
                from,
                to,
                close_after,
            } => Some((
                from,
                to,
                Toxic::Timeout {
                    close_after: *close_after,
                },
            )),
            Effect::Reset { from, to, after } => Some((from, to, Toxic::Reset { after: *after })),
            _ => None,
        }
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Effect::Isolate { node } => write!(f, "isolate {node}"),
            Effect::Partition { sides } => {
                let s: Vec<String> = sides.iter().map(|s| s.join(",")).collect();
                write!(f, "partition {} | the rest", s.join(" | "))
            }
            Effect::OneWay { from, to } => write!(f, "one-way {from} -/-> {to}"),
            Effect::CutClients { node } => write!(f, "cut clients from {node}"),
            Effect::Loss { node, percent } => write!(f, "loss {percent}% from {node}"),
            Effect::Latency {
                from,
                to,
                delay,
                jitter,
                bandwidth_kbit,
            } => {
                write!(f, "latency {from} -> {to} ")?;
                slow(f, *delay, *jitter, *bandwidth_kbit)
            }
            Effect::NodeLatency {
                node,
                delay,
                jitter,
                bandwidth_kbit,
            } => {
                write!(f, "latency on every link of {node} ")?;
                slow(f, *delay, *jitter, *bandwidth_kbit)
            }
            Effect::Timeout {
                from,
                to,
                close_after,
            } => {
                write!(f, "timeout {from} -> {to}")?;
                match close_after {
                    Some(d) => write!(f, " (closed after {}ms)", d.as_millis()),
                    None => f.write_str(" (held open)"),
                }
            }
            Effect::Reset { from, to, after } if after.is_zero() => {
                write!(f, "reset {from} -> {to}")
            }
            Effect::Reset { from, to, after } => {
                write!(f, "reset {from} -> {to} after {}ms", after.as_millis())
            }
        }
    }
}

/// `100ms +/-10ms 800 kbit/s`: a slow link's figures, as its description gives them.
fn slow(
    f: &mut std::fmt::Formatter<'_>,
    delay: Duration,
    jitter: Duration,
    bandwidth_kbit: Option<u32>,
) -> std::fmt::Result {
    write!(f, "{}ms", delay.as_millis())?;
    if !jitter.is_zero() {
        write!(f, " +/-{}ms", jitter.as_millis())?;
    }
    if let Some(b) = bandwidth_kbit {
        write!(f, " {b} kbit/s")?;
    }
    Ok(())
}

/// How the fault is put in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// Drop rules in the nodes' network namespaces.
    Iptables,
    /// DNAT in the sender's namespace to a proxy run by lab (no `sch_netem` needed).
    Proxy,
    /// The engine takes the container off its networks (`isolate` where iptables cannot be
    /// entered, or when `LAB_NET_MECHANISM=disconnect`); see `disconnect.rs`.
    Disconnect,
    /// `tc netem` qdiscs on the nodes' interfaces, where the kernel has `sch_netem`; see
    /// `netem.rs`.
    Netem,
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mechanism::Iptables => "iptables in the nodes' network namespaces",
            Mechanism::Proxy => "lab's userspace TCP proxy (DNAT in the sender's namespace)",
            Mechanism::Disconnect => "the engine's network disconnect (reconnected on heal)",
            Mechanism::Netem => "tc netem on the nodes' interfaces",
        })
    }
}

/// A network fault as journalled: the effect and every namespace that holds its chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetFault {
    pub effect: Effect,
    pub mechanism: Mechanism,
    /// Containers whose network namespace gets (or got) lab's chains (or netem qdiscs).
    pub containers: Vec<String>,
    /// `Disconnect`: the networks to put the container back on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<super::disconnect::Endpoint>,
}

/// A container's place on the project network.
#[derive(Debug, Clone)]
pub struct Addr {
    pub node: String,
    pub container: String,
    pub ip: IpAddr,
    /// The host's address on the network: where published-port traffic comes from.
    pub gateway: IpAddr,
    /// Container ports the node listens on (its published ports).
    pub ports: Vec<u16>,
}

/// Which mechanism a fault asks for: `Auto` picks by what the host supports; the others come
/// from a drill's `via` or from `LAB_NET_MECHANISM` (auto, iptables, disconnect, proxy, netem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Want {
    #[default]
    Auto,
    Iptables,
    Disconnect,
    Proxy,
    Netem,
}

/// The environment variable that forces a mechanism (for tests and for hosts where the
/// automatic choice is not wanted).
pub const MECHANISM_VAR: &str = "LAB_NET_MECHANISM";

impl Want {
    pub fn parse(s: &str) -> Result<Want, String> {
        Ok(match s.trim() {
            "" | "auto" => Want::Auto,
            "iptables" => Want::Iptables,
            "disconnect" => Want::Disconnect,
            "proxy" => Want::Proxy,
            "netem" => Want::Netem,
            other => {
                return Err(format!(
                    "{MECHANISM_VAR}=`{other}` is not a mechanism; write auto, iptables, \
                     disconnect, proxy or netem"
                ))
            }
        })
    }

    pub fn from_env() -> Result<Want, String> {
        Want::parse(&std::env::var(MECHANISM_VAR).unwrap_or_default())
    }
}

/// The kinds of network fault, as far as the choice of mechanism goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Isolate,
    CutClients,
    Partition,
    OneWay,
    Loss,
    Latency,
    /// `timeout` and `reset`: only lab's proxy does them.
    Toxic,
}

impl From<&Effect> for Family {
    fn from(e: &Effect) -> Family {
        match e {
            Effect::Isolate { .. } => Family::Isolate,
            Effect::CutClients { .. } => Family::CutClients,
            Effect::Partition { .. } => Family::Partition,
            Effect::OneWay { .. } => Family::OneWay,
            Effect::Loss { .. } => Family::Loss,
            Effect::Latency { .. } | Effect::NodeLatency { .. } => Family::Latency,
            Effect::Timeout { .. } | Effect::Reset { .. } => Family::Toxic,
        }
    }
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Isolate => "isolate",
            Family::CutClients => "cut-clients",
            Family::Partition => "partition",
            Family::OneWay => "one-way",
            Family::Loss => "loss",
            Family::Latency => "latency",
            Family::Toxic => "timeout/reset",
        }
    }
}

/// Picks the mechanism for a fault on this host, or says in one sentence why none fits.
/// Pure, so it is unit-tested: netem where the kernel has it for loss and latency, else
/// iptables (loss) or the proxy (latency, which needs iptables for its DNAT); iptables for
/// the partitions, with the engine's network disconnect as the fallback for `isolate`.
pub fn choose(family: Family, want: Want, caps: &HostCapabilities) -> Result<Mechanism, String> {
    let ipt = caps.iptables.supported;
    let netem = caps.netem.supported;
    let disc = caps.network_disconnect.supported;
    let no_ipt = || format!("iptables cannot be used here: {}", caps.iptables.how);
    let no_netem = || {
        format!(
            "cannot inject `{}` via netem: {}",
            family.name(),
            caps.netem
                .how
                .split("; lab will")
                .next()
                .unwrap_or(&caps.netem.how)
        )
    };
    let only = |what: &str| format!("{} can only be injected with {what}", family.name());
    let proxy = || {
        if !ipt {
            return Err(format!(
                "lab's proxy needs a DNAT rule in the node's namespace, and {}",
                no_ipt()
            ));
        }
        caps.proxy
            .supported
            .then_some(Mechanism::Proxy)
            .ok_or_else(|| format!("lab's proxy cannot be used here: {}", caps.proxy.how))
    };
    use Family as F;
    match (family, want) {
        (F::Loss | F::Latency, Want::Netem) => {
            netem.then_some(Mechanism::Netem).ok_or_else(no_netem)
        }
        (F::Loss | F::Latency, Want::Auto) if netem => Ok(Mechanism::Netem),
        (F::Latency, Want::Auto | Want::Proxy) => proxy(),
        (F::Latency, _) => Err(only("netem or lab's proxy (via: netem or proxy)")),
        (F::Toxic, Want::Auto | Want::Proxy) => proxy(),
        (F::Toxic, _) => Err(only("lab's proxy (via: proxy)")),
        (F::Loss, Want::Auto | Want::Iptables) => {
            ipt.then_some(Mechanism::Iptables).ok_or_else(no_ipt)
        }
        (F::Loss, _) => Err(only("netem or iptables")),
        (F::Isolate, Want::Disconnect) => disc
            .then_some(Mechanism::Disconnect)
            .ok_or_else(|| caps.network_disconnect.how.clone()),
        (F::Isolate, Want::Auto) if ipt => Ok(Mechanism::Iptables),
        (F::Isolate, Want::Auto) if disc => Ok(Mechanism::Disconnect),
        (F::Isolate | F::CutClients | F::Partition | F::OneWay, Want::Auto | Want::Iptables) => {
            ipt.then_some(Mechanism::Iptables).ok_or_else(no_ipt)
        }
        (F::CutClients, Want::Disconnect) => Err(
            "cut-clients cannot use the network disconnect: it would cut the node off from its \
             peers too, which is `isolate`"
                .into(),
        ),
        (F::Isolate, _) => Err(only("iptables or the engine's network disconnect")),
        (F::CutClients | F::Partition | F::OneWay, _) => Err(only("iptables")),
    }
}

/// Refuses, in one sentence, what this host cannot do, before anything is applied.
pub fn check_supported(effect: &Effect, caps: &HostCapabilities) -> Result<(), FaultError> {
    let want = Want::from_env().map_err(|reason| FaultError::Unsupported {
        fault: effect.name().to_string(),
        reason,
    })?;
    choose(effect.into(), want, caps)
        .map(|_| ())
        .map_err(|reason| FaultError::Unsupported {
            fault: effect.name().to_string(),
            reason,
        })
}

/// One rule: which table and chain suffix, and the match and target after `-A <chain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub hook: Hook,
    pub args: Vec<String>,
}

/// Where a lab chain is jumped to from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Input,
    Output,
    /// `nat` table, OUTPUT: connections the node opens.
    NatOutput,
}

impl Hook {
    const ALL: [Hook; 3] = [Hook::Input, Hook::Output, Hook::NatOutput];

    fn table(self) -> &'static str {
        match self {
            Hook::Input | Hook::Output => "filter",
            Hook::NatOutput => "nat",
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            Hook::Input => "INPUT",
            Hook::Output | Hook::NatOutput => "OUTPUT",
        }
    }

    /// The lab chain of fault `id` on this hook (iptables allows 28 characters).
    pub fn chain(self, id: &str) -> String {
        let suffix = match self {
            Hook::Input => "I",
            Hook::Output => "O",
            Hook::NatOutput => "N",
        };
        format!("LAB-{id}-{suffix}")
    }
}

fn r(hook: Hook, args: &[&str]) -> Rule {
    Rule {
        hook,
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

/// The drop rules of an iptables fault, per container. Pure, so it is unit-tested.
pub fn plan(effect: &Effect, addrs: &[Addr]) -> Result<Vec<(String, Vec<Rule>)>, String> {
    let find = |n: &str| {
        addrs
            .iter()
            .find(|a| a.node == n)
            .ok_or_else(|| format!("{n} has no address on the project network (is it running?)"))
    };
    let mut out: Vec<(String, Vec<Rule>)> = vec![];
    match effect {
        Effect::Isolate { node } => {
            let a = find(node)?;
            out.push((
                a.container.clone(),
                vec![
                    r(Hook::Input, &["!", "-i", "lo", "-j", "DROP"]),
                    r(Hook::Output, &["!", "-o", "lo", "-j", "DROP"]),
                ],
            ));
        }
        Effect::Partition { sides } => {
            for n in sides.iter().flatten() {
                find(n)?;
            }
            // Every node is in some side: the unlisted ones form one more.
            let listed: Vec<&String> = sides.iter().flatten().collect();
            let rest: Vec<String> = addrs
                .iter()
                .filter(|a| !listed.contains(&&a.node))
                .map(|a| a.node.clone())
                .collect();
            let mut all: Vec<Vec<String>> = sides.clone();
            if !rest.is_empty() {
                all.push(rest);
            }
            for (i, side) in all.iter().enumerate() {
                for n in side {
                    let a = find(n)?;
                    let mut rules = vec![];
                    for (j, other) in all.iter().enumerate() {
                        if i == j {
                            continue;
                        }
                        for p in other {
                            let ip = find(p)?.ip.to_string();
                            rules.push(r(Hook::Input, &["-s", &ip, "-j", "DROP"]));
                            rules.push(r(Hook::Output, &["-d", &ip, "-j", "DROP"]));
                        }
                    }
                    out.push((a.container.clone(), rules));
                }
            }
        }
        Effect::OneWay { from, to } => {
            let (f, t) = (find(from)?, find(to)?);
            // conntrack's ORIGINAL direction is the side that opened the connection: dropping
            // it on both ends stops every connection `from` opens and leaves `to`'s working.
            out.push((
                f.container.clone(),
                vec![r(
                    Hook::Output,
                    &[
                        "-d",
                        &t.ip.to_string(),
                        "-m",
                        "conntrack",
                        "--ctdir",
                        "ORIGINAL",
                        "-j",
                        "DROP",
                    ],
                )],
            ));
            out.push((
                t.container.clone(),
                vec![r(
                    Hook::Input,
                    &[
                        "-s",
                        &f.ip.to_string(),
                        "-m",
                        "conntrack",
                        "--ctdir",
                        "ORIGINAL",
                        "-j",
                        "DROP",
                    ],
                )],
            ));
        }
        Effect::CutClients { node } => {
            let a = find(node)?;
            let gw = a.gateway.to_string();
            // The gateway is also the network's DNS server on Podman (aardvark-dns): name
            // lookups are not client traffic, and the node needs them to find its peers.
            let mut rules = vec![];
            for proto in ["udp", "tcp"] {
                rules.push(r(
                    Hook::Input,
                    &["-s", &gw, "-p", proto, "--sport", "53", "-j", "RETURN"],
                ));
                rules.push(r(
                    Hook::Output,
                    &["-d", &gw, "-p", proto, "--dport", "53", "-j", "RETURN"],
                ));
            }
            rules.push(r(Hook::Input, &["-s", &gw, "-j", "DROP"]));
            rules.push(r(Hook::Output, &["-d", &gw, "-j", "DROP"]));
            out.push((a.container.clone(), rules));
        }
        Effect::Loss { node, percent } => {
            let a = find(node)?;
            let p = format!("{:.2}", f64::from(*percent) / 100.0);
            out.push((
                a.container.clone(),
                vec![r(
                    Hook::Output,
                    &[
                        "!",
                        "-o",
                        "lo",
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "DROP",
                    ],
                )],
            ));
        }
        e @ (Effect::Latency { .. }
        | Effect::NodeLatency { .. }
        | Effect::Timeout { .. }
        | Effect::Reset { .. }) => {
            return Err(format!(
                "{} goes through the proxy, not drop rules",
                e.name()
            ));
        }
    }
    Ok(out)
}

async fn run(cmd: &str, args: &[String]) -> Result<String, String> {
    let o = tokio::process::Command::new(cmd)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

/// `iptables` inside the network namespace of process `pid`.
async fn ipt(pid: i64, args: &[&str]) -> Result<String, String> {
    let mut a: Vec<String> = vec![
        "-t".into(),
        pid.to_string(),
        "-n".into(),
        "iptables".into(),
        "-w".into(),
        "5".into(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    run("nsenter", &a).await
}

/// The main process of a running container; `None` when it is not running (no namespace).
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

/// Addresses of the given nodes on the instance's network (the first network each is on).
pub async fn addresses(
    engine: &Engine,
    nodes: &[(String, String, Vec<u16>)],
) -> Result<Vec<Addr>, FaultError> {
    let mut out = vec![];
    for (node, container, ports) in nodes {
        let Some(c) = engine.inspect_container(container).await? else {
            continue;
        };
        if c.state.as_ref().and_then(|s| s.running) != Some(true) {
            continue;
        }
        let nets = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        let mut names: Vec<&String> = nets.keys().collect();
        names.sort();
        let Some(ep) = names.first().and_then(|n| nets.get(*n)) else {
            continue;
        };
        let ip = ep.ip_address.as_deref().and_then(|s| s.parse().ok());
        let gw = ep.gateway.as_deref().and_then(|s| s.parse().ok());
        if let (Some(ip), Some(gateway)) = (ip, gw) {
            out.push(Addr {
                node: node.clone(),
                container: container.clone(),
                ip,
                gateway,
                ports: ports.clone(),
            });
        }
    }
    Ok(out)
}

/// Checks the host can do it, finds every node's address and builds the journal entry.
/// Nothing is applied.
pub async fn prepare(
    engine: &Engine,
    inst: &crate::lifecycle::Instance,
    effect: Effect,
) -> Result<(NetFault, Vec<Addr>), FaultError> {
    let want = Want::from_env().map_err(|reason| FaultError::Unsupported {
        fault: effect.name().to_string(),
        reason,
    })?;
    prepare_with(engine, inst, effect, want).await
}

/// [`prepare`] with the mechanism asked for (a drill's `via`) rather than read from the
/// environment.
pub async fn prepare_with(
    engine: &Engine,
    inst: &crate::lifecycle::Instance,
    effect: Effect,
    want: Want,
) -> Result<(NetFault, Vec<Addr>), FaultError> {
    let caps = crate::engine::host_capabilities(engine.info.rootless);
    let mechanism =
        choose((&effect).into(), want, &caps).map_err(|reason| FaultError::Unsupported {
            fault: effect.name().to_string(),
            reason,
        })?;
    let nodes: Vec<(String, String, Vec<u16>)> = inst
        .topology
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                inst.container_name(&s.name),
                s.ports.iter().map(|p| p.container_port).collect(),
            )
        })
        .collect();
    let addrs = addresses(engine, &nodes).await?;
    let mut endpoints = vec![];
    let toxic = effect.toxic();
    let containers = match (&effect, mechanism, toxic) {
        (Effect::Isolate { node }, Mechanism::Disconnect, _) => {
            let a = addrs.iter().find(|a| a.node == *node).ok_or_else(|| {
                apply_err(
                    node,
                    "no address on the project network (is it running?)".into(),
                )
            })?;
            endpoints = super::disconnect::endpoints(engine, &a.container).await?;
            vec![a.container.clone()]
        }
        (e, Mechanism::Netem, _) => super::netem::plan(e, &addrs)
            .map_err(|m| apply_err(e.primary(), m))?
            .into_iter()
            .map(|p| p.container)
            .collect(),
        (e, _, Some(_)) => {
            let mut openers: Vec<&Addr> = vec![];
            for (f, _) in proxy_links(e, &addrs)? {
                if !openers.iter().any(|o| o.container == f.container) {
                    openers.push(f);
                }
            }
            for f in &openers {
                announce_own_ip(inst, f).await;
            }
            openers.into_iter().map(|f| f.container.clone()).collect()
        }
        (e, _, None) => plan(e, &addrs)
            .map_err(|m| apply_err(e.primary(), m))?
            .into_iter()
            .map(|(c, _)| c)
            .collect(),
    };
    Ok((
        NetFault {
            effect,
            mechanism,
            containers,
            endpoints,
        },
        addrs,
    ))
}

/// The links a proxy fault sits on, `(opener, far end)`: the one link of a pair fault, or
/// every link of the node for `NodeLatency` (each peer with a port to it, and it to each
/// peer with a port). Refused when a node has no address, or the far end publishes no port.
pub fn proxy_links<'a>(
    effect: &Effect,
    addrs: &'a [Addr],
) -> Result<Vec<(&'a Addr, &'a Addr)>, FaultError> {
    let find = |n: &str| {
        addrs.iter().find(|a| a.node == n).ok_or_else(|| {
            apply_err(
                n,
                "no address on the project network (is it running?)".into(),
            )
        })
    };
    if let Effect::NodeLatency { node, .. } = effect {
        let n = find(node)?;
        let mut links = vec![];
        for peer in addrs.iter().filter(|a| a.node != n.node) {
            if !peer.ports.is_empty() {
                links.push((n, peer));
            }
            if !n.ports.is_empty() {
                links.push((peer, n));
            }
        }
        if links.is_empty() {
            return Err(apply_err(
                node,
                "has no peer on the project network to slow a link to".into(),
            ));
        }
        return Ok(links);
    }
    let Some((from, to, _)) = effect.proxied() else {
        return Err(apply_err(
            effect.primary(),
            format!("{} does not go through the proxy", effect.name()),
        ));
    };
    let (f, t) = (find(from)?, find(to)?);
    if t.ports.is_empty() {
        return Err(apply_err(
            to,
            "publishes no port to put a proxy in front of".into(),
        ));
    }
    Ok(vec![(f, t)])
}

/// Through the proxy, a replica's master sees it at the host's address and lists it there, and
/// Sentinel would then learn a replica that does not exist. A data node is told its real
/// address (`replica-announce-ip`, not persisted) so what the others learn stays true; one
/// that already announces itself (by hostname, under Sentinel) is left as it is.
async fn announce_own_ip(inst: &crate::lifecycle::Instance, a: &Addr) {
    use crate::topology::Role;
    let data = inst
        .topology
        .service(&a.node)
        .is_some_and(|s| matches!(s.role, Role::Master | Role::Replica | Role::ClusterNode));
    let Some(port) = inst.host_port(&a.node, 6379).filter(|_| data) else {
        return;
    };
    let t = Duration::from_secs(2);
    if let Ok(mut c) = crate::lifecycle::probe::redis_conn(port, inst.password.as_deref(), t).await
    {
        let announced: Result<Vec<String>, _> = crate::lifecycle::probe::cmd(
            &mut c,
            redis::cmd("CONFIG").arg("GET").arg("replica-announce-ip"),
            t,
        )
        .await;
        if announced.is_ok_and(|v| v.get(1).is_some_and(|h| !h.is_empty())) {
            return;
        }
        let _: Result<String, _> = crate::lifecycle::probe::cmd(
            &mut c,
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("replica-announce-ip")
                .arg(a.ip.to_string()),
            t,
        )
        .await;
    }
}

fn apply_err(container: &str, e: String) -> FaultError {
    FaultError::Net {
        container: container.to_string(),
        message: e,
    }
}

/// The `iptables-restore` input creating fault `id`'s chains with `rules` and jumping to
/// them. Pure, so it is unit-tested.
pub fn restore_script(id: &str, rules: &[Rule]) -> String {
    let mut out = String::new();
    for table in ["filter", "nat"] {
        let hooks: Vec<Hook> = Hook::ALL
            .into_iter()
            .filter(|h| h.table() == table && rules.iter().any(|r| r.hook == *h))
            .collect();
        if hooks.is_empty() {
            continue;
        }
        out.push_str(&format!("*{table}\n"));
        for h in &hooks {
            out.push_str(&format!(":{} - [0:0]\n", h.chain(id)));
        }
        for r in rules.iter().filter(|r| hooks.contains(&r.hook)) {
            out.push_str(&format!("-A {} {}\n", r.hook.chain(id), r.args.join(" ")));
        }
        for h in &hooks {
            out.push_str(&format!("-I {} 1 -j {}\n", h.builtin(), h.chain(id)));
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Creates the chains of fault `id` in a container's namespace, fills them and jumps to
/// them, in one `iptables-restore` per namespace: each table's change is one atomic commit,
/// so the node never sees half a rule set.
async fn install(id: &str, container: &str, pid: i64, rules: &[Rule]) -> Result<(), FaultError> {
    use std::process::Stdio;
    let script = restore_script(id, rules);
    let mut child = tokio::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "iptables-restore",
            "-w",
            "5",
            "--noflush",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| apply_err(container, format!("cannot run nsenter: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| apply_err(container, e.to_string()))?;
    }
    let o = child
        .wait_with_output()
        .await
        .map_err(|e| apply_err(container, e.to_string()))?;
    if !o.status.success() {
        return Err(apply_err(
            container,
            format!(
                "iptables-restore refused the rules: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Removes fault `id`'s chains from a container's namespace; what is already gone is fine.
async fn uninstall(engine: &Engine, id: &str, container: &str) -> Result<(), FaultError> {
    let Some(pid) = pid_of(engine, container).await? else {
        // Not running: its namespace, and the rules in it, are gone.
        return Ok(());
    };
    remove_chains(pid, id, container, &Hook::ALL).await
}

/// Removes fault `id`'s chains on `hooks` from the namespace of process `pid`.
async fn remove_chains(
    pid: i64,
    id: &str,
    container: &str,
    hooks: &[Hook],
) -> Result<(), FaultError> {
    for &hook in hooks {
        let chain = hook.chain(id);
        let t = hook.table();
        // Delete every jump (a rule added twice is deleted twice), then the chain.
        for _ in 0..8 {
            if ipt(pid, &["-t", t, "-D", hook.builtin(), "-j", &chain])
                .await
                .is_err()
            {
                break;
            }
        }
        let exists = ipt(pid, &["-t", t, "-S", &chain]).await.is_ok();
        if exists {
            ipt(pid, &["-t", t, "-F", &chain])
                .await
                .map_err(|e| apply_err(container, e))?;
            ipt(pid, &["-t", t, "-X", &chain])
                .await
                .map_err(|e| apply_err(container, e))?;
        }
    }
    Ok(())
}

/// Lab chains present in a container's namespace (for checks and tests); empty when the
/// container is not running.
pub async fn lab_chains(engine: &Engine, container: &str) -> Result<Vec<String>, FaultError> {
    let Some(pid) = pid_of(engine, container).await? else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    for t in ["filter", "nat"] {
        let s = ipt(pid, &["-t", t, "-S"])
            .await
            .map_err(|e| apply_err(container, e))?;
        out.extend(
            s.lines()
                .filter_map(|l| l.strip_prefix("-N "))
                .filter(|c| c.starts_with("LAB-"))
                .map(|c| format!("{t}/{c}")),
        );
    }
    Ok(out)
}

/// Puts the journalled fault `id` in force. The caller journalled it first and heals it if
/// this fails.
pub async fn apply(
    engine: &Engine,
    journal_key: &str,
    id: &str,
    f: &NetFault,
    addrs: &[Addr],
) -> Result<(), FaultError> {
    match f.mechanism {
        Mechanism::Disconnect => return super::disconnect::apply(engine, &f.endpoints).await,
        Mechanism::Netem => return super::netem::apply(engine, id, &f.effect, addrs).await,
        Mechanism::Iptables | Mechanism::Proxy => {}
    }
    match f.effect.toxic() {
        Some(toxic) => {
            let links = proxy_links(&f.effect, addrs)?;
            let mut set = JoinSet::new();
            // Rules by opener (its namespace gets every DNAT of the fault in one chain).
            let mut by_opener: Vec<(String, i64, Vec<Rule>)> = vec![];
            // Connections to close so that they reopen through the proxy: (pid, ip, port).
            let mut open: Vec<(i64, IpAddr, u16)> = vec![];
            for (fa, ta) in &links {
                let at = match by_opener.iter().position(|(c, _, _)| *c == fa.container) {
                    Some(i) => i,
                    None => {
                        let pid = pid_of(engine, &fa.container)
                            .await?
                            .ok_or_else(|| apply_err(&fa.container, "not running".into()))?;
                        by_opener.push((fa.container.clone(), pid, vec![]));
                        by_opener.len() - 1
                    }
                };
                let pid = by_opener[at].1;
                for port in &ta.ports {
                    let upstream = SocketAddr::new(ta.ip, *port);
                    let l = TcpListener::bind(SocketAddr::new(fa.gateway, 0))
                        .await
                        .map_err(|e| {
                            apply_err(
                                &fa.container,
                                format!("cannot listen on the host at {}: {e}", fa.gateway),
                            )
                        })?;
                    let local = l
                        .local_addr()
                        .map_err(|e| apply_err(&fa.container, e.to_string()))?;
                    set.spawn(serve(l, upstream, toxic));
                    by_opener[at].2.push(r(
                        Hook::NatOutput,
                        &[
                            "-d",
                            &ta.ip.to_string(),
                            "-p",
                            "tcp",
                            "--dport",
                            &port.to_string(),
                            "-j",
                            "DNAT",
                            "--to-destination",
                            &local.to_string(),
                        ],
                    ));
                    open.push((pid, ta.ip, *port));
                }
            }
            // Keeps conntrack on in each opener's namespace until heal (see conntrack_holder).
            for (_, _, rules) in &mut by_opener {
                rules.push(conntrack_holder());
            }
            let delayed_reset = match toxic {
                Toxic::Reset { after } if !after.is_zero() => Some(after),
                _ => None,
            };
            // Connections open before the fault are reset `after` it: the same moment,
            // counted from the fault, as for those the proxy takes from now on.
            if let Some(after) = delayed_reset {
                let open = open.clone();
                set.spawn(async move {
                    tokio::time::sleep(after).await;
                    for (pid, ip, port) in &open {
                        let _ = kill_conns(*pid, *ip, *port).await;
                    }
                });
            }
            proxies()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(format!("{journal_key}#{id}"), set);
            // Every namespace at once, as for drop rules.
            let results = futures_util::future::join_all(
                by_opener
                    .iter()
                    .map(|(container, pid, rules)| install(id, container, *pid, rules)),
            )
            .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            // Connections opened before the rule bypass it; close them (`ss -K` aborts them:
            // the peer gets a RST) so they reopen through the proxy (Redis replicas reconnect
            // at once). A delayed reset closes them when it falls due instead.
            if delayed_reset.is_none() {
                for (pid, ip, port) in &open {
                    let _ = kill_conns(*pid, *ip, *port).await;
                }
            }
        }
        None => {
            let effect = &f.effect;
            let planned = plan(effect, addrs).map_err(|e| apply_err(effect.primary(), e))?;
            let mut pids = vec![];
            for (container, _) in &planned {
                let Some(pid) = pid_of(engine, container).await? else {
                    return Err(apply_err(container, "not running".into()));
                };
                pids.push(pid);
            }
            // Every namespace at once: a partition is in force everywhere within one round
            // of nsenter calls, not one container after the other.
            let results = futures_util::future::join_all(
                planned
                    .iter()
                    .zip(&pids)
                    .map(|((container, rules), pid)| install(id, container, *pid, rules)),
            )
            .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
    }
    Ok(())
}

/// `ss` with `args` in the network namespace of process `pid`, or the host's with `None`.
async fn ss(pid: Option<i64>, args: &[String]) -> Result<String, String> {
    match pid {
        Some(pid) => {
            let mut a: Vec<String> = vec!["-t".into(), pid.to_string(), "-n".into(), "ss".into()];
            a.extend_from_slice(args);
            run("nsenter", &a).await
        }
        None => run("ss", args).await,
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Closes the node's TCP connections to `ip:port` (`ss -K`, in its namespace).
async fn kill_conns(pid: i64, ip: IpAddr, port: u16) -> Result<String, String> {
    let args = strings(&[
        "-K",
        "-tn",
        "dst",
        &ip.to_string(),
        "dport",
        "=",
        &format!(":{port}"),
    ]);
    ss(Some(pid), &args).await
}

/// Undoes fault `id`: chains out of every namespace it touched, its proxy stopped.
pub async fn heal(
    engine: &Engine,
    journal_key: &str,
    id: &str,
    f: &NetFault,
) -> Result<(), FaultError> {
    match f.mechanism {
        Mechanism::Disconnect => return super::disconnect::heal(engine, &f.endpoints).await,
        Mechanism::Netem => return super::netem::heal(engine, id, &f.containers).await,
        Mechanism::Proxy => return heal_proxy(engine, journal_key, id, f).await,
        Mechanism::Iptables => {}
    }
    let results =
        futures_util::future::join_all(f.containers.iter().map(|c| uninstall(engine, id, c))).await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// The rule a proxy fault keeps in the sender's filter table: it matches on conntrack and
/// does nothing else. Its job is to keep connection tracking on in that namespace until
/// heal has closed the proxied connections (see [`heal_proxy`]).
fn conntrack_holder() -> Rule {
    r(
        Hook::Output,
        &["-m", "conntrack", "--ctstate", "NEW", "-j", "RETURN"],
    )
}

/// Heals a proxy fault in the order that lets the sender hear its proxied connections close.
///
/// The sender's socket believes it talks to the peer; only conntrack's NAT entry turns the
/// proxy's packets back into the peer's. Where the fault's rules are the only users of
/// conntrack in the namespace (Podman's; Docker's keeps NAT rules for its embedded DNS),
/// deleting them switches tracking off there: a close the proxy sends afterwards arrives
/// from the proxy's address, matches no socket and is answered with a RST, and the sender's
/// socket stays open (a Redis replica sits in its handshake until `repl-timeout`). So the
/// DNAT goes first (new connections go direct) while [`conntrack_holder`] keeps tracking on;
/// then the connections through the proxy, found on the host by the proxy's address, are
/// reset from the sender's side (and the host's); then the proxy stops and the holder goes.
/// Whichever process heals can do this: the paths are read back from the DNAT rules.
async fn heal_proxy(
    engine: &Engine,
    journal_key: &str,
    id: &str,
    f: &NetFault,
) -> Result<(), FaultError> {
    let nat = Hook::NatOutput;
    let mut closed = Ok(());
    for c in &f.containers {
        let Some(pid) = pid_of(engine, c).await? else {
            continue;
        };
        // No chain (never installed, or healed already): no path left to close.
        let dnat = ipt(pid, &["-t", nat.table(), "-S", &nat.chain(id)])
            .await
            .unwrap_or_default();
        remove_chains(pid, id, c, &[nat]).await?;
        if let Err(e) = close_proxied(pid, &proxied_paths(&dnat)).await {
            let m = format!("the connections through lab's proxy were not all closed: {e}");
            closed = Err(apply_err(c, m));
        }
    }
    let set = proxies()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&format!("{journal_key}#{id}"));
    if let Some(mut set) = set {
        set.shutdown().await;
    }
    let results =
        futures_util::future::join_all(f.containers.iter().map(|c| uninstall(engine, id, c))).await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    closed
}

/// A path the proxy stands in: the sender's connections to `peer` are DNATed to `proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProxiedPath {
    peer: SocketAddr,
    proxy: SocketAddr,
}

/// The paths in a proxy fault's nat chain, from `iptables -S` of it. Pure, so it is
/// unit-tested.
fn proxied_paths(rules: &str) -> Vec<ProxiedPath> {
    rules
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let after = |flag: &str| {
                t.iter()
                    .position(|w| *w == flag)
                    .and_then(|i| t.get(i + 1).copied())
            };
            let ip: IpAddr = after("-d")?.split('/').next()?.parse().ok()?;
            let port: u16 = after("--dport")?.parse().ok()?;
            let proxy: SocketAddr = after("--to-destination")?.parse().ok()?;
            Some(ProxiedPath {
                peer: SocketAddr::new(ip, port),
                proxy,
            })
        })
        .collect()
}

/// The peers of the sockets `ss -tnH` listed (the fifth column). Pure, so it is unit-tested.
fn ss_peers(out: &str) -> Vec<SocketAddr> {
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(4)?.parse().ok())
        .collect()
}

/// Resets the sender's connections that went through a proxy on `paths`, from both ends:
/// the host's sockets at the proxy's address name the sender's ends. Then checks, for up to
/// 2 s, that none is left in the sender's namespace.
async fn close_proxied(pid: i64, paths: &[ProxiedPath]) -> Result<(), String> {
    // The host's sockets at the proxy's address: the proxy's ends of what it took over.
    let at_proxy = |p: &ProxiedPath| {
        let port = format!(":{}", p.proxy.port());
        strings(&[
            "-tnH",
            "src",
            &p.proxy.ip().to_string(),
            "sport",
            "=",
            &port,
        ])
    };
    let kill = |f: &[String]| [vec!["-K".to_string()], f.to_vec()].concat();
    // The sender's ends, as filters: to the peer, from one of the proxied ports (in chunks,
    // so a busy path does not make one huge command line).
    let mut filters: Vec<Vec<String>> = vec![];
    for p in paths {
        let listed = ss(None, &at_proxy(p)).await?;
        let ports: Vec<u16> = ss_peers(&listed).iter().map(|a| a.port()).collect();
        for chunk in ports.chunks(32) {
            let mut f = strings(&[
                "-tnH",
                "dst",
                &p.peer.ip().to_string(),
                "dport",
                "=",
                &format!(":{}", p.peer.port()),
                "(",
            ]);
            for (i, port) in chunk.iter().enumerate() {
                if i > 0 {
                    f.push("or".into());
                }
                f.extend(strings(&["sport", "=", &format!(":{port}")]));
            }
            f.push(")".into());
            filters.push(f);
        }
    }
    for f in &filters {
        ss(Some(pid), &kill(f)).await?;
    }
    for p in paths {
        ss(None, &kill(&at_proxy(p))).await?;
    }
    for _ in 0..20 {
        let mut left = vec![];
        for f in &filters {
            left.extend(ss_peers(&ss(Some(pid), f).await?));
        }
        if left.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("still open after `ss -K` (does the kernel have CONFIG_INET_DIAG_DESTROY?)".into())
}

fn proxies() -> &'static Mutex<HashMap<String, JoinSet<()>>> {
    // The proxies of faults this process applied, by journal and fault id: a proxy lives as
    // long as its fault, and dies with lab (heal then removes the DNAT left pointing at it).
    static P: std::sync::OnceLock<Mutex<HashMap<String, JoinSet<()>>>> = std::sync::OnceLock::new();
    P.get_or_init(Default::default)
}

/// Toxiproxy-style toxics applied to both directions of every proxied connection.
#[derive(Debug, Clone, Copy)]
pub struct Toxics {
    pub delay: Duration,
    pub jitter: Duration,
    pub bandwidth_kbit: Option<u32>,
}

/// What the proxy does to each connection it accepts.
#[derive(Debug, Clone, Copy)]
pub enum Toxic {
    /// Delay, jitter and bandwidth cap on both directions.
    Slow(Toxics),
    /// Accept, read and drop everything, answer nothing (no upstream connection is made);
    /// close after `close_after` if given.
    Timeout { close_after: Option<Duration> },
    /// Pipe unchanged, then reset both ends (SO_LINGER 0, so the close is a RST) `after`
    /// the connection was accepted; with `after` zero no upstream connection is made.
    Reset { after: Duration },
}

/// Accepts connections and treats each with the toxic, until aborted.
async fn serve(l: TcpListener, upstream: SocketAddr, toxic: Toxic) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((down, _)) = l.accept().await else {
            continue;
        };
        conns.spawn(connection(down, upstream, toxic));
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
}

async fn connection(mut down: TcpStream, upstream: SocketAddr, toxic: Toxic) {
    let _ = down.set_nodelay(true);
    match toxic {
        Toxic::Slow(t) => {
            let Ok(up) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            tokio::join!(pipe(dr, uw, t), pipe(ur, dw, t));
        }
        Toxic::Timeout { close_after } => {
            // Reading keeps the sender's writes from blocking, as a silent peer's kernel
            // would acknowledge them; nothing read is passed on.
            let swallow = async {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = down.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            match close_after {
                Some(d) => {
                    let _ = tokio::time::timeout(d, swallow).await;
                }
                None => swallow.await,
            }
            // Dropped: an orderly close (FIN), as Toxiproxy's timeout closes.
        }
        Toxic::Reset { after } => {
            // Linger 0 makes the close below a RST, not a FIN.
            let _ = down.set_zero_linger();
            if after.is_zero() {
                return;
            }
            let Ok(mut up) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let _ = up.set_zero_linger();
            let calm = Toxics {
                delay: Duration::ZERO,
                jitter: Duration::ZERO,
                bandwidth_kbit: None,
            };
            // Borrowed halves: unlike owned ones they send no FIN when dropped, so the first
            // thing either end hears of the close is the RST.
            let (dr, dw) = down.split();
            let (ur, uw) = up.split();
            let _ = tokio::time::timeout(after, async {
                tokio::join!(pipe(dr, uw, calm), pipe(ur, dw, calm))
            })
            .await;
        }
    }
}

/// One direction: each chunk read is released at its arrival time plus the delay (+/- jitter),
/// never before the previous chunk (order is kept), and no faster than the bandwidth allows.
async fn pipe<R, W>(mut from: R, mut to: W, t: Toxics)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use rand::Rng;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        // Small chunks under a bandwidth cap, so the rate is smooth rather than bursty.
        let mut buf = vec![
            0u8;
            if t.bandwidth_kbit.is_some() {
                1024
            } else {
                16384
            }
        ];
        let mut last = tokio::time::Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = tokio::time::Instant::now();
            let j = t.jitter.as_micros() as i64;
            let shift = if j > 0 {
                rand::rng().random_range(-j..=j)
            } else {
                0
            };
            let d = (t.delay.as_micros() as i64 + shift).max(0) as u64;
            let mut due = (now + Duration::from_micros(d)).max(last);
            if let Some(kbit) = t.bandwidth_kbit {
                let us = (n as u64 * 8 * 1000) / u64::from(kbit.max(1));
                due = due.max(last + Duration::from_micros(us));
            }
            last = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: &str, ip: &str, ports: &[u16]) -> Addr {
        Addr {
            node: node.into(),
            container: format!("x-{node}"),
            ip: ip.parse().expect("ip"),
            gateway: "10.0.0.1".parse().expect("ip"),
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn node_latency_sits_on_every_link_of_the_node_both_ways() {
        let addrs = [
            at("redis-1", "10.0.0.2", &[6379]),
            at("redis-2", "10.0.0.3", &[6379]),
            at("client", "10.0.0.4", &[]),
        ];
        let e = Effect::NodeLatency {
            node: "redis-1".into(),
            delay: Duration::from_millis(100),
            jitter: Duration::ZERO,
            bandwidth_kbit: None,
        };
        let links: Vec<(&str, &str)> = proxy_links(&e, &addrs)
            .expect("links")
            .into_iter()
            .map(|(f, t)| (f.node.as_str(), t.node.as_str()))
            .collect();
        // A peer with no port is only an opener: nothing listens on it to proxy to.
        assert_eq!(
            links,
            vec![
                ("redis-1", "redis-2"),
                ("redis-2", "redis-1"),
                ("client", "redis-1")
            ]
        );
        assert!(e.needs_proxy() && e.proxied().is_none());
        assert_eq!(Family::from(&e), Family::Latency);
        assert_eq!(e.to_string(), "latency on every link of redis-1 100ms");
        let alone = [at("redis-1", "10.0.0.2", &[6379])];
        let err = proxy_links(&e, &alone).expect_err("no peer").to_string();
        assert!(err.contains("no peer"), "{err}");
        // A pair fault is its one link.
        let pair = Effect::Latency {
            from: "redis-2".into(),
            to: "client".into(),
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            bandwidth_kbit: None,
        };
        let err = proxy_links(&pair, &addrs).expect_err("no port").to_string();
        assert!(err.contains("publishes no port"), "{err}");
    }

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
    fn partition_blocks_every_cross_pair_and_the_rest_is_a_side() {
        let addrs = [
            addr("a", "10.0.0.2"),
            addr("b", "10.0.0.3"),
            addr("c", "10.0.0.4"),
        ];
        let p = plan(
            &Effect::Partition {
                sides: vec![vec!["a".into()]],
            },
            &addrs,
        )
        .expect("plan");
        let of = |c: &str| {
            p.iter()
                .find(|(x, _)| x == c)
                .map(|(_, r)| r.clone())
                .expect("container")
        };
        // a drops b and c both ways; b and c drop a, not each other.
        assert_eq!(of("x-a").len(), 4);
        let b = of("x-b");
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|r| r.args.contains(&"10.0.0.2".to_string())));
        assert!(!b.iter().any(|r| r.args.contains(&"10.0.0.4".to_string())));
    }

    #[test]
    fn one_way_drops_only_connections_the_sender_opens() {
        let addrs = [addr("a", "10.0.0.2"), addr("b", "10.0.0.3")];
        let p = plan(
            &Effect::OneWay {
                from: "a".into(),
                to: "b".into(),
            },
            &addrs,
        )
        .expect("plan");
        assert_eq!(p.len(), 2);
        for (_, rules) in &p {
            assert!(rules[0]
                .args
                .windows(2)
                .any(|w| w == ["--ctdir", "ORIGINAL"]));
        }
        assert_eq!(p[0].1[0].hook, Hook::Output);
        assert_eq!(p[1].1[0].hook, Hook::Input);
    }

    #[test]
    fn unknown_node_is_a_clear_error() {
        let e = plan(
            &Effect::Isolate { node: "z".into() },
            &[addr("a", "10.0.0.2")],
        )
        .expect_err("no z");
        assert!(e.contains("z has no address"), "{e}");
    }

    #[test]
    fn restore_script_fills_chains_before_jumping() {
        let s = restore_script(
            "f2",
            &[
                r(Hook::Input, &["-s", "10.0.0.3", "-j", "DROP"]),
                r(
                    Hook::NatOutput,
                    &[
                        "-d",
                        "10.0.0.3",
                        "-j",
                        "DNAT",
                        "--to-destination",
                        "10.0.0.1:9",
                    ],
                ),
            ],
        );
        assert_eq!(
            s,
            "*filter\n:LAB-f2-I - [0:0]\n-A LAB-f2-I -s 10.0.0.3 -j DROP\n-I INPUT 1 -j LAB-f2-I\nCOMMIT\n\
             *nat\n:LAB-f2-N - [0:0]\n-A LAB-f2-N -d 10.0.0.3 -j DNAT --to-destination 10.0.0.1:9\n-I OUTPUT 1 -j LAB-f2-N\nCOMMIT\n"
        );
    }

    fn caps(ipt: bool, netem: bool) -> HostCapabilities {
        let c = |name: &'static str, supported: bool| crate::engine::Capability {
            name,
            supported,
            how: format!("{name} test reason"),
        };
        HostCapabilities {
            pause: c("pause", true),
            iptables: c("iptables", ipt),
            proxy: c("proxy", ipt),
            netem: c("netem", netem),
            network_disconnect: c("network-disconnect", true),
            slow_disk: c("slow-disk", true),
        }
    }

    #[test]
    fn mechanism_choice_follows_the_host_and_the_request() {
        use Family as F;
        let full = caps(true, true);
        let here = caps(true, false);
        let bare = caps(false, false);
        // netem where it works, for loss and latency only.
        assert_eq!(choose(F::Latency, Want::Auto, &full), Ok(Mechanism::Netem));
        assert_eq!(choose(F::Loss, Want::Auto, &full), Ok(Mechanism::Netem));
        assert_eq!(
            choose(F::Isolate, Want::Auto, &full),
            Ok(Mechanism::Iptables)
        );
        assert_eq!(choose(F::Latency, Want::Proxy, &full), Ok(Mechanism::Proxy));
        // Without sch_netem: the proxy and iptables; asking for netem is refused.
        assert_eq!(choose(F::Latency, Want::Auto, &here), Ok(Mechanism::Proxy));
        assert_eq!(choose(F::Loss, Want::Auto, &here), Ok(Mechanism::Iptables));
        let e = choose(F::Latency, Want::Netem, &here).expect_err("no netem");
        assert!(
            e.contains("cannot inject `latency` via netem: netem test reason"),
            "{e}"
        );
        // Without iptables: isolate falls back to the network disconnect, the rest refuse.
        assert_eq!(
            choose(F::Isolate, Want::Auto, &bare),
            Ok(Mechanism::Disconnect)
        );
        assert_eq!(
            choose(F::Isolate, Want::Disconnect, &full),
            Ok(Mechanism::Disconnect)
        );
        let e = choose(F::Partition, Want::Auto, &bare).expect_err("no iptables");
        assert!(e.contains("iptables test reason"), "{e}");
        let e = choose(F::CutClients, Want::Disconnect, &full).expect_err("not sensible");
        assert!(
            e.contains("cut it off from its peers") || e.contains("peers too"),
            "{e}"
        );
        assert!(choose(F::Partition, Want::Disconnect, &full).is_err());
        // iptables but no `ss`: the proxy cannot close what it held, so it is refused.
        let mut no_ss = caps(true, false);
        no_ss.proxy.supported = false;
        let e = choose(F::Toxic, Want::Auto, &no_ss).expect_err("no ss");
        assert!(e.contains("proxy test reason"), "{e}");
        assert_eq!(choose(F::Loss, Want::Auto, &no_ss), Ok(Mechanism::Iptables));
        assert!(choose(F::Latency, Want::Disconnect, &full).is_err());
        assert_eq!(Want::parse("disconnect"), Ok(Want::Disconnect));
        assert!(Want::parse("nft")
            .expect_err("bad")
            .contains("LAB_NET_MECHANISM"));
    }

    #[test]
    fn heal_reads_the_proxied_paths_back_from_the_rules() {
        // `iptables -S` of a proxy fault's nat chain, as iptables-nft prints it.
        let rules = "-N LAB-f4-N\n\
             -A LAB-f4-N -d 10.89.0.3/32 -p tcp -m tcp --dport 6379 -j DNAT --to-destination 10.89.0.1:32791\n\
             -A LAB-f4-N -d 10.89.0.3/32 -p tcp -m tcp --dport 16379 -j DNAT --to-destination 10.89.0.1:40001\n";
        let sa = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(
            proxied_paths(rules),
            vec![
                ProxiedPath {
                    peer: sa("10.89.0.3:6379"),
                    proxy: sa("10.89.0.1:32791")
                },
                ProxiedPath {
                    peer: sa("10.89.0.3:16379"),
                    proxy: sa("10.89.0.1:40001")
                },
            ]
        );
        assert!(proxied_paths("").is_empty());
        // The proxy fault's chains: the DNAT, and the rule that keeps conntrack on.
        let holder = conntrack_holder();
        assert_eq!(holder.hook, Hook::Output);
        assert!(holder.args.join(" ").contains("-m conntrack"));
        // `ss -tnH`: the fifth column is the peer.
        let out = "ESTAB 0      0      10.89.0.1:32791 10.89.0.6:40012\n\
                   FIN-WAIT-1 0 1   10.89.0.1:32791 10.89.0.6:40020 users:((\"lab\",pid=9,fd=12))\n";
        assert_eq!(
            ss_peers(out),
            vec![sa("10.89.0.6:40012"), sa("10.89.0.6:40020")]
        );
        assert!(ss_peers("").is_empty());
    }

    #[test]
    fn chain_names_fit_iptables() {
        assert!(Hook::NatOutput.chain("f123456789").len() <= 28);
    }

    #[test]
    fn journal_form_is_tagged_by_kind() {
        let f = NetFault {
            effect: Effect::Loss {
                node: "redis-1".into(),
                percent: 30,
            },
            mechanism: Mechanism::Iptables,
            containers: vec!["x-redis-1".into()],
            endpoints: vec![],
        };
        let j = serde_json::to_value(&f).expect("json");
        assert_eq!(j["effect"]["loss"]["percent"], 30);
        let back: NetFault = serde_json::from_value(j).expect("back");
        assert_eq!(back, f);
    }

    /// An echo server on 127.0.0.1 and a proxy in front of it with `toxic`: (proxy, handle).
    async fn echo_behind(toxic: Toxic) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let up = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let px = l.local_addr().expect("addr");
        (px, tokio::spawn(serve(l, up, toxic)))
    }

    #[tokio::test]
    async fn timeout_toxic_answers_nothing_then_closes() {
        // Held open: a request gets no answer (500 ms is 100x a local echo's round trip).
        let (px, h) = echo_behind(Toxic::Timeout { close_after: None }).await;
        let mut c = TcpStream::connect(px).await.expect("connect");
        c.write_all(b"ping").await.expect("write");
        let mut b = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_millis(500), c.read(&mut b)).await;
        assert!(r.is_err(), "no answer while held: {r:?}");
        h.abort();
        // close_after 300 ms: still nothing, then an orderly close (EOF), not before 300 ms;
        // the upper bound is scheduling slack on a loaded host.
        let (px, h) = echo_behind(Toxic::Timeout {
            close_after: Some(Duration::from_millis(300)),
        })
        .await;
        let t = std::time::Instant::now();
        let mut c = TcpStream::connect(px).await.expect("connect");
        c.write_all(b"ping").await.expect("write");
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
            .await
            .expect("closed within 5 s")
            .expect("an orderly close");
        let took = t.elapsed();
        h.abort();
        assert_eq!(n, 0, "no data, then EOF");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn reset_toxic_resets_at_once_or_after() {
        let (px, h) = echo_behind(Toxic::Reset {
            after: Duration::ZERO,
        })
        .await;
        let mut c = TcpStream::connect(px).await.expect("connect");
        let _ = c.write_all(b"ping").await;
        let mut b = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
            .await
            .expect("an answer within 5 s");
        assert_eq!(
            r.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset),
            "reset, not closed"
        );
        h.abort();
        // after 300 ms: the connection works, then is reset (no EOF first).
        let (px, h) = echo_behind(Toxic::Reset {
            after: Duration::from_millis(300),
        })
        .await;
        let t = std::time::Instant::now();
        let mut c = TcpStream::connect(px).await.expect("connect");
        c.write_all(b"ping").await.expect("write");
        c.read_exact(&mut b).await.expect("echoed before the reset");
        assert_eq!(&b, b"ping");
        let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
            .await
            .expect("reset within 5 s");
        let took = t.elapsed();
        h.abort();
        assert_eq!(
            r.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn proxy_faults_journal_and_describe() {
        let t = Effect::Timeout {
            from: "a".into(),
            to: "b".into(),
            close_after: Some(Duration::from_secs(2)),
        };
        let r = Effect::Reset {
            from: "a".into(),
            to: "b".into(),
            after: Duration::ZERO,
        };
        for e in [&t, &r] {
            assert!(e.needs_proxy());
            let back: Effect =
                serde_json::from_value(serde_json::to_value(e).expect("json")).expect("back");
            assert_eq!(&back, e);
            assert!(plan(e, &[]).is_err(), "no drop rules for {e}");
        }
        assert_eq!(t.to_string(), "timeout a -> b (closed after 2000ms)");
        assert_eq!(r.to_string(), "reset a -> b");
        assert_eq!(r.primary(), "a");
    }

    #[tokio::test]
    async fn proxy_delays_each_direction() {
        // An echo server behind the proxy: one round trip crosses it twice.
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let up = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let px = l.local_addr().expect("addr");
        let h = tokio::spawn(serve(
            l,
            up,
            Toxic::Slow(Toxics {
                delay: Duration::from_millis(50),
                jitter: Duration::ZERO,
                bandwidth_kbit: None,
            }),
        ));
        let mut c = TcpStream::connect(px).await.expect("connect");
        c.set_nodelay(true).expect("nodelay");
        let mut b = [0u8; 4];
        let t = std::time::Instant::now();
        c.write_all(b"ping").await.expect("write");
        c.read_exact(&mut b).await.expect("read");
        let rtt = t.elapsed();
        h.abort();
        // 2 x 50 ms, timer resolution ~1 ms; allow scheduling on a loaded host.
        assert!(
            rtt >= Duration::from_millis(100) && rtt < Duration::from_millis(160),
            "{rtt:?}"
        );
    }
}
