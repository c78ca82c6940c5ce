//! Issue 4, the shipped slow-disk drill on a real engine (its own binary, so it never runs
//! beside the other slow-disk test: the disk is shared).

mod common;

use common::*;

const TOPO: &str = "redis-sentinel";

fn journal_len(lab: &Lab, name: &str) -> usize {
    match std::fs::read_to_string(lab.state.path().join(name).join("faults.json")) {
        Ok(t) => serde_json::from_str::<serde_json::Value>(&t).expect("journal json")["faults"]
            .as_array()
            .map_or(0, Vec::len),
        Err(_) => 0,
    }
}

/// The shipped drill: a slow disk under an AOF master is not a failover (its assertions say
/// so; the drill's own report must pass them); what clients felt is printed.
#[test]
fn slow_disk_drill_is_a_gray_failure() {
    for engine in engines() {
        let lab = Lab::new(&engine);
        let name = format!("dm-sdd-{}", engine.name);
        let _down = Down {
            lab: &lab,
            topology: TOPO.into(),
            name: name.clone(),
        };
        let reports = tempfile::tempdir().expect("reports");
        let bases: &[u16] = if engine.name == "docker" {
            &[28322, 28347]
        } else {
            &[28372, 28950]
        };
        let mut out = None;
        for b in bases {
            let b = b.to_string();
            let o = lab.run(&[
                "drill",
                "scenarios/redis-sentinel-slow-disk-aof.yaml",
                "--name",
                &name,
                "--port-base",
                &b,
                "--report-dir",
                reports.path().to_str().expect("utf8"),
            ]);
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.code() == Some(2) && err.contains("in use") {
                eprintln!("{err}");
                continue;
            }
            out = Some(o);
            break;
        }
        let o = out.expect("a free port base");
        eprintln!("{}: {}", engine.name, String::from_utf8_lossy(&o.stdout));
        must_pass(&o, "slow-disk-aof drill");
        let r = report(reports.path(), "redis-sentinel-slow-disk-aof");
        // The fault was applied (a report with F1 in it) and what clients felt is on record.
        let f1 = &r["faults"][0];
        assert!(
            f1["description"]
                .as_str()
                .is_some_and(|d| d.contains("slow disk")),
            "{f1}"
        );
        eprintln!(
            "{}: slow disk under AOF everysec: clients' unavailability {}",
            engine.name, f1["metrics"]["unavailability"]
        );
        assert_eq!(journal_len(&lab, &name), 0, "the throttle was lifted");
    }
}
