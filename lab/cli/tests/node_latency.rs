//! Issue 4, latency per node without netem: `lab fault latency <node> --delay D` (no `--to`)
//! slows every link of the node through lab's proxy, both the connections it opens and those
//! its peers open to it, and no other link. Measured from inside the containers: six round
//! trips on one connection (AUTH and 5 PINGs) take 6 x 2 x D more to or from the node and
//! nothing more between two other nodes. A `lab` killed while holding it leaves its rules in
//! every namespace it touched; `lab heal` removes them all and the links are fast again.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOPO: &str = "redis-sentinel";
const DELAY_MS: u64 = 100;

fn up(lab: &Lab, inst: &str, bases: &[u16]) {
    for b in bases {
        let o = lab.run(&["up", TOPO, "--name", inst, "--port-base", &b.to_string()]);
        if o.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(err.contains("in use"), "lab up failed: {err}");
        lab.run(&["down", TOPO, "--name", inst]);
    }
    panic!("no free port base among {bases:?}");
}

/// Milliseconds for AUTH + 5 PINGs on one connection from inside `from` to `to`:6379, timed
/// in the container (the engine's exec start-up is not counted); `None` if it failed.
fn six_round_trips(lab: &Lab, inst: &str, from: &str, to: &str) -> Option<u64> {
    let out = Command::new(&lab.engine.name)
        .args([
            "exec",
            &format!("{inst}-{from}"),
            "sh",
            "-c",
            &format!(
                "cli=$(command -v valkey-cli || command -v redis-cli); s=$(date +%s%N); \
                 out=$(timeout 10 \"$cli\" -h {to} -p 6379 -a \"$LAB_PASSWORD\" \
                 --no-auth-warning -r 5 PING 2>&1); e=$(date +%s%N); \
                 case \"$out\" in *PONG*) echo $(( (e - s) / 1000000 ));; *) echo \"failed: $out\";; esac"
            ),
        ])
        .output()
        .expect("engine exec");
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The median of three, to keep one slow exec on a busy host out of the figure.
fn median3(lab: &Lab, inst: &str, from: &str, to: &str) -> Option<u64> {
    let mut v = vec![];
    for _ in 0..3 {
        v.push(six_round_trips(lab, inst, from, to)?);
    }
    v.sort_unstable();
    Some(v[1])
}

#[test]
fn node_latency_slows_every_link_of_the_node_and_heals() {
    for (i, engine) in engines().into_iter().enumerate() {
        let lab = Lab::new(&engine);
        let inst = format!("nl-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: TOPO.into(),
            name: inst.clone(),
        };
        let e = &engine.name;
        let b = 29000 + 200 * i as u16;
        up(&lab, &inst, &[b, b + 50, b + 100]);
        // Links of redis-1 both ways (its replica and a Sentinel open to it; it opens to
        // redis-4), and one link it is not on.
        let links = [
            ("redis-2", "redis-1", true),
            ("sentinel-1", "redis-1", true),
            ("redis-1", "redis-4", true),
            ("redis-3", "redis-4", false),
        ];
        let base: Vec<u64> = links
            .iter()
            .map(|(f, t, _)| {
                median3(&lab, &inst, f, t).unwrap_or_else(|| panic!("{e}: {f} -> {t}"))
            })
            .collect();

        let mut holder = lab
            .cmd(&[
                "fault",
                "latency",
                "redis-1",
                "--delay",
                &format!("{DELAY_MS}ms"),
                "--for",
                "300s",
                "-t",
                TOPO,
                "--name",
                &inst,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lab fault latency");
        let end = Instant::now() + Duration::from_secs(30);
        while journal_len(&lab, &inst) == 0 || lab_chains(&lab, &inst).is_empty() {
            assert!(
                Instant::now() < end,
                "{e}: node latency not applied in 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The DNAT is in place in redis-1 and in each of its peers' namespaces.
        let chains = lab_chains(&lab, &inst);
        for n in ["redis-1", "redis-2", "redis-4", "sentinel-1"] {
            assert!(
                chains
                    .iter()
                    .any(|c| c.starts_with(&format!("{inst}-{n} nat"))),
                "{e}: no DNAT in {n}: {chains:?}"
            );
        }
        // Six round trips, each 2 x DELAY more: at least 95% of that (the proxy's timer is
        // 1 ms-grained and never early), at most 800 ms over it (a loaded 2-core host).
        let injected = 6 * 2 * DELAY_MS;
        for ((f, t, slowed), b0) in links.iter().zip(&base) {
            let got = median3(&lab, &inst, f, t).unwrap_or_else(|| panic!("{e}: {f} -> {t}"));
            let extra = got.saturating_sub(*b0);
            eprintln!("{e}: {f} -> {t}: {got} ms, base {b0} ms, +{extra} ms");
            if *slowed {
                assert!(
                    extra >= injected * 95 / 100 && extra <= injected + 800,
                    "{e}: {f} -> {t} took {got} ms, base {b0} ms: +{extra} ms, {injected} ms injected"
                );
            } else {
                assert!(
                    extra < 150,
                    "{e}: {f} -> {t} is not a link of redis-1 but took {got} ms, base {b0} ms"
                );
            }
        }

        // `lab` dies holding the proxies: the rules stay (journalled), nothing answers behind
        // them; `lab heal` removes every one and the links are fast again.
        holder.kill().expect("kill -9 lab");
        let _ = holder.wait();
        assert!(!lab_chains(&lab, &inst).is_empty(), "{e}");
        assert_eq!(journal_len(&lab, &inst), 1, "{e}");
        let out = lab.ok(&["heal", TOPO, "--name", &inst]);
        assert!(
            out.contains("latency on every link of redis-1"),
            "{e}: {out}"
        );
        assert_eq!(lab_chains(&lab, &inst), Vec::<String>::new(), "{e}");
        assert_eq!(journal_len(&lab, &inst), 0, "{e}");
        for ((f, t, _), b0) in links.iter().zip(&base) {
            let end = Instant::now() + Duration::from_secs(20);
            loop {
                let got = six_round_trips(&lab, &inst, f, t);
                if got.is_some_and(|g| g < b0 + 150) {
                    break;
                }
                assert!(
                    Instant::now() < end,
                    "{e}: {f} -> {t} still slow after heal: {got:?} ms, base {b0} ms"
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        let tl = std::fs::read_to_string(lab.state.path().join(&inst).join("timeline.jsonl"))
            .unwrap_or_default();
        assert!(
            tl.contains("latency on every link of redis-1 100ms") && tl.contains("fault_healed"),
            "{e}: {tl}"
        );
    }
}
