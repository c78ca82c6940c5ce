//! Issue 4's drills for the seed's failure modes, run end to end on a real engine: Sentinel
//! majority lost (no failover, asserted), Sentinel minority lost (failover still happens),
//! replica lost and back (resync measured), disk full on an AOF master (what the client sees),
//! and clock skew on a Sentinel, which these images cannot do: that one must be refused before
//! it starts, with the reason printed, never silently skipped. Every engine runs them all: on
//! Podman a restarted container gets a new address, which Sentinel follows because the nodes
//! go by hostname.

mod common;

use common::*;

/// Runs a drill; the first run of an instance tries the port bases in turn while the ports
/// are taken (this test's range lies inside the host's ephemeral range, where any client
/// socket on the host can hold a port for a while), and later runs reuse the base that worked.
fn drill(
    lab: &Lab,
    file: &str,
    name: &str,
    bases: &mut Vec<u16>,
    dir: &std::path::Path,
) -> std::process::Output {
    while let Some(b) = bases.first().copied() {
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
            bases.remove(0);
            continue;
        }
        return o;
    }
    panic!("no free port base left");
}

#[test]
fn seed_failure_mode_drills() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        // Bases 25 ports apart (an instance takes 21); several, because a busy host's client
        // sockets in TIME_WAIT can hold any port of this range for a minute.
        let bases = |from: u16| (0..6).map(|i| from + 25 * i).collect::<Vec<u16>>();
        let (mut a, mut b) = if engine.name == "docker" {
            (bases(30150), bases(30300))
        } else {
            (bases(30450), bases(30600))
        };
        let reports = tempfile::tempdir().expect("reports");
        let name = format!("res-drills-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: "redis-sentinel".into(),
            name: name.clone(),
        };

        // Clock skew on a Sentinel, first: refused up front on these images, reason printed.
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-sentinel-clock-skew.yaml",
            &name,
            &mut a,
            reports.path(),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        eprintln!("{}: {}", engine.name, err.trim());
        assert!(err.contains("needs a capability this host lacks"), "{err}");

        // Majority of the Sentinels lost: the master's crash must not be failed over.
        let o = drill(
            &lab,
            "scenarios/redis-sentinel-sentinel-majority-lost.yaml",
            &name,
            &mut a,
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
            &mut a,
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
            &mut a,
            reports.path(),
        );
        must_pass(&o, "replica-lost-and-back");
        let r = report(reports.path(), "redis-sentinel-replica-lost-and-back");
        assert!(
            r["faults"][0]["metrics"]["recovery_us"].is_u64(),
            "{}",
            r["faults"]
        );

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
            &mut b,
            reports.path(),
        );
        must_pass(&o, "disk-full-aof");
        let r = report(reports.path(), "redis-sentinel-disk-full-aof");
        let w = &r["faults"][0]["metrics"]["unavailability"];
        assert_eq!(w["kind"], "outage", "writes were refused: {w}");
    }
}
