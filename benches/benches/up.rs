//! End-to-end: time from `lab up redis-sentinel` to every success criterion green, against
//! the peer `docker compose up -d --wait` (docker-compose v1 has no --wait, so its
//! equivalent: `up -d`, then poll until every container with a healthcheck is healthy) on
//! the same compose file and the same offline images, alternating in one run. The figure
//! that matters is the ratio lab / compose (target <= 1.0 although lab also verifies the
//! topology). Needs a Docker engine and `lab images build valkey redis-exporter`.
//! Resolution: wall clock (Instant), the health poll runs every 100 ms.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

static TIMES: Mutex<(Vec<Duration>, Vec<Duration>)> = Mutex::new((Vec::new(), Vec::new()));

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn lab_bin() -> PathBuf {
    let p = root().join("target/release/lab");
    if p.exists() {
        p
    } else {
        root().join("target/debug/lab")
    }
}

fn run(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn lab(state: &std::path::Path, args: &[&str]) -> bool {
    run(Command::new(lab_bin())
        .args(args)
        .current_dir(root())
        .env("LAB_STATE_DIR", state)
        .env("LAB_ENGINE", "docker")
        .env("LAB_IMAGES", "offline"))
}

fn compose(args: &[&str]) -> Command {
    let mut c = Command::new("docker-compose");
    c.args(["-p", "labbenchcompose", "-f"])
        .arg(root().join("compose/redis-sentinel.yaml"))
        .args(args)
        .env("LAB_PASSWORD", "benchbenchbenchbenchbenchbench12")
        .env("LAB_SERVER_IMAGE", "localhost/lab/valkey:8.1")
        .env("LAB_EXPORTER_IMAGE", "localhost/lab/redis-exporter:1");
    c
}

fn compose_wait_healthy(deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                "label=com.docker.compose.project=labbenchcompose",
                "--format",
                "{{.Status}}",
            ])
            .output();
        if let Ok(o) = out {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() == 10
                && lines.iter().all(|l| {
                    l.contains("(healthy)") || (l.starts_with("Up") && !l.contains("health"))
                })
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn bench_up(c: &mut Criterion) {
    if !std::path::Path::new("/var/run/docker.sock").exists() || !lab_bin().exists() {
        eprintln!("SKIP: needs Docker and a built lab binary (cargo build -p lab)");
        return;
    }
    let state = tempfile::tempdir().expect("state");
    let mut g = c.benchmark_group("up_redis_sentinel");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.bench_function("lab_up_verified", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                assert!(
                    lab(
                        state.path(),
                        &[
                            "up",
                            "redis-sentinel",
                            "--name",
                            "labbench",
                            "--port-base",
                            "31000"
                        ]
                    ),
                    "lab up failed"
                );
                let d = t.elapsed();
                total += d;
                if let Ok(mut v) = TIMES.lock() {
                    v.0.push(d);
                }
                lab(
                    state.path(),
                    &["down", "redis-sentinel", "--name", "labbench", "--volumes"],
                );
            }
            total
        })
    });
    g.bench_function("compose_up_wait", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                assert!(run(&mut compose(&["up", "-d"])), "docker-compose up failed");
                assert!(
                    compose_wait_healthy(Duration::from_secs(180)),
                    "compose never became healthy"
                );
                let d = t.elapsed();
                total += d;
                if let Ok(mut v) = TIMES.lock() {
                    v.1.push(d);
                }
                run(&mut compose(&["down", "-v", "-t", "1"]));
            }
            total
        })
    });
    g.finish();
    if let Ok(v) = TIMES.lock() {
        let med = |xs: &[Duration]| {
            let mut s = xs.to_vec();
            s.sort();
            s.get(s.len() / 2).copied().unwrap_or_default()
        };
        if !v.0.is_empty() && !v.1.is_empty() {
            let (l, k) = (med(&v.0), med(&v.1));
            println!(
                "up_redis_sentinel: lab {:.2}s (verified) vs compose {:.2}s (healthy), median of {} / {} runs: ratio lab/compose = {:.2} (resolution 100 ms poll)",
                l.as_secs_f64(), k.as_secs_f64(), v.0.len(), v.1.len(),
                l.as_secs_f64() / k.as_secs_f64()
            );
        }
    }
}

criterion_group!(benches, bench_up);
criterion_main!(benches);
