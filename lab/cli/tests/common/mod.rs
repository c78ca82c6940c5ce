//! Shared test harness: runs the real `lab` binary against a real engine, each test with
//! its own state directory, instance names and ports, and removes what it made on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repo root")
        .to_path_buf()
}

/// An engine to test against: `docker` or `podman`, with its socket and CLI.
#[derive(Debug, Clone)]
pub struct TestEngine {
    pub name: String,
    pub socket: String,
}

/// Engines listed in `LAB_TEST_ENGINES` (default `docker`) whose socket exists. With
/// `LAB_REQUIRE_ENGINE=1` a missing engine fails the test instead of skipping it.
pub fn engines() -> Vec<TestEngine> {
    let wanted = std::env::var("LAB_TEST_ENGINES").unwrap_or_else(|_| "docker".into());
    let require = std::env::var("LAB_REQUIRE_ENGINE").is_ok_and(|v| v == "1");
    let mut out = vec![];
    for name in wanted.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let socket = match name {
            "docker" => "/var/run/docker.sock",
            "podman" => "/run/podman/podman.sock",
            other => panic!("unknown engine {other} in LAB_TEST_ENGINES"),
        };
        if Path::new(socket).exists() {
            out.push(TestEngine {
                name: name.into(),
                socket: socket.into(),
            });
        } else if require {
            panic!("LAB_REQUIRE_ENGINE=1 but the {name} socket {socket} does not exist");
        } else {
            eprintln!(
                "SKIP: {name} socket {socket} not found (set LAB_REQUIRE_ENGINE=1 to fail instead)"
            );
        }
    }
    out
}

pub struct Lab {
    pub engine: TestEngine,
    pub state: tempfile::TempDir,
}

impl Lab {
    pub fn new(engine: &TestEngine) -> Lab {
        Lab {
            engine: engine.clone(),
            state: tempfile::tempdir().expect("state dir"),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lab"));
        c.args(args)
            .current_dir(project())
            .env("LAB_STATE_DIR", self.state.path())
            .env("LAB_ENGINE", &self.engine.socket)
            .env("LAB_IMAGES", "offline")
            .env_remove("LAB_PROFILE")
            .env_remove("LAB_FLAVOR");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run lab")
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "lab {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "lab {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    pub fn status_json(&self, topology: &str, name: &str) -> serde_json::Value {
        let out = self.ok(&["status", topology, "--name", name, "--json"]);
        serde_json::from_str(&out).expect("status json")
    }

    pub fn password(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.path().join(name).join("password"))
            .expect("password file")
            .trim()
            .to_string()
    }

    /// The engine's own CLI, to check from outside what exists.
    pub fn engine_cli(&self, args: &[&str]) -> String {
        let o = Command::new(&self.engine.name)
            .args(args)
            .output()
            .expect("engine cli");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Containers, networks and volumes labelled with the instance.
    pub fn leftovers(&self, instance: &str) -> Vec<String> {
        let f = format!("label=lab.instance={instance}");
        let mut v = vec![];
        for (what, args) in [
            (
                "container",
                vec!["ps", "-a", "--filter", &f, "--format", "{{.Names}}"],
            ),
            (
                "network",
                vec!["network", "ls", "--filter", &f, "--format", "{{.Name}}"],
            ),
            (
                "volume",
                vec!["volume", "ls", "--filter", &f, "--format", "{{.Name}}"],
            ),
        ] {
            for line in self
                .engine_cli(&args)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                v.push(format!("{what} {line}"));
            }
        }
        v
    }
}

/// Removes an instance (and its data) when the test ends, pass or fail.
pub struct Down<'a> {
    pub lab: &'a Lab,
    pub topology: String,
    pub name: String,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self
            .lab
            .run(&["down", &self.topology, "--name", &self.name, "--volumes"]);
    }
}

pub fn node_port(status: &serde_json::Value, node: &str, container_port: u64) -> u16 {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == node)
        .and_then(|n| {
            n["ports"]
                .as_array()?
                .iter()
                .find(|p| p[0] == container_port)
                .and_then(|p| p[1].as_u64())
        })
        .unwrap_or_else(|| panic!("no port {container_port} for {node}")) as u16
}

pub fn redis_conn(port: u16, password: Option<&str>) -> redis::Connection {
    let url = match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let c = redis::Client::open(url).expect("client");
    let mut last = None;
    for _ in 0..50 {
        match c.get_connection_with_timeout(Duration::from_secs(2)) {
            Ok(conn) => {
                conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                return conn;
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot connect to 127.0.0.1:{port}: {last:?}");
}

pub fn info(
    conn: &mut redis::Connection,
    section: &str,
) -> std::collections::HashMap<String, String> {
    let text: String = redis::cmd("INFO").arg(section).query(conn).expect("INFO");
    text.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The JSON report a drill wrote as `<dir>/<name>.json`.
pub fn report(dir: &Path, name: &str) -> serde_json::Value {
    let p = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("report json")
}

/// Fails the test with the command's whole output unless it succeeded.
pub fn must_pass(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// How many faults the instance's journal holds.
pub fn journal_len(lab: &Lab, inst: &str) -> usize {
    std::fs::read_to_string(lab.state.path().join(inst).join("faults.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|j| j["faults"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Lab chains in every running container of the instance, seen from the host.
pub fn lab_chains(lab: &Lab, inst: &str) -> Vec<String> {
    let names = lab.engine_cli(&[
        "ps",
        "--filter",
        &format!("label=lab.instance={inst}"),
        "--format",
        "{{.Names}}",
    ]);
    let mut out = vec![];
    for c in names.lines().filter(|l| !l.trim().is_empty()) {
        let pid = lab.engine_cli(&["inspect", "-f", "{{.State.Pid}}", c]);
        for t in ["filter", "nat"] {
            let o = Command::new("nsenter")
                .args(["-t", pid.trim(), "-n", "iptables", "-t", t, "-S"])
                .output()
                .expect("nsenter");
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if l.contains("LAB-") {
                    out.push(format!("{c} {t}: {l}"));
                }
            }
        }
    }
    out
}
