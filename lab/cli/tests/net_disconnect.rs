//! Issue 4, the network-disconnect fallback of `isolate`, forced with
//! `LAB_NET_MECHANISM=disconnect` (on a host without iptables in container namespaces it is
//! chosen by itself): the node is taken off the topology's network and cannot be reached from
//! its peer or the Sentinels, nor through its published port; heal puts it back at the same
//! address; the choice is printed, journalled and on the timeline; a `lab` killed while
//! holding the fault leaves it journalled and `lab heal` reconnects the node.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOPO: &str = "redis-sentinel";

fn with_disconnect(lab: &Lab, args: &[&str]) -> Output {
    lab.cmd(args)
        .env("LAB_NET_MECHANISM", "disconnect")
        .output()
        .expect("run lab")
}

fn ok(o: &Output, what: &str) -> String {
    must_pass(o, what);
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn up(lab: &Lab, name: &str, bases: &[u16]) {
    for b in bases {
        let b = b.to_string();
        let args = [
            "up",
            TOPO,
            "--name",
            name,
            "--port-base",
            &b,
            "--timeout",
            "300s",
        ];
        let o = lab.run(&args);
        if o.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("in use"), "lab {args:?} failed:\n{err}");
        eprintln!("{err}");
    }
    panic!("no free port base among {bases:?}");
}

fn journal(lab: &Lab, name: &str) -> serde_json::Value {
    match std::fs::read_to_string(lab.state.path().join(name).join("faults.json")) {
        Ok(t) => serde_json::from_str(&t).expect("journal json"),
        Err(_) => serde_json::json!({"faults": []}),
    }
}

fn journal_len(lab: &Lab, name: &str) -> usize {
    journal(lab, name)["faults"].as_array().map_or(0, Vec::len)
}

/// The container's networks and addresses, as the engine reports them.
fn networks(lab: &Lab, container: &str) -> serde_json::Value {
    let out = lab.engine_cli(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Networks}}",
        container,
    ]);
    serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null)
}

/// How many networks the container is on (Podman reports none as `null`, Docker as `{}`).
fn on_networks(lab: &Lab, container: &str) -> usize {
    networks(lab, container).as_object().map_or(0, |m| m.len())
}

fn ip_of(lab: &Lab, container: &str) -> Option<String> {
    networks(lab, container)
        .as_object()?
        .values()
        .next()?
        .get("IPAddress")?
        .as_str()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// PING `ip`:6379 from inside `from` (the image's own cli, 2 s timeout): whether PONG came back.
fn reaches(lab: &Lab, from: &str, ip: &str) -> bool {
    let out = lab.engine_cli(&[
        "exec",
        from,
        "sh",
        "-c",
        &format!(
            "cli=$(command -v valkey-cli || command -v redis-cli); \
             timeout 3 $cli -h {ip} -p 6379 -a \"$LAB_PASSWORD\" --no-auth-warning ping 2>&1"
        ),
    ]);
    out.contains("PONG")
}

/// What `from` makes of `name` (its resolver and the answer), and on Podman the network DNS
/// server's records, for a failure message.
fn dns_report(lab: &Lab, from: &str, name: &str) -> String {
    let inside = lab.engine_cli(&[
        "exec",
        from,
        "sh",
        "-c",
        &format!("cat /etc/resolv.conf; echo '-- getent:'; timeout 10 getent ahostsv4 {name}; echo \"exit $?\""),
    ]);
    let mut out = format!("inside {from}:\n{inside}");
    if let Ok(dir) = std::fs::read_dir("/run/containers/networks/aardvark-dns") {
        for f in dir.flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            out.push_str(&format!("-- {}:\n{text}", f.path().display()));
        }
    }
    out
}

/// PING through the published port on 127.0.0.1 (2 s connect and read timeouts).
fn published_ping(port: u16, pw: &str) -> Result<(), String> {
    let c = redis::Client::open(format!("redis://:{pw}@127.0.0.1:{port}/"))
        .map_err(|e| e.to_string())?;
    let mut conn = c
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Polls `f` every 250 ms for up to `limit`; whether it held.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn isolate_by_network_disconnect_and_back() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let name = format!("dm-nd-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: TOPO.into(),
            name: name.clone(),
        };
        let n = name.as_str();
        let e = &engine.name;
        let bases: &[u16] = if engine.name == "docker" {
            &[28400, 28450, 28500]
        } else {
            &[28600, 28650, 28700]
        };
        up(&lab, n, bases);
        let status = lab.status_json(TOPO, n);
        let pw = lab.password(n);
        let port2 = node_port(&status, "redis-2", 6379);
        let c2 = format!("{n}-redis-2");
        let ip2 = ip_of(&lab, &c2).expect("redis-2 address");
        let peers = [
            format!("{n}-redis-1"),
            format!("{n}-sentinel-1"),
            format!("{n}-sentinel-2"),
        ];
        for p in &peers {
            assert!(
                reaches(&lab, p, &ip2),
                "{p} reaches redis-2 before the fault"
            );
        }
        published_ping(port2, &pw).expect("published port before the fault");

        // --- Refused, nothing journalled: a mechanism that does not exist; cut-clients by
        //     disconnect (it would cut the peers too).
        let o = lab
            .cmd(&["fault", "isolate", "redis-2", "-t", TOPO, "--name", n])
            .env("LAB_NET_MECHANISM", "nft")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("LAB_NET_MECHANISM=`nft`"),
            "{err}"
        );
        let o = with_disconnect(
            &lab,
            &["fault", "cut-clients", "redis-2", "-t", TOPO, "--name", n],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("cut-clients cannot use the network disconnect"),
            "{err}"
        );
        assert_eq!(journal_len(&lab, n), 0);

        // --- Isolate redis-2 (g1's replica) by disconnecting it.
        let out = ok(
            &with_disconnect(
                &lab,
                &["fault", "isolate", "redis-2", "-t", TOPO, "--name", n],
            ),
            "fault isolate",
        );
        assert!(
            out.contains("mechanism: the engine's network disconnect")
                && out.contains("isolate redis-2 (network disconnect)"),
            "{out}"
        );
        let j = journal(&lab, n);
        assert_eq!(j["faults"][0]["mechanism"], "disconnect", "{j}");
        assert_eq!(j["faults"][0]["endpoints"][0]["ip"], ip2.as_str(), "{j}");
        assert_eq!(on_networks(&lab, &c2), 0, "off every network");
        for p in &peers {
            assert!(!reaches(&lab, p, &ip2), "{p} still reaches redis-2");
        }
        // The published port: the engine's forwarding points at an address that is gone.
        let published = published_ping(port2, &pw);
        eprintln!("{e}: isolated by disconnect: published port 127.0.0.1:{port2} -> {published:?}");
        assert!(
            published.is_err(),
            "a client still reaches redis-2 through its published port"
        );

        // --- Heal: back on the network, at the same address, reachable again.
        let out = lab.ok(&["heal", TOPO, "--name", n]);
        assert!(out.contains("healed"), "{out}");
        assert_eq!(journal_len(&lab, n), 0);
        let back = ip_of(&lab, &c2);
        eprintln!("{e}: reconnected at {back:?} (was {ip2})");
        assert_eq!(
            back.as_deref(),
            Some(ip2.as_str()),
            "same address after heal"
        );
        let aliases = networks(&lab, &c2)
            .as_object()
            .and_then(|m| m.values().next().cloned())
            .map(|v| v["Aliases"].clone());
        assert!(
            aliases
                .as_ref()
                .and_then(|a| a.as_array())
                .is_some_and(|a| a.iter().any(|x| x == "redis-2")),
            "alias redis-2 restored: {aliases:?}"
        );
        for p in &peers {
            assert!(
                within(Duration::from_secs(20), || reaches(&lab, p, &ip2)),
                "{p} reaches redis-2 again"
            );
        }
        // By name too: the alias resolves again on the network's DNS.
        assert!(
            within(Duration::from_secs(20), || reaches(
                &lab, &peers[0], "redis-2"
            )),
            "{e}: {} does not reach redis-2 by name after heal:\n{}",
            peers[0],
            dns_report(&lab, &peers[0], "redis-2")
        );
        assert!(
            within(Duration::from_secs(20), || published_ping(port2, &pw)
                .is_ok()),
            "published port answers again"
        );
        let tl = std::fs::read_to_string(lab.state.path().join(n).join("timeline.jsonl"))
            .unwrap_or_default();
        assert!(
            tl.contains("isolate redis-2 (network disconnect)") && tl.contains("fault_healed"),
            "{tl}"
        );

        // --- A killed `lab` holding the fault: still off the network, `lab heal` puts it back.
        let c4 = format!("{n}-redis-4");
        let ip4 = ip_of(&lab, &c4).expect("redis-4 address");
        let mut child = lab
            .cmd(&[
                "fault", "isolate", "redis-4", "-t", TOPO, "--name", n, "--for", "60s",
            ])
            .env("LAB_NET_MECHANISM", "disconnect")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lab fault");
        assert!(
            within(Duration::from_secs(60), || journal_len(&lab, n) == 1
                && on_networks(&lab, &c4) == 0),
            "redis-4 never disconnected"
        );
        child.kill().expect("SIGKILL lab");
        child.wait().expect("reap");
        assert_eq!(on_networks(&lab, &c4), 0, "left disconnected");
        lab.ok(&["heal", TOPO, "--name", n]);
        assert_eq!(journal_len(&lab, n), 0);
        assert_eq!(ip_of(&lab, &c4).as_deref(), Some(ip4.as_str()));
        assert!(within(Duration::from_secs(20), || reaches(
            &lab,
            &format!("{n}-redis-3"),
            &ip4
        )));
    }
}
