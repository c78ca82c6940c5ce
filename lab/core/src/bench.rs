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

/// The node the benchmark drives: the first master (Sentinel) or cluster node, by host port.
fn target(inst: &Instance) -> Result<(String, u16, String), String> {
    let is_cluster = matches!(inst.topology.lab.verify, Some(Verify::Cluster { .. }));
    let s = inst
        .topology
        .services
        .iter()
        .find(|s| matches!(s.role, Role::Master | Role::ClusterNode))
        .ok_or("this topology has no Redis master to benchmark")?;
    let port = inst
        .host_port(&s.name, 6379)
        .ok_or("the master does not publish port 6379")?;
    Ok((s.name.clone(), port, s.group.clone().unwrap_or_default()))
        .map(|(n, p, g)| (n, p, if is_cluster { String::new() } else { g }))
}

/// Runs lab's generator on its own single-threaded runtime (like redis-benchmark's one
/// thread) and measures that thread's CPU.
fn run_lab(
    routes: Arc<Routes>,
    keys: Arc<KeyPlan>,
    spec: Spec,
    password: Option<String>,
) -> Result<(workload::Output, f64), String> {
    std::thread::spawn(move || {
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
        Ok((out, cpu_of(libc::RUSAGE_THREAD) - cpu0))
    })
    .join()
    .map_err(|_| "the benchmark thread panicked".to_string())?
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
    let (node, port, group) = target(&inst)?;
    let map = AddrMap::build(engine, &inst)
        .await
        .map_err(|e| e.to_string())?;
    let me = crate::workload::NodeAddr {
        node: node.clone().into(),
        port,
    };
    let discovery = Discovery::Pinned {
        node: me,
        group: if group.is_empty() {
            "bench".into()
        } else {
            group
        },
    };
    let routes = Routes::new(engine.clone(), inst.clone(), map, discovery).await?;
    let cluster = matches!(inst.topology.lab.verify, Some(Verify::Cluster { .. }));
    // On a cluster node, keys must hash to its own slots: use the shard's hash tags.
    let keys = if cluster {
        let cmap = AddrMap::build(engine, &inst)
            .await
            .map_err(|e| e.to_string())?;
        let seeds = crate::lifecycle::role_ports(&inst, Role::ClusterNode, 6379)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let croutes = Routes::new(
            engine.clone(),
            inst.clone(),
            cmap,
            Discovery::Cluster { seeds },
        )
        .await?;
        let plan = KeyPlan::cluster(&croutes);
        let shard = croutes
            .group_names
            .iter()
            .position(|g| Some(g) == inst.topology.service(&node).and_then(|s| s.group.as_ref()))
            .unwrap_or(0);
        plan.only(shard)
    } else {
        KeyPlan::plain(&routes.group_names)
    };
    let keys = Arc::new(keys);
    // redis-benchmark cannot be confined to one node's slots (its random keys hash anywhere and
    // draw MOVED), so on a cluster only lab's generator runs.
    let peer = if p.peer && !cluster {
        peer_binary()
    } else {
        None
    };
    let mut rows = vec![];
    let mut ratios = vec![];
    for &pl in &p.pipelines {
        for (test, read_ratio) in [("set", 0.0), ("get", 1.0)] {
            let spec = Spec {
                label: "lab".into(),
                mode: LoadMode::Closed,
                clients: p.clients,
                pipeline: pl,
                keyspace: p.keyspace,
                value_size: p.value_size,
                read_ratio,
                track_writes: false,
                op_timeout: Duration::from_secs(5),
                groups: vec![],
                duration: Some(Duration::from_secs(120)),
                requests: Some(p.requests),
            };
            let (out, cpu) = run_lab(routes.clone(), keys.clone(), spec, inst.password.clone())?;
            let roll = out.recorder.rollup(out.elapsed);
            let s = &roll.summary;
            let lab_row = BenchRow {
                tool: "lab".into(),
                test: test.into(),
                pipeline: pl,
                ops_per_s: out.ops as f64 / out.elapsed.as_secs_f64().max(1e-9),
                p50_ms: s.p50_us.map(|u| u as f64 / 1000.0),
                p99_ms: s.p99_us.map(|u| u as f64 / 1000.0),
                cpu_s: cpu,
                wall_s: out.elapsed.as_secs_f64(),
                errors: s.errors + s.timeouts,
            };
            if let Some(bin) = &peer {
                let prow = tokio::task::block_in_place(|| {
                    run_peer(bin, port, inst.password.as_deref(), p, pl, test)
                })?;
                ratios.push((
                    test.to_string(),
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
        target: format!("{node} (127.0.0.1:{port})"),
        rows,
        ratios,
        peer_note: match &peer {
            Some(b) => format!("peer: {b}, same parameters, same run"),
            None if cluster => "no peer on a cluster: redis-benchmark's keys cannot be kept on one node's slots; lab's figures only".into(),
            None if !p.peer => "peer skipped (--no-peer)".into(),
            None => "no redis-benchmark or valkey-benchmark installed; lab's figures only".into(),
        },
    })
}
