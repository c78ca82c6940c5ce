//! Runs a drill: checks the file against the topology before anything starts, heals faults a
//! previous run left behind, brings the topology up (or reuses it), starts the observers and
//! the load, plays the timeline, heals every fault whatever happened, reads tracked writes
//! back, computes the figures and writes the reports. Front ends (CLI, TUI) only print.

pub mod repl;
pub mod target;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};

use crate::engine::{host_capabilities, Engine, EngineError, HostCapabilities};
use crate::fault::net::{self, Effect};
use crate::fault::{self, Applied, FaultError, Journal, Kind};
use crate::images::ImageMode;
use crate::lifecycle::addr::AddrMap;
use crate::lifecycle::{self, Instance, LabError, Progress, UpOptions};
use crate::measure::{
    analyze, lost_writes, ContainerAction, Event, EventKind, FailoverConfig, Recorder, Role,
    SentinelEvent, Timeline, WriteSeries,
};
use crate::observe::{self, ObserveConfig};
use crate::report::{AssertionResult, RunMeta, RunReport};
use crate::scenario::{
    self, Action, Condition, FaultSpec, HealSpec, NetSpec, NodeRole, Scenario, ScenarioError,
    Timing, Via,
};
use crate::topology::{self, LoadOptions, Role as NodeKind, Topology, Verify};
use crate::workload::{self, Discovery, IdSource, KeyPlan, NodeAddr, Routes, WriteOp};

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Run(String),
    /// A fault of the drill needs a capability this host or image lacks.
    #[error("{0}")]
    Unsupported(String),
}

impl From<topology::TopologyError> for DrillError {
    fn from(e: topology::TopologyError) -> Self {
        DrillError::Lab(LabError::Topology(e))
    }
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct Options {
    /// Instance name (default: the topology's name).
    pub instance: Option<String>,
    /// First host port when the topology is brought up here.
    pub port_base: Option<u16>,
    pub project: PathBuf,
    pub state_root: PathBuf,
    pub images: ImageMode,
    /// Where the JSON, Markdown, SVG and JUnit files go.
    pub report_dir: PathBuf,
    pub up_timeout: Duration,
    pub observe: ObserveConfig,
    /// How long to wait after the timeline for the topology to be healthy again before the
    /// tracked writes are read back.
    pub settle: Duration,
}

/// A finished drill.
pub struct Outcome {
    pub report: RunReport,
    pub files: Vec<PathBuf>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.report.passed()
    }
}

/// Loads the drill's topology (with its profile, flavor and overrides) and checks the drill
/// against it. Nothing is started; errors point at the drill file.
pub fn check(sc: &Scenario, project: &Path) -> Result<Topology, DrillError> {
    let file = topology::find(&sc.topology, project)?;
    let topo = topology::load(
        &file,
        &LoadOptions {
            profile: sc.profile.clone(),
            flavor: sc.flavor.clone(),
            sets: sc.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            env: std::env::vars().collect(),
            provided: HashMap::new(),
        },
    )?;
    scenario::validate(sc, &topo)?;
    Ok(topo)
}

/// Events seen so far, shared between the collector and the step runner.
#[derive(Default)]
struct Seen {
    events: Mutex<Vec<Event>>,
    changed: Notify,
}

impl Seen {
    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
        self.changed.notify_waiters();
    }

    fn any(&self, f: impl Fn(&Event) -> bool) -> Option<Duration> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| f(e))
            .map(|e| e.at)
            .min()
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A fault of this run still in force (one journal entry per node it hit).
struct Active {
    id: u32,
    applied: Vec<Applied>,
    /// Thaw/restart at this time (`pause ... for`).
    until: Option<Instant>,
}

struct Runner<'a> {
    engine: &'a Engine,
    inst: Arc<Instance>,
    journal: Journal,
    origin: String,
    t0: Instant,
    seen: Arc<Seen>,
    active: Vec<Active>,
    /// Problems that fail the drill besides its assertions (a wait that timed out...).
    failures: Vec<AssertionResult>,
    abort: watch::Receiver<bool>,
    progress: Progress<'a>,
    last_fault_at: Duration,
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Runner<'_> {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn note(&self, text: impl Into<String>) {
        self.seen.push(Event::new(
            self.now(),
            EventKind::Note { text: text.into() },
        ));
    }

    fn aborted(&self) -> bool {
        *self.abort.borrow()
    }

    /// Sleeps until `when`, healing timed faults as they fall due; false if interrupted.
    async fn idle_until(&mut self, when: Instant) -> bool {
        loop {
            self.heal_due().await;
            if self.aborted() {
                return false;
            }
            let now = Instant::now();
            if now >= when {
                return true;
            }
            let next_heal = self.active.iter().filter_map(|a| a.until).min();
            let wake = next_heal.map_or(when, |h| h.min(when));
            let mut abort = self.abort.clone();
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = abort.changed() => {}
            }
        }
    }

    async fn heal_due(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .active
            .iter()
            .filter(|a| a.until.is_some_and(|u| u <= now))
            .map(|a| a.id)
            .collect();
        for id in due {
            self.heal(id).await;
        }
    }

    async fn heal(&mut self, id: u32) {
        let Some(pos) = self.active.iter().position(|a| a.id == id) else {
            return;
        };
        let a = self.active.remove(pos);
        for applied in &a.applied {
            match fault::heal(self.engine, &self.journal, applied).await {
                Ok(()) => {
                    self.seen.push(Event::new(
                        self.now(),
                        EventKind::FaultHealed {
                            id,
                            target: applied.node.clone(),
                        },
                    ));
                    (self.progress)(&format!(
                        "t={}  healed F{id} ({})",
                        secs(self.now()),
                        applied.describe()
                    ));
                }
                Err(e) => {
                    self.failures.push(failure(
                        &format!("heal F{id}"),
                        &format!("could not heal {}: {e}", applied.describe()),
                    ));
                }
            }
        }
    }

    async fn heal_all(&mut self) {
        // Process faults first: a resource fault is undone inside a thawed, running container.
        let mut active: Vec<(bool, u32)> = self
            .active
            .iter()
            .map(|a| (a.applied.iter().any(|x| x.kind.heals_inside()), a.id))
            .collect();
        active.sort();
        let ids: Vec<u32> = active.into_iter().map(|(_, id)| id).collect();
        for id in ids {
            self.heal(id).await;
        }
    }

    /// Applies one fault step and puts it on the timeline. The fault's time is when the engine
    /// reports it in force (its `die`/`pause` event), or when the call returned if the event
    /// stream said nothing within a second: the kill call itself returns 150-250 ms after the
    /// process is gone, and that delay must not count as failover time.
    async fn fault(&mut self, id: u32, spec: &FaultSpec) -> Result<(), String> {
        if let FaultSpec::Net { net, duration } = spec {
            return self.net_fault(id, net, *duration).await;
        }
        let [t] = spec.targets()[..] else {
            return Err("faults with several targets are not supported yet".into());
        };
        let nodes = target::resolve_all(&self.inst, t).await?;
        let Some(kind) = kind_of(spec) else {
            return Err("network fault on the process path".into());
        };
        if let Kind::LeaderCrash { within } = kind {
            return self.leader_crash(id, &nodes, within).await;
        }
        let until = match spec {
            FaultSpec::Pause {
                duration: Some(d), ..
            } => Some(*d),
            FaultSpec::Resource(r) => r.duration,
            FaultSpec::RestartLoop { duration, .. } => *duration,
            _ => None,
        };
        // Every node is checked before any is touched: a fault the host cannot do on one of
        // them is refused whole, never half-applied.
        if kind.is_resource() {
            for n in &nodes {
                fault::resource::prepare(
                    self.engine,
                    n,
                    &self.inst.container_name(n),
                    kind.clone(),
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        let called = self.now();
        let mut all_applied = vec![];
        for n in &nodes {
            let container = self.inst.container_name(n);
            let r = match kind {
                Kind::RestartLoop { every } => {
                    fault::apply_restart_loop(
                        self.engine,
                        &self.journal,
                        every,
                        n,
                        &container,
                        &self.origin,
                        self.restart_recorder(id, n),
                    )
                    .await
                }
                _ => {
                    fault::apply(
                        self.engine,
                        &self.journal,
                        kind.clone(),
                        n,
                        &container,
                        &self.origin,
                    )
                    .await
                }
            };
            match r {
                Ok(a) => all_applied.push(a),
                Err(e) => {
                    // Undo the nodes already hit, so the fault is all or nothing.
                    for a in &all_applied {
                        let _ = fault::heal(self.engine, &self.journal, a).await;
                    }
                    return Err(e.to_string());
                }
            }
        }
        let node = nodes.join(",");
        let returned = self.now();
        let action = match kind {
            Kind::Pause => ContainerAction::Pause,
            _ => ContainerAction::Die,
        };
        // Resource faults are in force when their exec returns; no engine event marks them.
        let wait = if kind.is_resource() {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let deadline = Instant::now() + wait;
        let mut at = None;
        while Instant::now() < deadline {
            let notified = self.seen.changed.notified();
            at = self.seen.any(|e| {
                e.at + Duration::from_millis(50) >= called
                    && matches!(&e.kind, EventKind::Container { node: n, action: a } if nodes.contains(n) && *a == action)
            });
            if at.is_some() {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        let at = at.map_or(returned, |a| a.clamp(called, returned));
        let description = format!("{} {node}", kind);
        self.seen.push(Event::new(
            at,
            EventKind::Fault {
                id,
                fault: description.clone(),
                target: node.clone(),
            },
        ));
        self.last_fault_at = at;
        (self.progress)(&format!("t={}  F{id} {description}", secs(at)));
        if !matches!(kind, Kind::Restart) {
            self.active.push(Active {
                id,
                applied: all_applied,
                until: until.map(|d| Instant::now() + d),
            });
        }
        Ok(())
    }

    /// Arms the Sentinels `nodes` to crash when elected leader: in force when the arming
    /// returns (no engine event marks it); how it ended goes on the timeline as a note.
    async fn leader_crash(
        &mut self,
        id: u32,
        nodes: &[String],
        within: Duration,
    ) -> Result<(), String> {
        if let Some(n) = nodes.iter().find(|n| {
            self.inst
                .topology
                .service(n)
                .is_none_or(|s| s.role != crate::topology::Role::Sentinel)
        }) {
            return Err(format!(
                "leader_crash arms Sentinels, and {n} is not one; target the Sentinels, e.g. {{sentinels: {{part: all}}}}"
            ));
        }
        let members: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (n.clone(), self.inst.container_name(n)))
            .collect();
        let (seen, t0) = (self.seen.clone(), self.t0);
        let on_end: fault::leader_crash::OnEnd = Arc::new(move |o| {
            let text = format!("F{id} {o}");
            seen.push(Event::new(t0.elapsed(), EventKind::Note { text }));
        });
        let applied = fault::leader_crash::apply(
            self.engine,
            &self.journal,
            &members,
            within,
            &self.origin,
            on_end,
        )
        .await
        .map_err(|e| e.to_string())?;
        let at = self.now();
        let node = nodes.join(",");
        let description = format!("{} {node}", Kind::LeaderCrash { within });
        self.seen.push(Event::new(
            at,
            EventKind::Fault {
                id,
                fault: description.clone(),
                target: node,
            },
        ));
        self.last_fault_at = at;
        (self.progress)(&format!("t={}  F{id} {description}", secs(at)));
        self.active.push(Active {
            id,
            applied,
            until: None,
        });
        Ok(())
    }

    /// Puts each restart of a restart loop on the drill's timeline.
    fn restart_recorder(&self, id: u32, node: &str) -> fault::restart_loop::OnRestart {
        let (seen, t0, node) = (self.seen.clone(), self.t0, node.to_string());
        Arc::new(move |n, r| {
            let text = match r {
                Ok(()) => format!("F{id} restart {n} of {node}"),
                Err(e) => format!("F{id} restart {n} of {node} failed: {e}"),
            };
            seen.push(Event::new(t0.elapsed(), EventKind::Note { text }));
        })
    }

    /// Applies a network fault: targets resolved now, rules in force when the call returns
    /// (the jump into lab's chain is the last rule added), which is the fault's time.
    async fn net_fault(
        &mut self,
        id: u32,
        spec: &NetSpec,
        duration: Option<Duration>,
    ) -> Result<(), String> {
        let effect = net_effect(&self.inst, spec).await?;
        let (f, addrs) = net::prepare_with(self.engine, &self.inst, effect, want(spec)?)
            .await
            .map_err(|e| e.to_string())?;
        let mechanism = f.mechanism;
        let applied = fault::apply_net(self.engine, &self.journal, f, &addrs, &self.origin)
            .await
            .map_err(|e| e.to_string())?;
        let at = self.now();
        let description = applied.describe();
        self.seen.push(Event::new(
            at,
            EventKind::Fault {
                id,
                fault: description.clone(),
                target: applied.node.clone(),
            },
        ));
        self.last_fault_at = at;
        (self.progress)(&format!(
            "t={}  F{id} {description} (via {mechanism})",
            secs(at)
        ));
        self.active.push(Active {
            id,
            applied: vec![applied],
            until: duration.map(|d| Instant::now() + d),
        });
        Ok(())
    }

    /// Whether a wait condition holds now; `since` is when the wait's step started.
    async fn holds(&self, c: &Condition, since: Duration) -> bool {
        let group_of = |n: &str| {
            self.inst
                .topology
                .service(n)
                .and_then(|s| s.group.clone())
                .unwrap_or_default()
        };
        match c {
            Condition::Promoted(g) => {
                let from = self.last_fault_at;
                self.seen
                    .any(|e| {
                        e.at >= from
                            && match &e.kind {
                                EventKind::RoleChange {
                                    node,
                                    to: Role::Master,
                                    ..
                                } => group_of(node) == *g,
                                EventKind::Sentinel {
                                    event: SentinelEvent::SwitchMaster,
                                    detail,
                                    ..
                                } => detail.split_whitespace().next() == Some(g.as_str()),
                                _ => false,
                            }
                    })
                    .is_some()
            }
            Condition::Healthy => lifecycle::verify::verify_once(self.engine, &self.inst)
                .await
                .all_ok(),
            Condition::Role { node, is } => {
                let want = match is {
                    NodeRole::Master => "master",
                    NodeRole::Replica => "slave",
                };
                target::live_role(&self.inst, node).await.as_deref() == Some(want)
            }
            Condition::LinkUp(node) => target::link_up(&self.inst, node).await,
            Condition::Event(ev) => self
                .seen
                .any(|e| {
                    e.at >= since
                        && matches!(&e.kind, EventKind::Sentinel { event, .. } if event == ev)
                })
                .is_some(),
            Condition::Elapsed(d) => self.now() >= since + *d,
        }
    }

    /// Plays the timeline; returns early (with a failure recorded) when a step cannot go on.
    async fn play(&mut self, sc: &Scenario, zero: Instant) {
        let deadline = zero + sc.timeout;
        let mut prev_end = zero;
        let faults: Vec<u32> = sc.faults().map(|(id, _, _)| id).collect();
        let mut fault_ix = 0usize;
        for step in &sc.steps {
            let due = match step.timing {
                Timing::At(d) => zero + d,
                Timing::After(d) => prev_end + d,
                Timing::Now => prev_end,
            };
            let at_line = format!("{}:{}", sc.source.file, step.line);
            if due > deadline {
                self.failures.push(failure(
                    &format!("step at {at_line}"),
                    &format!(
                        "would start after the drill's timeout ({})",
                        secs(sc.timeout)
                    ),
                ));
                return;
            }
            if !self.idle_until(due).await {
                self.failures
                    .push(failure("interrupted", "the drill was interrupted (Ctrl-C)"));
                return;
            }
            let since = self.now();
            match &step.action {
                Action::Fault(spec) => {
                    let id = faults.get(fault_ix).copied().unwrap_or(0);
                    fault_ix += 1;
                    if let Err(e) = self.fault(id, spec).await {
                        self.failures.push(failure(
                            &format!("fault F{id} at {at_line}"),
                            &format!("{spec}: {e}"),
                        ));
                        return;
                    }
                }
                Action::Heal(HealSpec::All) => self.heal_all().await,
                Action::Heal(HealSpec::Fault(id)) => self.heal(*id).await,
                Action::Note(text) => {
                    (self.progress)(&format!("t={}  note: {text}", secs(since)));
                    self.note(text.clone());
                }
                Action::Wait { until, timeout } => {
                    (self.progress)(&format!("t={}  waiting for {until}", secs(since)));
                    let limit = (Instant::now() + *timeout).min(deadline);
                    let mut ok = false;
                    loop {
                        // Registered before the check, so an event arriving during it wakes
                        // the wait at once: a step after `+elected-leader` acts within
                        // milliseconds, not a poll period, later.
                        let seen = self.seen.clone();
                        let notified = seen.changed.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        if self.holds(until, since).await {
                            ok = true;
                            break;
                        }
                        if Instant::now() >= limit || self.aborted() {
                            break;
                        }
                        let wake = (Instant::now() + Duration::from_millis(100)).min(limit);
                        let heal_due = self
                            .active
                            .iter()
                            .any(|a| a.until.is_some_and(|u| u <= wake));
                        if matches!(until, Condition::Event(_)) && !heal_due {
                            let mut abort = self.abort.clone();
                            tokio::select! {
                                _ = tokio::time::sleep_until(wake.into()) => {}
                                _ = &mut notified => {}
                                _ = abort.changed() => {}
                            }
                        } else if !self.idle_until(wake).await {
                            break;
                        }
                    }
                    if ok {
                        (self.progress)(&format!(
                            "t={}  seen: {until} (after {})",
                            secs(self.now()),
                            secs(self.now().saturating_sub(since))
                        ));
                    } else {
                        let msg = format!(
                            "waited {} for {until}; not seen",
                            secs(self.now().saturating_sub(since))
                        );
                        self.note(format!("wait failed: {msg}"));
                        self.failures
                            .push(failure(&format!("wait at {at_line}"), &msg));
                        return;
                    }
                }
            }
            prev_end = Instant::now();
        }
    }
}

/// Checks every resource fault of the drill on every node its target could resolve to, before
/// any load or fault: a fault this host or image cannot do refuses the drill up front.
pub async fn check_resource_capabilities(
    engine: &Engine,
    sc: &Scenario,
    inst: &Instance,
) -> Result<(), DrillError> {
    for (id, step, spec) in sc.faults() {
        let Some(kind) = kind_of(spec).filter(Kind::is_resource) else {
            continue;
        };
        for t in spec.targets() {
            for n in target::candidates(&inst.topology, t) {
                if let Err(e) =
                    fault::resource::prepare(engine, n, &inst.container_name(n), kind.clone()).await
                {
                    return Err(DrillError::Unsupported(format!(
                        "{}:{}: fault F{id} ({spec}) cannot run here: {e}; nothing was injected",
                        sc.source.file, sc.steps[step].line
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The journal's kind for a drill step's fault.
/// `None` for network faults, which are journalled by `fault::apply_net` with their resolved
/// effect instead.
pub fn kind_of(spec: &FaultSpec) -> Option<Kind> {
    Some(match spec {
        FaultSpec::Kill { signal, .. } => Kind::Kill {
            signal: signal.clone(),
        },
        FaultSpec::Stop { grace, .. } => Kind::Stop { grace: *grace },
        FaultSpec::Restart { .. } => Kind::Restart,
        FaultSpec::RestartLoop { every, .. } => Kind::RestartLoop { every: *every },
        FaultSpec::Pause { .. } => Kind::Pause,
        FaultSpec::Resource(r) => r.fault_kind(),
        FaultSpec::LeaderCrash { within, .. } => Kind::LeaderCrash { within: *within },
        FaultSpec::Net { .. } => return None,
    })
}

fn failure(expr: &str, message: &str) -> AssertionResult {
    AssertionResult {
        expr: expr.to_string(),
        passed: false,
        actual: "failed".into(),
        expected: "completes".into(),
        message: message.to_string(),
    }
}

fn spec_for(sc: &Scenario, routes: &Routes) -> Result<workload::Spec, DrillError> {
    let w = &sc.workload;
    let mut groups = vec![];
    for g in &w.groups {
        let i = routes
            .group_names
            .iter()
            .position(|n| n == g)
            .ok_or_else(|| DrillError::Run(format!("workload group {g} is not in the topology")))?;
        groups.push(i);
    }
    Ok(workload::Spec {
        label: "main".into(),
        mode: match w.mode {
            scenario::LoadMode::Closed => workload::LoadMode::Closed,
            scenario::LoadMode::Open { rate } => workload::LoadMode::Open { rate: rate as f64 },
        },
        clients: w.clients,
        pipeline: w.pipeline,
        keyspace: w.keyspace,
        value_size: w.value_size as usize,
        read_ratio: w.read_ratio,
        track_writes: w.track_writes,
        op_timeout: w.op_timeout,
        groups,
        duration: None,
        requests: None,
        ..workload::Spec::default()
    })
}

/// How clients of this instance find masters: the cluster's slot map, or its Sentinels.
pub fn discovery_for(inst: &Instance) -> Discovery {
    if matches!(inst.topology.lab.verify, Some(Verify::Cluster { .. })) {
        Discovery::Cluster {
            seeds: lifecycle::role_ports(inst, NodeKind::ClusterNode, 6379)
                .into_iter()
                .map(|(_, p)| p)
                .collect(),
        }
    } else {
        Discovery::Sentinel {
            groups: inst.topology.groups(),
            sentinels: lifecycle::role_ports(inst, NodeKind::Sentinel, 26379)
                .into_iter()
                .map(|(_, p)| p)
                .collect(),
        }
    }
}

/// The group whose replication a latency fault toward `to` slows (its data node's group).
fn latency_group(inst: &Instance, to: &scenario::Target) -> Option<String> {
    match to {
        scenario::Target::MasterOf(g) | scenario::Target::ReplicaOf(g) => Some(g.clone()),
        scenario::Target::Node(n) => inst.topology.service(n).and_then(|s| s.group.clone()),
        scenario::Target::AnyOf { .. }
        | scenario::Target::Sentinels { .. }
        | scenario::Target::SentinelLeader(_)
        | scenario::Target::Zone(_) => None,
    }
}

/// The network effect of a fault step, its targets resolved from the live topology.
pub async fn net_effect(inst: &Instance, spec: &NetSpec) -> Result<Effect, String> {
    // A role is asked over the node's port with a 2 s timeout; on a starved host one answer
    // can be late, which is no reason to give up on the whole fault: ask up to 3 times.
    let one = |t| async move {
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            match target::resolve(inst, t).await {
                Ok(n) => return Ok(n),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    Ok(match spec {
        NetSpec::Isolate { target } => Effect::Isolate {
            node: one(target).await?,
        },
        NetSpec::CutClients { target } => Effect::CutClients {
            node: one(target).await?,
        },
        NetSpec::Loss { target, percent } => Effect::Loss {
            node: one(target).await?,
            percent: *percent,
        },
        NetSpec::OneWay { from, to } => Effect::OneWay {
            from: one(from).await?,
            to: one(to).await?,
        },
        NetSpec::Partition { sides } => {
            let mut out = vec![];
            for side in sides {
                let mut nodes = vec![];
                for t in side {
                    nodes.push(one(t).await?);
                }
                out.push(nodes);
            }
            Effect::Partition { sides: out }
        }
        NetSpec::Latency {
            from,
            to,
            delay,
            jitter,
            bandwidth_kbit,
            ..
        } => Effect::Latency {
            from: one(from).await?,
            to: one(to).await?,
            delay: *delay,
            jitter: *jitter,
            bandwidth_kbit: *bandwidth_kbit,
        },
        NetSpec::NodeLatency {
            target,
            delay,
            jitter,
            bandwidth_kbit,
            ..
        } => Effect::NodeLatency {
            node: one(target).await?,
            delay: *delay,
            jitter: *jitter,
            bandwidth_kbit: *bandwidth_kbit,
        },
        NetSpec::Timeout {
            from,
            to,
            close_after,
        } => Effect::Timeout {
            from: one(from).await?,
            to: one(to).await?,
            close_after: *close_after,
        },
        NetSpec::Reset { from, to, after } => Effect::Reset {
            from: one(from).await?,
            to: one(to).await?,
            after: *after,
        },
    })
}

/// The mechanism a network step asks for: its `via` (latency), else `LAB_NET_MECHANISM`.
fn want(spec: &NetSpec) -> Result<net::Want, String> {
    match spec {
        NetSpec::Latency {
            via: Via::Netem, ..
        }
        | NetSpec::NodeLatency {
            via: Via::Netem, ..
        } => Ok(net::Want::Netem),
        NetSpec::Latency {
            via: Via::Proxy, ..
        }
        | NetSpec::NodeLatency {
            via: Via::Proxy, ..
        } => Ok(net::Want::Proxy),
        _ => net::Want::from_env(),
    }
}

fn family(spec: &NetSpec) -> net::Family {
    use net::Family as F;
    match spec {
        NetSpec::Isolate { .. } => F::Isolate,
        NetSpec::Partition { .. } => F::Partition,
        NetSpec::OneWay { .. } => F::OneWay,
        NetSpec::CutClients { .. } => F::CutClients,
        NetSpec::Loss { .. } => F::Loss,
        NetSpec::Latency { .. } | NetSpec::NodeLatency { .. } => F::Latency,
        NetSpec::Timeout { .. } | NetSpec::Reset { .. } => F::Toxic,
    }
}

/// Refuses, in one sentence and before anything starts, a drill whose faults this host
/// cannot inject.
pub fn check_net_capabilities(sc: &Scenario, caps: &HostCapabilities) -> Result<(), DrillError> {
    for (id, _, spec) in sc.faults() {
        let FaultSpec::Net { net, .. } = spec else {
            continue;
        };
        if let Err(why) = want(net).and_then(|w| net::choose(family(net), w, caps)) {
            return Err(DrillError::Run(format!(
                "{}: this host cannot inject F{id} ({}): {why}; nothing was started",
                sc.source.file,
                net.key()
            )));
        }
    }
    Ok(())
}

/// Runs a checked drill against the engine. `topo` is what [`check`] returned.
pub async fn run(
    engine: &Engine,
    sc: &Scenario,
    opts: &Options,
    progress: Progress<'_>,
) -> Result<Outcome, DrillError> {
    let topo = check(sc, &opts.project)?;
    if sc
        .faults()
        .any(|(_, _, f)| matches!(f, FaultSpec::Net { .. }))
    {
        check_net_capabilities(sc, &host_capabilities(engine.info.rootless))?;
    }
    let started_at = fault::now_rfc3339();
    let instance = opts.instance.clone().unwrap_or_else(|| topo.name.clone());
    let journal = Journal::new(&opts.state_root, &instance);
    for a in fault::heal_all(engine, &journal).await? {
        progress(&format!(
            "healed a fault left by an earlier run: {} ({}, since {})",
            a.describe(),
            a.origin,
            a.since
        ));
    }
    let (inst, criteria) = lifecycle::up(
        engine,
        &UpOptions {
            topology: sc.topology.clone(),
            instance: Some(instance.clone()),
            profile: sc.profile.clone(),
            flavor: sc.flavor.clone(),
            sets: sc.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            images: opts.images,
            port_base: opts.port_base,
            timeout: opts.up_timeout,
            project: opts.project.clone(),
            state_root: opts.state_root.clone(),
        },
        progress,
    )
    .await?;
    if !criteria.all_ok() {
        let bad: Vec<String> = criteria
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(DrillError::Run(format!(
            "the topology is not healthy before the drill ({}); nothing was injected",
            bad.join("; ")
        )));
    }
    let inst = Arc::new(inst);
    check_resource_capabilities(engine, sc, &inst).await?;
    let map = AddrMap::build(engine, &inst).await?;

    // Observers first, so the load's first seconds and every fault are on the timeline.
    let t0 = Instant::now();
    let seen = Arc::new(Seen::default());
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                seen.push(e);
            }
        })
    };
    let (obs_stop_tx, obs_stop) = watch::channel(false);
    let observers = observe::start(
        engine.clone(),
        inst.clone(),
        map.clone(),
        t0,
        opts.observe,
        tx,
        obs_stop,
    )
    .await;

    let cluster = matches!(inst.topology.lab.verify, Some(Verify::Cluster { .. }));
    let discovery = discovery_for(&inst);
    let routes = Routes::new(engine.clone(), inst.clone(), map.clone(), discovery)
        .await
        .map_err(DrillError::Run)?;
    let keys = Arc::new(if cluster {
        KeyPlan::cluster(&routes)
    } else {
        KeyPlan::plain(&routes.group_names)
    });
    let spec = spec_for(sc, &routes)?;
    if sc.workload.track_writes {
        seen.push(Event::new(
            t0.elapsed(),
            EventKind::Note {
                text: format!(
                    "tracked writes carry run tag {} in their keys (lab:w:<group>:{}:<id>)",
                    keys.run, keys.run
                ),
            },
        ));
    }

    // Pinned clients: resolved once, now, and never told about failovers.
    let mut pinned = vec![];
    for p in &sc.pinned_clients {
        let node = target::resolve(&inst, &p.target)
            .await
            .map_err(|e| DrillError::Run(format!("pinned client {}: {e}", p.name)))?;
        let port = inst.host_port(&node, 6379).ok_or_else(|| {
            DrillError::Run(format!(
                "pinned client {}: {node} publishes no port",
                p.name
            ))
        })?;
        let group = inst
            .topology
            .service(&node)
            .and_then(|s| s.group.clone())
            .unwrap_or_default();
        let r = Routes::new(
            engine.clone(),
            inst.clone(),
            map.clone(),
            Discovery::Pinned {
                node: NodeAddr {
                    node: node.clone().into(),
                    port,
                },
                group: group.clone(),
            },
        )
        .await
        .map_err(DrillError::Run)?;
        let gi = keys
            .groups
            .iter()
            .position(|g| g.name == group)
            .ok_or_else(|| {
                DrillError::Run(format!("pinned client {}: {node} has no group", p.name))
            })?;
        let pk = Arc::new(keys.only(gi));
        let pspec = workload::Spec {
            label: p.name.clone(),
            mode: workload::LoadMode::Open {
                rate: p.rate as f64,
            },
            clients: 1,
            pipeline: 1,
            read_ratio: 0.0,
            track_writes: true,
            groups: vec![],
            ..spec.clone()
        };
        seen.push(Event::new(
            t0.elapsed(),
            EventKind::Note {
                text: format!("pinned client {} writes to {node} only", p.name),
            },
        ));
        pinned.push((r, pk, pspec));
    }

    let (load_stop_tx, load_stop) = watch::channel(false);
    // A drill that slows a link measures the replication round trip of the group behind it.
    let latency = sc.faults().find_map(|(id, _, f)| match f {
        FaultSpec::Net {
            net: NetSpec::Latency { to: t, .. } | NetSpec::NodeLatency { target: t, .. },
            ..
        } => latency_group(&inst, t).map(|g| (id, g)),
        _ => None,
    });
    let repl_probe = latency
        .as_ref()
        .map(|(_, g)| tokio::spawn(repl::probe(inst.clone(), g.clone(), t0, load_stop.clone())));
    let refresher = tokio::spawn(routes.clone().run_refresher(load_stop.clone()));
    let ids = Arc::new(IdSource::default());
    let (live_tx, mut live_rx) = mpsc::unbounded_channel::<Recorder>();
    let main = tokio::spawn(workload::run(workload::Run {
        routes: routes.clone(),
        keys: keys.clone(),
        spec: spec.clone(),
        password: inst.password.clone(),
        t0,
        ids: ids.clone(),
        live: Some(live_tx),
        stop: load_stop.clone(),
    }));
    let mut pinned_tasks = vec![];
    for (r, pk, pspec) in &pinned {
        pinned_tasks.push(tokio::spawn(workload::run(workload::Run {
            routes: r.clone(),
            keys: pk.clone(),
            spec: pspec.clone(),
            password: inst.password.clone(),
            t0,
            ids: ids.clone(),
            live: None,
            stop: load_stop.clone(),
        })));
    }
    // A progress line every 5 s from the workers' live drains.
    let live = {
        let progress_lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let lines = progress_lines.clone();
        // Workers hand over their measurements here as they go: this task keeps the whole
        // run (`total`) as well as the window for the progress line.
        let handle = tokio::spawn(async move {
            let mut total = Recorder::new();
            let mut acc = Recorder::new();
            let mut last = Instant::now();
            while let Some(r) = live_rx.recv().await {
                let _ = total.merge(&r);
                let _ = acc.merge(&r);
                if last.elapsed() >= Duration::from_secs(5) {
                    let s = acc.rollup(t0.elapsed()).summary;
                    let window = last.elapsed().as_secs_f64();
                    lines
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!(
                            "t={}  {:.0} ops/s, {} errors, {} timeouts, p99 {} (last {:.0}s)",
                            secs(t0.elapsed()),
                            s.ok as f64 / window,
                            s.errors,
                            s.timeouts,
                            s.p99_us
                                .map(|u| format!("{:.1}ms", u as f64 / 1000.0))
                                .unwrap_or_else(|| "-".into()),
                            window
                        ));
                    acc = Recorder::new();
                    last = Instant::now();
                }
            }
            total
        });
        (progress_lines, handle)
    };

    let (abort_tx, abort) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = abort_tx.send(true);
        }
    });

    let mut runner = Runner {
        engine,
        inst: inst.clone(),
        journal: journal.clone(),
        origin: format!("drill {}", sc.source.file),
        t0,
        seen: seen.clone(),
        active: vec![],
        failures: vec![],
        abort,
        progress,
        last_fault_at: Duration::ZERO,
    };
    progress(&format!("warming up for {}", secs(sc.warmup)));
    let zero = t0 + sc.warmup;
    let printer = {
        let lines = live.0.clone();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let h = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop_rx.changed() => {}
                }
                let ls: Vec<String> =
                    std::mem::take(&mut *lines.lock().unwrap_or_else(PoisonError::into_inner));
                for l in ls {
                    eprintln!("{l}");
                }
                if *stop_rx.borrow() {
                    break;
                }
            }
        });
        (stop_tx, h)
    };
    if runner.idle_until(zero).await {
        runner.note("t=0: warm-up done, timeline starts");
        runner.play(sc, zero).await;
    } else {
        runner
            .failures
            .push(failure("interrupted", "the drill was interrupted (Ctrl-C)"));
    }
    // Whatever happened, nothing stays applied.
    runner.heal_all().await;
    ctrl_c.abort();

    let _ = load_stop_tx.send(true);
    let load_end = t0.elapsed();
    let main_out = main
        .await
        .map_err(|e| DrillError::Run(format!("the workload failed: {e}")))?;
    let mut pinned_out = vec![];
    for t in pinned_tasks {
        pinned_out.push(
            t.await
                .map_err(|e| DrillError::Run(format!("a pinned client failed: {e}")))?,
        );
    }
    let _ = refresher.await;
    let _ = printer.0.send(true);
    let _ = printer.1.await;
    let mut recorder = live.1.await.unwrap_or_default();
    recorder
        .merge(&main_out.recorder)
        .map_err(|e| DrillError::Run(format!("merging measurements: {e}")))?;

    // Let the topology settle (old master back as a replica, synced) before reading back.
    let settle_deadline = tokio::time::Instant::now() + opts.settle;
    let healthy = lifecycle::verify::verify_until(engine, &inst, settle_deadline.into_std())
        .await
        .all_ok();
    if !healthy {
        runner.note(format!(
            "topology not healthy {} after the timeline; read-back may be incomplete",
            secs(opts.settle)
        ));
    }
    let run_end = t0.elapsed();
    let _ = obs_stop_tx.send(true);
    observers.join().await;
    let _ = collector.await;

    // Tracked writes: read back what is in the store now.
    let mut all_writes: Vec<WriteOp> = main_out.writes.clone();
    let mut lost = None;
    if sc.workload.track_writes {
        let mut found =
            workload::readback(&routes, &keys, &main_out.writes, inst.password.as_deref())
                .await
                .map_err(|e| DrillError::Run(format!("reading tracked writes back: {e}")))?;
        for ((_, pk, _), out) in pinned.iter().zip(&pinned_out) {
            found.extend(
                workload::readback(&routes, pk, &out.writes, inst.password.as_deref())
                    .await
                    .map_err(|e| DrillError::Run(format!("reading pinned writes back: {e}")))?,
            );
            all_writes.extend(out.writes.iter().copied());
        }
        let acked: Vec<(u64, Duration)> = all_writes
            .iter()
            .filter(|w| w.ok)
            .map(|w| (w.id, w.at))
            .collect();
        let unacked: Vec<u64> = all_writes.iter().filter(|w| !w.ok).map(|w| w.id).collect();
        lost = Some(lost_writes(acked, unacked, found));
    }

    let mut events = seen.take();
    events.sort_by_key(|e| e.at);
    let replication = match (latency, repl_probe) {
        (Some((id, group)), Some(h)) => {
            let samples = h.await.unwrap_or_default();
            let first_fault = events
                .iter()
                .find(|e| matches!(e.kind, EventKind::Fault { .. }))
                .map_or(run_end, |e| e.at);
            let from = events.iter().find_map(|e| match e.kind {
                EventKind::Fault { id: i, .. } if i == id => Some(e.at),
                _ => None,
            });
            let to = events
                .iter()
                .find_map(|e| match e.kind {
                    EventKind::FaultHealed { id: i, .. } if i == id => Some(e.at),
                    _ => None,
                })
                .unwrap_or(load_end);
            Some(crate::measure::replication::summarise(
                &group,
                &samples,
                first_fault,
                from.map(|f| (f, to)),
            ))
        }
        _ => None,
    };
    let timeline = Timeline::from_events(events);
    let cfg = FailoverConfig {
        // Roles and links are polled: events are no finer than the poll interval.
        event_resolution: opts.observe.poll_interval,
        ..FailoverConfig::default()
    };
    let rollup = recorder.rollup(load_end);
    let faults = per_fault(
        timeline.events(),
        &main_out,
        &routes.group_names,
        &inst,
        &rollup,
        run_end,
        &cfg,
    );
    let mut settings = indexmap::IndexMap::new();
    for (k, v) in &inst.topology.settings {
        settings.insert(k.clone(), v.value.clone());
    }
    let w = &sc.workload;
    settings.insert(
        "workload".into(),
        format!(
            "{}, {} clients, pipeline {}, {} keys, {} B values, {:.0}% reads, op timeout {}",
            match w.mode {
                scenario::LoadMode::Closed => "closed loop".to_string(),
                scenario::LoadMode::Open { rate } => format!("open loop {rate}/s"),
            },
            w.clients,
            w.pipeline,
            w.keyspace,
            w.value_size,
            w.read_ratio * 100.0,
            secs(w.op_timeout)
        ),
    );
    settings.insert(
        "outage resolution".into(),
        format!(
            "{:.1} ms (time between two writes of one client); events {} ms",
            main_out.interval.as_secs_f64() * 1000.0,
            cfg.event_resolution.as_millis()
        ),
    );
    let meta = RunMeta {
        title: if sc.description.is_empty() {
            sc.name().to_string()
        } else {
            sc.description.clone()
        },
        topology: inst.topology.name.clone(),
        scenario: sc.name().to_string(),
        started_at,
        profile: inst.topology.profile.clone(),
        settings,
        engine: format!("{} {}", engine.info.kind, engine.info.version),
        host_notes: vec![format!(
            "{} CPU cores shared by the servers and the load generator",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )],
    };
    let mut report = RunReport::new(meta, cfg, rollup, timeline, faults);
    report.lost_writes = lost;
    report.replication = replication;
    let mut results = scenario::evaluate(&sc.assertions, &report);
    results.append(&mut runner.failures);
    report.assertions = results;
    let files = write_reports(&report, &opts.report_dir, sc.name())?;
    Ok(Outcome { report, files })
}

/// Per-fault figures, each computed from the writes of the target's own group: writes to
/// healthy groups would otherwise end every outage at once.
fn per_fault(
    events: &[Event],
    out: &workload::Output,
    groups: &[String],
    inst: &Instance,
    rollup: &crate::measure::Rollup,
    run_end: Duration,
    cfg: &FailoverConfig,
) -> Vec<crate::measure::FaultReport> {
    let all_series = if out.writes.is_empty() {
        WriteSeries::from_buckets(&rollup.buckets)
    } else {
        WriteSeries::from_ops(out.writes.iter().map(|w| (w.at, w.ok)), out.interval)
    };
    let generic = analyze(events, &all_series, run_end, cfg);
    generic
        .into_iter()
        .map(|f| {
            let group = inst
                .topology
                .service(&f.target)
                .and_then(|s| s.group.clone());
            let gi = group
                .as_ref()
                .and_then(|g| groups.iter().position(|n| n == g));
            match gi {
                Some(gi) if !out.writes.is_empty() => {
                    let series = WriteSeries::from_ops(
                        out.writes
                            .iter()
                            .filter(|w| w.group as usize == gi)
                            .map(|w| (w.at, w.ok)),
                        out.interval,
                    );
                    analyze(events, &series, run_end, cfg)
                        .into_iter()
                        .find(|g| g.id == f.id)
                        .unwrap_or(f)
                }
                _ => f,
            }
        })
        .collect()
}

/// Writes `<name>.json`, `.md`, `.svg` and `.junit.xml` into `dir`.
pub fn write_reports(
    report: &RunReport,
    dir: &Path,
    name: &str,
) -> Result<Vec<PathBuf>, DrillError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        DrillError::Run(format!(
            "cannot create report directory {}: {e}",
            dir.display()
        ))
    })?;
    let json = report
        .to_json()
        .map_err(|e| DrillError::Run(e.to_string()))?;
    let items = [
        (format!("{name}.json"), json),
        (format!("{name}.md"), report.to_markdown()),
        (format!("{name}.svg"), report.to_svg()),
        (format!("{name}.junit.xml"), report.to_junit()),
    ];
    let mut files = vec![];
    for (f, body) in items {
        let p = dir.join(f);
        std::fs::write(&p, body)
            .map_err(|e| DrillError::Run(format!("cannot write {}: {e}", p.display())))?;
        files.push(p);
    }
    Ok(files)
}
