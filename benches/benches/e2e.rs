//! End-to-end: lab's load generator against redis-benchmark (or valkey-benchmark) in the same
//! run, at the same clients, pipeline depth, key space and value size, on a topology this bench
//! brings up itself (instance `bench-e2e`, Docker, offline images) and removes at the end.
//! Each criterion group is one (test, pipeline) case with two lines, `lab` and the peer, each
//! iteration being a fixed request count. The two tools run interleaved: every iteration of the
//! `lab` line is one round, lab and the peer back to back in alternating order (lab first, then
//! peer first, ...), and the peer's line reports the peer runs of those same rounds (it runs
//! further rounds only if criterion asks it for more iterations than were measured). The first
//! round of each case is criterion's warm-up, kept out of the ratios. After each group the
//! median per-round ratio lab ÷ peer of throughput and of CPU per operation (which criterion
//! cannot show) is printed with its range.
//!
//! Target: lab/peer throughput >= 1.0 and lab/peer CPU per op <= 1.0.
//! Fairness and resolution: see `lab_core::bench` (clock after connecting, same path, ns vs
//! ms clocks, getrusage CPU). Both tools reach the containers' own addresses where they route
//! (rootful Docker), so no docker-proxy sits in either path; the server runs on the same 2
//! cores as both tools.
//!
//! Knobs: LAB_E2E_TOPOLOGY (redis-sentinel; redis-cluster runs the cluster-aware client against
//! `--cluster`), LAB_E2E_REQUESTS_P1 (20000), LAB_E2E_REQUESTS_PN (100000), LAB_E2E_PORT_BASE,
//! LAB_E2E_PATH (auto, direct or published).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use lab_core::bench::{BenchParams, BenchRow, Case, Path, Prepared, Test};
use lab_core::engine::{Engine, EngineChoice};
use lab_core::lifecycle::{self, UpOptions};

const INSTANCE: &str = "bench-e2e";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn peer_installed() -> bool {
    ["valkey-benchmark", "redis-benchmark"].iter().any(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// The rounds of one case: measured pairs (lab, peer), and peer runs not yet reported on the
/// peer's criterion line.
#[derive(Default)]
struct Rounds {
    played: u32,
    pairs: Vec<(BenchRow, BenchRow)>,
    peer_queue: VecDeque<BenchRow>,
}

impl Rounds {
    /// Plays one round; the first one (criterion's warm-up) is kept out of the pairs.
    fn play(
        &mut self,
        prepared: &Prepared,
        p: &BenchParams,
        test: Test,
        pipeline: u32,
    ) -> (BenchRow, BenchRow) {
        let lab_first = self.played & 1 == 0;
        let (l, k) = prepared
            .round(p, test, pipeline, lab_first)
            .expect("lab and the peer ran");
        if self.played > 0 {
            self.pairs.push((l.clone(), k.clone()));
        }
        self.played += 1;
        (l, k)
    }
}

struct Down<'a> {
    rt: &'a tokio::runtime::Runtime,
    engine: &'a Engine,
    state: &'a std::path::Path,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let quiet = |_: &str| {};
        if let Err(e) = self.rt.block_on(lifecycle::down(
            self.engine,
            INSTANCE,
            true,
            self.state,
            &quiet,
        )) {
            eprintln!("e2e: could not remove {INSTANCE}: {e}");
        }
    }
}

/// One iteration's time: the fixed request count at the rate the tool measured.
fn as_time(r: &BenchRow, requests: u64) -> Duration {
    Duration::from_secs_f64(requests as f64 / r.ops_per_s.max(1e-9))
}

fn bench_e2e(c: &mut Criterion) {
    if !std::path::Path::new("/var/run/docker.sock").exists() {
        eprintln!("SKIP e2e: no Docker engine (/var/run/docker.sock)");
        return;
    }
    if !peer_installed() {
        eprintln!("SKIP e2e: neither redis-benchmark nor valkey-benchmark is installed");
        return;
    }
    let topology = std::env::var("LAB_E2E_TOPOLOGY").unwrap_or_else(|_| "redis-sentinel".into());
    let p1 = env_or("LAB_E2E_REQUESTS_P1", 20_000u64);
    let pn = env_or("LAB_E2E_REQUESTS_PN", 100_000u64);
    let port_base = env_or("LAB_E2E_PORT_BASE", 26_000u16);
    let path = env_or("LAB_E2E_PATH", Path::Auto);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let state = tempfile::tempdir().expect("state dir");
    let engine = match rt.block_on(Engine::connect(&EngineChoice::from_env(Some(
        "docker".into(),
    )))) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("SKIP e2e: cannot reach Docker: {e}");
            return;
        }
    };
    let opts = |port_base: u16| UpOptions {
        topology: topology.clone(),
        instance: Some(INSTANCE.into()),
        profile: None,
        flavor: None,
        sets: vec![],
        images: "offline".parse().expect("a known image mode"),
        port_base: Some(port_base),
        timeout: Duration::from_secs(180),
        project: root(),
        state_root: state.path().to_path_buf(),
    };
    let quiet = |_: &str| {};
    // Removes the instance however this function ends, a failed run's panic included.
    let _down = Down {
        rt: &rt,
        engine: &engine,
        state: state.path(),
    };
    // The port range lies inside Linux's ephemeral range, so a client socket elsewhere on
    // the host can hold one of the ports for a moment: try two further bases before failing.
    let mut last = String::new();
    let mut prepared = None;
    for base in [port_base, port_base + 100, port_base + 200] {
        match rt.block_on(async {
            let (inst, criteria) = lifecycle::up(&engine, &opts(base), &quiet)
                .await
                .map_err(|e| e.to_string())?;
            if !criteria.all_ok() {
                return Err(format!("{topology} came up unhealthy"));
            }
            Prepared::new(&engine, Arc::new(inst), true, path).await
        }) {
            Ok(p) => {
                prepared = Some(p);
                break;
            }
            Err(e) => {
                let busy = e.contains("in use");
                last = e;
                let _ = rt.block_on(lifecycle::down(
                    &engine,
                    INSTANCE,
                    true,
                    state.path(),
                    &quiet,
                ));
                if !busy {
                    break;
                }
            }
        }
    }
    let Some(prepared) = prepared else {
        panic!("e2e: cannot bring {topology} up as {INSTANCE}: {last}");
    };
    println!(
        "e2e on {topology}: {}; {}; {}",
        prepared.target,
        prepared.peer_note(true),
        prepared.path_note()
    );
    let peer = prepared.peer.clone().unwrap_or_default();
    let mut summary = vec![];
    for (test, pipeline, requests) in [
        (Test::Set, 1, p1),
        (Test::Get, 1, p1),
        (Test::Set, 16, pn),
        (Test::Get, 16, pn),
    ] {
        let params = BenchParams {
            requests,
            ..BenchParams::default()
        };
        let rounds = Mutex::new(Rounds::default());
        let mut g = c.benchmark_group(format!("e2e_{topology}/{}_P{pipeline}", test.name()));
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements(requests));
        g.bench_function("lab", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut r = rounds.lock().expect("rounds");
                for _ in 0..iters {
                    let (l, k) = r.play(&prepared, &params, test, pipeline);
                    total += as_time(&l, requests);
                    r.peer_queue.push_back(k);
                }
                total
            })
        });
        g.bench_function(&peer, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut r = rounds.lock().expect("rounds");
                for _ in 0..iters {
                    let k = match r.peer_queue.pop_front() {
                        Some(k) => k,
                        None => r.play(&prepared, &params, test, pipeline).1,
                    };
                    total += as_time(&k, requests);
                }
                total
            })
        });
        g.finish();
        let r = rounds.into_inner().expect("rounds");
        let case = Case::of(test, pipeline, &r.pairs);
        let errors: u64 = r.pairs.iter().map(|(l, _)| l.errors).sum();
        let (t, u) = (case.throughput_ratio, case.cpu_ratio);
        let line = format!(
            "{} -P {pipeline} -c {} -n {requests}, {} rounds: lab {:.0} ops/s, {:.2} µs CPU/op ({} errors); {peer} {:.0} ops/s, {:.2} µs CPU/op; lab/peer throughput {:.2}x (range {:.2}-{:.2}), CPU per op {:.2}x (range {:.2}-{:.2})",
            test.name(),
            params.clients,
            case.rounds,
            case.lab_ops_per_s.median,
            case.lab_cpu_us_per_op.median,
            errors,
            case.peer_ops_per_s.median,
            case.peer_cpu_us_per_op.median,
            t.median,
            t.min,
            t.max,
            u.median,
            u.min,
            u.max,
        );
        println!("{line}");
        summary.push(line);
    }
    println!("\ne2e summary ({topology}; {}; medians of per-round figures, ranges over rounds; resolution in lab_core::bench):", prepared.path_note());
    for l in summary {
        println!("  {l}");
    }
}

criterion_group!(benches, bench_e2e);
criterion_main!(benches);
