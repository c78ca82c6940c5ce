//! Where each key goes right now. A shared table maps each group (Sentinel master name or
//! cluster shard) to its current master, as a host port; a refresher keeps it current from
//! the Sentinels (`get-master-addr-by-name`) or the cluster (`CLUSTER SLOTS`), waking early
//! whenever a worker reports trouble. Workers read it without awaiting while holding it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::engine::Engine;
use crate::lifecycle::addr::AddrMap;
use crate::lifecycle::probe::{cmd, redis_conn};
use crate::lifecycle::Instance;

/// A node as clients reach it: its service name and published 127.0.0.1 port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub node: Arc<str>,
    pub port: u16,
}

/// How the client finds masters.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Ask the Sentinels for each group's master; follow failovers.
    Sentinel {
        groups: Vec<String>,
        sentinels: Vec<u16>,
    },
    /// Follow the cluster's slot map (and MOVED/ASK).
    Cluster { seeds: Vec<u16> },
    /// Stay on one node whatever happens (a client on the old master's side of a split).
    Pinned { node: NodeAddr, group: String },
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Current master per group index.
    pub masters: Vec<Option<NodeAddr>>,
    /// Cluster only: group (shard) index of every slot, fixed at start.
    pub slot_group: Vec<u16>,
    /// Cluster only: current owner of every slot.
    pub slot_owner: Vec<Option<NodeAddr>>,
}

pub struct Routes {
    pub discovery: Discovery,
    pub group_names: Vec<String>,
    table: RwLock<Table>,
    version: AtomicU64,
    pub trouble: tokio::sync::Notify,
    /// Connect to the containers' own addresses instead of the published ports.
    direct: AtomicBool,
    map: RwLock<AddrMap>,
    engine: Engine,
    inst: Arc<Instance>,
}

/// Redis Cluster key slot: CRC16-XMODEM of the key (or of its `{hashtag}`) mod 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let k = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(k) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

const Q: Duration = Duration::from_millis(500);

impl Routes {
    pub async fn new(
        engine: Engine,
        inst: Arc<Instance>,
        map: AddrMap,
        discovery: Discovery,
    ) -> Result<Arc<Routes>, String> {
        let group_names = match &discovery {
            Discovery::Sentinel { groups, .. } => groups.clone(),
            Discovery::Pinned { group, .. } => vec![group.clone()],
            Discovery::Cluster { .. } => vec![],
        };
        let r = Arc::new(Routes {
            discovery,
            group_names,
            table: RwLock::new(Table::default()),
            version: AtomicU64::new(0),
            trouble: tokio::sync::Notify::new(),
            direct: AtomicBool::new(false),
            map: RwLock::new(map),
            engine,
            inst,
        });
        let r = if matches!(r.discovery, Discovery::Cluster { .. }) {
            let names = r.init_cluster().await?;
            let mut rr =
                Arc::try_unwrap(r).map_err(|_| "internal: routes shared early".to_string())?;
            rr.group_names = names;
            Arc::new(rr)
        } else {
            r
        };
        r.refresh().await?;
        Ok(r)
    }

    pub fn snapshot(&self) -> Table {
        self.table.read().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    pub fn master_of(&self, group: usize) -> Option<NodeAddr> {
        self.table
            .read()
            .ok()
            .and_then(|t| t.masters.get(group).cloned().flatten())
    }

    pub fn slot_owner(&self, slot: u16) -> Option<NodeAddr> {
        self.table
            .read()
            .ok()
            .and_then(|t| t.slot_owner.get(slot as usize).cloned().flatten())
    }

    pub fn slot_group(&self, slot: u16) -> u16 {
        self.table
            .read()
            .ok()
            .and_then(|t| t.slot_group.get(slot as usize).copied())
            .unwrap_or(0)
    }

    /// A MOVED reply: the slot now lives at `host:port` (as the cluster announces it).
    pub fn moved(&self, slot: u16, host: &str, port: u16) -> Option<NodeAddr> {
        let addr = self.translate(host, port)?;
        if let Ok(mut t) = self.table.write() {
            if let Some(s) = t.slot_owner.get_mut(slot as usize) {
                *s = Some(addr.clone());
            }
        }
        self.version.fetch_add(1, Ordering::Relaxed);
        Some(addr)
    }

    /// From now on, clients connect to each node at its container address on lab's network
    /// (what Sentinel and CLUSTER NODES announce, and what `redis-benchmark --cluster` uses)
    /// rather than through its published 127.0.0.1 port (docker-proxy or rootlessport).
    /// Nodes stay named by their published port. Only where those addresses route.
    pub fn set_direct(&self, on: bool) {
        self.direct.store(on, Ordering::Relaxed);
    }

    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Where a client connects to reach `n`.
    pub fn socket_addr(&self, n: &NodeAddr) -> SocketAddr {
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, n.port));
        if !self.is_direct() {
            return published;
        }
        self.map
            .read()
            .ok()
            .and_then(|m| m.container_addr(&n.node, n.port))
            .unwrap_or(published)
    }

    pub fn translate(&self, host: &str, port: u16) -> Option<NodeAddr> {
        let m = self.map.read().ok()?;
        let hp = m.translate(host, port)?;
        let node = m.service_of(host)?.to_string();
        Some(NodeAddr {
            node: node.into(),
            port: hp,
        })
    }

    async fn rebuild_map(&self) {
        if let Ok(m) = AddrMap::build(&self.engine, &self.inst).await {
            if let Ok(mut w) = self.map.write() {
                *w = m;
            }
        }
    }

    fn pw(&self) -> Option<&str> {
        self.inst.password.as_deref()
    }

    /// Reads the slot ranges once to fix each slot's group (shard), named after the
    /// topology group of the range's first master.
    async fn init_cluster(&self) -> Result<Vec<String>, String> {
        let ranges = self.cluster_slots().await?;
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|r| r.0);
        let mut names = vec![];
        let mut slot_group = vec![0u16; 16384];
        for (i, (lo, hi, owner)) in sorted.iter().enumerate() {
            let name = owner
                .as_ref()
                .and_then(|o| self.inst.topology.service(&o.node))
                .and_then(|s| s.group.clone())
                .unwrap_or_else(|| format!("shard-{}", i + 1));
            names.push(name);
            for s in *lo..=*hi {
                slot_group[s as usize] = i as u16;
            }
        }
        if let Ok(mut t) = self.table.write() {
            t.slot_group = slot_group;
        }
        Ok(names)
    }

    async fn cluster_slots(&self) -> Result<Vec<(u16, u16, Option<NodeAddr>)>, String> {
        let Discovery::Cluster { seeds } = &self.discovery else {
            return Ok(vec![]);
        };
        let mut last = String::from("no seed");
        for &p in seeds {
            let mut c = match redis_conn(p, self.pw(), Q).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let v: Result<redis::Value, String> =
                cmd(&mut c, redis::cmd("CLUSTER").arg("SLOTS"), Q).await;
            match v {
                Ok(redis::Value::Array(entries)) => {
                    let mut out = vec![];
                    let mut unknown = false;
                    for e in entries {
                        let redis::Value::Array(f) = e else { continue };
                        if f.len() < 3 {
                            continue;
                        }
                        let lo: i64 = redis::from_redis_value(f[0].clone()).unwrap_or(0);
                        let hi: i64 = redis::from_redis_value(f[1].clone()).unwrap_or(0);
                        let owner = match &f[2] {
                            redis::Value::Array(m) if m.len() >= 2 => {
                                let host: String =
                                    redis::from_redis_value(m[0].clone()).unwrap_or_default();
                                let port: i64 = redis::from_redis_value(m[1].clone()).unwrap_or(0);
                                let a = self.translate(&host, port as u16);
                                unknown |= a.is_none();
                                a
                            }
                            _ => None,
                        };
                        out.push((lo as u16, hi as u16, owner));
                    }
                    if unknown {
                        self.rebuild_map().await;
                    }
                    return Ok(out);
                }
                Ok(other) => last = format!("unexpected CLUSTER SLOTS reply {other:?}"),
                Err(e) => last = e,
            }
        }
        Err(format!("no cluster node answered CLUSTER SLOTS ({last})"))
    }

    /// Re-reads where every group's master is.
    pub async fn refresh(&self) -> Result<(), String> {
        match &self.discovery {
            Discovery::Pinned { node, .. } => {
                if let Ok(mut t) = self.table.write() {
                    t.masters = vec![Some(node.clone())];
                }
            }
            Discovery::Sentinel { groups, sentinels } => {
                let mut masters = vec![None; groups.len()];
                let mut rebuild = false;
                for (gi, g) in groups.iter().enumerate() {
                    for &sp in sentinels {
                        let Ok(mut c) = redis_conn(sp, self.pw(), Q).await else {
                            continue;
                        };
                        let r: Result<Option<(String, u16)>, String> = cmd(
                            &mut c,
                            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(g),
                            Q,
                        )
                        .await;
                        if let Ok(Some((h, p))) = r {
                            match self.translate(&h, p) {
                                Some(a) => masters[gi] = Some(a),
                                None => rebuild = true,
                            }
                            break;
                        }
                    }
                }
                if rebuild {
                    self.rebuild_map().await;
                }
                let old = self.snapshot().masters;
                if old.len() == masters.len() {
                    // Keep a known master rather than forget it when no Sentinel answered.
                    for (m, o) in masters.iter_mut().zip(old) {
                        if m.is_none() {
                            *m = o;
                        }
                    }
                }
                if let Ok(mut t) = self.table.write() {
                    t.masters = masters;
                }
            }
            Discovery::Cluster { .. } => {
                let ranges = self.cluster_slots().await?;
                let groups = self.group_names.len();
                let mut owners = vec![None; 16384];
                let mut masters: Vec<Option<NodeAddr>> = vec![None; groups];
                let slot_group = self.snapshot().slot_group;
                for (lo, hi, o) in ranges {
                    for s in lo..=hi {
                        owners[s as usize] = o.clone();
                    }
                    if let Some(g) = slot_group.get(lo as usize) {
                        if let Some(m) = masters.get_mut(*g as usize) {
                            *m = o.clone();
                        }
                    }
                }
                if let Ok(mut t) = self.table.write() {
                    t.slot_owner = owners;
                    t.masters = masters;
                }
            }
        }
        self.version.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps the table current until `stop`: every second, and within ~50 ms of a worker
    /// reporting trouble (then every 100 ms while trouble lasts).
    pub async fn run_refresher(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.changed() => { if *stop.borrow() { break; } }
                _ = self.trouble.notified() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = self.refresh().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => { let _ = self.refresh().await; }
            }
            if *stop.borrow() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}x"), crc16(b"{}x") % 16384);
    }
}
