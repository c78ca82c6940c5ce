//! End-to-end: lab's load generator against redis-benchmark (or valkey-benchmark) in the same
//! run, at the same clients, pipeline depth, key space and value size, on a topology this bench
//! brings up itself (instance `bench-e2e`, Docker, offline images) and removes at the end.
//! Each criterion group is one (test, pipeline) case with two lines, `lab` and the peer, each
//! iteration being a fixed request count, so criterion's times and throughputs sit side by
//! side; the CPU ratio (which criterion cannot show) is printed after each group.
//!
//! Target: lab/peer throughput >= 1.0 and lab/peer CPU <= 1.0.
//! Resolution: lab's time from `Instant` (ns) over its run; the peer's from the rate it prints
//! (its own millisecond clock over the run); CPU from getrusage (µs), lab's runtime thread
//! against the peer process. On Docker the published ports go through docker-proxy, whose CPU
//! is in neither figure but is shared by both, and the server runs on the same 2 cores.
//!
//! Knobs: LAB_E2E_TOPOLOGY (redis-sentinel; redis-cluster runs the cluster-aware client against
//! `--cluster`), LAB_E2E_REQUESTS_P1 (20000), LAB_E2E_REQUESTS_PN (100000), LAB_E2E_PORT_BASE.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use lab_core::bench::{BenchParams, BenchRow, Prepared, Test};
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

/// Per-run figures of one tool in one case, for the ratios printed after the group.
#[derive(Default)]
struct Tally {
    rates: Vec<f64>,
    cpu_s: f64,
    ops: f64,
    errors: u64,
}

impl Tally {
    fn add(&mut self, r: &BenchRow, requests: u64) {
        self.rates.push(r.ops_per_s);
        self.cpu_s += r.cpu_s;
        self.ops += requests as f64;
        self.errors += r.errors;
    }

    fn median_rate(&self) -> f64 {
        let mut v = self.rates.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    /// CPU microseconds per operation.
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu_s * 1e6 / self.ops.max(1.0)
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
            Prepared::new(&engine, Arc::new(inst), true).await
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
        "e2e on {topology}: {}; {}",
        prepared.target,
        prepared.peer_note(true)
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
        let lab_t = Mutex::new(Tally::default());
        let peer_t = Mutex::new(Tally::default());
        let mut g = c.benchmark_group(format!("e2e_{topology}/{}_P{pipeline}", test.name()));
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements(requests));
        g.bench_function("lab", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = prepared
                        .run_lab(&params, test, pipeline)
                        .expect("lab's generator ran");
                    total += as_time(&r, requests);
                    lab_t.lock().expect("tally").add(&r, requests);
                }
                total
            })
        });
        g.bench_function(&peer, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = prepared
                        .run_peer(&params, test, pipeline)
                        .expect("the peer ran");
                    total += as_time(&r, requests);
                    peer_t.lock().expect("tally").add(&r, requests);
                }
                total
            })
        });
        g.finish();
        let (l, k) = (
            lab_t.into_inner().expect("tally"),
            peer_t.into_inner().expect("tally"),
        );
        let line = format!(
            "{} -P {pipeline} -c {} -n {requests}: lab {:.0} ops/s, {:.2} µs CPU/op ({} runs, {} errors); {peer} {:.0} ops/s, {:.2} µs CPU/op ({} runs); lab/peer throughput {:.2}x, CPU per op {:.2}x",
            test.name(),
            params.clients,
            l.median_rate(),
            l.cpu_us_per_op(),
            l.rates.len(),
            l.errors,
            k.median_rate(),
            k.cpu_us_per_op(),
            k.rates.len(),
            l.median_rate() / k.median_rate().max(1e-9),
            l.cpu_us_per_op() / k.cpu_us_per_op().max(1e-9),
        );
        println!("{line}");
        summary.push(line);
    }
    println!("\ne2e summary ({topology}; throughput: median of runs; CPU: total over runs; resolution in the bench's header):");
    for l in summary {
        println!("  {l}");
    }
}

criterion_group!(benches, bench_e2e);
criterion_main!(benches);
