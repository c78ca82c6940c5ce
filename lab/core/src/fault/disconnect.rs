//! The network-disconnect fallback of `isolate`: where iptables cannot be entered in a
//! container's namespace, the engine takes the container off its networks and puts it back on
//! heal, under the same aliases and, where the engine allows, at the same address.
//!
//! Docker accepts an address on connect only on networks created with a subnet (lab's are
//! not); it is asked for the old address and, when it refuses, reconnected without one: its
//! allocator then hands out the lowest free address, which is the old one unless another
//! container took it meanwhile. Podman (netavark) takes the old address back. A reconnect is
//! healed once a peer resolves the node's name to it again (see [`heal`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::FaultError;
use crate::engine::Engine;

/// One network a container was on, as needed to put it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: String,
    pub network: String,
    /// IPv4 address on that network; empty when it had none.
    pub ip: String,
    pub aliases: Vec<String>,
}

/// Aliases to restore: the engine adds the container's short id by itself on connect.
pub fn keep_alias(alias: &str, container_id: &str) -> bool {
    !(alias.len() >= 12 && container_id.starts_with(alias))
}

fn err(container: &str, message: String) -> FaultError {
    FaultError::Net {
        container: container.to_string(),
        message,
    }
}

/// The networks a running container is on, read from the engine. Nothing is changed.
pub async fn endpoints(engine: &Engine, container: &str) -> Result<Vec<Endpoint>, FaultError> {
    let c = engine
        .inspect_container(container)
        .await?
        .ok_or_else(|| err(container, "no such container".into()))?;
    let id = c.id.clone().unwrap_or_default();
    let nets = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let mut out: Vec<Endpoint> = nets
        .into_iter()
        .map(|(network, ep)| Endpoint {
            container: container.to_string(),
            network,
            ip: ep.ip_address.unwrap_or_default(),
            aliases: ep
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|a| keep_alias(a, &id))
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.network.cmp(&b.network));
    if out.is_empty() {
        return Err(err(
            container,
            "is on no network, so there is nothing to disconnect it from".into(),
        ));
    }
    Ok(out)
}

/// Takes the container off every recorded network.
pub async fn apply(engine: &Engine, eps: &[Endpoint]) -> Result<(), FaultError> {
    for ep in eps {
        engine
            .disconnect_network(&ep.network, &ep.container)
            .await?;
    }
    Ok(())
}

/// Puts the container back on every recorded network it is not on. A container that is gone
/// has nothing to heal.
pub async fn heal(engine: &Engine, eps: &[Endpoint]) -> Result<(), FaultError> {
    for ep in eps {
        let Some(c) = engine.inspect_container(&ep.container).await? else {
            continue;
        };
        let on = c
            .network_settings
            .and_then(|n| n.networks)
            .is_some_and(|n| n.contains_key(&ep.network));
        if on {
            continue;
        }
        let ip = Some(ep.ip.as_str()).filter(|s| !s.is_empty());
        match engine
            .connect_network(&ep.network, &ep.container, &ep.aliases, ip)
            .await
        {
            Ok(()) => {}
            // Docker: "user specified IP address is supported only when connecting to
            // networks with user configured subnets".
            Err(e) if ip.is_some() && e.to_string().contains("user configured subnets") => {
                engine
                    .connect_network(&ep.network, &ep.container, &ep.aliases, None)
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        if resolves(engine, ep).await? {
            continue;
        }
        // Once more: off and on again makes the engine write the DNS records anew.
        engine
            .disconnect_network(&ep.network, &ep.container)
            .await?;
        engine
            .connect_network(&ep.network, &ep.container, &ep.aliases, None)
            .await?;
        if !resolves(engine, ep).await? {
            return Err(err(
                &ep.container,
                format!(
                    "is back on {} but its name {} does not resolve from its peers after two \
                     reconnects (the network's DNS server did not take it back)",
                    ep.network,
                    ep.aliases.first().map_or("", String::as_str)
                ),
            ));
        }
    }
    Ok(())
}

/// How long a reconnected container's name may take to resolve from a peer.
const DNS_LIMIT: Duration = Duration::from_secs(10);

/// Whether the first alias of a reconnected container resolves to its address from another
/// running container of the same instance, asked every 500 ms for up to [`DNS_LIMIT`]. Nodes
/// find each other by name (Sentinel's hostnames), so a reconnect the network's DNS does not
/// know about is not healed: Podman's aardvark-dns was seen once, in CI, not to answer a
/// reconnected container's alias within 20 s. True when there is nothing to ask or no one to
/// ask it.
async fn resolves(engine: &Engine, ep: &Endpoint) -> Result<bool, FaultError> {
    let Some(alias) = ep.aliases.first() else {
        return Ok(true);
    };
    let Some(c) = engine.inspect_container(&ep.container).await? else {
        return Ok(true);
    };
    let ip = c
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(&ep.network).and_then(|e| e.ip_address.clone()))
        .unwrap_or_default();
    let instance = c
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get("lab.instance").cloned());
    let (Some(instance), false) = (instance, ip.is_empty()) else {
        return Ok(true);
    };
    let me = format!("/{}", ep.container);
    let peer = engine
        .list_containers(&[("lab.instance", instance.as_str())])
        .await?
        .into_iter()
        .filter(|s| {
            s.state
                .as_ref()
                .is_some_and(|st| st.to_string() == "running")
        })
        .find_map(|s| {
            s.names
                .unwrap_or_default()
                .into_iter()
                .find(|n| n != &me)
                .map(|n| n.trim_start_matches('/').to_string())
        });
    let Some(peer) = peer else {
        return Ok(true);
    };
    let ask = vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("command -v getent >/dev/null || {{ echo no-getent; exit 0; }}; getent hosts {alias}; true"),
    ];
    let end = Instant::now() + DNS_LIMIT;
    loop {
        if let Ok(out) = engine.exec(&peer, &ask).await {
            // A peer that cannot ask is no evidence either way.
            if out.output.contains("no-getent") || out.output.split_whitespace().any(|w| w == ip) {
                return Ok(true);
            }
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_added_id_alias_is_not_restored() {
        let id = "0c5b1f911a275da59bb8f5a6f3842f162c4f9d7fba3b2d9fc95d65f7cb0c496a";
        assert!(!keep_alias("0c5b1f911a27", id));
        assert!(keep_alias("redis-1", id));
        assert!(keep_alias("0c5b", id), "a short alias is the user's");
    }
}
