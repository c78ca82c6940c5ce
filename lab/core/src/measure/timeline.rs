//! One timeline for everything that happens during a drill: the faults lab injects, what the
//! Sentinels announce, role and cluster-state changes seen by the pollers, container state from
//! the engine. Every event carries a monotonic offset from the run's start, so events from
//! different sources can be ordered and subtracted without wall-clock skew.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Something that happened, `at` a monotonic offset from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "at_us", with = "super::serde_us")]
    pub at: Duration,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    pub fn new(at: Duration, kind: EventKind) -> Self {
        Event { at, kind }
    }
}

/// What happened. Names of nodes are lab's service names (e.g. `redis-1`), never addresses:
/// the producers resolve addresses so that events can be matched against fault targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A fault took effect. `at` is when the engine reported it in force (its `die` or
    /// `pause` event, between the call and its return), else when the call returned.
    Fault {
        id: u32,
        /// Human description, e.g. "kill redis-1".
        fault: String,
        target: String,
    },
    /// The fault with this id was undone (container restarted, unpaused, link restored).
    FaultHealed { id: u32, target: String },
    /// A message from a Sentinel's `__sentinel__:*` pub/sub channels.
    Sentinel {
        sentinel: String,
        event: SentinelEvent,
        /// The message payload, e.g. "master mymaster redis-1 6379".
        detail: String,
    },
    /// A poller saw a node's replication role change.
    RoleChange { node: String, from: Role, to: Role },
    /// `cluster_state` of a node as reported by CLUSTER INFO.
    ClusterState { node: String, state: ClusterHealth },
    /// A node flagged as failing (or cleared) in CLUSTER NODES, as seen from `reporter`.
    NodeFailFlag {
        node: String,
        flag: FailFlag,
        reporter: String,
    },
    /// A container state change reported by the engine's event stream.
    Container {
        node: String,
        action: ContainerAction,
    },
    /// `master_link_status` of a replica changed (`up: true` is the green link).
    ReplicaLink { node: String, up: bool },
    /// Free text worth keeping on the timeline (drill phase, operator note).
    Note { text: String },
}

impl EventKind {
    /// A short label for charts and tables, e.g. "+switch-master" or "die redis-1".
    pub fn label(&self) -> String {
        match self {
            EventKind::Fault { id, fault, .. } => format!("F{id} {fault}"),
            EventKind::FaultHealed { id, target } => format!("F{id} healed ({target})"),
            EventKind::Sentinel { event, .. } => event.to_string(),
            EventKind::RoleChange { node, to, .. } => format!("{node} -> {to}"),
            EventKind::ClusterState { node, state } => format!("{node} cluster {state}"),
            EventKind::NodeFailFlag { node, flag, .. } => format!("{node} {flag}"),
            EventKind::Container { node, action } => format!("{action} {node}"),
            EventKind::ReplicaLink { node, up } => {
                format!("{node} link {}", if *up { "up" } else { "down" })
            }
            EventKind::Note { text } => text.clone(),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Sentinel {
                sentinel,
                event,
                detail,
            } => write!(f, "{sentinel}: {event} {detail}"),
            EventKind::NodeFailFlag {
                node,
                flag,
                reporter,
            } => write!(f, "{node} {flag} (seen by {reporter})"),
            EventKind::RoleChange { node, from, to } => write!(f, "{node}: {from} -> {to}"),
            other => f.write_str(&other.label()),
        }
    }
}

/// The Sentinel event names lab understands; anything else is kept verbatim in `Other`.
/// In JSON each is its channel name, e.g. `"+sdown"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SentinelEvent {
    Sdown,
    MinusSdown,
    Odown,
    MinusOdown,
    TryFailover,
    VoteForLeader,
    ElectedLeader,
    SelectedSlave,
    PromotedSlave,
    SwitchMaster,
    Slave,
    ConvertToSlave,
    FailoverEnd,
    Other(String),
}

impl SentinelEvent {
    /// From the pub/sub channel name ("+sdown", or the full "__sentinel__:+sdown").
    pub fn parse(channel: &str) -> SentinelEvent {
        let name = channel.rsplit(':').next().unwrap_or(channel).trim();
        match name {
            "+sdown" => SentinelEvent::Sdown,
            "-sdown" => SentinelEvent::MinusSdown,
            "+odown" => SentinelEvent::Odown,
            "-odown" => SentinelEvent::MinusOdown,
            "+try-failover" => SentinelEvent::TryFailover,
            "+vote-for-leader" => SentinelEvent::VoteForLeader,
            "+elected-leader" => SentinelEvent::ElectedLeader,
            "+selected-slave" => SentinelEvent::SelectedSlave,
            "+promoted-slave" => SentinelEvent::PromotedSlave,
            "+switch-master" => SentinelEvent::SwitchMaster,
            "+slave" => SentinelEvent::Slave,
            "+convert-to-slave" => SentinelEvent::ConvertToSlave,
            "+failover-end" => SentinelEvent::FailoverEnd,
            other => SentinelEvent::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SentinelEvent::Sdown => "+sdown",
            SentinelEvent::MinusSdown => "-sdown",
            SentinelEvent::Odown => "+odown",
            SentinelEvent::MinusOdown => "-odown",
            SentinelEvent::TryFailover => "+try-failover",
            SentinelEvent::VoteForLeader => "+vote-for-leader",
            SentinelEvent::ElectedLeader => "+elected-leader",
            SentinelEvent::SelectedSlave => "+selected-slave",
            SentinelEvent::PromotedSlave => "+promoted-slave",
            SentinelEvent::SwitchMaster => "+switch-master",
            SentinelEvent::Slave => "+slave",
            SentinelEvent::ConvertToSlave => "+convert-to-slave",
            SentinelEvent::FailoverEnd => "+failover-end",
            SentinelEvent::Other(s) => s,
        }
    }
}

impl fmt::Display for SentinelEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SentinelEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SentinelEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SentinelEvent::parse(&String::deserialize(d)?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Replica,
    Unknown,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterHealth {
    Ok,
    Fail,
}

impl fmt::Display for ClusterHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterHealth::Ok => "ok",
            ClusterHealth::Fail => "fail",
        })
    }
}

/// Failure flags of Redis Cluster: PFAIL is one node's suspicion, FAIL is the agreed verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailFlag {
    Pfail,
    Fail,
    /// The flag was removed again.
    Cleared,
}

impl fmt::Display for FailFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailFlag::Pfail => "pfail",
            FailFlag::Fail => "fail",
            FailFlag::Cleared => "fail cleared",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerAction {
    Die,
    Start,
    Pause,
    Unpause,
    Kill,
    Stop,
}

impl fmt::Display for ContainerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerAction::Die => "die",
            ContainerAction::Start => "start",
            ContainerAction::Pause => "pause",
            ContainerAction::Unpause => "unpause",
            ContainerAction::Kill => "kill",
            ContainerAction::Stop => "stop",
        })
    }
}

/// A fault as found on a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRef<'a> {
    pub at: Duration,
    pub id: u32,
    pub fault: &'a str,
    pub target: &'a str,
}

/// Events ordered by time. Events with equal times keep their insertion order, so a source
/// that emits "+sdown" then "+odown" in the same millisecond is shown in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timeline {
    events: Vec<Event>,
}

impl Timeline {
    pub fn new() -> Self {
        Timeline::default()
    }

    /// Sorts the given events by time (stable).
    pub fn from_events(mut events: Vec<Event>) -> Self {
        events.sort_by_key(|e| e.at);
        Timeline { events }
    }

    /// Inserts after every event at or before `at`. Appending is O(1) when events arrive in
    /// order, which is the usual case.
    pub fn push(&mut self, at: Duration, kind: EventKind) {
        let event = Event { at, kind };
        match self.events.last() {
            Some(last) if last.at > at => {
                let pos = self.events.partition_point(|e| e.at <= at);
                self.events.insert(pos, event);
            }
            _ => self.events.push(event),
        }
    }

    /// Merges another source's events (both already sorted) into this one.
    pub fn merge(&mut self, other: Timeline) {
        if other.events.is_empty() {
            return;
        }
        let mine = std::mem::take(&mut self.events);
        let mut out = Vec::with_capacity(mine.len() + other.events.len());
        let mut a = mine.into_iter().peekable();
        let mut b = other.events.into_iter().peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.at <= y.at,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            out.extend(next);
        }
        self.events = out;
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// The injected faults, in time order.
    pub fn faults(&self) -> impl Iterator<Item = FaultRef<'_>> {
        faults(&self.events)
    }
}

/// The faults among `events`, in the order given.
pub fn faults(events: &[Event]) -> impl Iterator<Item = FaultRef<'_>> {
    events.iter().filter_map(|e| match &e.kind {
        EventKind::Fault { id, fault, target } => Some(FaultRef {
            at: e.at,
            id: *id,
            fault,
            target,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn sentinel_event_names_parse_both_ways() {
        let names = [
            "+sdown",
            "-sdown",
            "+odown",
            "-odown",
            "+try-failover",
            "+vote-for-leader",
            "+elected-leader",
            "+selected-slave",
            "+promoted-slave",
            "+switch-master",
            "+slave",
            "+convert-to-slave",
            "+failover-end",
        ];
        for n in names {
            let e = SentinelEvent::parse(n);
            assert!(!matches!(e, SentinelEvent::Other(_)), "{n} not understood");
            assert_eq!(e.as_str(), n);
        }
        assert_eq!(
            SentinelEvent::parse("__sentinel__:+switch-master"),
            SentinelEvent::SwitchMaster
        );
        assert_eq!(
            SentinelEvent::parse("+tilt"),
            SentinelEvent::Other("+tilt".into())
        );
    }

    #[test]
    fn push_keeps_time_order_and_insertion_order_for_ties() {
        let mut t = Timeline::new();
        t.push(ms(20), EventKind::Note { text: "b".into() });
        t.push(ms(10), EventKind::Note { text: "a".into() });
        t.push(ms(20), EventKind::Note { text: "c".into() });
        t.push(ms(5), EventKind::Note { text: "0".into() });
        let texts: Vec<String> = t.events().iter().map(|e| e.kind.label()).collect();
        assert_eq!(texts, ["0", "a", "b", "c"]);
    }

    #[test]
    fn merge_interleaves_sources() {
        let mut a = Timeline::from_events(vec![
            Event::new(ms(1), EventKind::Note { text: "a1".into() }),
            Event::new(ms(3), EventKind::Note { text: "a3".into() }),
        ]);
        let b = Timeline::from_events(vec![
            Event::new(ms(2), EventKind::Note { text: "b2".into() }),
            Event::new(ms(3), EventKind::Note { text: "b3".into() }),
        ]);
        a.merge(b);
        let texts: Vec<String> = a.events().iter().map(|e| e.kind.label()).collect();
        assert_eq!(texts, ["a1", "b2", "a3", "b3"]);
    }

    #[test]
    fn events_serialize_flat_with_microseconds() {
        let e = Event::new(
            Duration::from_micros(1_500_250),
            EventKind::Sentinel {
                sentinel: "sentinel-1".into(),
                event: SentinelEvent::Sdown,
                detail: "master mymaster redis-1 6379".into(),
            },
        );
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(json["at_us"], 1_500_250);
        assert_eq!(json["type"], "sentinel");
        assert_eq!(json["event"], "+sdown");
        let back: Event = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, e);
    }
}
