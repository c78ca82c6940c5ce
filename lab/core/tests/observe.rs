//! Observers against real topologies on a real engine.
//!
//! redis-sentinel: first a Sentinel is the fault target (killed and started again: its
//! subscriber must reconnect by itself), then the master of g1 is SIGKILLed and the timeline
//! must show the container dying, the Sentinels' verdict and the switch to redis-2 (named by
//! service, never by address), and redis-2 turning master.
//!
//! redis-cluster: node-1 (a master) is SIGKILLed; the other nodes must flag it PFAIL and FAIL
//! and its replica node-4 must turn master.
//!
//! Without /var/run/docker.sock each test prints why and passes, unless LAB_REQUIRE_ENGINE=1.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab_core::engine::{Engine, EngineChoice};
use lab_core::images::ImageMode;
use lab_core::lifecycle::{self, addr::AddrMap, probe, Instance, UpOptions};
use lab_core::measure::{
    ClusterHealth, ContainerAction, Event, EventKind, FailFlag, Role, SentinelEvent,
};
use lab_core::observe::{self, ObserveConfig};

/// An event the test waits for: its name in messages, and how to recognise it.
type Wanted<'a> = (&'a str, &'a dyn Fn(&Event) -> bool);

/// One topology at a time: on a small host two failovers at once distort each other's timing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn required() -> bool {
    std::env::var("LAB_REQUIRE_ENGINE").is_ok_and(|v| v == "1")
}

/// Removes the instance when the test ends, however it ends. Drop cannot await, so it runs
/// `down` on a runtime of its own in a fresh thread, with its own engine connection.
struct Down {
    instance: String,
    state_root: PathBuf,
}

impl Drop for Down {
    fn drop(&mut self) {
        let instance = self.instance.clone();
        let state_root = self.state_root.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            rt.block_on(async {
                let engine = Engine::connect(&EngineChoice::from_env(None))
                    .await
                    .expect("engine for cleanup");
                lifecycle::down(&engine, &instance, true, &state_root, &|_| {})
                    .await
                    .expect("down after the test");
            });
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!(
                "cleanup of {} failed; run `lab down --name {}`",
                self.instance, self.instance
            );
        }
    }
}

/// A topology brought up for one test, removed when this is dropped.
struct Up {
    engine: Engine,
    inst: Arc<Instance>,
    _down: Down,
    _state: tempfile::TempDir,
}

// Port bases stay below 32768, the start of Linux's ephemeral range: above it, a client
// socket of a test running alongside can hold the port (seen: 33004 taken).
async fn bring_up(topology: &str, instance: &str, port_base: u16) -> Option<Up> {
    if !Path::new("/var/run/docker.sock").exists() && !required() {
        eprintln!(
            "skipping: /var/run/docker.sock is absent; set LAB_REQUIRE_ENGINE=1 to fail instead"
        );
        return None;
    }
    let engine = match Engine::connect(&EngineChoice::from_env(None)).await {
        Ok(e) => e,
        Err(e) if required() => panic!("the container engine is required but not reachable: {e}"),
        Err(e) => {
            eprintln!("skipping: the container engine is not reachable ({e})");
            return None;
        }
    };
    let state = tempfile::tempdir().expect("tempdir");
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Leftovers of an interrupted run would be resumed in their post-failover state.
    lifecycle::down(&engine, instance, true, state.path(), &|_| {})
        .await
        .expect("clean start");
    let down = Down {
        instance: instance.to_string(),
        state_root: state.path().to_path_buf(),
    };
    let opts = UpOptions {
        topology: topology.into(),
        instance: Some(instance.into()),
        profile: None,
        flavor: None,
        sets: vec![],
        images: ImageMode::Offline,
        port_base: Some(port_base),
        timeout: Duration::from_secs(180),
        project,
        state_root: state.path().to_path_buf(),
    };
    let (inst, _) = lifecycle::up(&engine, &opts, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{topology} does not come up: {e}"));
    Some(Up {
        engine,
        inst: Arc::new(inst),
        _down: down,
        _state: state,
    })
}

/// Running observers and what they send.
struct Watch {
    t0: Instant,
    rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    stop: tokio::sync::watch::Sender<bool>,
    observers: observe::Observers,
    ready_after: Duration,
}

async fn watch(up: &Up) -> Watch {
    let map = AddrMap::build(&up.engine, &up.inst)
        .await
        .expect("address map");
    let t0 = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let observers = observe::start(
        up.engine.clone(),
        up.inst.clone(),
        map,
        t0,
        ObserveConfig::default(),
        tx,
        stop_rx,
    )
    .await;
    assert_eq!(observers.resolution(), Duration::from_millis(100));
    Watch {
        t0,
        rx,
        stop,
        observers,
        ready_after: t0.elapsed(),
    }
}

impl Watch {
    /// Stops the observers and checks they all end promptly.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let joined = tokio::time::timeout(Duration::from_secs(5), self.observers.join()).await;
        assert!(
            joined.is_ok(),
            "observers did not stop within 5 s of the stop signal"
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the timeline relative to the fault and how long after it each wanted event came.
fn print(events: &[Event], fault: Duration, wanted: &[Wanted<'_>]) {
    for e in events {
        eprintln!("{:>+9.1} ms  {}", ms(e.at) - ms(fault), e.kind);
    }
    for (name, w) in wanted {
        match events.iter().find(|e| w(e)) {
            Some(e) => eprintln!("kill -> {name}: {:+.1} ms", ms(e.at) - ms(fault)),
            None => eprintln!("kill -> {name}: not seen"),
        }
    }
}

fn container(node: &'static str, action: ContainerAction) -> impl Fn(&Event) -> bool {
    move |e: &Event| {
        e.kind
            == EventKind::Container {
                node: node.into(),
                action,
            }
    }
}

/// Every node is named by service, never by address.
fn assert_no_addresses(events: &[Event]) {
    for e in events {
        let text = e.kind.to_string();
        assert!(
            !text.split(' ').any(is_ipv4),
            "event names an address instead of a service: {text}"
        );
    }
}

fn is_ipv4(word: &str) -> bool {
    let host = word.rsplit_once(':').map_or(word, |(h, _)| h);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_is_seen_by_every_observer() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(up) = bring_up("redis-sentinel", "t-observe", 29000).await else {
        return;
    };
    let (engine, inst) = (&up.engine, &up.inst);
    let mut w = watch(&up).await;
    let pw = inst.password.as_deref();

    // Phase 1: a Sentinel goes away and comes back.
    let s3 = inst.container_name("sentinel-3");
    engine
        .kill_container(&s3, "SIGKILL")
        .await
        .expect("kill sentinel-3");
    engine.start_container(&s3).await.expect("start sentinel-3");
    let s3_port = inst
        .host_port("sentinel-3", 26379)
        .expect("sentinel-3 port");
    let answered = async {
        loop {
            if let Ok(mut c) = probe::redis_conn(s3_port, pw, Duration::from_secs(1)).await {
                let pong: Result<String, String> =
                    probe::cmd(&mut c, &redis::cmd("PING"), Duration::from_secs(1)).await;
                if pong.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), answered)
        .await
        .is_err()
    {
        let logs = engine.logs(&s3, Some(30)).await.unwrap_or_default();
        panic!("sentinel-3 does not answer 20 s after its restart; its logs:\n{logs}");
    }
    // The subscriber retries at most every 2 s, with a 1 s connect timeout.
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // Phase 2: the master of g1 dies.
    let before = w.t0.elapsed();
    engine
        .kill_container(&inst.container_name("redis-1"), "SIGKILL")
        .await
        .expect("kill redis-1");
    let fault = w.t0.elapsed();

    let s3_died = container("sentinel-3", ContainerAction::Die);
    let s3_started = container("sentinel-3", ContainerAction::Start);
    let is_die = container("redis-1", ContainerAction::Die);
    let is_sdown = |e: &Event| {
        matches!(&e.kind, EventKind::Sentinel { event: SentinelEvent::Sdown, detail, .. }
            if detail.starts_with("master g1 redis-1 6379"))
    };
    let s3_sdown = |e: &Event| {
        is_sdown(e)
            && matches!(&e.kind, EventKind::Sentinel { sentinel, .. } if sentinel == "sentinel-3")
    };
    let is_switch = |e: &Event| {
        matches!(&e.kind, EventKind::Sentinel { event: SentinelEvent::SwitchMaster, detail, .. }
            if detail == "g1 redis-1 6379 redis-2 6379")
    };
    let is_promoted = |e: &Event| {
        e.kind
            == EventKind::RoleChange {
                node: "redis-2".into(),
                from: Role::Replica,
                to: Role::Master,
            }
    };
    let is_link_down = |e: &Event| {
        e.kind
            == EventKind::ReplicaLink {
                node: "redis-2".into(),
                up: false,
            }
    };
    let wanted: [Wanted; 8] = [
        ("die sentinel-3", &s3_died),
        ("start sentinel-3", &s3_started),
        ("die redis-1", &is_die),
        ("redis-2 link down", &is_link_down),
        ("+sdown g1 redis-1", &is_sdown),
        (
            "sentinel-3: +sdown g1 redis-1 (after its restart)",
            &s3_sdown,
        ),
        ("redis-2 -> master", &is_promoted),
        ("+switch-master g1 redis-1 -> redis-2", &is_switch),
    ];
    let mut events: Vec<Event> = vec![];
    collect(&mut w.rx, &mut events, &wanted, Duration::from_secs(30)).await;
    eprintln!(
        "observers ready {:.0} ms after start; the kill of redis-1 took {:.1} ms; times are from its return",
        ms(w.ready_after),
        ms(fault - before)
    );
    print(&events, fault, &wanted);
    w.stop().await;

    let first = |w: &dyn Fn(&Event) -> bool| events.iter().find(|e| w(e)).map(|e| e.at);
    for (name, w) in &wanted {
        assert!(first(*w).is_some(), "no `{name}` within 30 s of the kill");
    }
    let at = |w: &dyn Fn(&Event) -> bool| first(w).unwrap_or_default();
    assert!(
        at(&s3_died) < at(&s3_started),
        "sentinel-3 started before it died"
    );
    // Stamps are on one clock: nothing follows from the kill before it, and the Sentinels'
    // verdict cannot come before their down-after (3000 ms in the drill profile) minus the
    // PING period (1 s) has passed.
    assert!(
        at(&is_die) >= before,
        "die stamped before the kill was sent"
    );
    assert!(
        at(&is_link_down) >= before,
        "link down stamped before the kill was sent"
    );
    assert!(
        at(&is_sdown) >= fault + Duration::from_secs(2),
        "+sdown only {:?} after the kill",
        at(&is_sdown).saturating_sub(fault)
    );
    assert!(
        at(&is_sdown) < at(&is_switch),
        "+switch-master before +sdown"
    );
    assert!(
        at(&is_sdown) < at(&is_promoted),
        "redis-2 promoted before +sdown"
    );
    // A dead node is unknown, not "down": no role change is reported for it.
    let redis1_roles: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::RoleChange { node, .. } if node == "redis-1"))
        .collect();
    assert!(
        redis1_roles.is_empty(),
        "role change reported for the dead redis-1: {redis1_roles:?}"
    );
    assert_no_addresses(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_is_seen_by_the_cluster_poller() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(up) = bring_up("redis-cluster", "t-observe-cluster", 29200).await else {
        return;
    };
    // `up` returns once the cluster bus is formed, possibly before node-4 has finished its
    // first sync; a replica that never synced refuses to fail over
    // (cluster-replica-validity-factor), so wait for its link.
    let port = up.inst.host_port("node-4", 6379).expect("node-4 port");
    let pw = up.inst.password.as_deref();
    let t = Duration::from_secs(1);
    let synced = async {
        loop {
            if let Ok(mut c) = probe::redis_conn(port, pw, t).await {
                let info: Result<String, String> =
                    probe::cmd(&mut c, redis::cmd("INFO").arg("replication"), t).await;
                if info.is_ok_and(|i| i.contains("master_link_status:up")) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), synced)
        .await
        .expect("node-4 syncs with node-1 within 60 s");

    let mut w = watch(&up).await;
    let before = w.t0.elapsed();
    up.engine
        .kill_container(&up.inst.container_name("node-1"), "SIGKILL")
        .await
        .expect("kill node-1");
    let fault = w.t0.elapsed();

    let is_die = container("node-1", ContainerAction::Die);
    let flagged = |flag: FailFlag| {
        move |e: &Event| {
            matches!(&e.kind, EventKind::NodeFailFlag { node, flag: f, reporter }
                if node == "node-1" && *f == flag && reporter != "node-1")
        }
    };
    let is_pfail = flagged(FailFlag::Pfail);
    let is_fail = flagged(FailFlag::Fail);
    let is_promoted = |e: &Event| {
        e.kind
            == EventKind::RoleChange {
                node: "node-4".into(),
                from: Role::Replica,
                to: Role::Master,
            }
    };
    let wanted: [Wanted; 4] = [
        ("die node-1", &is_die),
        ("node-1 pfail", &is_pfail),
        ("node-1 fail", &is_fail),
        ("node-4 -> master", &is_promoted),
    ];
    let mut events: Vec<Event> = vec![];
    collect(&mut w.rx, &mut events, &wanted, Duration::from_secs(30)).await;
    eprintln!(
        "observers ready {:.0} ms after start; the kill of node-1 took {:.1} ms; times are from its return",
        ms(w.ready_after),
        ms(fault - before)
    );
    print(&events, fault, &wanted);
    w.stop().await;

    let first = |w: &dyn Fn(&Event) -> bool| events.iter().find(|e| w(e)).map(|e| e.at);
    if first(&is_promoted).is_none() {
        // Say what node-4 thinks, for the failure message.
        let port = up.inst.host_port("node-4", 6379).expect("node-4 port");
        let pw = up.inst.password.as_deref();
        let t = Duration::from_secs(2);
        if let Ok(mut c) = probe::redis_conn(port, pw, t).await {
            let nodes: Result<String, String> =
                probe::cmd(&mut c, redis::cmd("CLUSTER").arg("NODES"), t).await;
            eprintln!("CLUSTER NODES on node-4:\n{}", nodes.unwrap_or_else(|e| e));
        }
        let logs = up
            .engine
            .logs(&up.inst.container_name("node-4"), Some(25))
            .await
            .unwrap_or_default();
        eprintln!("node-4 logs:\n{logs}");
    }
    for (name, w) in &wanted {
        assert!(first(*w).is_some(), "no `{name}` within 30 s of the kill");
    }
    let at = |w: &dyn Fn(&Event) -> bool| first(w).unwrap_or_default();
    // cluster-node-timeout is 3000 ms in the drill profile: no suspicion before it.
    assert!(
        at(&is_pfail) >= fault + Duration::from_millis(2500),
        "pfail only {:?} after the kill",
        at(&is_pfail).saturating_sub(fault)
    );
    assert!(at(&is_pfail) <= at(&is_fail), "fail before any pfail");
    assert!(
        at(&is_fail) < at(&is_promoted),
        "node-4 promoted before fail"
    );
    // Whoever reports cluster_state, the last word is ok again.
    let states: Vec<(&str, ClusterHealth)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ClusterState { node, state } => Some((node.as_str(), *state)),
            _ => None,
        })
        .collect();
    for (node, _) in &states {
        let last = states
            .iter()
            .rev()
            .find(|(n, _)| n == node)
            .map(|(_, s)| *s);
        assert_eq!(
            last,
            Some(ClusterHealth::Ok),
            "{node} ends with cluster_state fail"
        );
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::RoleChange { node, .. } if node == "node-1")),
        "role change reported for the dead node-1"
    );
    assert_no_addresses(&events);
}

/// Receives events until each of `wanted` has matched one (then two seconds more, for what
/// follows) or `limit` has passed.
async fn collect(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    events: &mut Vec<Event>,
    wanted: &[Wanted<'_>],
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut complete_at: Option<tokio::time::Instant> = None;
    loop {
        if complete_at.is_none() && wanted.iter().all(|(_, w)| events.iter().any(w)) {
            complete_at = Some(tokio::time::Instant::now());
        }
        let until = complete_at.map_or(deadline, |c| (c + Duration::from_secs(2)).min(deadline));
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(e)) => events.push(e),
            Ok(None) | Err(_) => return,
        }
    }
}
