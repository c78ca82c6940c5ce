//! Cluster poller: `CLUSTER NODES` and `CLUSTER INFO` on every cluster node each poll
//! interval, reporting failure flags as each node sees them (PFAIL is one node's suspicion,
//! FAIL the agreed verdict), the node's own role, its `cluster_state`, and (from `INFO
//! replication`) whether a replica's link to its master is up, so that recovery to full
//! redundancy can be measured on the cluster as on Sentinel groups.

use std::collections::HashMap;

use tokio::sync::watch;

use super::replication::ReplSample;
use super::{poll_node, Ctx, Names, Ready};
use crate::lifecycle::verify::parse_info;
use crate::measure::timeline::{ClusterHealth, EventKind, FailFlag, Role};

pub(super) async fn run(
    ctx: Ctx,
    node: String,
    port: u16,
    stop: watch::Receiver<bool>,
    ready: Ready,
) {
    let mut tracker = ClusterTracker::default();
    let reporter = node.clone();
    let names: Names = ctx.names.clone();
    poll_node(
        ctx,
        node,
        port,
        stop,
        ready,
        |mut c| async move {
            let (nodes, info, repl): (String, String, String) = redis::pipe()
                .cmd("CLUSTER")
                .arg("NODES")
                .cmd("CLUSTER")
                .arg("INFO")
                .cmd("INFO")
                .arg("replication")
                .query_async(&mut c)
                .await?;
            let mut sample = ClusterSample::parse(&nodes, &info);
            sample.link_up = ReplSample::from_info(&parse_info(&repl)).link_up;
            Ok(sample)
        },
        move |sample| tracker.apply(&reporter, &sample, |h| names.service_of(h)),
    )
    .await
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLine {
    pub id: String,
    /// Announced IP (empty for `noaddr` nodes).
    pub host: String,
    pub port: Option<u16>,
    /// The optional hostname after the bus port (`ip:port@cport,hostname`).
    pub hostname: Option<String>,
    pub myself: bool,
    pub role: Role,
    pub flag: Option<FailFlag>,
}

impl NodeLine {
    /// `<id> <ip:port@cport[,hostname[,aux=value...]]> <flags> <master> ...`
    pub(crate) fn parse(line: &str) -> Option<NodeLine> {
        let mut fields = line.split_whitespace();
        let id = fields.next()?.to_string();
        let addr = fields.next()?;
        let flags: Vec<&str> = fields.next()?.split(',').collect();
        let mut parts = addr.split(',');
        let hostport = parts.next().unwrap_or_default();
        let hostname = parts
            .next()
            .filter(|h| !h.is_empty() && !h.contains('='))
            .map(str::to_string);
        let hostport = hostport.split('@').next().unwrap_or_default();
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().ok().filter(|p| *p != 0)),
            None => (hostport.to_string(), None),
        };
        let has = |f: &str| flags.contains(&f);
        let role = if has("master") {
            Role::Master
        } else if has("slave") || has("replica") {
            Role::Replica
        } else {
            Role::Unknown
        };
        let flag = if has("fail") {
            Some(FailFlag::Fail)
        } else if has("fail?") {
            Some(FailFlag::Pfail)
        } else {
            None
        };
        Some(NodeLine {
            id,
            host,
            port,
            hostname,
            myself: has("myself"),
            role,
            flag,
        })
    }

    /// Lab's name for the node: the service behind its address or hostname; otherwise what it
    /// announces, as is.
    pub(crate) fn name(&self, resolve: &impl Fn(&str) -> Option<String>) -> String {
        if let Some(n) = (!self.host.is_empty())
            .then(|| resolve(&self.host))
            .flatten()
        {
            return n;
        }
        if let Some(h) = &self.hostname {
            return resolve(h).unwrap_or_else(|| h.clone());
        }
        match (self.host.is_empty(), self.port) {
            (false, Some(p)) => format!("{}:{p}", self.host),
            (false, None) => self.host.clone(),
            (true, _) => self.id.clone(),
        }
    }
}

/// What one poll of a cluster node said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterSample {
    pub nodes: Vec<NodeLine>,
    pub state: Option<ClusterHealth>,
    /// The reporter's own `master_link_status` when it is a replica.
    pub link_up: Option<bool>,
}

impl ClusterSample {
    pub(crate) fn parse(nodes: &str, info: &str) -> Self {
        let state = match parse_info(info).get("cluster_state").map(|s| s.trim()) {
            Some("ok") => Some(ClusterHealth::Ok),
            Some("fail") => Some(ClusterHealth::Fail),
            _ => None,
        };
        ClusterSample {
            nodes: nodes.lines().filter_map(NodeLine::parse).collect(),
            state,
            link_up: None,
        }
    }
}

/// One reporter's last known view; its first sample is the baseline and produces no event.
#[derive(Debug, Default)]
pub(crate) struct ClusterTracker {
    seen: bool,
    role: Option<Role>,
    state: Option<ClusterHealth>,
    link_up: Option<bool>,
    /// Failure flag per node id, as this reporter last saw it.
    flags: HashMap<String, Option<FailFlag>>,
}

impl ClusterTracker {
    pub(crate) fn apply(
        &mut self,
        reporter: &str,
        s: &ClusterSample,
        resolve: impl Fn(&str) -> Option<String>,
    ) -> Vec<EventKind> {
        let baseline = !self.seen;
        self.seen = true;
        let mut out = vec![];

        let mut flags = HashMap::with_capacity(s.nodes.len());
        for n in &s.nodes {
            if n.myself {
                if n.role != Role::Unknown {
                    if let Some(from) = self.role.filter(|r| *r != n.role && !baseline) {
                        out.push(EventKind::RoleChange {
                            node: reporter.to_string(),
                            from,
                            to: n.role,
                        });
                    }
                    self.role = Some(n.role);
                }
                continue;
            }
            // A node this reporter has not listed before counts as unflagged.
            let before = self.flags.get(&n.id).copied().flatten();
            if !baseline && before != n.flag {
                out.push(EventKind::NodeFailFlag {
                    node: n.name(&resolve),
                    flag: n.flag.unwrap_or(FailFlag::Cleared),
                    reporter: reporter.to_string(),
                });
            }
            flags.insert(n.id.clone(), n.flag);
        }
        self.flags = flags;

        if let Some(state) = s.state {
            if !baseline && self.state.is_some_and(|st| st != state) {
                out.push(EventKind::ClusterState {
                    node: reporter.to_string(),
                    state,
                });
            }
            self.state = Some(state);
        }

        // As for Sentinel groups: a link that appears (master turned replica) or flips is
        // news; one that disappears (replica promoted) is said by the role change.
        if let Some(up) = s.link_up {
            if !baseline && self.link_up != Some(up) {
                out.push(EventKind::ReplicaLink {
                    node: reporter.to_string(),
                    up,
                });
            }
        }
        self.link_up = s.link_up;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::addr::AddrMap;

    const ID1: &str = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca";
    const ID2: &str = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";
    const ID4: &str = "07c37dfeb235213a872192d90877d0cd55635b91";

    fn map() -> AddrMap {
        let mut m = AddrMap::default();
        m.insert("172.20.0.2", "node-1", 6379, 16101);
        m.insert("172.20.0.3", "node-2", 6379, 16102);
        m.insert("172.20.0.5", "node-4", 6379, 16104);
        m
    }

    fn nodes(n1: &str, n4_flags: &str, n4_master: &str) -> String {
        format!(
            "{ID1} 172.20.0.2:6379@16379 {n1} - 0 1426238316232 1 connected 0-5460\n\
             {ID2} 172.20.0.3:6379@16379,node-2 master - 0 1426238316232 2 connected 5461-10922\n\
             {ID4} 172.20.0.5:6379@16379 {n4_flags} {n4_master} 0 1426238317239 4 connected\n"
        )
    }

    fn sample(n1: &str, n4_flags: &str, state: &str) -> ClusterSample {
        ClusterSample::parse(
            &nodes(n1, n4_flags, ID1),
            &format!("cluster_state:{state}\r\ncluster_slots_assigned:16384\r\n"),
        )
    }

    fn apply(t: &mut ClusterTracker, reporter: &str, s: &ClusterSample) -> Vec<EventKind> {
        let m = map();
        t.apply(reporter, s, |h| m.service_of(h).map(str::to_string))
    }

    fn flag(node: &str, flag: FailFlag, reporter: &str) -> EventKind {
        EventKind::NodeFailFlag {
            node: node.into(),
            flag,
            reporter: reporter.into(),
        }
    }

    #[test]
    fn parses_flags_roles_and_addresses() {
        let s = sample("master,fail?", "myself,slave", "ok");
        assert_eq!(s.state, Some(ClusterHealth::Ok));
        assert_eq!(s.nodes.len(), 3);
        assert_eq!(s.nodes[0].flag, Some(FailFlag::Pfail));
        assert_eq!(s.nodes[0].role, Role::Master);
        assert_eq!(s.nodes[1].hostname.as_deref(), Some("node-2"));
        assert_eq!(s.nodes[1].port, Some(6379));
        assert!(s.nodes[2].myself);
        assert_eq!(s.nodes[2].role, Role::Replica);

        let l = NodeLine::parse(&format!(
            "{ID1} :0@0 master,fail,noaddr - 1 2 3 disconnected"
        ))
        .expect("parses");
        assert_eq!(
            (l.host.as_str(), l.port, l.flag),
            ("", None, Some(FailFlag::Fail))
        );
        let aux = NodeLine::parse(&format!(
            "{ID1} 172.20.0.2:6379@16379,,shard-id=abc myself,master - 0 0 1 connected"
        ))
        .expect("parses");
        assert_eq!(aux.hostname, None);
        assert!(NodeLine::parse("").is_none());
    }

    #[test]
    fn names_come_from_the_map_then_the_hostname_then_the_address() {
        let m = map();
        let resolve = |h: &str| m.service_of(h).map(str::to_string);
        let line = |addr: &str| {
            NodeLine::parse(&format!("{ID1} {addr} master - 0 0 1 connected")).expect("parses")
        };
        assert_eq!(line("172.20.0.2:6379@16379").name(&resolve), "node-1");
        assert_eq!(line("10.9.9.9:6379@16379,node-9").name(&resolve), "node-9");
        assert_eq!(line("10.9.9.9:6379@16379").name(&resolve), "10.9.9.9:6379");
        assert_eq!(line(":0@0").name(&resolve), ID1);
    }

    #[test]
    fn a_replica_link_that_drops_and_returns_is_reported_by_its_own_node() {
        let with_link = |up: Option<bool>| {
            let mut s = sample("master", "myself,slave", "ok");
            s.link_up = up;
            s
        };
        let link = |up| EventKind::ReplicaLink {
            node: "node-4".into(),
            up,
        };
        let mut t = ClusterTracker::default();
        assert!(apply(&mut t, "node-4", &with_link(Some(true))).is_empty());
        assert_eq!(
            apply(&mut t, "node-4", &with_link(Some(false))),
            [link(false)]
        );
        assert!(apply(&mut t, "node-4", &with_link(Some(false))).is_empty());
        assert_eq!(
            apply(&mut t, "node-4", &with_link(Some(true))),
            [link(true)]
        );
        // Promoted: the link disappears silently (the role change says it).
        assert!(apply(&mut t, "node-4", &with_link(None)).is_empty());
    }

    #[test]
    fn flags_appear_escalate_and_clear_per_reporter() {
        let mut t = ClusterTracker::default();
        assert!(apply(&mut t, "node-4", &sample("master", "myself,slave", "ok")).is_empty());
        assert_eq!(
            apply(
                &mut t,
                "node-4",
                &sample("master,fail?", "myself,slave", "ok")
            ),
            [flag("node-1", FailFlag::Pfail, "node-4")]
        );
        assert!(apply(
            &mut t,
            "node-4",
            &sample("master,fail?", "myself,slave", "ok")
        )
        .is_empty());
        assert_eq!(
            apply(
                &mut t,
                "node-4",
                &sample("master,fail", "myself,slave", "fail")
            ),
            [
                flag("node-1", FailFlag::Fail, "node-4"),
                EventKind::ClusterState {
                    node: "node-4".into(),
                    state: ClusterHealth::Fail
                }
            ]
        );
        // The replica takes over: its own role changes; the cluster heals.
        assert_eq!(
            apply(
                &mut t,
                "node-4",
                &sample("slave,fail", "myself,master", "ok")
            ),
            [
                EventKind::RoleChange {
                    node: "node-4".into(),
                    from: Role::Replica,
                    to: Role::Master
                },
                EventKind::ClusterState {
                    node: "node-4".into(),
                    state: ClusterHealth::Ok
                }
            ]
        );
        assert_eq!(
            apply(&mut t, "node-4", &sample("slave", "myself,master", "ok")),
            [flag("node-1", FailFlag::Cleared, "node-4")]
        );
    }

    #[test]
    fn baseline_reports_nothing_even_when_flags_are_set() {
        let mut t = ClusterTracker::default();
        assert!(apply(&mut t, "node-2", &sample("master,fail", "slave", "fail")).is_empty());
        assert_eq!(
            apply(&mut t, "node-2", &sample("master", "slave", "ok")),
            [
                flag("node-1", FailFlag::Cleared, "node-2"),
                EventKind::ClusterState {
                    node: "node-2".into(),
                    state: ClusterHealth::Ok
                }
            ]
        );
    }
}
