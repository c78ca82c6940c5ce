//! Watches a running instance during a drill and puts everything it sees on one monotonic
//! timeline: Sentinel pub/sub announcements, replication roles and links, Redis Cluster
//! flags and state, and container state from the engine.
//!
//! Each observer is a background task that owns its connections and sends small [`Event`]s on
//! a channel; all of them stamp `at = t0.elapsed()` when they learn of a change, so events
//! from different sources can be ordered and subtracted. Every network call has a timeout and
//! every loop ends when the `stop` signal turns true (or its sender is dropped). All traffic
//! goes to the instance's published ports on 127.0.0.1, never to container addresses.
//!
//! Addresses that Sentinel and the cluster announce are rewritten to lab's service names
//! (`redis-1`, never `172.18.0.3`) so that `measure::failover` can match events to fault
//! targets; the address map is rebuilt whenever the engine reports a container start, because
//! a restarted container may come back with another address.

mod cluster;
mod engine;
mod replication;
mod sentinel;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use crate::engine::Engine;
use crate::lifecycle::addr::AddrMap;
use crate::lifecycle::{probe, Instance};
use crate::measure::timeline::{Event, EventKind};
use crate::topology::{Probe, Role as NodeRole, ServicePlan};

/// How the observers sample what has no push channel (roles, links, cluster flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserveConfig {
    /// Period of the role/link and cluster pollers. A change they report happened at most one
    /// interval (plus a loopback round trip) before its timestamp: this is their resolution.
    pub poll_interval: Duration,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// The running observers of one instance.
///
/// Dropping this without [`Observers::join`] aborts the tasks.
pub struct Observers {
    tasks: JoinSet<()>,
    resolution: Duration,
}

impl Observers {
    /// Waits for every observer to finish; they finish once `stop` turns true (or its sender
    /// is dropped), and each also at its next event once the receiver is gone.
    pub async fn join(mut self) {
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                if e.is_panic() {
                    tracing::error!("an observer panicked: {e}");
                }
            }
        }
    }

    /// Time resolution of the polled events (the poll interval). Pub/sub and engine events
    /// arrive as pushed and are finer than this.
    pub fn resolution(&self) -> Duration {
        self.resolution
    }
}

/// How long `start` waits for the observers' first connection attempts, so that a fault
/// injected right after it returns is seen by subscriptions and pollers that already have
/// their baseline.
const READY_WAIT: Duration = Duration::from_secs(3);

/// Starts every observer for the instance: one pub/sub subscriber per Sentinel, one role/link
/// poller per Sentinel-managed data node, one cluster poller per cluster node, and the
/// engine's event stream. Returns once each has made its first attempt (or after a few
/// seconds at most). They stop when `stop` turns true (or is dropped); the returned handle
/// joins them.
pub async fn start(
    engine: Engine,
    inst: Arc<Instance>,
    map: AddrMap,
    t0: Instant,
    cfg: ObserveConfig,
    tx: mpsc::UnboundedSender<Event>,
    stop: watch::Receiver<bool>,
) -> Observers {
    let ctx = Ctx {
        t0,
        tx,
        names: Names::new(map),
        password: inst.password.clone(),
        poll: cfg.poll_interval.max(Duration::from_millis(1)),
    };
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let ready = || Ready(Some(ready_tx.clone()));
    let mut tasks = JoinSet::new();

    for s in &inst.topology.services {
        let port = |default: u16| inst.host_port(&s.name, redis_port(s, default));
        match s.role {
            NodeRole::Sentinel => {
                if let Some(port) = port(26379) {
                    tasks.spawn(sentinel::run(
                        ctx.clone(),
                        s.name.clone(),
                        port,
                        stop.clone(),
                        ready(),
                    ));
                }
            }
            NodeRole::Master | NodeRole::Replica => {
                if let Some(port) = port(6379) {
                    tasks.spawn(replication::run(
                        ctx.clone(),
                        s.name.clone(),
                        port,
                        stop.clone(),
                        ready(),
                    ));
                }
            }
            NodeRole::ClusterNode => {
                if let Some(port) = port(6379) {
                    tasks.spawn(cluster::run(
                        ctx.clone(),
                        s.name.clone(),
                        port,
                        stop.clone(),
                        ready(),
                    ));
                }
            }
            NodeRole::Exporter | NodeRole::Service => {}
        }
    }

    let started = Arc::new(Notify::new());
    tasks.spawn(engine::run(
        ctx.clone(),
        engine.clone(),
        inst.name.clone(),
        started.clone(),
        stop.clone(),
        ready(),
    ));
    tasks.spawn(refresh_names(ctx.clone(), engine, inst, started, stop));

    drop(ready_tx);
    // Every task drops its `Ready` after its first attempt; the channel closes when all have.
    let _ = tokio::time::timeout(READY_WAIT, ready_rx.recv()).await;

    Observers {
        tasks,
        resolution: ctx.poll,
    }
}

/// The Redis-protocol port of a node: its probe's port when it has a Redis probe.
fn redis_port(s: &ServicePlan, default: u16) -> u16 {
    match &s.probe {
        Some(Probe::Redis { port }) => *port,
        _ => default,
    }
}

/// What every observer task shares.
#[derive(Clone)]
struct Ctx {
    t0: Instant,
    tx: mpsc::UnboundedSender<Event>,
    names: Names,
    password: Option<String>,
    poll: Duration,
}

impl Ctx {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Sends an event; false when nobody listens any more, which ends the observer.
    fn emit(&self, at: Duration, kind: EventKind) -> bool {
        self.tx.send(Event::new(at, kind)).is_ok()
    }

    fn emit_all(&self, at: Duration, kinds: Vec<EventKind>) -> bool {
        kinds.into_iter().all(|k| self.emit(at, k))
    }
}

/// Dropped (or `done`) once an observer has made its first attempt.
struct Ready(Option<mpsc::UnboundedSender<()>>);

impl Ready {
    fn done(&mut self) {
        self.0.take();
    }
}

/// Resolves announced hosts (container IPs, hostnames) to service names. Keeps the maps of
/// earlier generations, newest first, so that an address a Sentinel still remembers from
/// before a restart keeps its name.
#[derive(Clone)]
struct Names {
    maps: Arc<RwLock<Vec<AddrMap>>>,
}

/// Address maps kept; older ones are forgotten.
const NAME_GENERATIONS: usize = 8;

impl Names {
    fn new(map: AddrMap) -> Self {
        Names {
            maps: Arc::new(RwLock::new(vec![map])),
        }
    }

    fn push(&self, map: AddrMap) {
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        maps.insert(0, map);
        maps.truncate(NAME_GENERATIONS);
    }

    fn service_of(&self, host: &str) -> Option<String> {
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        maps.iter()
            .find_map(|m| m.service_of(host))
            .map(str::to_string)
    }
}

/// Rebuilds the address map after the engine reports a container start.
async fn refresh_names(
    ctx: Ctx,
    engine: Engine,
    inst: Arc<Instance>,
    started: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    const BUILD_TIMEOUT: Duration = Duration::from_secs(5);
    let names = ctx.names;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = ctx.tx.closed() => return,
            _ = started.notified() => {}
        }
        let built = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = tokio::time::timeout(BUILD_TIMEOUT, AddrMap::build(&engine, &inst)) => r,
        };
        match built {
            Ok(Ok(map)) => names.push(map),
            Ok(Err(e)) => tracing::debug!("observe: could not refresh addresses: {e}"),
            Err(_) => tracing::debug!("observe: refreshing addresses timed out"),
        }
    }
}

/// Resolves when `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps for `d` unless stopped first; false when stopped.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = stopped(stop) => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Exponential backoff for reconnecting, bounded so a node that comes back is seen soon.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// After this many unanswered polls in a row a poller drops its connection and makes a new one.
const MAX_SILENT_POLLS: u32 = 10;

/// Polls one node every `ctx.poll`: `fetch` asks (on a clone of the node's connection),
/// `apply` turns each answer into events stamped with its arrival. Each node has its own
/// task, so a frozen node slows only its own poller; a node that does not answer produces no
/// sample and therefore no event.
async fn poll_node<S, F, Fut>(
    ctx: Ctx,
    node: String,
    port: u16,
    mut stop: watch::Receiver<bool>,
    mut ready: Ready,
    fetch: F,
    mut apply: impl FnMut(S) -> Vec<EventKind>,
) where
    F: Fn(redis::aio::MultiplexedConnection) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<S>>,
{
    // Connecting includes AUTH; it gets more slack than a single request.
    let connect_timeout = ctx.poll.max(Duration::from_millis(250));
    let mut ticker = tokio::time::interval(ctx.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut conn = None;
    let mut silent = 0u32;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = ticker.tick() => {}
        }
        let c = match &conn {
            Some(c) => redis::aio::MultiplexedConnection::clone(c),
            None => {
                let made = tokio::select! {
                    _ = stopped(&mut stop) => return,
                    c = probe::redis_conn(port, ctx.password.as_deref(), connect_timeout) => c,
                };
                match made {
                    Ok(c) => {
                        conn = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        tracing::trace!("observe: {node} unreachable: {e}");
                        ready.done();
                        continue;
                    }
                }
            }
        };
        let reply = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = tokio::time::timeout(ctx.poll, fetch(c)) => r,
        };
        let at = ctx.now();
        ready.done();
        match reply {
            Ok(Ok(sample)) => {
                silent = 0;
                if !ctx.emit_all(at, apply(sample)) {
                    return;
                }
            }
            Ok(Err(e))
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
            {
                // Refused, reset, or cut by Sentinel's CLIENT KILL after a demotion.
                tracing::trace!("observe: lost {node}: {e}");
                conn = None;
                silent = 0;
            }
            // No answer in time (frozen, overloaded) or an error reply (LOADING): unknown.
            Ok(Err(_)) | Err(_) => {
                silent += 1;
                if silent >= MAX_SILENT_POLLS {
                    conn = None;
                    silent = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }

    #[test]
    fn names_prefer_the_newest_map_and_remember_older_addresses() {
        let mut old = AddrMap::default();
        old.insert("172.18.0.3", "redis-1", 6379, 16001);
        let names = Names::new(old);
        let mut new = AddrMap::default();
        new.insert("172.18.0.3", "sentinel-2", 26379, 16012);
        new.insert("172.18.0.9", "redis-1", 6379, 16001);
        names.push(new);
        assert_eq!(
            names.service_of("172.18.0.3").as_deref(),
            Some("sentinel-2")
        );
        assert_eq!(names.service_of("172.18.0.9").as_deref(), Some("redis-1"));
        assert_eq!(names.service_of("10.0.0.1"), None);
    }

    #[tokio::test]
    async fn stopped_returns_on_true_and_on_dropped_sender() {
        let wait = Duration::from_secs(1);
        let (tx, mut rx) = watch::channel(false);
        let _ = tx.send(true);
        tokio::time::timeout(wait, stopped(&mut rx))
            .await
            .expect("true stops");
        let (tx2, mut rx2) = watch::channel(false);
        drop(tx2);
        tokio::time::timeout(wait, stopped(&mut rx2))
            .await
            .expect("a dropped sender stops");
        let (tx3, mut rx3) = watch::channel(false);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), stopped(&mut rx3))
                .await
                .is_err(),
            "false must not stop"
        );
        drop(tx3);
    }
}
