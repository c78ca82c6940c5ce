//! Issue 4, the `tc netem` path: where the kernel has `sch_netem` (as `lab doctor` finds by
//! trying it), latency between two nodes is a netem qdisc behind a prio band and a u32 filter
//! on each end; a ping between them slows by the injected amount and is fast again after
//! `lab heal`, which leaves no lab qdisc behind. Where the kernel lacks it the test says so,
//! with the detection's reason, and runs nothing.

mod common;

use common::*;

const TOPO: &str = "redis-sentinel";

/// Median of `n` PING round trips from inside `from` to `ip`, timed in the container with
/// `date +%s%N` around each cli call (the cli's start-up is in every sample, before and
/// after alike; nanosecond clock).
fn ping_ms(lab: &Lab, from: &str, ip: &str, n: u32) -> f64 {
    let out = lab.engine_cli(&[
        "exec",
        from,
        "sh",
        "-c",
        &format!(
            "cli=$(command -v valkey-cli || command -v redis-cli); for i in $(seq 1 {n}); do \
               a=$(date +%s%N); $cli -h {ip} -a \"$LAB_PASSWORD\" --no-auth-warning ping >/dev/null; \
               b=$(date +%s%N); echo $(( (b - a) / 1000 )); done"
        ),
    ]);
    let mut v: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .collect();
    assert!(!v.is_empty(), "no samples: {out}");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] / 1000.0
}

fn ip_of(lab: &Lab, container: &str) -> String {
    lab.engine_cli(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ])
    .trim()
    .to_string()
}

#[test]
fn netem_latency_between_two_nodes() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let d: serde_json::Value =
            serde_json::from_str(&lab.ok(&["doctor", "--json"])).expect("doctor json");
        let netem = &d["capabilities"]["netem"];
        if netem["supported"] != true {
            eprintln!(
                "SKIP netem path: {}",
                netem["how"].as_str().unwrap_or("no reason given")
            );
            continue;
        }
        let name = format!("dm-ne-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: TOPO.into(),
            name: name.clone(),
        };
        let n = name.as_str();
        let base = if engine.name == "docker" {
            "28800"
        } else {
            "28850"
        };
        lab.ok(&[
            "up",
            TOPO,
            "--name",
            n,
            "--port-base",
            base,
            "--timeout",
            "300s",
        ]);
        let (c1, c2) = (format!("{n}-redis-1"), format!("{n}-redis-2"));
        let ip1 = ip_of(&lab, &c1);
        let before = ping_ms(&lab, &c2, &ip1, 9);
        let out = lab.ok(&[
            "fault", "latency", "redis-2", "--to", "redis-1", "--delay", "100ms", "-t", TOPO,
            "--name", n,
        ]);
        assert!(out.contains("mechanism: tc netem"), "{out}");
        let during = ping_ms(&lab, &c2, &ip1, 9);
        eprintln!(
            "{}: netem 100 ms each way: PING {before:.1} -> {during:.1} ms",
            engine.name
        );
        // Each direction is delayed 100 ms and a cli PING needs a TCP handshake and the
        // command, three crossings at least: 200 ms is the floor the kernel guarantees.
        assert!(during - before >= 190.0, "{before:.1} -> {during:.1} ms");
        lab.ok(&["heal", TOPO, "--name", n]);
        for c in [&c1, &c2] {
            let pid = lab.engine_cli(&["inspect", "--format", "{{.State.Pid}}", c]);
            let q = std::process::Command::new("nsenter")
                .args(["-t", pid.trim(), "-n", "tc", "qdisc", "show"])
                .output()
                .expect("tc");
            let q = String::from_utf8_lossy(&q.stdout);
            assert!(!q.contains("netem") && !q.contains("prio"), "{c}: {q}");
        }
        let after = ping_ms(&lab, &c2, &ip1, 9);
        assert!(
            after < before + 50.0,
            "{before:.1} -> {after:.1} ms after heal"
        );
    }
}
