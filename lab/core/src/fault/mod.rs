//! Faults on containers and their journal. A fault is written to the instance's journal
//! (`<state>/<instance>/faults.json`) *before* it is applied and removed only once it is
//! healed, so a `lab` killed mid-drill leaves a record that `lab heal`, `lab up`, `lab down`
//! and the next `lab drill` use to undo it.
//!
//! The process faults here (kill, stop, restart, pause) all heal the same way: the container
//! is thawed if frozen and started if not running. That heal is idempotent, so healing a
//! fault twice, or one the engine already undid, is harmless. Network faults (`net`) are
//! iptables rules and proxies; they heal by removing exactly what they added. Resource faults
//! (stress, disk full, clock skew) run inside the container and heal there: see [`resource`];
//! a slow disk is a throttle on the container's cgroup, written from the host: see [`disk`].
//! A restart loop ([`restart_loop`]) is a task of the applying process; heal stops it, then
//! heals like the other process faults.

pub mod disconnect;
pub mod disk;
pub mod leader_crash;
pub mod net;
pub mod netem;
pub mod resource;
pub mod restart_loop;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError};

/// What was done to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// A signal to the main process (SIGKILL: a crash).
    Kill { signal: String },
    /// SIGTERM, then SIGKILL after the grace period.
    Stop {
        #[serde(with = "crate::measure::serde_us", rename = "grace_us")]
        grace: Duration,
    },
    /// Stop and start; undoes itself, journalled only while it runs.
    Restart,
    /// Cgroup freezer.
    Pause,
    /// SIGKILL and start again every `every`, by a task of the `lab` process that applied it.
    RestartLoop {
        #[serde(with = "crate::measure::serde_us", rename = "every_us")]
        every: Duration,
    },
    /// A network fault (`net.rs`): rules in the nodes' network namespaces, or a proxy.
    Net(net::NetFault),
    /// stress-ng inside the node: `cpu` busy workers, `memory` bytes held by one vm worker.
    Stress {
        cpu: u32,
        #[serde(default)]
        memory: u64,
    },
    /// The data directory filled with one file, leaving `leave` bytes free. `dir` is found on
    /// the node when the fault is prepared.
    DiskFull {
        #[serde(default)]
        leave: u64,
        #[serde(default)]
        dir: String,
    },
    /// The node's wall clock moved by this many seconds (libfaketime).
    ClockSkew { offset_s: i64 },
    /// The node's block I/O throttled through its cgroup (`disk.rs`). `place` is found on the
    /// host when the fault is prepared.
    SlowDisk {
        limits: disk::Limits,
        #[serde(default)]
        place: Option<disk::Place>,
    },
    /// This Sentinel armed to crash right after it wins a failover election
    /// (`leader_crash.rs`); disarmed after `within` if no armed Sentinel was elected.
    LeaderCrash {
        #[serde(with = "crate::measure::serde_us", rename = "within_us")]
        within: Duration,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Kill { .. } => "kill",
            Kind::Stop { .. } => "stop",
            Kind::Restart => "restart",
            Kind::Pause => "pause",
            Kind::RestartLoop { .. } => "restart_loop",
            Kind::Net(n) => n.effect.name(),
            Kind::Stress { .. } => "stress",
            Kind::DiskFull { .. } => "disk_full",
            Kind::ClockSkew { .. } => "clock_skew",
            Kind::SlowDisk { .. } => "slow_disk",
            Kind::LeaderCrash { .. } => "leader_crash",
        }
    }

    /// Whether the fault acts inside the container (healed by undoing it there) rather than
    /// on the container itself.
    pub fn is_resource(&self) -> bool {
        matches!(
            self,
            Kind::Stress { .. }
                | Kind::DiskFull { .. }
                | Kind::ClockSkew { .. }
                | Kind::SlowDisk { .. }
        )
    }

    /// Whether its heal needs the container running and thawed, so it is healed after the
    /// process faults (which start and thaw containers).
    pub fn heals_inside(&self) -> bool {
        self.is_resource() || matches!(self, Kind::LeaderCrash { .. })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Kill { signal } if signal == "SIGKILL" => f.write_str("kill"),
            Kind::Kill { signal } => write!(f, "kill ({signal})"),
            Kind::Net(n) => n.effect.fmt(f),
            Kind::Stress { cpu, memory } => {
                write!(f, "stress ({cpu} cpu workers")?;
                if *memory > 0 {
                    write!(f, ", {} MiB held", memory >> 20)?;
                }
                f.write_str(")")
            }
            Kind::DiskFull { leave: 0, .. } => f.write_str("disk full"),
            Kind::DiskFull { leave, .. } => write!(f, "disk full ({leave} bytes left)"),
            Kind::ClockSkew { offset_s } => write!(f, "clock skew ({offset_s:+}s)"),
            Kind::SlowDisk { limits, .. } => write!(f, "slow disk ({limits})"),
            Kind::RestartLoop { every } => {
                write!(f, "restart loop (every {:.1}s)", every.as_secs_f64())
            }
            Kind::LeaderCrash { .. } => f.write_str("crash when elected leader"),
            other => f.write_str(other.name()),
        }
    }
}

/// One fault in force (or being applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Unique within the instance's journal, e.g. `f3`.
    pub id: String,
    #[serde(flatten)]
    pub kind: Kind,
    /// Service name (`redis-1`).
    pub node: String,
    pub container: String,
    /// Who applied it: a drill file, or `lab fault`.
    pub origin: String,
    /// Wall-clock time it was journalled (RFC 3339).
    pub since: String,
}

impl Applied {
    pub fn describe(&self) -> String {
        match &self.kind {
            // A network fault names its nodes itself, and the mechanism when it is not the
            // usual one for its kind.
            Kind::Net(n) => match n.mechanism {
                net::Mechanism::Disconnect => format!("{} (network disconnect)", n.effect),
                net::Mechanism::Netem => format!("{} (netem)", n.effect),
                _ => n.effect.to_string(),
            },
            k => format!("{k} {}", self.node),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("fault journal {path}: {message}; fix or delete it, then run `lab heal`")]
    Journal { path: String, message: String },
    #[error("node {node} has no container (is the instance up?)")]
    NoContainer { node: String },
    #[error("this host cannot inject `{fault}`: {reason}")]
    Unsupported { fault: String, reason: String },
    #[error("{kind} is not supported on {node}: {reason}")]
    NotOnNode {
        node: String,
        kind: &'static str,
        reason: String,
    },
    #[error("network fault on {container}: {message}")]
    Net { container: String, message: String },
    #[error("failed to {what} on {node}: {detail}")]
    Apply {
        node: String,
        what: String,
        detail: String,
    },
}

/// The on-disk list of faults in force for one instance.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JournalFile {
    next: u64,
    faults: Vec<Applied>,
}

impl Journal {
    pub fn new(state_root: &Path, instance: &str) -> Self {
        Journal {
            path: state_root.join(instance).join("faults.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the instance among journals in this process (keys the running proxies).
    pub fn key(&self) -> String {
        self.path.display().to_string()
    }

    /// The instance timeline kept beside the journal.
    pub fn timeline(&self) -> timeline::InstanceTimeline {
        timeline::InstanceTimeline::at(self.path.with_file_name("timeline.jsonl"))
    }

    fn err(&self, message: impl Into<String>) -> FaultError {
        FaultError::Journal {
            path: self.path.display().to_string(),
            message: message.into(),
        }
    }

    fn read(&self) -> Result<JournalFile, FaultError> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => serde_json::from_str(&s).map_err(|e| self.err(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JournalFile::default()),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    fn write(&self, j: &JournalFile) -> Result<(), FaultError> {
        if j.faults.is_empty() && !self.path.exists() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e.to_string()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_string_pretty(j).map_err(|e| self.err(e.to_string()))?;
        // Write, sync, rename: a crash leaves either the old or the new journal, never half.
        let f = std::fs::File::create(&tmp).map_err(|e| self.err(e.to_string()))?;
        std::io::Write::write_all(&mut &f, body.as_bytes()).map_err(|e| self.err(e.to_string()))?;
        f.sync_all().map_err(|e| self.err(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e.to_string()))
    }

    /// Faults in force, oldest first.
    pub fn list(&self) -> Result<Vec<Applied>, FaultError> {
        Ok(self.read()?.faults)
    }

    /// Records a fault about to be applied and returns it with its id.
    pub fn record(
        &self,
        kind: Kind,
        node: &str,
        container: &str,
        origin: &str,
    ) -> Result<Applied, FaultError> {
        let mut j = self.read()?;
        j.next += 1;
        let a = Applied {
            id: format!("f{}", j.next),
            kind,
            node: node.to_string(),
            container: container.to_string(),
            origin: origin.to_string(),
            since: now_rfc3339(),
        };
        j.faults.push(a.clone());
        self.write(&j)?;
        Ok(a)
    }

    /// Forgets a healed fault.
    pub fn forget(&self, id: &str) -> Result<(), FaultError> {
        let mut j = self.read()?;
        j.faults.retain(|f| f.id != id);
        self.write(&j)
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Journals and applies a process fault. On failure to apply, the container is healed and the
/// entry dropped, so nothing is left half-applied.
pub async fn apply(
    engine: &Engine,
    journal: &Journal,
    kind: Kind,
    node: &str,
    container: &str,
    origin: &str,
) -> Result<Applied, FaultError> {
    if engine.inspect_container(container).await?.is_none() {
        return Err(FaultError::NoContainer {
            node: node.to_string(),
        });
    }
    if let Kind::Net(_) = kind {
        return Err(FaultError::Net {
            container: container.to_string(),
            message: "network faults are applied with fault::apply_net".into(),
        });
    }
    if let Kind::RestartLoop { .. } = kind {
        return Err(FaultError::Apply {
            node: node.to_string(),
            what: "start a restart loop".into(),
            detail: "restart loops are applied with fault::apply_restart_loop".into(),
        });
    }
    if let Kind::LeaderCrash { .. } = kind {
        return Err(FaultError::Apply {
            node: node.to_string(),
            what: "arm a leader crash".into(),
            detail: "leader crashes are applied with fault::leader_crash::apply".into(),
        });
    }
    if kind.is_resource() {
        let kind = resource::prepare(engine, node, container, kind).await?;
        let a = journal.record(kind.clone(), node, container, origin)?;
        return match resource::apply(engine, node, container, &a.id, &kind).await {
            Ok(()) => Ok(a),
            Err(e) => {
                let _ = heal(engine, journal, &a).await;
                Err(e)
            }
        };
    }
    let a = journal.record(kind.clone(), node, container, origin)?;
    let r = match &kind {
        Kind::Kill { signal } => engine.kill_container(container, signal).await,
        Kind::Stop { grace } => engine.stop_container(container, *grace).await,
        Kind::Restart => engine
            .restart_container(container, Duration::from_secs(10))
            .await
            .map(|_| ()),
        Kind::Pause => engine.pause_container(container).await,
        Kind::Net(_) => unreachable_net(container),
        _ => Ok(()),
    }
    .map_err(FaultError::from);
    match r {
        Ok(()) if matches!(kind, Kind::Restart) => {
            journal.forget(&a.id)?;
            Ok(a)
        }
        Ok(()) => Ok(a),
        Err(e) => {
            let _ = heal(engine, journal, &a).await;
            Err(e)
        }
    }
}

fn unreachable_net(container: &str) -> Result<(), EngineError> {
    Err(EngineError::Unreachable(format!(
        "network fault on {container} reached the process-fault path"
    )))
}

/// Journals a restart loop, then starts it in this process (the first restart at once).
pub async fn apply_restart_loop(
    engine: &Engine,
    journal: &Journal,
    every: Duration,
    node: &str,
    container: &str,
    origin: &str,
    on_restart: restart_loop::OnRestart,
) -> Result<Applied, FaultError> {
    if engine.inspect_container(container).await?.is_none() {
        return Err(FaultError::NoContainer {
            node: node.to_string(),
        });
    }
    let a = journal.record(Kind::RestartLoop { every }, node, container, origin)?;
    restart_loop::start(engine, journal, &a.id, container, every, on_restart);
    Ok(a)
}

/// Journals and applies a network fault; `addrs` are the nodes' addresses on the project
/// network (`net::addresses`). On failure whatever was put in place is removed again.
pub async fn apply_net(
    engine: &Engine,
    journal: &Journal,
    f: net::NetFault,
    addrs: &[net::Addr],
    origin: &str,
) -> Result<Applied, FaultError> {
    let node = f.effect.primary().to_string();
    let container = f
        .containers
        .first()
        .cloned()
        .ok_or_else(|| FaultError::NoContainer { node: node.clone() })?;
    let a = journal.record(Kind::Net(f.clone()), &node, &container, origin)?;
    match net::apply(engine, &journal.key(), &a.id, &f, addrs).await {
        Ok(()) => Ok(a),
        Err(e) => {
            let _ = heal(engine, journal, &a).await;
            Err(e)
        }
    }
}

/// Undoes a fault: thaws the container if frozen, starts it if not running, then drops the
/// journal entry. A container that no longer exists has nothing left to heal.
pub async fn heal(engine: &Engine, journal: &Journal, a: &Applied) -> Result<(), FaultError> {
    if let Kind::Net(n) = &a.kind {
        net::heal(engine, &journal.key(), &a.id, n).await?;
        return journal.forget(&a.id);
    }
    if a.kind.is_resource() {
        resource::heal(engine, &a.node, &a.container, &a.id, &a.kind).await?;
        return journal.forget(&a.id);
    }
    if let Kind::LeaderCrash { .. } = a.kind {
        return leader_crash::heal(engine, journal, a).await;
    }
    if let Kind::RestartLoop { .. } = a.kind {
        // Stopped first (a restart in progress finishes), then started below if it is down.
        restart_loop::stop(journal, &a.id).await;
    }
    if let Some(c) = engine.inspect_container(&a.container).await? {
        let state = c.state.unwrap_or_default();
        if state.paused == Some(true) {
            engine.unpause_container(&a.container).await?;
        }
        if state.running != Some(true) {
            engine.start_container(&a.container).await?;
        }
    }
    journal.forget(&a.id)
}

/// Heals every journalled fault of the instance; returns what was healed. Process faults go
/// first: a resource fault is undone inside its container, which must be thawed and running.
pub async fn heal_all(engine: &Engine, journal: &Journal) -> Result<Vec<Applied>, FaultError> {
    let mut healed = vec![];
    let mut all = journal.list()?;
    all.sort_by_key(|a| a.kind.heals_inside());
    for a in all {
        heal(engine, journal, &a).await?;
        // The timeline is a record, not the source of truth: failing to write it heals anyway.
        let _ = journal.timeline().healed(&a);
        healed.push(a);
    }
    Ok(healed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_records_and_forgets_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path(), "x");
        assert!(j.list().expect("empty").is_empty());
        assert!(!j.path().exists(), "reading creates nothing");
        let a = j
            .record(Kind::Pause, "redis-1", "x-redis-1", "test")
            .expect("record");
        let b = j
            .record(
                Kind::Kill {
                    signal: "SIGKILL".into(),
                },
                "redis-2",
                "x-redis-2",
                "test",
            )
            .expect("record");
        assert_ne!(a.id, b.id);
        let l = j.list().expect("list");
        assert_eq!(l, vec![a.clone(), b.clone()]);
        j.forget(&a.id).expect("forget");
        assert_eq!(j.list().expect("list"), vec![b.clone()]);
        // Ids are never reused, even after the entry is gone.
        let c = j
            .record(Kind::Restart, "redis-3", "x-redis-3", "t")
            .expect("r");
        assert!(c.id != a.id && c.id != b.id);
    }

    #[test]
    fn corrupt_journal_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path(), "x");
        std::fs::create_dir_all(dir.path().join("x")).expect("mkdir");
        std::fs::write(j.path(), "{not json").expect("write");
        let e = j.list().expect_err("corrupt").to_string();
        assert!(e.contains("faults.json") && e.contains("lab heal"), "{e}");
    }
}
