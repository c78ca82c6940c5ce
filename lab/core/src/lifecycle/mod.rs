//! Lifecycle of a lab instance: `up` (networks, volumes and containers in dependency order,
//! in parallel where the graph allows, real readiness probes, init steps, success criteria),
//! `status`, and `down` (exactly the resources labelled with the instance, nothing else).

pub mod addr;
pub mod cluster;
pub mod probe;
pub mod status;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, PortBinding,
};
use tokio::sync::watch;

use crate::engine::{
    Engine, EngineError, LABEL_GROUP, LABEL_INSTANCE, LABEL_ROLE, LABEL_SERVICE, LABEL_TOPOLOGY,
};
use crate::images::{self, ImageMode};
use crate::state::{self, InstanceDir, InstanceRecord, StateError};
use crate::topology::{
    self, Condition, LoadOptions, Mount, Role, ServicePlan, Topology, TopologyError,
};

pub use verify::{Check, Criteria};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Images(#[from] images::ImageError),
    #[error(transparent)]
    Fault(#[from] crate::fault::FaultError),
    #[error("{0}")]
    Usage(String),
    #[error("node {node} did not become ready within {secs}s ({last}); see `lab logs {node}`")]
    NotReady {
        node: String,
        secs: u64,
        last: String,
    },
    #[error("node {node} exited while starting (exit code {code}); its last log lines:\n{logs}")]
    Exited {
        node: String,
        code: i64,
        logs: String,
    },
    #[error("init step failed: {0}")]
    Init(String),
    #[error("the topology came up but its success criteria do not hold:\n{0}")]
    Criteria(String),
}

/// What a user asked `up` for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub topology: String,
    pub instance: Option<String>,
    pub profile: Option<String>,
    pub flavor: Option<String>,
    pub sets: Vec<(String, String)>,
    pub images: ImageMode,
    pub port_base: Option<u16>,
    pub timeout: Duration,
    pub project: PathBuf,
    pub state_root: PathBuf,
}

/// A running (or partly running) instance, ready for clients.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub topology: Topology,
    pub record: InstanceRecord,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl Instance {
    pub fn container_name(&self, service: &str) -> String {
        container_name(&self.name, service)
    }

    /// Host port (after the instance shift) that publishes `container_port` of `service`.
    pub fn host_port(&self, service: &str, container_port: u16) -> Option<u16> {
        let s = self.topology.service(service)?;
        s.host_port_for(container_port)
            .map(|p| shift(p, self.record.port_shift))
    }

    pub fn network_name(&self, net: &str) -> String {
        format!("{}_{}", self.name, net)
    }
}

pub fn container_name(instance: &str, service: &str) -> String {
    format!("{instance}-{service}")
}

fn shift(port: u16, by: i32) -> u16 {
    (port as i32 + by).clamp(1, 65535) as u16
}

/// Progress lines for front ends (plain output, TUI).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

fn labels(inst: &str, topo: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_INSTANCE.to_string(), inst.to_string()),
        (LABEL_TOPOLOGY.to_string(), topo.to_string()),
    ])
}

fn env_map() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// Loads a topology for an instance with everything lab provides (password, images).
pub async fn load_for_instance(
    engine: &Engine,
    opts: &UpOptions,
    progress: Progress<'_>,
) -> Result<
    (
        Topology,
        InstanceDir,
        Option<InstanceRecord>,
        Option<String>,
        BTreeMap<String, String>,
    ),
    LabError,
> {
    let file = topology::find(&opts.topology, &opts.project)?;
    let env = env_map();
    let pre = topology::load(
        &file,
        &LoadOptions {
            profile: opts.profile.clone(),
            flavor: opts.flavor.clone(),
            sets: opts.sets.clone(),
            env: env.clone(),
            provided: HashMap::new(),
        },
    )?;
    let instance = opts.instance.clone().unwrap_or_else(|| pre.name.clone());
    validate_instance_name(&instance)?;
    let dir = InstanceDir::new(&opts.state_root, &instance);
    let existing = dir.load()?;
    let had_password = dir.password_path().exists();
    let password = if pre.lab.password {
        Some(dir.password()?)
    } else {
        None
    };
    // Data volumes of an earlier instance of this name, left by a `lab down` without
    // `--volumes` under another state directory (or one cut short): the servers' configs on
    // them hold a password this state directory does not have, so nothing would start.
    if existing.is_none() && password.is_some() && !had_password {
        let left = engine
            .list_volumes(&[(LABEL_INSTANCE, instance.as_str())])
            .await?;
        if !left.is_empty() {
            let _ = dir.remove();
            return Err(LabError::Usage(format!(
                "volumes of an earlier instance `{instance}` are still there ({}) and hold a \
                 password this state directory does not know; `lab down {} --name {instance} \
                 --volumes` removes them",
                left.join(", "),
                pre.name
            )));
        }
    }
    // Images: upstream by default, offline when asked or when upstream cannot be had.
    let mut chosen = BTreeMap::new();
    for spec in pre.lab.images.values() {
        let (Some(up), Some(off)) = (
            spec.upstream.for_flavor(&pre.flavor),
            spec.offline.for_flavor(&pre.flavor),
        ) else {
            return Err(LabError::Usage(format!(
                "image {} has no reference for flavor {} in {}",
                spec.var,
                pre.flavor,
                file.display()
            )));
        };
        let r = images::resolve(engine, opts.images, up, off).await?;
        if !r.note.is_empty() {
            progress(&r.note);
        }
        chosen.insert(spec.var.clone(), r.reference);
    }
    let mut provided: HashMap<String, String> = chosen.clone().into_iter().collect();
    provided.insert("LAB_INSTANCE".into(), instance.clone());
    if let Some(p) = &password {
        provided.insert("LAB_PASSWORD".into(), p.clone());
    }
    let topo = topology::load(
        &file,
        &LoadOptions {
            profile: opts.profile.clone(),
            flavor: opts.flavor.clone(),
            sets: opts.sets.clone(),
            env,
            provided,
        },
    )?;
    Ok((topo, dir, existing, password, chosen))
}

fn validate_instance_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(LabError::Usage(format!(
            "instance name `{name}` must be 1-40 letters, digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Picks the port shift for a new instance: the file's own ports when free, else the next
/// block of 1000 that is free and not claimed by another recorded instance.
fn allocate_shift(
    topo: &Topology,
    requested_base: Option<u16>,
    others: &[InstanceRecord],
) -> Result<i32, LabError> {
    let ports: Vec<u16> = topo
        .services
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.host_port))
        .collect();
    let claimed: Vec<u16> = others.iter().flat_map(|r| r.host_ports.clone()).collect();
    let fits = |sh: i32| -> Result<(), (u16, String)> {
        for p in &ports {
            let q = *p as i32 + sh;
            if !(1024..=65535).contains(&q) {
                return Err((*p, "out of range".into()));
            }
            let q = q as u16;
            if claimed.contains(&q) {
                return Err((q, "claimed by another lab instance".into()));
            }
            if !port_free(q) {
                return Err((q, "in use".into()));
            }
        }
        Ok(())
    };
    if let Some(base) = requested_base {
        let sh = base as i32 - topo.lab.port_base as i32;
        return match fits(sh) {
            Ok(()) => Ok(sh),
            Err((p, why)) => {
                let node = topo
                    .services
                    .iter()
                    .find(|s| s.ports.iter().any(|x| shift(x.host_port, sh) == p))
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                Err(LabError::Usage(format!(
                    "host port 127.0.0.1:{p} (for {node}) is {why}; choose another --port-base or stop what holds it"
                )))
            }
        };
    }
    for i in 0..40 {
        let sh = i * 1000;
        if fits(sh).is_ok() {
            return Ok(sh);
        }
    }
    Err(LabError::Usage(
        "no free block of host ports found between the file's ports and +40000; free some ports or pass --port-base".into(),
    ))
}

/// Heals faults a killed `lab` left applied (from the instance's fault journal).
pub async fn heal_leftovers(
    engine: &Engine,
    state_root: &Path,
    instance: &str,
    progress: Progress<'_>,
) -> Result<(), LabError> {
    let journal = crate::fault::Journal::new(state_root, instance);
    for a in crate::fault::heal_all(engine, &journal).await? {
        progress(&format!(
            "healed a fault left applied by an earlier run: {} ({}, since {})",
            a.describe(),
            a.origin,
            a.since
        ));
    }
    Ok(())
}

/// Brings a topology up (or resumes it) and checks its success criteria.
pub async fn up(
    engine: &Engine,
    opts: &UpOptions,
    progress: Progress<'_>,
) -> Result<(Instance, Criteria), LabError> {
    let (topo, dir, existing, password, chosen) = load_for_instance(engine, opts, progress).await?;
    let instance = dir.name.clone();
    heal_leftovers(engine, &opts.state_root, &instance, progress).await?;
    let settings: BTreeMap<String, String> = topo
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let fresh = existing.is_none();
    let record = match existing {
        Some(rec) => {
            if rec.topology != topo.name {
                return Err(LabError::Usage(format!(
                    "instance `{instance}` already runs topology {}; pick another --name or `lab down {} --name {instance}` first",
                    rec.topology, rec.topology
                )));
            }
            let differs: Vec<String> = settings
                .iter()
                .filter(|(k, v)| rec.settings.get(*k) != Some(*v))
                .map(|(k, v)| {
                    format!(
                        "{k}={v} (running: {})",
                        rec.settings.get(k).cloned().unwrap_or_default()
                    )
                })
                .chain(
                    (rec.flavor != topo.flavor)
                        .then(|| format!("flavor={} (running: {})", topo.flavor, rec.flavor)),
                )
                .collect();
            if !differs.is_empty() {
                return Err(LabError::Usage(format!(
                    "instance `{instance}` runs with other settings: {}; `lab down {} --name {instance}` first or use another --name",
                    differs.join(", "),
                    topo.name
                )));
            }
            if let Some(b) = opts.port_base {
                if b as i32 - topo.lab.port_base as i32 != rec.port_shift {
                    return Err(LabError::Usage(format!(
                        "instance `{instance}` already uses port base {}; `lab down` it first to change ports",
                        topo.lab.port_base as i32 + rec.port_shift
                    )));
                }
            }
            rec
        }
        None => {
            let others: Vec<InstanceRecord> = state::all_instances(&opts.state_root)
                .into_iter()
                .filter(|r| r.instance != instance)
                .collect();
            let sh = match allocate_shift(&topo, opts.port_base, &others) {
                Ok(sh) => sh,
                Err(e) => {
                    // Nothing was created; forget the password made for this attempt too.
                    let _ = dir.remove();
                    return Err(e);
                }
            };
            let rec = InstanceRecord {
                instance: instance.clone(),
                topology: topo.name.clone(),
                file: topo.file.display().to_string(),
                port_shift: sh,
                host_ports: topo
                    .services
                    .iter()
                    .flat_map(|s| s.ports.iter().map(move |p| shift(p.host_port, sh)))
                    .collect(),
                profile: topo.profile.clone(),
                flavor: topo.flavor.clone(),
                settings: settings.clone(),
                images: chosen.clone(),
                engine_socket: engine.info.socket.clone(),
            };
            dir.save(&rec)?;
            rec
        }
    };
    let inst = Instance {
        name: instance.clone(),
        topology: topo,
        record,
        password,
        password_file: None,
    };
    let inst = Instance {
        password_file: inst.password.as_ref().map(|_| dir.password_path()),
        ..inst
    };
    let result = bring_up(engine, &inst, opts.timeout, progress).await;
    match result {
        Ok(criteria) => Ok((inst, criteria)),
        Err(e) => {
            if fresh {
                progress(&format!(
                    "up failed; removing what this run created for instance {instance}"
                ));
                let _ = down(engine, &instance, true, &opts.state_root, progress).await;
            }
            Err(e)
        }
    }
}

async fn bring_up(
    engine: &Engine,
    inst: &Instance,
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<Criteria, LabError> {
    let topo = &inst.topology;
    let lbl = labels(&inst.name, &topo.name);
    for net in &topo.networks {
        engine
            .ensure_network(&inst.network_name(net), lbl.clone())
            .await?;
    }
    for vol in &topo.volumes {
        engine
            .ensure_volume(&format!("{}_{}", inst.name, vol), lbl.clone())
            .await?;
    }
    // One task per service; each waits for what it depends on through a watch channel.
    #[derive(Clone, Debug, PartialEq)]
    enum St {
        Pending,
        Started,
        Ready,
        Failed,
    }
    let mut senders = HashMap::new();
    let mut receivers = HashMap::new();
    for s in &topo.services {
        let (tx, rx) = watch::channel(St::Pending);
        senders.insert(s.name.clone(), tx);
        receivers.insert(s.name.clone(), rx);
    }
    let deadline = Instant::now() + timeout;
    let inst_arc = Arc::new(inst.clone());
    let mut set = tokio::task::JoinSet::new();
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for s in topo.services.clone() {
        let tx = senders
            .remove(&s.name)
            .ok_or_else(|| LabError::Usage("internal: sender".into()))?;
        let deps: Vec<(String, Condition, watch::Receiver<St>)> = s
            .depends_on
            .iter()
            .filter_map(|(d, c)| receivers.get(d).map(|r| (d.clone(), *c, r.clone())))
            .collect();
        let engine = engine.clone();
        let inst = inst_arc.clone();
        let ptx = ptx.clone();
        set.spawn(async move {
            for (dep, cond, mut rx) in deps {
                let want_ready = cond == Condition::ServiceHealthy;
                loop {
                    let st = rx.borrow().clone();
                    match st {
                        St::Failed => {
                            let _ = tx.send(St::Failed);
                            return Err(LabError::Usage(format!(
                                "{} was not started because {dep} failed",
                                s.name
                            )));
                        }
                        St::Ready => break,
                        St::Started if !want_ready => break,
                        _ => {}
                    }
                    if rx.changed().await.is_err() {
                        let _ = tx.send(St::Failed);
                        return Err(LabError::Usage(format!(
                            "{} was not started because {dep} failed",
                            s.name
                        )));
                    }
                }
            }
            let r = start_service(&engine, &inst, &s, &ptx).await;
            if let Err(e) = r {
                let _ = tx.send(St::Failed);
                return Err(e);
            }
            let _ = tx.send(St::Started);
            if let Err(e) = wait_ready(&engine, &inst, &s, deadline).await {
                let _ = tx.send(St::Failed);
                return Err(e);
            }
            let _ = ptx.send(format!("ready   {}", s.name));
            let _ = tx.send(St::Ready);
            Ok(())
        });
    }
    drop(ptx);
    let mut first_err: Option<LabError> = None;
    loop {
        tokio::select! {
            Some(line) = prx.recv() => progress(&line),
            joined = set.join_next() => {
                match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        if first_err.is_none() {
                            first_err = Some(e);
                        }
                    }
                    Some(Err(e)) => {
                        if first_err.is_none() {
                            first_err = Some(LabError::Usage(format!("a start task failed: {e}")));
                        }
                    }
                }
            }
        }
    }
    while let Ok(line) = prx.try_recv() {
        progress(&line);
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    for step in &topo.lab.init {
        cluster::run_init(engine, inst, step, deadline, progress).await?;
    }
    let criteria = verify::verify_until(engine, inst, deadline).await;
    if !criteria.all_ok() {
        return Err(LabError::Criteria(criteria.to_string()));
    }
    Ok(criteria)
}

fn create_body(inst: &Instance, s: &ServicePlan) -> ContainerCreateBody {
    let topo = &inst.topology;
    let mut lbl: HashMap<String, String> = s.labels.iter().cloned().collect();
    lbl.extend(labels(&inst.name, &topo.name));
    lbl.insert(LABEL_SERVICE.into(), s.name.clone());
    lbl.insert(LABEL_ROLE.into(), s.role.to_string());
    if let Some(g) = &s.group {
        lbl.insert(LABEL_GROUP.into(), g.clone());
    }
    if let Some(z) = &s.zone {
        lbl.insert("lab.zone".into(), z.clone());
    }
    let mut exposed = vec![];
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &s.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        exposed.push(key.clone());
        bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(shift(p.host_port, inst.record.port_shift).to_string()),
            }]),
        );
    }
    let binds: Vec<String> = s
        .mounts
        .iter()
        .map(|m| match m {
            Mount::Volume {
                volume,
                target,
                read_only,
            } => format!(
                "{}_{}:{}{}",
                inst.name,
                volume,
                target,
                if *read_only { ":ro" } else { "" }
            ),
            Mount::Bind {
                source,
                target,
                read_only,
            } => format!(
                "{}:{}{}",
                source.display(),
                target,
                if *read_only { ":ro" } else { "" }
            ),
        })
        .collect();
    let mut endpoints = HashMap::new();
    if let Some((net, aliases)) = s.networks.first() {
        let mut a = vec![s.name.clone()];
        a.extend(aliases.iter().cloned());
        endpoints.insert(
            inst.network_name(net),
            EndpointSettings {
                aliases: Some(a),
                ..Default::default()
            },
        );
    }
    let ns = |d: Option<Duration>| d.map(|d| d.as_nanos() as i64);
    ContainerCreateBody {
        image: Some(s.image.clone()),
        hostname: Some(s.hostname.clone().unwrap_or_else(|| s.name.clone())),
        env: Some(s.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        labels: Some(lbl),
        exposed_ports: Some(exposed),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        stop_signal: s.stop_signal.clone(),
        stop_timeout: Some(s.stop_grace.as_secs() as i64),
        healthcheck: s.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: ns(h.interval),
            timeout: ns(h.timeout),
            retries: h.retries.map(|r| r as i64),
            start_period: ns(h.start_period),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            binds: Some(binds),
            port_bindings: Some(bindings),
            cap_add: (!s.cap_add.is_empty()).then(|| s.cap_add.clone()),
            init: s.init,
            // Compose's short form `path[:options]`, e.g. `/data-limited:size=64m`.
            tmpfs: (!s.tmpfs.is_empty()).then(|| {
                s.tmpfs
                    .iter()
                    .map(|t| match t.split_once(':') {
                        Some((path, opts)) => (path.to_string(), opts.to_string()),
                        None => (t.clone(), String::new()),
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    }
}

async fn start_service(
    engine: &Engine,
    inst: &Instance,
    s: &ServicePlan,
    ptx: &tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<(), LabError> {
    let name = inst.container_name(&s.name);
    let existing = engine.inspect_container(&name).await?;
    match existing {
        Some(c) => {
            let mine = c
                .config
                .as_ref()
                .and_then(|cfg| cfg.labels.as_ref())
                .and_then(|l| l.get(LABEL_INSTANCE))
                .is_some_and(|v| *v == inst.name);
            if !mine {
                return Err(LabError::Usage(format!(
                    "a container named {name} exists but does not belong to lab instance {}; remove or rename it",
                    inst.name
                )));
            }
            let running = c.state.as_ref().and_then(|st| st.running).unwrap_or(false);
            let paused = c.state.as_ref().and_then(|st| st.paused).unwrap_or(false);
            if paused {
                engine.unpause_container(&name).await?;
                let _ = ptx.send(format!("unpaused {}", s.name));
            } else if !running {
                engine.start_container(&name).await?;
                let _ = ptx.send(format!("started {}", s.name));
            }
        }
        None => {
            engine.create_container(&name, create_body(inst, s)).await?;
            for (net, aliases) in s.networks.iter().skip(1) {
                let mut a = vec![s.name.clone()];
                a.extend(aliases.iter().cloned());
                engine
                    .raw()
                    .connect_network(
                        &inst.network_name(net),
                        bollard::models::NetworkConnectRequest {
                            container: name.clone(),
                            endpoint_config: Some(EndpointSettings {
                                aliases: Some(a),
                                ..Default::default()
                            }),
                        },
                    )
                    .await
                    .map_err(|e| EngineError::Call {
                        action: "connect to network",
                        what: name.clone(),
                        source: e,
                    })?;
            }
            engine.start_container(&name).await?;
            let _ = ptx.send(format!("created {}", s.name));
        }
    }
    Ok(())
}

async fn wait_ready(
    engine: &Engine,
    inst: &Instance,
    s: &ServicePlan,
    deadline: Instant,
) -> Result<(), LabError> {
    let name = inst.container_name(&s.name);
    let Some(probe) = &s.probe else {
        return Ok(());
    };
    let Some(port) = inst.host_port(&s.name, probe.port()) else {
        return Ok(());
    };
    let started = Instant::now();
    let mut last;
    let mut interval = Duration::from_millis(100);
    loop {
        match probe::probe_once(probe, port, inst.password.as_deref()).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if let Some(c) = engine.inspect_container(&name).await? {
            let st = c.state.unwrap_or_default();
            if st.running == Some(false) && st.restarting != Some(true) {
                let logs = engine.logs(&name, Some(15)).await.unwrap_or_default();
                return Err(LabError::Exited {
                    node: s.name.clone(),
                    code: st.exit_code.unwrap_or(-1),
                    logs,
                });
            }
        }
        if Instant::now() + interval > deadline {
            return Err(LabError::NotReady {
                node: s.name.clone(),
                secs: started.elapsed().as_secs(),
                last,
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(500));
    }
}

/// Loads a recorded instance (for status, logs, drills) without touching containers.
pub async fn open(
    engine: &Engine,
    instance: &str,
    project: &Path,
    state_root: &Path,
) -> Result<Instance, LabError> {
    let dir = InstanceDir::new(state_root, instance);
    let Some(rec) = dir.load()? else {
        return Err(LabError::Usage(format!(
            "no lab instance named `{instance}` is up; start it with `lab up <topology> --name {instance}`"
        )));
    };
    let mut provided: HashMap<String, String> = rec.images.clone().into_iter().collect();
    provided.insert("LAB_INSTANCE".into(), instance.to_string());
    let file = PathBuf::from(&rec.file);
    let file = if file.is_file() {
        file
    } else {
        topology::find(&rec.topology, project)?
    };
    let pre = topology::load_meta(&file, &env_map())?;
    let password = if pre.password {
        Some(dir.password()?)
    } else {
        None
    };
    if let Some(p) = &password {
        provided.insert("LAB_PASSWORD".into(), p.clone());
    }
    let topo = topology::load(
        &file,
        &LoadOptions {
            profile: Some(rec.profile.clone()),
            flavor: Some(rec.flavor.clone()),
            sets: rec
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            env: env_map(),
            provided,
        },
    )?;
    let _ = engine;
    Ok(Instance {
        name: instance.to_string(),
        topology: topo,
        record: rec,
        password_file: password.as_ref().map(|_| dir.password_path()),
        password,
    })
}

/// What `down` removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DownReport {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// Removes exactly the resources labelled `lab.instance=<instance>`; succeeds when some
/// (or all) are already gone.
pub async fn down(
    engine: &Engine,
    instance: &str,
    volumes: bool,
    state_root: &Path,
    progress: Progress<'_>,
) -> Result<DownReport, LabError> {
    let filter = [(LABEL_INSTANCE, instance)];
    let mut report = DownReport::default();
    let containers = engine.list_containers(&filter).await?;
    let mut set = tokio::task::JoinSet::new();
    for c in containers {
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .or(c.id.clone())
            .unwrap_or_default();
        let engine = engine.clone();
        set.spawn(async move {
            // Unpause first: some engines refuse to kill a frozen container.
            let _ = engine.unpause_container(&name).await;
            engine.remove_container(&name).await.map(|_| name)
        });
    }
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(name)) => {
                progress(&format!("removed container {name}"));
                report.containers.push(name);
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(LabError::Usage(format!("a removal task failed: {e}"))),
        }
    }
    // Process faults end with their containers: the journal has nothing left to heal.
    let journal = crate::fault::Journal::new(state_root, instance);
    if let Ok(left) = journal.list() {
        for a in &left {
            progress(&format!(
                "fault {} ended with its container: {}",
                a.id,
                a.describe()
            ));
        }
    }
    let _ = std::fs::remove_file(journal.path());
    // A network that cannot go (Docker's stale endpoint) does not keep the rest: volumes and
    // state are removed all the same, then its error is returned.
    let mut network_error = None;
    for n in engine.list_networks(&filter).await? {
        match engine.remove_network(&n).await {
            Ok(()) => {
                progress(&format!("removed network {n}"));
                report.networks.push(n);
            }
            Err(e) => {
                network_error.get_or_insert(e);
            }
        }
    }
    if volumes {
        for v in engine.list_volumes(&filter).await? {
            engine.remove_volume(&v).await?;
            progress(&format!("removed volume {v}"));
            report.volumes.push(v);
        }
    }
    let dir = InstanceDir::new(state_root, instance);
    if volumes {
        dir.remove()?;
    } else if let Ok(Some(_)) = dir.load() {
        // Keep the password with the kept data; forget ports and settings.
        let _ = std::fs::remove_file(dir.dir.join("instance.json"));
    }
    if let Some(e) = network_error {
        return Err(e.into());
    }
    report.containers.sort();
    Ok(report)
}

/// Nodes of a role, resolved to (service, host port of `container_port`).
pub fn role_ports(inst: &Instance, role: Role, container_port: u16) -> Vec<(String, u16)> {
    inst.topology
        .with_role(role)
        .iter()
        .filter_map(|s| {
            inst.host_port(&s.name, container_port)
                .map(|p| (s.name.clone(), p))
        })
        .collect()
}
