//! Translates the addresses that Sentinel and the cluster announce (container IPs and
//! hostnames on the lab's network) into the 127.0.0.1 ports the host can reach. This is what
//! makes the lab work with rootless Podman and on macOS, where container IPs do not route.

use std::collections::HashMap;

use super::Instance;
use crate::engine::{Engine, EngineError};

#[derive(Debug, Clone, Default)]
pub struct AddrMap {
    /// container IP or hostname -> service name
    hosts: HashMap<String, String>,
    /// (service, container port) -> host port
    ports: HashMap<(String, u16), u16>,
}

impl AddrMap {
    /// Reads every container's addresses from the engine.
    pub async fn build(engine: &Engine, inst: &Instance) -> Result<AddrMap, EngineError> {
        let mut m = AddrMap::default();
        for s in &inst.topology.services {
            m.hosts.insert(s.name.clone(), s.name.clone());
            for p in &s.ports {
                if let Some(hp) = inst.host_port(&s.name, p.container_port) {
                    m.ports.insert((s.name.clone(), p.container_port), hp);
                }
            }
            if let Some(c) = engine
                .inspect_container(&inst.container_name(&s.name))
                .await?
            {
                let nets = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default();
                for (_, ep) in nets {
                    if let Some(ip) = ep.ip_address.filter(|ip| !ip.is_empty()) {
                        m.hosts.insert(ip, s.name.clone());
                    }
                }
            }
        }
        Ok(m)
    }

    /// Service behind an announced host (IP or name).
    pub fn service_of(&self, host: &str) -> Option<&str> {
        self.hosts.get(host).map(String::as_str)
    }

    /// 127.0.0.1 port for an announced address.
    pub fn translate(&self, host: &str, port: u16) -> Option<u16> {
        let svc = self.hosts.get(host)?;
        self.ports.get(&(svc.clone(), port)).copied()
    }

    /// The container's own address behind a published `host_port`: its IP on one of lab's
    /// networks (the lowest, when it has several) and the container port. This is what Sentinel
    /// and CLUSTER NODES announce; it routes from the host with rootful Docker or Podman on
    /// Linux, not with rootless Podman or on macOS.
    pub fn container_addr(&self, service: &str, host_port: u16) -> Option<std::net::SocketAddr> {
        let cport = self
            .ports
            .iter()
            .find(|((s, _), hp)| s == service && **hp == host_port)
            .map(|((_, cp), _)| *cp)?;
        let ip = self
            .hosts
            .iter()
            .filter(|(_, s)| s.as_str() == service)
            .filter_map(|(h, _)| h.parse::<std::net::IpAddr>().ok())
            .min()?;
        Some(std::net::SocketAddr::new(ip, cport))
    }

    /// For tests and hand-built maps.
    pub fn insert(&mut self, host: &str, service: &str, container_port: u16, host_port: u16) {
        self.hosts.insert(host.to_string(), service.to_string());
        self.ports
            .insert((service.to_string(), container_port), host_port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_ip_and_name() {
        let mut m = AddrMap::default();
        m.insert("10.89.0.5", "redis-1", 6379, 16001);
        m.insert("redis-1", "redis-1", 6379, 16001);
        assert_eq!(m.translate("10.89.0.5", 6379), Some(16001));
        assert_eq!(m.translate("redis-1", 6379), Some(16001));
        assert_eq!(m.translate("10.89.0.9", 6379), None);
        assert_eq!(m.service_of("10.89.0.5"), Some("redis-1"));
        assert_eq!(
            m.container_addr("redis-1", 16001),
            Some("10.89.0.5:6379".parse().expect("addr"))
        );
        assert_eq!(m.container_addr("redis-1", 16002), None);
        assert_eq!(m.container_addr("redis-2", 16001), None);
    }
}
