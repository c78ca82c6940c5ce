//! Role/link poller for the data nodes of Sentinel topologies: `INFO replication` every poll
//! interval, reporting when a node's role or its replica link changes.
//!
//! A node that does not answer is unknown, not "down": its last known role is kept and the
//! engine's events say whether it died or froze. When it answers again with another role, the
//! change is reported from the last known one.

use std::collections::HashMap;

use tokio::sync::watch;

use super::{poll_node, Ctx, Ready};
use crate::lifecycle::verify::parse_info;
use crate::measure::timeline::{EventKind, Role};

pub(super) async fn run(
    ctx: Ctx,
    node: String,
    port: u16,
    stop: watch::Receiver<bool>,
    ready: Ready,
) {
    let mut tracker = ReplTracker::default();
    let name = node.clone();
    poll_node(
        ctx,
        node,
        port,
        stop,
        ready,
        |mut c| async move {
            let text: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut c)
                .await?;
            Ok(ReplSample::from_info(&parse_info(&text)))
        },
        move |sample| tracker.apply(&name, sample),
    )
    .await
}

/// What one `INFO replication` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplSample {
    pub role: Role,
    /// `master_link_status` (replicas only).
    pub link_up: Option<bool>,
}

impl ReplSample {
    pub(crate) fn from_info(info: &HashMap<String, String>) -> Self {
        let role = match info.get("role").map(|r| r.trim()) {
            Some("master") => Role::Master,
            Some("slave") | Some("replica") => Role::Replica,
            _ => Role::Unknown,
        };
        let link_up = match info.get("master_link_status").map(|s| s.trim()) {
            Some("up") => Some(true),
            Some(_) => Some(false),
            None => None,
        };
        ReplSample { role, link_up }
    }
}

/// Last known state of one node; the first sample is the baseline and produces no event.
#[derive(Debug, Default)]
pub(crate) struct ReplTracker {
    role: Option<Role>,
    link_up: Option<bool>,
    seen: bool,
}

impl ReplTracker {
    pub(crate) fn apply(&mut self, node: &str, s: ReplSample) -> Vec<EventKind> {
        let mut out = vec![];
        let baseline = !self.seen;
        self.seen = true;
        if s.role != Role::Unknown {
            if let Some(from) = self.role.filter(|r| *r != s.role && !baseline) {
                out.push(EventKind::RoleChange {
                    node: node.to_string(),
                    from,
                    to: s.role,
                });
            }
            self.role = Some(s.role);
        }
        // A link that appears (master turned replica) or flips is news; one that disappears
        // (replica promoted) is said by the role change.
        if let Some(up) = s.link_up {
            if !baseline && self.link_up != Some(up) {
                out.push(EventKind::ReplicaLink {
                    node: node.to_string(),
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

    fn info(text: &str) -> ReplSample {
        ReplSample::from_info(&parse_info(text))
    }

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n";
    const REPLICA_UP: &str =
        "# Replication\r\nrole:slave\r\nmaster_host:redis-1\r\nmaster_link_status:up\r\n";
    const REPLICA_DOWN: &str =
        "# Replication\r\nrole:slave\r\nmaster_host:redis-1\r\nmaster_link_status:down\r\n";

    #[test]
    fn parses_role_and_link() {
        assert_eq!(
            info(MASTER),
            ReplSample {
                role: Role::Master,
                link_up: None
            }
        );
        assert_eq!(info(REPLICA_UP).link_up, Some(true));
        assert_eq!(info(REPLICA_DOWN).link_up, Some(false));
        assert_eq!(info("").role, Role::Unknown);
    }

    #[test]
    fn baseline_is_silent_then_changes_are_reported() {
        let mut t = ReplTracker::default();
        assert!(t.apply("redis-2", info(REPLICA_UP)).is_empty());
        assert!(t.apply("redis-2", info(REPLICA_UP)).is_empty());
        assert_eq!(
            t.apply("redis-2", info(REPLICA_DOWN)),
            [EventKind::ReplicaLink {
                node: "redis-2".into(),
                up: false
            }]
        );
        assert_eq!(
            t.apply("redis-2", info(MASTER)),
            [EventKind::RoleChange {
                node: "redis-2".into(),
                from: Role::Replica,
                to: Role::Master
            }]
        );
        assert!(t.apply("redis-2", info(MASTER)).is_empty());
    }

    #[test]
    fn demoted_master_reports_role_then_link() {
        let mut t = ReplTracker::default();
        assert!(t.apply("redis-1", info(MASTER)).is_empty());
        // Unreachable polls do not reach the tracker; the node comes back as a replica.
        assert_eq!(
            t.apply("redis-1", info(REPLICA_DOWN)),
            [
                EventKind::RoleChange {
                    node: "redis-1".into(),
                    from: Role::Master,
                    to: Role::Replica
                },
                EventKind::ReplicaLink {
                    node: "redis-1".into(),
                    up: false
                }
            ]
        );
        assert_eq!(
            t.apply("redis-1", info(REPLICA_UP)),
            [EventKind::ReplicaLink {
                node: "redis-1".into(),
                up: true
            }]
        );
    }

    #[test]
    fn a_reply_without_role_keeps_the_last_known_one() {
        let mut t = ReplTracker::default();
        assert!(t.apply("redis-1", info(MASTER)).is_empty());
        assert!(t.apply("redis-1", info("loading:1\r\n")).is_empty());
        assert!(t.apply("redis-1", info(MASTER)).is_empty());
    }
}
