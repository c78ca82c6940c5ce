//! The topologies stay valid for the peers: `docker compose config` (or docker-compose) and
//! `podman compose` (or podman-compose) accept every file in compose/, and lab's own strict
//! parser loads each one with every profile and flavour.

mod common;

use std::process::Command;

use common::project;

fn compose_files() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(project().join("compose"))
        .expect("compose dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    assert!(v.len() >= 2, "expected the shipped topologies, found {v:?}");
    v
}

fn require() -> bool {
    std::env::var("LAB_REQUIRE_ENGINE").is_ok_and(|v| v == "1")
}

/// The first of the candidate commands that runs at all.
fn tool(candidates: &[&[&str]]) -> Option<Vec<String>> {
    candidates.iter().find_map(|c| {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| c.iter().map(|s| s.to_string()).collect())
    })
}

#[test]
fn docker_compose_accepts_every_topology() {
    let Some(dc) = tool(&[&["docker", "compose"], &["docker-compose"]]) else {
        assert!(
            !require(),
            "neither `docker compose` nor docker-compose is installed"
        );
        eprintln!("SKIP: no docker compose");
        return;
    };
    for f in compose_files() {
        let o = Command::new(&dc[0])
            .args(&dc[1..])
            .arg("-f")
            .arg(&f)
            .args(["config", "-q"])
            .env("LAB_PASSWORD", "x")
            .output()
            .expect("run compose");
        assert!(
            o.status.success(),
            "{} rejects {}:\n{}",
            dc.join(" "),
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn podman_compose_accepts_every_topology() {
    let Some(pc) = tool(&[&["podman-compose"], &["podman", "compose"]]) else {
        assert!(
            !require(),
            "neither podman-compose nor `podman compose` is installed"
        );
        eprintln!("SKIP: no podman compose");
        return;
    };
    // podman-compose creates the named volumes even on a dry run (project `compose`, after
    // the folder): those it made here are removed at the end, any that were there are kept.
    let volumes = || {
        let o = Command::new("podman")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                "label=io.podman.compose.project=compose",
            ])
            .output();
        o.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    let before = volumes();
    struct Made<F: Fn() -> Vec<String>>(Vec<String>, F);
    impl<F: Fn() -> Vec<String>> Drop for Made<F> {
        fn drop(&mut self) {
            for v in (self.1)().iter().filter(|v| !self.0.contains(v)) {
                let _ = Command::new("podman").args(["volume", "rm", v]).output();
            }
        }
    }
    let _made = Made(before, volumes);
    for f in compose_files() {
        // podman-compose has no `config`; a dry run parses and plans every service.
        let o = Command::new(&pc[0])
            .args(&pc[1..])
            .arg("--dry-run")
            .arg("-f")
            .arg(&f)
            .args(["up", "-d"])
            .output()
            .expect("run podman-compose");
        let out =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "{} rejects {}:\n{out}",
            pc.join(" "),
            f.display()
        );
        assert!(
            out.contains("podman run"),
            "dry run planned no container for {}:\n{out}",
            f.display()
        );
    }
}

#[test]
fn lab_loads_every_topology_with_every_profile_and_flavor() {
    use lab_core::topology::{load, LoadOptions};
    for f in compose_files() {
        let meta = lab_core::topology::load_meta(&f, &Default::default()).expect("meta");
        let mut profiles: Vec<String> = meta
            .settings
            .values()
            .flat_map(|s| s.profiles.keys().cloned())
            .collect();
        profiles.sort();
        profiles.dedup();
        assert!(
            profiles.contains(&"seed".to_string()) && profiles.contains(&"drill".to_string()),
            "{}",
            f.display()
        );
        for p in &profiles {
            for fl in &meta.flavors {
                let t = load(
                    &f,
                    &LoadOptions {
                        profile: Some(p.clone()),
                        flavor: Some(fl.clone()),
                        ..Default::default()
                    },
                )
                .unwrap_or_else(|e| panic!("{e}"));
                assert!(!t.services.is_empty());
                // Every published port is on 127.0.0.1 (checked by the loader) and every node
                // of x-lab is a service.
                assert!(t
                    .services
                    .iter()
                    .all(|s| s.ports.iter().all(|p| p.host_port >= 1024)));
            }
        }
    }
}

#[test]
fn seed_profile_carries_the_seed_timers() {
    use lab_core::topology::{load, LoadOptions};
    let f = project().join("compose/redis-sentinel.yaml");
    let t = load(
        &f,
        &LoadOptions {
            profile: Some("seed".into()),
            ..Default::default()
        },
    )
    .expect("load");
    assert_eq!(t.settings["down-after-milliseconds"].value, "30000");
    assert_eq!(t.settings["failover-timeout"].value, "180000");
    let f = project().join("compose/redis-cluster.yaml");
    let t = load(
        &f,
        &LoadOptions {
            profile: Some("seed".into()),
            sets: vec![("maxmemory".into(), "64mb".into())],
            ..Default::default()
        },
    )
    .expect("load");
    assert_eq!(t.settings["cluster-node-timeout"].value, "15000");
    assert_eq!(t.settings["maxmemory"].value, "64mb");
    assert_eq!(format!("{:?}", t.settings["maxmemory"].source), "Cli");
}
