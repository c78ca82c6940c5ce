//! Issue 4's drills for the seed's failure modes, run end to end on a real engine: Sentinel
//! majority lost (no failover, asserted), Sentinel minority lost (failover still happens),
//! replica lost and back (resync measured), disk full on an AOF master (what the client sees),
//! and clock skew on a Sentinel, which these images cannot do: that one must be refused before
//! it starts, with the reason printed, never silently skipped.

mod common;

use common::*;

/// Runs a drill; the first run of an instance tries the port bases in turn while the ports
/// are taken (this test's range lies inside the host's ephemeral range, where any client
/// socket on the host can hold a port for a while), and later runs reuse the instance.
fn drill(
    lab: &Lab,
    file: &str,
    name: &str,
    bases: &[u16],
    dir: &std::path::Path,
) -> std::process::Output {
    for b in bases {
        let b = b.to_string();
        let o = lab.run(&[
            "drill",
            file,
            "--name",
            name,
            "--port-base",
            &b,
            "--report-dir",
            dir.to_str().expect("utf8"),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.code() == Some(2) && err.contains("in use") {
            eprintln!("{err}");
            continue;
        }
        return o;
    }
    panic!("no free port base among {bases:?}");
}

fn report(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let p = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("report json")
}

fn must_pass(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn seed_failure_mode_drills() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let (a, b): (&[u16], &[u16]) = if engine.name == "docker" {
            (&[42150, 42180, 42210], &[42250, 42280, 42310])
        } else {
            (&[42450, 42480, 42510], &[42550, 42580, 42610])
        };
        let reports = tempfile::tempdir().expect("reports");
        let name = format!("res-drills-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: name.clone(),
        };

        // Majority of the Sentinels lost: the master's crash must not be failed over.
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-sentinel-majority-lost.yaml",
            &name,
            a,
            reports.path(),
        );
        must_pass(&o, "sentinel-majority-lost");
        let r = report(reports.path(), "redis-sentinel-sentinel-majority-lost");
        assert_eq!(
            r["faults"][0]["target"], "sentinel-1,sentinel-2",
            "{}",
            r["faults"]
        );
        assert!(r["faults"][1]["metrics"]["promotion_us"].is_null());

        // Minority lost: the two left still fail the (new) master of g1 over.
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-sentinel-minority-lost.yaml",
            &name,
            a,
            reports.path(),
        );
        must_pass(&o, "sentinel-minority-lost");
        let r = report(reports.path(), "redis-sentinel-sentinel-minority-lost");
        assert_eq!(r["faults"][0]["target"], "sentinel-1");
        assert!(r["faults"][1]["metrics"]["promotion_us"].is_u64());

        // Replica lost and back: its resync (fault -> link up again) is measured.
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-replica-lost-and-back.yaml",
            &name,
            a,
            reports.path(),
        );
        must_pass(&o, "replica-lost-and-back");
        let r = report(reports.path(), "redis-sentinel-replica-lost-and-back");
        assert!(
            r["faults"][0]["metrics"]["recovery_us"].is_u64(),
            "{}",
            r["faults"]
        );

        // Clock skew on a Sentinel: refused up front on these images, reason printed.
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-sentinel-clock-skew.yaml",
            &name,
            a,
            reports.path(),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        eprintln!("{}: {}", engine.name, err.trim());
        assert!(err.contains("needs a capability this host lacks"), "{err}");

        // Disk full on an AOF master: its own instance (size-limited data dir).
        let df = format!("res-drills-df-{}", engine.name);
        let _down_df = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: df.clone(),
        };
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-disk-full-aof.yaml",
            &df,
            b,
            reports.path(),
        );
        must_pass(&o, "disk-full-aof");
        let r = report(reports.path(), "redis-sentinel-disk-full-aof");
        let w = &r["faults"][0]["metrics"]["unavailability"];
        assert_eq!(w["kind"], "outage", "writes were refused: {w}");
    }
}
