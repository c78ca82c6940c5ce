//! `lab bench redis`: the seed's benchmark (`redis-benchmark -c 50 -n 100000 -t get,set`, plus
//! pipelined variants) driven by lab's own generator against a running topology, and, when
//! `redis-benchmark`/`valkey-benchmark` is installed, the same parameters through it in the
//! same run, so the figures come as ratios. Each generator's CPU time is measured beside its
//! ops/s (on 2 cores the generator, not the server, is often the bottleneck).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::lifecycle::addr::AddrMap;
use crate::lifecycle::Instance;
use crate::topology::{Role, Verify};
use crate::workload::{self, Discovery, IdSource, KeyPlan, LoadMode, Routes, Spec};

#[derive(Debug, Clone)]
pub struct BenchParams {
    pub clients: u32,
    pub requests: u64,
    pub pipelines: Vec<u32>,
    pub value_size: usize,
    pub keyspace: u64,
    /// Run the peer (redis-benchmark) too when installed.
    pub peer: bool,
}

impl Default for BenchParams {
    fn default() -> Self {
        BenchParams {
            clients: 50,
            requests: 100_000,
            pipelines: vec![1, 16],
            value_size: 3,
            keyspace: 100_000,
            peer: true,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    pub tool: String,
    pub test: String,
    pub pipeline: u32,
    pub ops_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU seconds the generator used (user + system).
    pub cpu_s: f64,
    pub wall_s: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub target: String,
    pub rows: Vec<BenchRow>,
    /// (test, pipeline, lab ops/s ÷ peer ops/s, lab CPU ÷ peer CPU)
    pub ratios: Vec<(String, u32, f64, f64)>,
    pub peer_note: String,
}

fn cpu_of(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; no other invariants.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    if rc != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The two tests of the seed's benchmark (`-t set,get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Set,
    Get,
}

impl Test {
    pub fn name(self) -> &'static str {
        match self {
            Test::Set => "set",
            Test::Get => "get",
        }
    }

    fn read_ratio(self) -> f64 {
        match self {
            Test::Set => 0.0,
            Test::Get => 1.0,
        }
    }
}

/// A running topology made ready for benchmarking: routes resolved and keys planned once, so
/// each run measures only the load itself (a criterion bench repeats runs on one of these).
pub struct Prepared {
    routes: Arc<Routes>,
    keys: Arc<KeyPlan>,
    password: Option<String>,
    cluster: bool,
    /// Host port the peer is pointed at (on a cluster, its seed node).
    port: u16,
    /// The peer tool, when installed and wanted.
    pub peer: Option<String>,
    pub target: String,
}

impl Prepared {
    /// Sentinel topologies: the first master, pinned (like redis-benchmark `-h -p`). Cluster
    /// topologies: every master through the cluster-aware client (slot map, MOVED/ASK), like
    /// `redis-benchmark --cluster`.
    pub async fn new(engine: &Engine, inst: Arc<Instance>, peer: bool) -> Result<Self, String> {
        let cluster = matches!(inst.topology.lab.verify, Some(Verify::Cluster { .. }));
        let s = inst
            .topology
            .services
            .iter()
            .find(|s| matches!(s.role, Role::Master | Role::ClusterNode))
            .ok_or("this topology has no Redis master to benchmark")?;
        let port = inst
            .host_port(&s.name, 6379)
            .ok_or("the master does not publish port 6379")?;
        let map = AddrMap::build(engine, &inst)
            .await
            .map_err(|e| e.to_string())?;
        let (routes, keys, target) = if cluster {
            let seeds = crate::lifecycle::role_ports(&inst, Role::ClusterNode, 6379)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            let routes = Routes::new(
                engine.clone(),
                inst.clone(),
                map,
                Discovery::Cluster { seeds },
            )
            .await?;
            let keys = KeyPlan::cluster(&routes);
            let masters = routes
                .snapshot()
                .masters
                .iter()
                .flatten()
                .map(|m| format!("{} (127.0.0.1:{})", m.node, m.port))
                .collect::<Vec<_>>()
                .join(", ");
            (routes, keys, format!("cluster masters {masters}"))
        } else {
            let group = s.group.clone().unwrap_or_else(|| "bench".into());
            let me = workload::NodeAddr {
                node: s.name.clone().into(),
                port,
            };
            let routes = Routes::new(
                engine.clone(),
                inst.clone(),
                map,
                Discovery::Pinned { node: me, group },
            )
            .await?;
            let keys = KeyPlan::plain(&routes.group_names);
            (routes, keys, format!("{} (127.0.0.1:{port})", s.name))
        };
        Ok(Prepared {
            routes,
            keys: Arc::new(keys),
            password: inst.password.clone(),
            cluster,
            port,
            peer: if peer { peer_binary() } else { None },
            target,
        })
    }

    pub fn peer_note(&self, wanted: bool) -> String {
        match &self.peer {
            Some(b) if self.cluster => format!(
                "peer: {b} --cluster, same parameters, same run; it reads the node addresses from CLUSTER NODES and so reaches the containers directly, while lab goes through the published 127.0.0.1 ports (docker-proxy on Docker)"
            ),
            Some(b) => format!("peer: {b}, same parameters, same run"),
            None if !wanted => "peer skipped (--no-peer)".into(),
            None => "no redis-benchmark or valkey-benchmark installed; lab's figures only".into(),
        }
    }

    /// Runs lab's generator on its own single-threaded runtime (like redis-benchmark's one
    /// thread) and measures that thread's CPU.
    pub fn run_lab(&self, p: &BenchParams, test: Test, pipeline: u32) -> Result<BenchRow, String> {
        let spec = Spec {
            label: "lab".into(),
            mode: LoadMode::Closed,
            clients: p.clients,
            pipeline,
            keyspace: p.keyspace,
            value_size: p.value_size,
            read_ratio: test.read_ratio(),
            track_writes: false,
            op_timeout: Duration::from_secs(5),
            groups: vec![],
            duration: Some(Duration::from_secs(120)),
            requests: Some(p.requests),
        };
        let (routes, keys, password) = (
            self.routes.clone(),
            self.keys.clone(),
            self.password.clone(),
        );
        let (out, cpu) = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let cpu0 = cpu_of(libc::RUSAGE_THREAD);
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let out = rt.block_on(workload::run(workload::Run {
                routes,
                keys,
                spec,
                password,
                t0: Instant::now(),
                ids: Arc::new(IdSource::default()),
                live: None,
                stop: rx,
            }));
            Ok::<_, String>((out, cpu_of(libc::RUSAGE_THREAD) - cpu0))
        })
        .join()
        .map_err(|_| "the benchmark thread panicked".to_string())??;
        let roll = out.recorder.rollup(out.elapsed);
        let s = &roll.summary;
        Ok(BenchRow {
            tool: "lab".into(),
            test: test.name().into(),
            pipeline,
            ops_per_s: out.ops as f64 / out.elapsed.as_secs_f64().max(1e-9),
            p50_ms: s.p50_us.map(|u| u as f64 / 1000.0),
            p99_ms: s.p99_us.map(|u| u as f64 / 1000.0),
            cpu_s: cpu,
            wall_s: out.elapsed.as_secs_f64(),
            errors: s.errors + s.timeouts,
        })
    }

    /// Runs the peer tool with the same parameters (blocking: it is a child process).
    pub fn run_peer(&self, p: &BenchParams, test: Test, pipeline: u32) -> Result<BenchRow, String> {
        let bin = self
            .peer
            .as_deref()
            .ok_or("no redis-benchmark or valkey-benchmark installed")?;
        run_peer(
            bin,
            self.port,
            self.cluster,
            self.password.as_deref(),
            p,
            pipeline,
            test.name(),
        )
    }
}

fn peer_binary() -> Option<String> {
    ["valkey-benchmark", "redis-benchmark"]
        .iter()
        .find_map(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| b.to_string())
        })
}

fn run_peer(
    bin: &str,
    port: u16,
    cluster: bool,
    password: Option<&str>,
    p: &BenchParams,
    pipeline: u32,
    test: &str,
) -> Result<BenchRow, String> {
    let mut c = Command::new(bin);
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &p.clients.to_string(), "-n", &p.requests.to_string()])
        .args(["-t", test, "-P", &pipeline.to_string()])
        .args([
            "-r",
            &p.keyspace.to_string(),
            "-d",
            &p.value_size.to_string(),
            "--csv",
        ]);
    if cluster {
        c.arg("--cluster");
    }
    if let Some(pw) = password {
        // redis-benchmark ignores REDISCLI_AUTH (only redis-cli reads it), so `-a` it is; the
        // password is per instance, local, and gone with `lab down`.
        c.args(["-a", pw]);
    }
    let before = cpu_of(libc::RUSAGE_CHILDREN);
    let t = Instant::now();
    let o = c.output().map_err(|e| format!("cannot run {bin}: {e}"))?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_of(libc::RUSAGE_CHILDREN) - before;
    let text = String::from_utf8_lossy(&o.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text
        .lines()
        .find(|l| {
            l.to_uppercase()
                .starts_with(&format!("\"{}\"", test.to_uppercase()))
        })
        .ok_or_else(|| {
            format!(
                "{bin} printed no result for {test}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )
        })?;
    let f: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|x| x.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    Ok(BenchRow {
        tool: bin.to_string(),
        test: test.to_string(),
        pipeline,
        ops_per_s: f.first().copied().unwrap_or(0.0),
        p50_ms: f.get(3).copied(),
        p99_ms: f.get(5).copied(),
        cpu_s: cpu,
        wall_s: wall,
        errors: 0,
    })
}

pub async fn redis(
    engine: &Engine,
    inst: Arc<Instance>,
    p: &BenchParams,
) -> Result<BenchResult, String> {
    let prepared = Prepared::new(engine, inst, p.peer).await?;
    let mut rows = vec![];
    let mut ratios = vec![];
    for &pl in &p.pipelines {
        for test in [Test::Set, Test::Get] {
            let lab_row = prepared.run_lab(p, test, pl)?;
            if prepared.peer.is_some() {
                let prow = tokio::task::block_in_place(|| prepared.run_peer(p, test, pl))?;
                ratios.push((
                    test.name().to_string(),
                    pl,
                    lab_row.ops_per_s / prow.ops_per_s.max(1e-9),
                    lab_row.cpu_s / prow.cpu_s.max(1e-9),
                ));
                rows.push(lab_row);
                rows.push(prow);
            } else {
                rows.push(lab_row);
            }
        }
    }
    Ok(BenchResult {
        target: prepared.target.clone(),
        rows,
        ratios,
        peer_note: prepared.peer_note(p.peer),
    })
}
