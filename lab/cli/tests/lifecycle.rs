//! Issue 2 acceptance on a real engine (Docker, and Podman when listed in LAB_TEST_ENGINES):
//! both Redis topologies come up with offline images, the seed's success criteria hold when
//! checked directly with the redis crate, AUTH is enforced, and `down` leaves nothing.

mod common;

use std::collections::HashMap;

use common::*;

fn container_id(lab: &Lab, container: &str) -> String {
    lab.engine_cli(&["inspect", "-f", "{{.Id}}", container])
        .trim()
        .to_string()
}

/// `INFO replication` of a node that may be down or frozen: one short attempt.
fn try_info(port: u16, pw: &str) -> Option<HashMap<String, String>> {
    let c = redis::Client::open(format!("redis://:{pw}@127.0.0.1:{port}/")).ok()?;
    let mut conn = c
        .get_connection_with_timeout(std::time::Duration::from_millis(500))
        .ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .ok()?;
    let text: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn redis_sentinel_comes_up_verified_and_goes_down_clean() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let name = format!("t-sent-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: name.clone(),
        };
        let out = lab.ok(&[
            "up",
            "redis-sentinel",
            "--name",
            &name,
            "--port-base",
            "21000",
        ]);
        assert!(out.contains("success criteria"), "{out}");
        assert!(!out.contains("[FAIL]"), "{out}");

        // The password: 32 characters, mode 0600, never a fixed one.
        let pw = lab.password(&name);
        assert_eq!(pw.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = lab.state.path().join(&name).join("password");
            assert_eq!(
                std::fs::metadata(p).expect("meta").permissions().mode() & 0o777,
                0o600
            );
        }
        let st = lab.status_json("redis-sentinel", &name);
        assert!(st["password_file"]
            .as_str()
            .is_some_and(|p| p.ends_with("password")));

        // Checked directly, not through lab: each group's master has its replica, link up;
        // every Sentinel names the master's real address; the quorum is reachable.
        let groups = [
            ("g1", "redis-1", "redis-2"),
            ("g2", "redis-3", "redis-4"),
            ("g3", "redis-5", "redis-6"),
        ];
        for (g, m, r) in groups {
            let mut mc = redis_conn(node_port(&st, m, 6379), Some(&pw));
            let mi = info(&mut mc, "replication");
            assert_eq!(mi["role"], "master", "{m}");
            assert_eq!(mi["connected_slaves"], "1", "{m}");
            assert!(
                mi["slave0"].contains("state=online"),
                "{m}: {}",
                mi["slave0"]
            );
            // Nodes go by hostname (a restart on Podman changes the address): the replica
            // announces its name, so its master lists it by name.
            assert!(
                mi["slave0"].starts_with(&format!("ip={r},")),
                "{m}: {}",
                mi["slave0"]
            );
            let mut rc = redis_conn(node_port(&st, r, 6379), Some(&pw));
            let ri = info(&mut rc, "replication");
            assert_eq!(ri["role"], "slave", "{r}");
            assert_eq!(ri["master_link_status"], "up", "{r}");
            for s in ["sentinel-1", "sentinel-2", "sentinel-3"] {
                let mut sc = redis_conn(node_port(&st, s, 26379), Some(&pw));
                let (ip, port): (String, String) = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(g)
                    .query(&mut sc)
                    .expect("get-master-addr-by-name");
                assert_eq!((ip.as_str(), port.as_str()), (m, "6379"), "{s} on {g}");
                let ck: String = redis::cmd("SENTINEL")
                    .arg("ckquorum")
                    .arg(g)
                    .query(&mut sc)
                    .expect("ckquorum");
                assert!(ck.starts_with("OK"), "{ck}");
                // The Sentinel already knows the replica (it learns it from the master's INFO
                // every 10 s): without it a failover right after `up` aborts with no good
                // slave.
                let replicas: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
                    .arg("replicas")
                    .arg(g)
                    .query(&mut sc)
                    .expect("replicas");
                assert_eq!(replicas.len(), 1, "{s} on {g}: {replicas:?}");
                assert!(!replicas[0]["flags"].contains("s_down"), "{replicas:?}");
                assert_eq!(replicas[0]["ip"], r, "{s} on {g}: {replicas:?}");
            }
        }
        // Timers of the drill profile reached the Sentinels.
        let mut sc = redis_conn(node_port(&st, "sentinel-1", 26379), Some(&pw));
        let master: Vec<String> = redis::cmd("SENTINEL")
            .arg("master")
            .arg("g1")
            .query(&mut sc)
            .expect("master");
        let kv: HashMap<_, _> = master
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        assert_eq!(kv["down-after-milliseconds"], "3000");
        assert_eq!(kv["quorum"], "2");

        // Unauthenticated commands are refused, on nodes and on Sentinels.
        for (node, port) in [("redis-1", 6379), ("sentinel-1", 26379)] {
            let mut c = redis_conn(node_port(&st, node, port), None);
            let e = redis::cmd("PING")
                .query::<String>(&mut c)
                .expect_err("NOAUTH");
            assert!(
                e.to_string().to_uppercase().contains("NOAUTH")
                    || e.to_string().contains("Authentication"),
                "{node}: {e}"
            );
        }

        // `up` twice is a no-op: the same containers, still verified.
        let id_before = container_id(&lab, &format!("{name}-redis-1"));
        let again = lab.ok(&["up", "redis-sentinel", "--name", &name]);
        assert!(
            !again.contains("created"),
            "second up recreated something:\n{again}"
        );
        assert_eq!(container_id(&lab, &format!("{name}-redis-1")), id_before);

        // `up` after a crash resumes: a node stopped behind lab's back is started again.
        lab.engine_cli(&["stop", "-t", "1", &format!("{name}-redis-6")]);
        let resumed = lab.ok(&["up", "redis-sentinel", "--name", &name]);
        assert!(resumed.contains("started redis-6"), "{resumed}");

        // A master killed right after `up` fails over, and comes back as a replica of the
        // new master at once (it asks the Sentinels), never as a second master.
        lab.ok(&[
            "fault",
            "kill",
            "master-of:g1",
            "-t",
            "redis-sentinel",
            "--name",
            &name,
        ]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let role = try_info(node_port(&st, "redis-2", 6379), &pw).map(|i| i["role"].clone());
            if role.as_deref() == Some("master") {
                break;
            }
            if std::time::Instant::now() >= deadline {
                // What the Sentinels saw, to tell a slow host from an aborted failover.
                let logs: Vec<String> = (1..=3)
                    .map(|i| {
                        let c = format!("{name}-sentinel-{i}");
                        let o = std::process::Command::new(&lab.engine.name)
                            .args(["logs", "--tail", "25", &c])
                            .output()
                            .expect("engine logs");
                        format!(
                            "-- {c}:\n{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .collect();
                panic!(
                    "redis-2 not promoted 30 s after redis-1 was killed\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        lab.ok(&["heal", "redis-sentinel", "--name", &name]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut roles = vec![];
        loop {
            if let Some(i) = try_info(node_port(&st, "redis-1", 6379), &pw) {
                roles.push(i["role"].clone());
                if i.get("master_link_status").map(String::as_str) == Some("up") {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-1 not back as a synced replica: {roles:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            roles.iter().all(|r| r == "slave"),
            "redis-1 roles: {roles:?}"
        );

        // `down` after a node was removed by hand, then `down` again: both succeed.
        lab.engine_cli(&["rm", "-f", &format!("{name}-redis-6")]);
        lab.ok(&["down", "redis-sentinel", "--name", &name]);
        let left = lab.leftovers(&name);
        assert!(
            left.iter().all(|l| l.starts_with("volume ")),
            "down left {left:?}"
        );
        assert_eq!(
            left.len(),
            9,
            "volumes are kept without --volumes: {left:?}"
        );
        lab.ok(&["down", "redis-sentinel", "--name", &name, "--volumes"]);
        assert_eq!(lab.leftovers(&name), Vec::<String>::new());
        lab.ok(&["down", "redis-sentinel", "--name", &name, "--volumes"]);
    }
}

#[test]
fn redis_cluster_comes_up_with_all_slots_and_goes_down_clean() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let name = format!("t-clus-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: "redis-cluster".into(),
            name: name.clone(),
        };
        let out = lab.ok(&[
            "up",
            "redis-cluster",
            "--name",
            &name,
            "--port-base",
            "24100",
            "--flavor",
            "redis",
        ]);
        assert!(!out.contains("[FAIL]"), "{out}");
        let st = lab.status_json("redis-cluster", &name);
        let pw = lab.password(&name);
        let mut masters = 0;
        for i in 1..=6 {
            let mut c = redis_conn(node_port(&st, &format!("node-{i}"), 6379), Some(&pw));
            let ci: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut c)
                .expect("cluster info");
            assert!(ci.contains("cluster_state:ok"), "node-{i}: {ci}");
            assert!(
                ci.contains("cluster_slots_assigned:16384"),
                "node-{i}: {ci}"
            );
            assert!(ci.contains("cluster_slots_ok:16384"), "node-{i}: {ci}");
            assert!(ci.contains("cluster_known_nodes:6"), "node-{i}: {ci}");
            let server = info(&mut c, "server");
            assert!(server.contains_key("redis_version"));
            if info(&mut c, "replication")["role"] == "master" {
                masters += 1;
            }
        }
        assert_eq!(masters, 3);
        // One replica per master, each connected.
        let mut c = redis_conn(node_port(&st, "node-1", 6379), Some(&pw));
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut c)
            .expect("nodes");
        let master_ids: Vec<&str> = nodes
            .lines()
            .filter(|l| l.contains("master"))
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        for id in &master_ids {
            let replicas = nodes
                .lines()
                .filter(|l| {
                    l.contains("slave")
                        && l.split(' ').nth(3) == Some(id)
                        && l.contains("connected")
                })
                .count();
            assert_eq!(replicas, 1, "master {id}:\n{nodes}");
        }
        // The flavour asked for is the one running.
        let server: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut c)
            .expect("info");
        assert!(
            !server.contains("valkey_version") && server.contains("redis_version:8."),
            "expected redis 8, got:\n{server}"
        );
        let mut anon = redis_conn(node_port(&st, "node-2", 6379), None);
        assert!(
            redis::cmd("PING").query::<String>(&mut anon).is_err(),
            "unauthenticated PING accepted"
        );

        lab.ok(&["down", "redis-cluster", "--name", &name, "--volumes"]);
        assert_eq!(lab.leftovers(&name), Vec::<String>::new());
    }
}

#[test]
fn two_instances_run_side_by_side() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let a = format!("t-a-{}", engine.name);
        let b = format!("t-b-{}", engine.name);
        let _da = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: a.clone(),
        };
        let _db = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: b.clone(),
        };
        lab.ok(&["up", "redis-sentinel", "--name", &a, "--port-base", "25000"]);
        // b gets its ports from the allocator: the block after a's is taken by a.
        lab.ok(&["up", "redis-sentinel", "--name", &b, "--port-base", "26000"]);
        let sa = lab.status_json("redis-sentinel", &a);
        let sb = lab.status_json("redis-sentinel", &b);
        let (pa, pb) = (
            node_port(&sa, "redis-1", 6379),
            node_port(&sb, "redis-1", 6379),
        );
        assert_ne!(pa, pb);
        // Distinct data and distinct passwords.
        let (pwa, pwb) = (lab.password(&a), lab.password(&b));
        assert_ne!(pwa, pwb);
        let mut ca = redis_conn(pa, Some(&pwa));
        let mut cb = redis_conn(pb, Some(&pwb));
        let _: () = redis::cmd("SET")
            .arg("who")
            .arg("a")
            .query(&mut ca)
            .expect("set");
        let got: Option<String> = redis::cmd("GET").arg("who").query(&mut cb).expect("get");
        assert_eq!(got, None);
        // Taking a down leaves b whole.
        lab.ok(&["down", "redis-sentinel", "--name", &a, "--volumes"]);
        assert!(lab.leftovers(&a).is_empty());
        assert!(
            lab.leftovers(&b)
                .iter()
                .filter(|l| l.starts_with("container"))
                .count()
                == 10
        );
        let pong: String = redis::cmd("PING").query(&mut cb).expect("b still up");
        assert_eq!(pong, "PONG");
    }
}
