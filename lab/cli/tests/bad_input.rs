//! Bad input gets one clear sentence (with file:line:column where there is a file), a
//! non-zero exit, and leaves nothing behind.

mod common;

use common::*;

fn fixture(name: &str) -> String {
    project()
        .join("lab/cli/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn one_sentence(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("lab: "), "{stderr}");
}

#[test]
fn unknown_key_is_reported_with_file_line_column() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let e = lab.fails(&["up", &fixture("unknown-key.yaml"), "--name", "t-bad-key"]);
        one_sentence(&e);
        assert!(e.contains("unknown-key.yaml:18:5"), "{e}");
        assert!(e.contains("unknown field `entrypiont`"), "{e}");
        assert!(lab.leftovers("t-bad-key").is_empty());
    }
}

#[test]
fn missing_config_file_is_reported_with_its_line() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let e = lab.fails(&[
            "up",
            &fixture("missing-config.yaml"),
            "--name",
            "t-bad-conf",
        ]);
        one_sentence(&e);
        assert!(e.contains("missing-config.yaml:24:"), "{e}");
        assert!(
            e.contains("nope.conf") && e.contains("does not exist"),
            "{e}"
        );
        assert!(lab.leftovers("t-bad-conf").is_empty());
    }
}

#[test]
fn unknown_topology_lists_the_known_ones() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let e = lab.fails(&["up", "redis-sentinal"]);
        one_sentence(&e);
        assert!(e.contains("unknown topology `redis-sentinal`"), "{e}");
        assert!(
            e.contains("redis-sentinel") && e.contains("redis-cluster"),
            "{e}"
        );
    }
}

#[test]
fn unknown_setting_and_profile_are_refused() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let e = lab.fails(&["up", "redis-sentinel", "--set", "down-after=1"]);
        one_sentence(&e);
        assert!(
            e.contains("unknown setting `down-after`") && e.contains("down-after-milliseconds"),
            "{e}"
        );
        let e = lab.fails(&["up", "redis-sentinel", "--profile", "fast"]);
        one_sentence(&e);
        assert!(
            e.contains("unknown profile `fast`") && e.contains("seed"),
            "{e}"
        );
    }
}

#[test]
fn engine_not_running_says_how_to_start_one() {
    let state = tempfile::tempdir().expect("tmp");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["up", "redis-sentinel"])
        .current_dir(project())
        .env("LAB_STATE_DIR", state.path())
        .env("LAB_ENGINE", "/nonexistent/engine.sock")
        .output()
        .expect("run");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    one_sentence(&e);
    assert!(
        e.contains("does not exist") && e.contains("start the engine"),
        "{e}"
    );
    // A socket that exists but answers nothing.
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("dead.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    drop(listener);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["doctor"])
        .env("LAB_STATE_DIR", state.path())
        .env("LAB_ENGINE", &sock)
        .output()
        .expect("run");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    one_sentence(&e);
    assert!(
        e.contains("No container engine answers") && e.contains("podman system service"),
        "{e}"
    );
}

#[test]
fn host_port_taken_is_refused_and_nothing_is_left() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        // Hold the port the `solo` node would publish (27000 base + 1, shifted to 28001).
        let _hold = std::net::TcpListener::bind(("127.0.0.1", 28001)).expect("hold port");
        let e = lab.fails(&[
            "up",
            &fixture("single.yaml"),
            "--name",
            "t-port",
            "--port-base",
            "28000",
        ]);
        one_sentence(&e);
        assert!(
            e.contains("127.0.0.1:28001") && e.contains("solo") && e.contains("in use"),
            "{e}"
        );
        assert!(lab.leftovers("t-port").is_empty());
        assert!(!lab
            .state
            .path()
            .join("t-port")
            .join("instance.json")
            .exists());
    }
}

#[test]
fn down_names_a_foreign_container_on_the_network_and_leaves_it_alone() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let name = format!("t-foreign-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: fixture("single.yaml"),
            name: name.clone(),
        };
        lab.ok(&[
            "up",
            &fixture("single.yaml"),
            "--name",
            &name,
            "--port-base",
            "28100",
            "--images",
            "offline",
        ]);
        // Someone attaches a container of their own to the instance's network.
        let intruder = format!("{name}-intruder");
        let network = format!("{name}_lab");
        lab.engine_cli(&[
            "run",
            "-d",
            "--name",
            &intruder,
            "--network",
            &network,
            "--entrypoint",
            "sleep",
            "localhost/lab/valkey:8.1",
            "120",
        ]);
        let e = lab.fails(&["down", &fixture("single.yaml"), "--name", &name]);
        let _ = lab.engine_cli(&["rm", "-f", &intruder]);
        one_sentence(&e);
        assert!(e.contains(&network) && e.contains(&intruder), "{e}");
        // Lab's own container went; the intruder was not lab's to remove.
        assert_eq!(lab.leftovers(&name), vec![format!("network {network}")]);
        lab.ok(&["down", &fixture("single.yaml"), "--name", &name]);
        assert!(
            lab.leftovers(&name).is_empty(),
            "{:?}",
            lab.leftovers(&name)
        );
    }
}

#[test]
fn volumes_of_an_earlier_instance_are_named_not_reused() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let name = format!("t-stale-{}", engine.name);
        // What a `lab down` without --volumes under another state directory leaves behind.
        let vol = format!("{name}_redis-1-data");
        let made = std::process::Command::new(&engine.name)
            .args([
                "volume",
                "create",
                "--label",
                &format!("lab.instance={name}"),
                &vol,
            ])
            .status()
            .expect("volume create");
        assert!(made.success());
        let e = lab.fails(&["up", "redis-sentinel", "--name", &name]);
        one_sentence(&e);
        assert!(
            e.contains(&vol)
                && e.contains(&format!("lab down redis-sentinel --name {name} --volumes")),
            "{e}"
        );
        // Nothing started, the volume kept, no password remembered for it.
        assert_eq!(lab.leftovers(&name), vec![format!("volume {vol}")]);
        assert!(!lab.state.path().join(&name).join("password").exists());
        lab.ok(&["down", "redis-sentinel", "--name", &name, "--volumes"]);
        assert!(lab.leftovers(&name).is_empty());
    }
}
