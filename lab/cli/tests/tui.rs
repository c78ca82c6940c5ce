//! Issue 5 acceptance on a real engine: the real `lab` binary runs `lab tui` inside tmux
//! (80x24) against a real redis-sentinel instance. The kill key on the master must lead to a
//! promotion and a measured unavailability on the screen (read with capture-pane, and the
//! promotion checked on the servers themselves); `q` must restore the terminal (alternate
//! screen off, canonical mode back) and leave no fault applied. Every wait is bounded; the
//! tmux session and the instance are removed on drop.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Kills our tmux session (by its unique name) when the test ends.
struct Tmux(String);

impl Tmux {
    fn capture(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn keys(&self, keys: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.0, keys])
            .status()
            .expect("tmux send-keys")
            .success();
        assert!(ok, "tmux send-keys {keys} failed");
    }

    fn query(&self, format: &str) -> String {
        let o = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.0, format])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Waits until the screen satisfies `f`; panics with the last screen after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.capture();
            if f(&s) {
                return s;
            }
            if start.elapsed() > limit {
                panic!("waited {limit:?} for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The seconds after `label ` on the screen ("promote 3.75s" -> 3.75).
fn figure(screen: &str, label: &str) -> Option<f64> {
    let at = screen.find(&format!("{label} "))? + label.len() + 1;
    let rest = &screen[at..];
    let end = rest.find('s')?;
    rest[..end].parse().ok()
}

#[test]
fn kill_key_shows_promotion_and_unavailability_and_q_restores_everything() {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is required for the TUI end-to-end test");
    }
    for (i, engine) in engines().into_iter().enumerate() {
        let lab = Lab::new(&engine);
        let name = format!("tui-e2e-{}", engine.name);
        // Below the ephemeral port range (32768+), where client sockets of parallel tests live.
        let port_base = (25000 + 500 * i).to_string();
        let _down = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: name.clone(),
        };
        lab.ok(&[
            "up",
            "redis-sentinel",
            "--name",
            &name,
            "--port-base",
            &port_base,
        ]);
        let reports = tempfile::tempdir().expect("report dir");
        let script = format!(
            "LAB_STATE_DIR={} LAB_ENGINE={} LAB_IMAGES=offline {} tui redis-sentinel --name {} --report-dir {} 2>{}/stderr.txt; \
             echo LAB-EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 300",
            lab.state.path().display(),
            engine.socket,
            env!("CARGO_BIN_EXE_lab"),
            name,
            reports.path().display(),
            reports.path().display(),
        );
        let session = format!("tui-e2e-{}-{}", engine.name, std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "80",
                "-y",
                "24",
                "sh",
                "-c",
                &script,
            ])
            .status()
            .expect("tmux new-session")
            .success();
        assert!(ok, "tmux new-session failed");
        let tmux = Tmux(session);

        // The screen is up with redis-1 selected, a master, and load flowing.
        tmux.wait_for("the TUI with load", Duration::from_secs(90), |s| {
            s.contains(">redis-1    master   up")
                && s.contains("ops/s: ok ")
                && !s.contains("ops/s: ok 0,")
        });
        assert_eq!(
            tmux.query("#{alternate_on}"),
            "1",
            "the TUI uses the alternate screen"
        );
        // A few seconds of healthy load before the fault, so the outage has a clean start.
        std::thread::sleep(Duration::from_secs(3));

        tmux.keys("k");
        let screen = tmux.wait_for(
            "the failover measured on screen",
            Duration::from_secs(90),
            |s| s.contains("measured") && figure(s, "unavailability").is_some(),
        );
        eprintln!("{} screen after the kill key:\n{screen}", engine.name);
        let promotion = figure(&screen, "promote").expect("promotion figure");
        let unavailability = figure(&screen, "unavailability").expect("unavailability figure");
        let detection = figure(&screen, "detect").expect("detection figure");
        assert!(screen.contains("F1 kill redis-1"), "{screen}");
        assert!(
            detection > 0.0 && detection <= promotion,
            "detection {detection}s, promotion {promotion}s:\n{screen}"
        );
        // The drill profile's down-after is 3 s, counted by Sentinel from its oldest
        // unanswered PING (sent up to 1 s before the kill): no promotion comes before ~2 s,
        // and a healthy host finishes well within 30 s.
        assert!(
            (2.0..30.0).contains(&promotion),
            "promotion {promotion}s:\n{screen}"
        );
        assert!(
            unavailability > 0.0 && unavailability < 60.0,
            "unavailability {unavailability}s:\n{screen}"
        );
        assert!(
            screen.contains(">redis-1    -        down"),
            "redis-1 shown down:\n{screen}"
        );
        // The promotion is real: redis-2 (g1's replica) now says it is the master.
        let status = lab.status_json("redis-sentinel", &name);
        let pw = lab.password(&name);
        let mut c = redis_conn(node_port(&status, "redis-2", 6379), Some(&pw));
        assert_eq!(info(&mut c, "replication")["role"], "master");

        // Quit: heal the fault, keep the topology (the Down guard removes it).
        tmux.keys("q");
        tmux.wait_for("the heal question", Duration::from_secs(10), |s| {
            s.contains("Heal the 1 fault(s)")
        });
        tmux.keys("y");
        tmux.wait_for("the keep question", Duration::from_secs(10), |s| {
            s.contains("Keep the topology")
        });
        tmux.keys("y");
        let end = tmux.wait_for("lab to exit", Duration::from_secs(60), |s| {
            s.contains("LAB-EXIT=")
        });
        assert!(end.contains("LAB-EXIT=0"), "{end}");
        assert!(end.contains("healed: kill redis-1"), "{end}");
        assert!(
            !end.contains("topology ─"),
            "the TUI frame is gone after exit:\n{end}"
        );
        // Terminal restored: main screen, canonical (cooked) mode.
        assert_eq!(tmux.query("#{alternate_on}"), "0", "alternate screen left");
        let mode = tmux.wait_for("stty output", Duration::from_secs(5), |s| {
            s.lines().any(|l| l.trim().ends_with("icanon"))
        });
        assert!(
            mode.lines().any(|l| l.trim() == "icanon"),
            "terminal left in raw mode:\n{mode}"
        );

        // No fault left: the journal is empty and redis-1 runs again.
        let list = lab.ok(&["heal", "redis-sentinel", "--name", &name, "--list"]);
        assert!(list.contains("no fault in force"), "{list}");
        let status = lab.status_json("redis-sentinel", &name);
        let r1 = status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == "redis-1")
            .expect("redis-1");
        assert_eq!(r1["state"], "running", "{r1}");

        // Without a terminal the same session prints plain lines and ends on time.
        let o = lab.run(&[
            "tui",
            "redis-sentinel",
            "--name",
            &name,
            "--for",
            "8s",
            "--report-dir",
            reports.path().to_str().expect("utf8"),
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.contains("live session started")
                && out.contains(" ok/s, ")
                && out.contains("topology left running"),
            "{out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "no escape sequences in plain mode:\n{out}"
        );

        // The session was saved as a report with the same figures.
        let json = std::fs::read_dir(reports.path())
            .expect("reports")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("a session report");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("read report"))
                .expect("report json");
        let f = &r["faults"][0];
        assert_eq!(f["target"], "redis-1");
        let promo_us = f["metrics"]["promotion_us"]
            .as_u64()
            .expect("promotion in report");
        assert!(
            (promo_us as f64 / 1e6 - promotion).abs() < 0.01,
            "report {promo_us}us vs screen {promotion}s"
        );
    }
}
