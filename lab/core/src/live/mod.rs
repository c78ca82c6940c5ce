//! A live session over a running instance: the observers, a changeable workload, faults
//! applied and healed on command, and per-fault stopwatches computed with the same
//! `measure::failover` maths a drill uses. It publishes [`Snapshot`]s on a watch channel at a
//! bounded rate and only when something changed; front ends (the TUI, plain progress lines)
//! read them and send [`Command`]s. Nothing here knows about a terminal.

pub mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::drill;
use crate::engine::Engine;
use crate::fault::{self, Applied, Journal, Kind};
use crate::lifecycle::addr::AddrMap;
use crate::lifecycle::status::NodeStatus;
use crate::lifecycle::{self, Instance};
use crate::measure::{
    analyze, BucketSummary, ContainerAction, Event, EventKind, FailoverConfig, FaultReport,
    Recorder, Role, Timeline, WriteSeries,
};
use crate::observe::{self, ObserveConfig, Observers};
use crate::report::{RunMeta, RunReport};
use crate::scenario;
use crate::workload::{self, IdSource, KeyPlan, Routes};

pub use snapshot::*;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("failed to map the addresses of instance {instance}: {source}")]
    Addresses {
        instance: String,
        #[source]
        source: crate::engine::EngineError,
    },
    #[error("failed to find the masters of instance {instance}: {message}")]
    Routes { instance: String, message: String },
    #[error("the live session of instance {instance} ended unexpectedly: {message}")]
    Ended { instance: String, message: String },
}

/// A fault the user can ask for from a front end. Isolate cuts the node off from everyone
/// (iptables in its network namespace); slow adds [`SLOW_DELAY`] each way on the link from
/// the node to the other data node of its group (lab's latency proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRequest {
    Kill,
    Stop,
    Pause,
    Restart,
    Isolate,
    Slow,
}

impl FaultRequest {
    pub fn name(self) -> &'static str {
        match self {
            FaultRequest::Kill => "kill",
            FaultRequest::Stop => "stop",
            FaultRequest::Pause => "pause",
            FaultRequest::Restart => "restart",
            FaultRequest::Isolate => "isolate",
            FaultRequest::Slow => "slow",
        }
    }

    /// The process fault to apply, or why this build cannot.
    pub fn kind(self) -> Result<Kind, String> {
        match self {
            FaultRequest::Kill => Ok(Kind::Kill {
                signal: "SIGKILL".into(),
            }),
            FaultRequest::Stop => Ok(Kind::Stop {
                grace: Duration::from_secs(10),
            }),
            FaultRequest::Pause => Ok(Kind::Pause),
            FaultRequest::Restart => Ok(Kind::Restart),
            FaultRequest::Isolate | FaultRequest::Slow => Err(format!(
                "{} is a network fault (fault::apply_net)",
                self.name()
            )),
        }
    }
}

/// Added in each direction by the slow key: a replication round trip grows by twice this.
pub const SLOW_DELAY: Duration = Duration::from_millis(100);

/// The other data node of `node`'s group (its replica when it is the master, its master
/// when it is the replica): the far end of the link the slow key slows.
pub fn slow_peer(topology: &crate::topology::Topology, node: &str) -> Option<String> {
    let group = topology.service(node)?.group.clone()?;
    topology
        .services
        .iter()
        .find(|s| s.name != node && s.group.as_deref() == Some(group.as_str()))
        .map(|s| s.name.clone())
}

/// What a front end can ask of the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Fault {
        node: String,
        fault: FaultRequest,
    },
    /// Heal the session's faults on this node, or all of them.
    Heal {
        node: Option<String>,
    },
    StartLoad,
    StopLoad,
    /// New load parameters; a running load restarts with them.
    SetLoad(WorkloadParams),
    /// Play a drill file against this instance (the session's own load pauses meanwhile).
    RunDrill(PathBuf),
    /// Write the session so far as a report (JSON, Markdown, SVG, JUnit).
    SaveReport,
    /// End the session: heal its faults if asked, stop everything, and take the topology down
    /// unless it is kept.
    Shutdown {
        heal: bool,
        keep_running: bool,
    },
}

/// How a session runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub state_root: PathBuf,
    pub project: PathBuf,
    pub report_dir: PathBuf,
    pub observe: ObserveConfig,
    pub load: WorkloadParams,
    /// Start the load right away.
    pub load_running: bool,
    /// Snapshots are published at most this often.
    pub publish_every: Duration,
    /// Container state, roles and links are re-read from the engine and servers this often
    /// (events update them in between).
    pub status_every: Duration,
}

impl Options {
    pub fn new(state_root: PathBuf, project: PathBuf) -> Self {
        Options {
            state_root,
            project,
            report_dir: PathBuf::from("reports"),
            observe: ObserveConfig {
                // Sentinel's announcements are pushed; the pollers only add role and link
                // changes, for which a quarter second is plenty on a screen.
                poll_interval: Duration::from_millis(250),
            },
            load: WorkloadParams::default(),
            load_running: true,
            publish_every: Duration::from_millis(250),
            status_every: Duration::from_secs(3),
        }
    }
}

/// How the session ended.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// Faults healed at the end ("kill redis-1").
    pub healed: Vec<String>,
    /// Faults left in force (kept on purpose, or a heal failed), with why.
    pub left: Vec<String>,
    /// Report files written at the end.
    pub files: Vec<PathBuf>,
    pub taken_down: bool,
}

/// A running session. Dropping it aborts the background task without healing: call
/// [`Session::shutdown`] (the journal still lets `lab heal` undo what is left).
pub struct Session {
    pub commands: mpsc::UnboundedSender<Command>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    task: JoinHandle<Ended>,
}

impl Session {
    pub fn send(&self, c: Command) {
        let _ = self.commands.send(c);
    }

    /// Asks the session to end and waits until it has.
    pub async fn shutdown(self, heal: bool, keep_running: bool) -> Result<Ended, LiveError> {
        let _ = self.commands.send(Command::Shutdown { heal, keep_running });
        self.task.await.map_err(|e| LiveError::Ended {
            instance: String::new(),
            message: e.to_string(),
        })
    }

    /// Whether the session task has stopped (after a shutdown, or on its own).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts a session over an instance that is up: observers first (so every fault lands on
/// the timeline), then the load if asked.
pub async fn start(
    engine: Engine,
    inst: Arc<Instance>,
    opts: Options,
) -> Result<Session, LiveError> {
    let map = AddrMap::build(&engine, &inst)
        .await
        .map_err(|source| LiveError::Addresses {
            instance: inst.name.clone(),
            source,
        })?;
    let t0 = Instant::now();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Event>();
    let (obs_stop_tx, obs_stop) = watch::channel(false);
    let observers = observe::start(
        engine.clone(),
        inst.clone(),
        map.clone(),
        t0,
        opts.observe,
        ev_tx,
        obs_stop,
    )
    .await;
    let routes = Routes::new(
        engine.clone(),
        inst.clone(),
        map,
        drill::discovery_for(&inst),
    )
    .await
    .map_err(|message| LiveError::Routes {
        instance: inst.name.clone(),
        message,
    })?;
    let keys = Arc::new(
        if matches!(routes.discovery, workload::Discovery::Cluster { .. }) {
            KeyPlan::cluster(&routes)
        } else {
            KeyPlan::plain(&routes.group_names)
        },
    );
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let (job_tx, job_rx) = mpsc::unbounded_channel();
    let (rec_tx, rec_rx) = mpsc::unbounded_channel();
    let groups = routes.group_names.len();
    let mut core = Core {
        journal: Journal::new(&opts.state_root, &inst.name),
        engine_label: format!("{} {}", engine.info.kind, engine.info.version),
        started_at: fault::now_rfc3339(),
        engine,
        inst: inst.clone(),
        t0,
        routes,
        keys,
        timeline: Timeline::new(),
        series: (0..groups).map(|_| Series::default()).collect(),
        all: Series::default(),
        nodes: initial_nodes(&inst),
        faults: vec![],
        load: None,
        params: opts.load,
        message: None,
        drill: None,
        seq: 0,
        dirty: true,
        job_tx,
        rec_tx,
        snap_tx,
        opts,
        observers: Some((obs_stop_tx, observers)),
        status_running: false,
    };
    if core.opts.load_running {
        core.start_load();
    }
    let task = tokio::spawn(core.run(cmd_rx, ev_rx, job_rx, rec_rx));
    Ok(Session {
        commands: cmd_tx,
        snapshots: snap_rx,
        task,
    })
}

fn initial_nodes(inst: &Instance) -> Vec<NodeView> {
    inst.topology
        .services
        .iter()
        .map(|s| NodeView {
            name: s.name.clone(),
            group: s.group.clone(),
            kind: s.role,
            role: None,
            state: NodeState::Unknown,
            link_up: None,
            replicas: None,
            port: s
                .probe
                .as_ref()
                .and_then(|p| inst.host_port(&s.name, p.port()))
                .or_else(|| {
                    s.ports
                        .first()
                        .and_then(|p| inst.host_port(&s.name, p.container_port))
                }),
            fault: None,
        })
        .collect()
}

/// A node's view from `lab status`'s reading.
fn apply_status(v: &mut NodeView, s: &NodeStatus) {
    v.state = match s.state.as_str() {
        "running" if s.health == "ok" || s.health == "no probe" => NodeState::Up,
        "running" => NodeState::Unhealthy,
        "paused" => NodeState::Paused,
        "missing" => NodeState::Missing,
        "exited" | "dead" | "created" | "removing" => NodeState::Down,
        _ => NodeState::Unknown,
    };
    // A reading without a role (the probe timed out) keeps the last role seen; a stopped
    // server's role is not shown by front ends anyway.
    v.role = match s.live_role.as_deref() {
        Some("master") => Some(Role::Master),
        Some("slave") => Some(Role::Replica),
        Some(_) => None,
        None => v.role,
    };
    if s.live_role.is_none() && v.state == NodeState::Up {
        return;
    }
    v.link_up = None;
    v.replicas = None;
    match s.link.as_deref() {
        Some(l) if l.starts_with("link ") => v.link_up = Some(l == "link up"),
        Some(l) => v.replicas = l.split_whitespace().next().and_then(|n| n.parse().ok()),
        None => {}
    }
}

/// One client population's measurements: the whole-session recorder and its bucket
/// summaries, of which only the recent tail is recomputed (a drained recorder can still land
/// in a bucket up to an op timeout plus a flush period old).
#[derive(Default)]
struct Series {
    rec: Recorder,
    sums: Vec<BucketSummary>,
}

/// How long a message stays in the snapshots.
const MESSAGE_FOR: Duration = Duration::from_secs(10);

/// Buckets recomputed on every refresh: 2 s of 100 ms buckets, more than an op timeout (1 s)
/// plus the workers' flush period (200 ms).
const RECOMPUTE: usize = 20;

impl Series {
    fn refresh(&mut self, now: Duration) {
        let width = self.rec.bucket_width().as_millis().max(1) as u64;
        let keep = self.sums.len().saturating_sub(RECOMPUTE);
        self.sums.truncate(keep);
        let from = Duration::from_millis(keep as u64 * width);
        self.sums.extend(self.rec.buckets_since(from, now));
    }
}

/// Background work whose result comes back to the session loop.
enum Job {
    Applied {
        id: u32,
        called: Duration,
        returned: Duration,
        // Boxed: a network fault's journal entry is large.
        result: Result<Box<Applied>, String>,
    },
    Healed {
        id: u32,
        at: Duration,
        result: Result<(), String>,
    },
    Status(Vec<NodeStatus>),
    DrillLine(String),
    DrillDone(Box<Result<drill::Outcome, String>>),
}

struct SessionFault {
    view: FaultView,
    applied: Option<Applied>,
    /// Applied, waiting (up to 1 s) for the engine's event to time it.
    pending: Option<(Duration, Duration, Instant, ContainerAction)>,
}

struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Core {
    engine: Engine,
    engine_label: String,
    started_at: String,
    inst: Arc<Instance>,
    journal: Journal,
    t0: Instant,
    routes: Arc<Routes>,
    keys: Arc<KeyPlan>,
    timeline: Timeline,
    series: Vec<Series>,
    all: Series,
    nodes: Vec<NodeView>,
    faults: Vec<SessionFault>,
    load: Option<Load>,
    params: WorkloadParams,
    message: Option<Message>,
    drill: Option<DrillView>,
    seq: u64,
    dirty: bool,
    job_tx: mpsc::UnboundedSender<Job>,
    rec_tx: mpsc::UnboundedSender<(Option<usize>, Recorder)>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    opts: Options,
    observers: Option<(watch::Sender<bool>, Observers)>,
    status_running: bool,
}

impl Core {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.message = Some(Message {
            level,
            text: text.into(),
            at: self.now(),
        });
        self.dirty = true;
    }

    fn push_event(&mut self, e: Event) {
        self.on_event(&e);
        self.timeline.push(e.at, e.kind);
        self.dirty = true;
    }

    /// Keeps the node list current between status readings.
    fn on_event(&mut self, e: &Event) {
        let find = |nodes: &mut Vec<NodeView>, n: &str| nodes.iter_mut().position(|v| v.name == n);
        match &e.kind {
            EventKind::Container { node, action } => {
                if let Some(i) = find(&mut self.nodes, node) {
                    let v = &mut self.nodes[i];
                    match action {
                        ContainerAction::Die | ContainerAction::Stop => {
                            v.state = NodeState::Down;
                            v.link_up = None;
                        }
                        ContainerAction::Pause => v.state = NodeState::Paused,
                        ContainerAction::Start | ContainerAction::Unpause => {
                            v.state = NodeState::Up
                        }
                        ContainerAction::Kill => {}
                    }
                }
            }
            EventKind::RoleChange { node, to, .. } => {
                if let Some(i) = find(&mut self.nodes, node) {
                    self.nodes[i].role = Some(*to);
                }
            }
            EventKind::ReplicaLink { node, up } => {
                if let Some(i) = find(&mut self.nodes, node) {
                    self.nodes[i].link_up = Some(*up);
                }
            }
            _ => {}
        }
    }

    async fn run(
        mut self,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut ev_rx: mpsc::UnboundedReceiver<Event>,
        mut job_rx: mpsc::UnboundedReceiver<Job>,
        mut rec_rx: mpsc::UnboundedReceiver<(Option<usize>, Recorder)>,
    ) -> Ended {
        let mut tick = tokio::time::interval(self.opts.publish_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut status = tokio::time::interval(self.opts.status_every);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                c = cmd_rx.recv() => match c {
                    Some(Command::Shutdown { heal, keep_running }) => {
                        return self.shutdown(&mut job_rx, heal, keep_running).await;
                    }
                    Some(c) => self.command(c),
                    // Every sender gone: the front end died; heal and keep the topology.
                    None => return self.shutdown(&mut job_rx, true, true).await,
                },
                Some(e) = ev_rx.recv() => self.push_event(e),
                Some(j) = job_rx.recv() => self.job(j),
                Some((g, r)) = rec_rx.recv() => {
                    if let Some(s) = g.and_then(|g| self.series.get_mut(g)) {
                        let _ = s.rec.merge(&r);
                    }
                    let _ = self.all.rec.merge(&r);
                    self.dirty = true;
                }
                _ = status.tick() => self.read_status(),
                _ = tick.tick() => {
                    self.settle_pending();
                    if self.dirty || self.load.is_some() || self.open_fault() {
                        self.publish();
                    }
                }
            }
        }
    }

    fn open_fault(&self) -> bool {
        self.faults.iter().any(|f| {
            matches!(
                f.view.state,
                FaultState::Active { .. } | FaultState::Applying
            ) || f.view.phase() == Phase::InProgress
        })
    }

    fn read_status(&mut self) {
        if self.status_running {
            return;
        }
        self.status_running = true;
        let (engine, inst, tx) = (self.engine.clone(), self.inst.clone(), self.job_tx.clone());
        tokio::spawn(async move {
            if let Ok(s) = lifecycle::status::status(&engine, &inst).await {
                let _ = tx.send(Job::Status(s));
            } else {
                let _ = tx.send(Job::Status(vec![]));
            }
        });
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Fault { node, fault } => self.fault(node, fault),
            Command::Heal { node } => {
                let ids: Vec<u32> = self
                    .faults
                    .iter()
                    .filter(|f| matches!(f.view.state, FaultState::Active { .. }))
                    .filter(|f| node.as_ref().is_none_or(|n| *n == f.view.target))
                    .map(|f| f.view.id)
                    .collect();
                if ids.is_empty() {
                    let what = node.map_or("the session".to_string(), |n| n.to_string());
                    self.say(Level::Info, format!("no fault of {what} to heal"));
                }
                for id in ids {
                    self.heal(id);
                }
            }
            Command::StartLoad => {
                if self.drill.as_ref().is_some_and(|d| d.finished.is_none()) {
                    self.say(Level::Warn, "a drill is running; its own load is in charge");
                } else {
                    self.start_load();
                }
            }
            Command::StopLoad => self.stop_load(),
            Command::SetLoad(p) => {
                self.params = p;
                if self.load.is_some() {
                    self.stop_load();
                    self.start_load();
                }
                self.say(
                    Level::Info,
                    format!("load: {} ops/s over {} clients", p.rate, p.clients),
                );
            }
            Command::RunDrill(path) => self.run_drill(path),
            Command::SaveReport => match self.save_report("tui-session") {
                Ok(files) => {
                    let f = files
                        .first()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    self.say(
                        Level::Info,
                        format!("report saved: {f} (+ .md .svg .junit.xml)"),
                    );
                }
                Err(e) => self.say(Level::Error, format!("report not saved: {e}")),
            },
            Command::Shutdown { .. } => {}
        }
    }

    fn next_id(&self) -> u32 {
        self.faults.iter().map(|f| f.view.id).max().unwrap_or(0) + 1
    }

    fn fault(&mut self, node: String, req: FaultRequest) {
        let id = self.next_id();
        let description = format!("{} {node}", req.name());
        // Isolate and slow are network faults, journalled by `fault::apply_net` below.
        let net = match req {
            FaultRequest::Isolate => Some(Ok(fault::net::Effect::Isolate { node: node.clone() })),
            FaultRequest::Slow => Some(
                slow_peer(&self.inst.topology, &node)
                    .map(|peer| fault::net::Effect::Latency {
                        from: node.clone(),
                        to: peer,
                        delay: SLOW_DELAY,
                        jitter: Duration::ZERO,
                        bandwidth_kbit: None,
                    })
                    .ok_or_else(|| format!("{node} has no master or replica to slow the link to")),
            ),
            _ => None,
        };
        let kind = match (net, req.kind()) {
            (Some(Ok(effect)), _) => Err(effect),
            (None, Ok(k)) => Ok(k),
            (Some(Err(reason)), _) | (None, Err(reason)) => {
                self.say(Level::Warn, format!("{description} refused: {reason}"));
                self.faults.push(SessionFault {
                    view: FaultView {
                        id,
                        description,
                        target: node,
                        state: FaultState::Refused { reason },
                        stopwatch: None,
                    },
                    applied: None,
                    pending: None,
                });
                return;
            }
        };
        if self.inst.topology.service(&node).is_none() {
            self.say(Level::Error, format!("no node named {node}"));
            return;
        }
        if self.faults.iter().any(|f| {
            f.view.target == node
                && matches!(
                    f.view.state,
                    FaultState::Active { .. } | FaultState::Applying
                )
        }) {
            self.say(
                Level::Warn,
                format!("{node} already has a fault in force; heal it first (h)"),
            );
            return;
        }
        self.faults.push(SessionFault {
            view: FaultView {
                id,
                description: description.clone(),
                target: node.clone(),
                state: FaultState::Applying,
                stopwatch: None,
            },
            applied: None,
            pending: None,
        });
        self.say(Level::Info, format!("F{id} {description}..."));
        let (engine, journal, tx) = (
            self.engine.clone(),
            self.journal.clone(),
            self.job_tx.clone(),
        );
        let container = self.inst.container_name(&node);
        let inst = self.inst.clone();
        let t0 = self.t0;
        tokio::spawn(async move {
            let called = t0.elapsed();
            let result = match kind {
                Ok(kind) => {
                    fault::apply(&engine, &journal, kind, &node, &container, "lab tui").await
                }
                Err(effect) => match fault::net::prepare(&engine, &inst, effect).await {
                    Ok((f, addrs)) => {
                        fault::apply_net(&engine, &journal, f, &addrs, "lab tui").await
                    }
                    Err(e) => Err(e),
                },
            }
            .map(Box::new)
            .map_err(|e| e.to_string());
            let _ = tx.send(Job::Applied {
                id,
                called,
                returned: t0.elapsed(),
                result,
            });
        });
    }

    fn heal(&mut self, id: u32) {
        let Some(f) = self.faults.iter().find(|f| f.view.id == id) else {
            return;
        };
        let Some(applied) = f.applied.clone() else {
            return;
        };
        let (engine, journal, tx) = (
            self.engine.clone(),
            self.journal.clone(),
            self.job_tx.clone(),
        );
        let t0 = self.t0;
        tokio::spawn(async move {
            let result = fault::heal(&engine, &journal, &applied)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Job::Healed {
                id,
                at: t0.elapsed(),
                result,
            });
        });
    }

    fn job(&mut self, j: Job) {
        match j {
            Job::Applied {
                id,
                called,
                returned,
                result,
            } => {
                let Some(f) = self.faults.iter_mut().find(|f| f.view.id == id) else {
                    return;
                };
                match result {
                    Ok(a) => {
                        let action = match a.kind {
                            Kind::Pause => ContainerAction::Pause,
                            _ => ContainerAction::Die,
                        };
                        let text = format!("F{id} {} applied", f.view.description);
                        f.applied = Some(*a);
                        f.pending = Some((
                            called,
                            returned,
                            Instant::now() + Duration::from_secs(1),
                            action,
                        ));
                        self.say(Level::Info, text);
                        self.settle_pending();
                    }
                    Err(e) => {
                        f.view.state = FaultState::Failed { error: e.clone() };
                        let d = f.view.description.clone();
                        self.say(Level::Error, format!("F{id} {d} failed: {e}"));
                    }
                }
            }
            Job::Healed { id, at, result } => {
                let Some(f) = self.faults.iter_mut().find(|f| f.view.id == id) else {
                    return;
                };
                match result {
                    Ok(()) => {
                        if let FaultState::Active { at: since } = f.view.state {
                            f.view.state = FaultState::Healed {
                                at: since,
                                healed: at,
                            };
                        }
                        let target = f.view.target.clone();
                        self.push_event(Event::new(at, EventKind::FaultHealed { id, target }));
                        self.say(Level::Info, format!("F{id} healed"));
                    }
                    Err(e) => self.say(Level::Error, format!("F{id} not healed: {e}")),
                }
            }
            Job::Status(list) => {
                self.status_running = false;
                for s in &list {
                    if let Some(v) = self.nodes.iter_mut().find(|v| v.name == s.name) {
                        let before = v.clone();
                        apply_status(v, s);
                        if *v != before {
                            self.dirty = true;
                        }
                    }
                }
            }
            Job::DrillLine(l) => {
                if let Some(d) = &mut self.drill {
                    d.lines.push(l.clone());
                    let n = d.lines.len();
                    if n > 50 {
                        d.lines.drain(..n - 50);
                    }
                }
                let at = self.now();
                self.push_event(Event::new(
                    at,
                    EventKind::Note {
                        text: format!("drill: {l}"),
                    },
                ));
            }
            Job::DrillDone(r) => {
                let (passed, summary, files) = match *r {
                    Ok(o) => {
                        let figures: Vec<String> = o
                            .report
                            .faults
                            .iter()
                            .map(|f| {
                                format!(
                                    "F{} {}: promotion {}, unavailability {}",
                                    f.id,
                                    f.description,
                                    opt_secs(f.metrics.promotion),
                                    opt_secs(f.metrics.unavailability.duration())
                                )
                            })
                            .collect();
                        (
                            o.passed(),
                            figures.join("; "),
                            o.files.iter().map(|p| p.display().to_string()).collect(),
                        )
                    }
                    Err(e) => (false, e, vec![]),
                };
                let text = format!(
                    "drill {}: {summary}",
                    if passed { "passed" } else { "failed" }
                );
                if let Some(d) = &mut self.drill {
                    d.finished = Some(DrillResult {
                        passed,
                        summary,
                        files,
                    });
                }
                self.say(if passed { Level::Info } else { Level::Warn }, text);
                self.start_load();
            }
        }
    }

    /// Puts applied faults on the timeline at the engine's own time for them (its `die` or
    /// `pause` event, between the call and its return), or at the call's return if the event
    /// stream said nothing within a second: the same rule as a drill.
    fn settle_pending(&mut self) {
        let mut done = vec![];
        for (i, f) in self.faults.iter().enumerate() {
            let Some((called, returned, deadline, action)) = f.pending else {
                continue;
            };
            let seen = self
                .timeline
                .events()
                .iter()
                .filter(|e| {
                    e.at + Duration::from_millis(50) >= called
                        && matches!(&e.kind, EventKind::Container { node, action: a }
                            if *node == f.view.target && *a == action)
                })
                .map(|e| e.at)
                .min();
            match seen {
                Some(at) => done.push((i, at.clamp(called, returned))),
                None if Instant::now() >= deadline => done.push((i, returned)),
                None => {}
            }
        }
        for (i, at) in done {
            let f = &mut self.faults[i];
            f.pending = None;
            let restart = matches!(f.applied.as_ref().map(|a| &a.kind), Some(Kind::Restart));
            f.view.state = if restart {
                FaultState::Done { at }
            } else {
                FaultState::Active { at }
            };
            let (id, fault, target) =
                (f.view.id, f.view.description.clone(), f.view.target.clone());
            self.push_event(Event::new(at, EventKind::Fault { id, fault, target }));
        }
    }

    fn start_load(&mut self) {
        if self.load.is_some() {
            return;
        }
        let p = self.params;
        let n = self.routes.group_names.len().max(1);
        let (stop_tx, stop) = watch::channel(false);
        let ids = Arc::new(IdSource::default());
        let mut tasks = vec![tokio::spawn({
            let routes = self.routes.clone();
            let stop = stop.clone();
            async move { routes.run_refresher(stop).await }
        })];
        // One workload per group, so each fault's outage is timed on its own group's writes
        // (healthy groups would otherwise end every outage at once), as a drill does.
        for g in 0..n {
            let (live_tx, mut live_rx) = mpsc::unbounded_channel::<Recorder>();
            let fwd = self.rec_tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(r) = live_rx.recv().await {
                    let _ = fwd.send((Some(g), r));
                }
            }));
            let spec = workload::Spec {
                label: format!("tui-{g}"),
                mode: workload::LoadMode::Open {
                    rate: f64::from(p.rate.max(1)) / n as f64,
                },
                clients: (p.clients / n as u32).max(1),
                pipeline: 1,
                keyspace: 10_000,
                value_size: p.value_size,
                read_ratio: p.read_ratio,
                // A session may run for hours: keep no per-write log.
                track_writes: false,
                op_timeout: p.op_timeout,
                groups: vec![g],
                duration: None,
                requests: None,
                ..workload::Spec::default()
            };
            let run = workload::Run {
                routes: self.routes.clone(),
                keys: self.keys.clone(),
                spec,
                password: self.inst.password.clone(),
                t0: self.t0,
                ids: ids.clone(),
                live: Some(live_tx),
                stop: stop.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let _ = workload::run(run).await;
            }));
        }
        self.load = Some(Load {
            stop: stop_tx,
            tasks,
        });
        self.dirty = true;
    }

    fn stop_load(&mut self) {
        if let Some(l) = self.load.take() {
            let _ = l.stop.send(true);
            // The workers stop at their next operation (bounded by the op timeout); nothing
            // waits on them here so the loop stays responsive.
            drop(l.tasks);
        }
        self.dirty = true;
    }

    fn run_drill(&mut self, path: PathBuf) {
        if self.drill.as_ref().is_some_and(|d| d.finished.is_none()) {
            self.say(Level::Warn, "a drill is already running");
            return;
        }
        // A drill heals every journalled fault of the instance before it starts; the
        // session's own would be undone behind its back.
        if self.faults.iter().any(|f| {
            matches!(
                f.view.state,
                FaultState::Active { .. } | FaultState::Applying
            )
        }) {
            self.say(
                Level::Warn,
                "heal the session's faults first (H): a drill starts from a healthy topology",
            );
            return;
        }
        let sc = match scenario::load(&path) {
            Ok(sc) => sc,
            Err(e) => {
                self.say(Level::Error, e.to_string());
                return;
            }
        };
        if let Err(e) = drill::check(&sc, &self.opts.project) {
            self.say(Level::Error, e.to_string());
            return;
        }
        self.stop_load();
        self.drill = Some(DrillView {
            name: sc.name().to_string(),
            lines: vec![],
            finished: None,
        });
        self.say(Level::Info, format!("drill {} started", sc.name()));
        let opts = drill::Options {
            instance: Some(self.inst.name.clone()),
            port_base: None,
            project: self.opts.project.clone(),
            state_root: self.opts.state_root.clone(),
            images: crate::images::ImageMode::Auto,
            report_dir: self.opts.report_dir.clone(),
            up_timeout: Duration::from_secs(180),
            observe: ObserveConfig::default(),
            settle: Duration::from_secs(60),
        };
        let (engine, tx) = (self.engine.clone(), self.job_tx.clone());
        tokio::spawn(async move {
            let lines = tx.clone();
            let progress = move |l: &str| {
                let _ = lines.send(Job::DrillLine(l.to_string()));
            };
            let r = drill::run(&engine, &sc, &opts, &progress)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Job::DrillDone(Box::new(r)));
        });
    }

    /// Per-fault figures on the timeline so far, each from its own group's writes.
    fn stopwatches(&self, now: Duration) -> Vec<FaultReport> {
        let cfg = self.analysis();
        let events = self.timeline.events();
        if !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Fault { .. }))
        {
            return vec![];
        }
        let group_of = |node: &str| {
            self.inst
                .topology
                .service(node)
                .and_then(|s| s.group.clone())
                .and_then(|g| self.routes.group_names.iter().position(|n| *n == g))
        };
        let mut out: Vec<FaultReport> = vec![];
        let mut by_group: Vec<Option<Vec<FaultReport>>> = vec![None; self.series.len()];
        let mut generic: Option<Vec<FaultReport>> = None;
        for f in &self.faults {
            if !matches!(
                f.view.state,
                FaultState::Active { .. } | FaultState::Healed { .. } | FaultState::Done { .. }
            ) {
                continue;
            }
            let reports = match group_of(&f.view.target) {
                Some(g) if g < self.series.len() => by_group[g].get_or_insert_with(|| {
                    analyze(
                        events,
                        &WriteSeries::from_buckets(&self.series[g].sums),
                        now,
                        &cfg,
                    )
                }),
                _ => generic.get_or_insert_with(|| {
                    analyze(
                        events,
                        &WriteSeries::from_buckets(&self.all.sums),
                        now,
                        &cfg,
                    )
                }),
            };
            if let Some(r) = reports.iter().find(|r| r.id == f.view.id) {
                out.push(r.clone());
            }
        }
        out
    }

    fn analysis(&self) -> FailoverConfig {
        FailoverConfig {
            event_resolution: self.opts.observe.poll_interval,
            ..FailoverConfig::default()
        }
    }

    fn publish(&mut self) {
        let now = self.now();
        for s in &mut self.series {
            s.refresh(now);
        }
        self.all.refresh(now);
        let reports = self.stopwatches(now);
        for f in &mut self.faults {
            if let Some(r) = reports.iter().find(|r| r.id == f.view.id) {
                f.view.stopwatch = Some(r.clone());
            }
        }
        let active: Vec<(String, u32)> = self
            .faults
            .iter()
            .filter(|f| {
                matches!(
                    f.view.state,
                    FaultState::Active { .. } | FaultState::Applying
                )
            })
            .map(|f| (f.view.target.clone(), f.view.id))
            .collect();
        for v in &mut self.nodes {
            v.fault = active.iter().find(|(n, _)| *n == v.name).map(|(_, id)| *id);
        }
        let width = self.all.rec.bucket_width();
        let span = (CHART_SPAN.as_millis() / width.as_millis().max(1)) as usize;
        let chart: Vec<ChartPoint> = self
            .all
            .sums
            .iter()
            .rev()
            .take(span)
            .rev()
            .map(ChartPoint::from)
            .collect();
        // One second that is complete: operations are filed under their planned start and
        // reach the session up to an op timeout plus a flush period later.
        let last_s: Vec<&ChartPoint> = chart.iter().rev().skip(RECOMPUTE).take(10).collect();
        let secs = last_s.len() as f64 * width.as_secs_f64();
        let (ops, errs) = last_s.iter().fold((0.0, 0.0), |(o, e), p| {
            (
                o + p.ops_per_s * width.as_secs_f64(),
                e + p.errors_per_s * width.as_secs_f64(),
            )
        });
        let events = self.timeline.events();
        self.seq += 1;
        let snap = Snapshot {
            seq: self.seq,
            instance: self.inst.name.clone(),
            topology: self.inst.topology.name.clone(),
            engine: self.engine_label.clone(),
            elapsed: now,
            nodes: self.nodes.clone(),
            workload: WorkloadView {
                running: self.load.is_some(),
                params: self.params,
                ops_per_s: if secs > 0.0 { ops / secs } else { 0.0 },
                errors_per_s: if secs > 0.0 { errs / secs } else { 0.0 },
            },
            chart,
            events: events[events.len().saturating_sub(EVENTS_KEPT)..].to_vec(),
            events_total: events.len(),
            faults: self.faults.iter().map(|f| f.view.clone()).collect(),
            drill: self.drill.clone(),
            // A message is news for a while, then the front end's own hints come back.
            message: self
                .message
                .clone()
                .filter(|m| now.saturating_sub(m.at) < MESSAGE_FOR),
            event_resolution: self.opts.observe.poll_interval,
        };
        let _ = self.snap_tx.send(Arc::new(snap));
        self.dirty = false;
    }

    /// The session so far as a run report, written like a drill's.
    fn save_report(&mut self, name: &str) -> Result<Vec<PathBuf>, String> {
        let now = self.now();
        for s in &mut self.series {
            s.refresh(now);
        }
        self.all.refresh(now);
        let cfg = self.analysis();
        let faults = self.stopwatches(now);
        let rollup = self.all.rec.rollup(now);
        let mut settings = indexmap::IndexMap::new();
        for (k, v) in &self.inst.topology.settings {
            settings.insert(k.clone(), v.value.clone());
        }
        let p = self.params;
        settings.insert(
            "workload".into(),
            format!(
                "open loop {}/s, {} clients, {:.0}% reads, {} B values, op timeout {:.1}s (changeable in the session)",
                p.rate,
                p.clients,
                p.read_ratio * 100.0,
                p.value_size,
                p.op_timeout.as_secs_f64()
            ),
        );
        settings.insert(
            "outage resolution".into(),
            format!(
                "{} ms (bucket width; a session keeps no per-write log); events {} ms",
                self.all.rec.bucket_width().as_millis(),
                cfg.event_resolution.as_millis()
            ),
        );
        let meta = RunMeta {
            title: format!("lab tui session on {}", self.inst.name),
            topology: self.inst.topology.name.clone(),
            scenario: name.to_string(),
            started_at: self.started_at.clone(),
            profile: self.inst.topology.profile.clone(),
            settings,
            engine: self.engine_label.clone(),
            host_notes: vec![
                format!(
                    "{} CPU cores shared by the servers and the load generator",
                    std::thread::available_parallelism().map_or(0, |n| n.get())
                ),
                "interactive session: lost writes are not checked (no write log is kept)".into(),
            ],
        };
        let report = RunReport::new(
            meta,
            cfg,
            rollup,
            Timeline::from_events(self.timeline.events().to_vec()),
            faults,
        );
        let stamp = self.started_at.replace([':', '.'], "-");
        drill::write_reports(&report, &self.opts.report_dir, &format!("{name}-{stamp}"))
            .map_err(|e| e.to_string())
    }

    async fn shutdown(
        mut self,
        job_rx: &mut mpsc::UnboundedReceiver<Job>,
        heal: bool,
        keep_running: bool,
    ) -> Ended {
        let mut ended = Ended::default();
        self.stop_load();
        // Let faults being applied land (journalled, timed) before deciding what to heal.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self
            .faults
            .iter()
            .any(|f| matches!(f.view.state, FaultState::Applying) && f.applied.is_none())
        {
            match tokio::time::timeout_at(deadline, job_rx.recv()).await {
                Ok(Some(j)) => self.job(j),
                _ => break,
            }
        }
        self.settle_pending();
        if self
            .timeline
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::Fault { .. }))
        {
            if let Ok(files) = self.save_report("tui-session") {
                ended.files = files;
            }
        }
        let ours: Vec<Applied> = self
            .faults
            .iter()
            .filter_map(|f| {
                matches!(
                    f.view.state,
                    FaultState::Active { .. } | FaultState::Applying
                )
                .then(|| f.applied.clone())
                .flatten()
            })
            .collect();
        if heal || !keep_running {
            // Everything journalled for the instance, including a fault still being applied
            // when the user quit.
            match self.journal.list() {
                Ok(list) => {
                    for a in list
                        .iter()
                        .filter(|a| a.origin == "lab tui" || ours.iter().any(|o| o.id == a.id))
                    {
                        match fault::heal(&self.engine, &self.journal, a).await {
                            Ok(()) => ended.healed.push(a.describe()),
                            Err(e) => ended.left.push(format!("{} ({e})", a.describe())),
                        }
                    }
                }
                Err(e) => ended.left.push(e.to_string()),
            }
        } else {
            ended.left = ours
                .iter()
                .map(|a| {
                    format!(
                        "{} (kept; `lab heal {}` undoes it)",
                        a.describe(),
                        self.inst.name
                    )
                })
                .collect();
        }
        if let Some((stop, observers)) = self.observers.take() {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), observers.join()).await;
        }
        if !keep_running {
            let quiet = |_: &str| {};
            match lifecycle::down(
                &self.engine,
                &self.inst.name,
                false,
                &self.opts.state_root,
                &quiet,
            )
            .await
            {
                Ok(_) => ended.taken_down = true,
                Err(e) => ended.left.push(format!("topology not taken down: {e}")),
            }
        }
        ended
    }
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{FailoverMetrics, Window, WindowEnd};

    #[test]
    fn the_slow_key_slows_the_link_to_the_other_node_of_the_group() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../compose/redis-sentinel.yaml");
        let t = crate::topology::load(&path, &Default::default()).expect("topology");
        assert_eq!(slow_peer(&t, "redis-1").as_deref(), Some("redis-2"));
        assert_eq!(slow_peer(&t, "redis-4").as_deref(), Some("redis-3"));
        assert_eq!(slow_peer(&t, "sentinel-1"), None);
        assert_eq!(slow_peer(&t, "nope"), None);
    }

    #[test]
    fn process_faults_have_a_kind_network_faults_do_not() {
        // Isolate and slow have no process kind: the session applies them through
        // `fault::apply_net`.
        assert!(FaultRequest::Isolate.kind().is_err());
        assert!(FaultRequest::Slow.kind().is_err());
        assert_eq!(FaultRequest::Pause.kind(), Ok(Kind::Pause));
        assert!(
            matches!(FaultRequest::Kill.kind(), Ok(Kind::Kill { signal }) if signal == "SIGKILL")
        );
    }

    fn status(state: &str, health: &str, role: Option<&str>, link: Option<&str>) -> NodeStatus {
        NodeStatus {
            name: "redis-2".into(),
            container: "x-redis-2".into(),
            declared_role: crate::topology::Role::Replica,
            live_role: role.map(str::to_string),
            group: Some("g1".into()),
            state: state.into(),
            health: health.into(),
            link: link.map(str::to_string),
            ports: vec![],
        }
    }

    #[test]
    fn status_readings_update_nodes_and_a_failed_reading_keeps_the_role() {
        let mut v = NodeView {
            name: "redis-2".into(),
            group: Some("g1".into()),
            kind: crate::topology::Role::Replica,
            role: None,
            state: NodeState::Unknown,
            link_up: None,
            replicas: None,
            port: Some(1),
            fault: None,
        };
        apply_status(
            &mut v,
            &status("running", "ok", Some("slave"), Some("link up")),
        );
        assert_eq!(
            (v.state, v.role, v.link_up),
            (NodeState::Up, Some(Role::Replica), Some(true))
        );
        apply_status(
            &mut v,
            &status("running", "ok", Some("master"), Some("2 replica(s)")),
        );
        assert_eq!(
            (v.role, v.link_up, v.replicas),
            (Some(Role::Master), None, Some(2))
        );
        // INFO timed out: what was known stays.
        apply_status(&mut v, &status("running", "ok", None, None));
        assert_eq!((v.role, v.replicas), (Some(Role::Master), Some(2)));
        apply_status(&mut v, &status("paused", "down (paused)", None, None));
        assert_eq!(v.state, NodeState::Paused);
        apply_status(&mut v, &status("exited", "down (exited)", None, None));
        assert_eq!(v.state, NodeState::Down);
    }

    fn view(state: FaultState, promotion: Option<u64>, end: Option<u64>) -> FaultView {
        let ms = Duration::from_millis;
        FaultView {
            id: 1,
            description: "kill redis-1".into(),
            target: "redis-1".into(),
            state,
            stopwatch: Some(FaultReport {
                id: 1,
                at: ms(1000),
                description: "kill redis-1".into(),
                target: "redis-1".into(),
                window_end: WindowEnd::EndOfRun { at: ms(9000) },
                metrics: FailoverMetrics {
                    detection: Some(ms(3000)),
                    promotion: promotion.map(ms),
                    unavailability: crate::measure::Unavailability::Outage(Window {
                        start: ms(1000),
                        end: end.map(ms),
                        bound: ms(9000),
                        started_before_fault: false,
                        failed_writes: 10,
                        interruptions: 0,
                    }),
                    recovery: None,
                    resolution: ms(100),
                    event_resolution: ms(250),
                    notes: vec![],
                },
            }),
        }
    }

    #[test]
    fn phase_follows_the_stopwatch() {
        let active = FaultState::Active {
            at: Duration::from_secs(1),
        };
        assert_eq!(view(active.clone(), None, None).phase(), Phase::InProgress);
        // Promoted but clients still failing: not over.
        assert_eq!(
            view(active.clone(), Some(3500), None).phase(),
            Phase::InProgress
        );
        assert_eq!(
            view(active, Some(3500), Some(5000)).phase(),
            Phase::Measured
        );
        let mut refused = view(
            FaultState::Refused {
                reason: "no".into(),
            },
            None,
            None,
        );
        refused.stopwatch = None;
        assert_eq!(refused.phase(), Phase::NotStarted);
    }
}
