//! `lab bench redis`: the seed's benchmark (`redis-benchmark -c 50 -n 100000 -t get,set`, plus
//! pipelined variants) driven by lab's own generator against a running topology, and, when
//! `redis-benchmark`/`valkey-benchmark` is installed, the same parameters through it in the
//! same run, so the figures come as ratios. Each generator's CPU time is measured beside its
//! ops/s (on 2 cores the generator, not the server, is often the bottleneck).
//!
//! Like for like: the same clients, pipeline depth, key space (`-r`) and value size (`-d 3`);
//! on a cluster the same number of connections, spread over the masters; both tools on the
//! same path to the servers (the containers' own addresses where they route, as
//! `redis-benchmark --cluster` uses). The tools run interleaved, a warm-up run of each and
//! then rounds lab/peer, peer/lab, ..., and each case reports the median per-round ratio with
//! its range. Lab's clock starts once its clients have connected and authenticated;
//! redis-benchmark's once it has created its clients (connects issued; its AUTH goes out with
//! the first requests, inside its window: one round trip per client, ~0.1% of a run).
//!
//! Resolution: lab's time from `Instant` (ns); the peer's rate from its own millisecond clock
//! (±1 ms: ±0.1% on a 1 s run). CPU from getrusage (the kernel's run-time accounting, given
//! in µs): lab's runtime thread over its run, connecting included; the peer's whole process,
//! start-up included (a few ms). On a shared host the spread between rounds is far larger
//! than either resolution; it is reported beside every median.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::lifecycle::addr::AddrMap;
use crate::lifecycle::Instance;
use crate::topology::{Role, Verify};
use crate::workload::{self, Discovery, IdSource, KeyPlan, LoadMode, Routes, Spec};

/// How the generators reach the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Path {
    /// The containers' own addresses when they route from the host (rootful Docker and
    /// Podman on Linux), else the published ports.
    #[default]
    Auto,
    /// The containers' own addresses on lab's network, as `redis-benchmark --cluster` reaches
    /// cluster nodes (from CLUSTER NODES); no docker-proxy or rootlessport in the path.
    Direct,
    /// The published 127.0.0.1 ports, as clients on the host reach the lab.
    Published,
}

impl std::str::FromStr for Path {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Path::Auto),
            "direct" => Ok(Path::Direct),
            "published" => Ok(Path::Published),
            _ => Err(format!("unknown path {s:?}: use auto, direct or published")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchParams {
    pub clients: u32,
    pub requests: u64,
    pub pipelines: Vec<u32>,
    pub value_size: usize,
    pub keyspace: u64,
    /// Run the peer (redis-benchmark) too when installed.
    pub peer: bool,
    /// Measured rounds per case, each one run of lab and one of the peer, back to back in
    /// alternating order, after one warm-up run of each.
    pub rounds: u32,
    pub path: Path,
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
            rounds: 5,
            path: Path::Auto,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    pub tool: String,
    pub test: String,
    pub pipeline: u32,
    /// Measured round (1-based).
    pub round: u32,
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU seconds the generator used (user + system), connecting included.
    pub cpu_s: f64,
    pub wall_s: f64,
    pub errors: u64,
}

impl BenchRow {
    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu_s * 1e6 / (self.ops.max(1) as f64)
    }
}

/// Median and range of per-round values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// One (test, pipeline) case: per-round ratios lab ÷ peer, each from two runs back to back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Case {
    pub test: String,
    pub pipeline: u32,
    pub rounds: usize,
    pub lab_ops_per_s: Spread,
    pub peer_ops_per_s: Spread,
    pub lab_cpu_us_per_op: Spread,
    pub peer_cpu_us_per_op: Spread,
    /// lab ops/s ÷ peer ops/s (> 1: lab faster).
    pub throughput_ratio: Spread,
    /// lab CPU per op ÷ peer CPU per op (< 1: lab cheaper).
    pub cpu_ratio: Spread,
}

impl Case {
    pub fn of(test: Test, pipeline: u32, pairs: &[(BenchRow, BenchRow)]) -> Case {
        let f = |g: &dyn Fn(&(BenchRow, BenchRow)) -> f64| {
            Spread::of(&pairs.iter().map(g).collect::<Vec<_>>())
        };
        Case {
            test: test.name().into(),
            pipeline,
            rounds: pairs.len(),
            lab_ops_per_s: f(&|(l, _)| l.ops_per_s),
            peer_ops_per_s: f(&|(_, k)| k.ops_per_s),
            lab_cpu_us_per_op: f(&|(l, _)| l.cpu_us_per_op()),
            peer_cpu_us_per_op: f(&|(_, k)| k.cpu_us_per_op()),
            throughput_ratio: f(&|(l, k)| l.ops_per_s / k.ops_per_s),
            cpu_ratio: f(&|(l, k)| l.cpu_us_per_op() / k.cpu_us_per_op()),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub target: String,
    /// Every measured run (warm-ups excluded).
    pub rows: Vec<BenchRow>,
    /// Per case, when the peer ran.
    pub cases: Vec<Case>,
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
    /// Where the peer is pointed (on a cluster, its seed node).
    peer_addr: SocketAddr,
    /// Both generators reach the containers' own addresses.
    pub direct: bool,
    /// The peer tool, when installed and wanted.
    pub peer: Option<String>,
    pub target: String,
}

/// Whether a TCP connection to `addr` opens within a second.
async fn routes_to(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

impl Prepared {
    /// Sentinel topologies: the first master, pinned (like redis-benchmark `-h -p`). Cluster
    /// topologies: every master through the cluster-aware client (slot map, MOVED/ASK), its
    /// clients spread over the masters one connection each, like `redis-benchmark --cluster`.
    pub async fn new(
        engine: &Engine,
        inst: Arc<Instance>,
        peer: bool,
        path: Path,
    ) -> Result<Self, String> {
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
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let container = map.container_addr(&s.name, port);
        let direct = match (path, container) {
            (Path::Published, _) => false,
            (Path::Auto, Some(a)) => routes_to(a).await,
            (Path::Auto, None) => false,
            (Path::Direct, Some(a)) if routes_to(a).await => true,
            (Path::Direct, _) => {
                return Err(format!(
                    "the container addresses of {} do not route from this host (rootless Podman or macOS); use --path published",
                    inst.name
                ))
            }
        };
        let peer_addr = match container {
            Some(a) if direct => a,
            _ => published,
        };
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
            routes.set_direct(direct);
            let keys = KeyPlan::cluster(&routes);
            let masters = routes
                .snapshot()
                .masters
                .iter()
                .flatten()
                .map(|m| format!("{} ({})", m.node, routes.socket_addr(m)))
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
            routes.set_direct(direct);
            let keys = KeyPlan::plain(&routes.group_names);
            (routes, keys, format!("{} ({peer_addr})", s.name))
        };
        Ok(Prepared {
            routes,
            keys: Arc::new(keys),
            password: inst.password.clone(),
            cluster,
            peer_addr,
            direct,
            peer: if peer { peer_binary() } else { None },
            target,
        })
    }

    /// How both tools reach the servers, and whether that is the same path.
    pub fn path_note(&self) -> String {
        match (self.direct, self.cluster) {
            (true, _) => "both tools connect to the containers' own addresses on lab's network (no docker-proxy/rootlessport in the path)".into(),
            (false, false) => "both tools connect through the published 127.0.0.1 port (docker-proxy on Docker, rootlessport on rootless Podman)".into(),
            (false, true) => "NOT like for like: lab goes through the published 127.0.0.1 ports while the peer reaches the containers at the addresses CLUSTER NODES gives (use --path direct where they route)".into(),
        }
    }

    pub fn peer_note(&self, wanted: bool) -> String {
        match &self.peer {
            Some(b) if self.cluster => format!("peer: {b} --cluster, same parameters, same run"),
            Some(b) => format!("peer: {b}, same parameters, same run"),
            None if !wanted => "peer skipped (--no-peer)".into(),
            None => "no redis-benchmark or valkey-benchmark installed; lab's figures only".into(),
        }
    }

    /// Runs lab's generator on its own single-threaded runtime (like redis-benchmark's one
    /// thread) and measures that thread's CPU. Its clock starts once every client has
    /// connected and authenticated (redis-benchmark starts its own once its clients exist).
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
            connect_first: true,
            sticky_groups: true,
            // Whole-run figures only: one bucket per client for the whole run.
            bucket_width: Duration::from_secs(120),
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
            round: 0,
            ops: out.ops,
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
            self.peer_addr,
            self.cluster,
            self.password.as_deref(),
            p,
            pipeline,
            test.name(),
        )
    }

    /// One round: lab and the peer back to back, lab first when `lab_first`; returns (lab, peer).
    pub fn round(
        &self,
        p: &BenchParams,
        test: Test,
        pipeline: u32,
        lab_first: bool,
    ) -> Result<(BenchRow, BenchRow), String> {
        if lab_first {
            let l = self.run_lab(p, test, pipeline)?;
            Ok((l, self.run_peer(p, test, pipeline)?))
        } else {
            let k = self.run_peer(p, test, pipeline)?;
            Ok((self.run_lab(p, test, pipeline)?, k))
        }
    }

    /// One case: a warm-up run of each tool (a quarter of the requests, discarded), then
    /// `p.rounds` rounds in alternating order (lab first, peer first, ...), so drift in the
    /// host's load falls on both alike. Without a peer, lab's runs only.
    pub fn compare(
        &self,
        p: &BenchParams,
        test: Test,
        pipeline: u32,
    ) -> Result<(Vec<BenchRow>, Option<Case>), String> {
        let warm = BenchParams {
            requests: (p.requests / 4).max(1000),
            ..p.clone()
        };
        let rounds = p.rounds.max(1);
        let mut rows = vec![];
        if self.peer.is_none() {
            self.run_lab(&warm, test, pipeline)?;
            for r in 1..=rounds {
                let mut l = self.run_lab(p, test, pipeline)?;
                l.round = r;
                rows.push(l);
            }
            return Ok((rows, None));
        }
        self.round(&warm, test, pipeline, true)?;
        let mut pairs = vec![];
        for r in 1..=rounds {
            let (mut l, mut k) = self.round(p, test, pipeline, r % 2 == 1)?;
            (l.round, k.round) = (r, r);
            rows.push(l.clone());
            rows.push(k.clone());
            pairs.push((l, k));
        }
        Ok((rows, Some(Case::of(test, pipeline, &pairs))))
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
    addr: SocketAddr,
    cluster: bool,
    password: Option<&str>,
    p: &BenchParams,
    pipeline: u32,
    test: &str,
) -> Result<BenchRow, String> {
    let mut c = Command::new(bin);
    c.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
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
        round: 0,
        ops: p.requests,
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
    let prepared = Prepared::new(engine, inst, p.peer, p.path).await?;
    let mut rows = vec![];
    let mut cases = vec![];
    for &pl in &p.pipelines {
        for test in [Test::Set, Test::Get] {
            let (r, case) = tokio::task::block_in_place(|| prepared.compare(p, test, pl))?;
            rows.extend(r);
            cases.extend(case);
        }
    }
    Ok(BenchResult {
        target: prepared.target.clone(),
        rows,
        cases,
        peer_note: format!("{}; {}", prepared.peer_note(p.peer), prepared.path_note()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_and_range() {
        let s = Spread::of(&[1.2, 0.9, 1.0, f64::NAN, 1.1]);
        assert_eq!((s.median, s.min, s.max), (1.05, 0.9, 1.2));
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert!(Spread::of(&[]).median.is_nan());
    }
}
