//! Drills: YAML files in `scenarios/` that say which topology to run, what load to drive, which
//! faults to inject when, what to wait for, and what must hold afterwards. This module reads
//! them strictly into typed [`Scenario`]s, checks them against a [`Topology`](crate::topology::Topology), and
//! evaluates their assertions against a [`RunReport`](crate::report::RunReport). Running a drill is the runner's job, not this
//! module's. The format is described in `docs/drills.md`.
//!
//! # Assertions
//!
//! An assertion is `<metric> <op> <value>`, `op` one of `<`, `<=`, `>`, `>=`, `==`, `!=`. The
//! value carries the metric's unit: a duration (`30s`, `500ms`), a percentage (`99.9%`) or a
//! plain number; a value in the wrong unit is an error when the file is read.
//!
//! Per-fault figures (as computed by [`crate::measure::failover`], from the fault's time; see
//! `docs/metrics.md`). `failover.<figure>` must hold for *every* fault of the run;
//! `fault[N].<figure>` for fault N only (1-based, in the order the fault steps appear).
//! A figure that is missing for a fault fails the assertion and says why, except that
//! `== none` requires it to be missing ("must not happen") and `!= none` requires it present.
//! - `failover.detection`: fault -> first `+sdown`/`+odown` or PFAIL/FAIL naming the target.
//! - `failover.promotion`: fault -> first sign of a new master (`+promoted-slave`,
//!   `+switch-master`, or a poller seeing another node become master).
//! - `failover.unavailable`: client-visible unavailability, from the first failed write to the
//!   first write of a sustained run of successes. `none` (or `0s`) when writes were attempted
//!   and none failed; an outage still open at the end of its window is only known as a lower
//!   bound, which can prove `>` but never `<`.
//! - `failover.recovery`: fault -> the target is a replica again with its link up.
//!
//! Whole-run figures:
//! - `lost_writes`: acknowledged writes missing from the store after recovery (a count).
//! - `lost_writes_pct`: the same as a share of acknowledged writes (%).
//! - `unacked_present`: writes that failed or timed out for the client but are in the store.
//! - `availability`: successful operations / attempted operations, reads and writes (%).
//! - `throughput`: successful operations per second over the run (plain number).
//! - `errors`: failed operations, errors plus timeouts (a count).
//! - `p50`, `p99`, `p999`, `max`: latency over the run (durations).
//! - `promotions`: promotions seen on the timeline (a count); each source (role pollers,
//!   `+switch-master`, `+promoted-slave`) is de-duplicated and the largest count wins.
//!
//! Errors name `file:line:column` of the offending value, found by the YAML parser itself.

mod assertion;
mod evaluate;
mod fmt;
mod form;
mod locate;
mod model;
mod net;
mod resource;
mod validate;

use std::path::Path;
use std::time::Duration;

pub use assertion::{Assertion, FaultFigure, Metric, Op, Threshold, Unit};
pub use evaluate::evaluate;
pub use form::DEFAULT_LEADER_CRASH_WITHIN;
pub use model::{
    Action, Condition, FaultSpec, HealSpec, LoadMode, NodeRole, PinnedClient, Scenario, SourceText,
    Step, Target, Timing, WorkloadSpec,
};
pub use net::{NetSpec, Via};
pub use resource::{parse_bytes, parse_offset, Part, ResourceFault, ResourceKind};
pub use validate::validate;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Something in the drill file is wrong, at this place.
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "failed to read drill file {file}: {source}; check the path (drills live in scenarios/)"
    )]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl ScenarioError {
    /// Line and column, for errors that have them.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ScenarioError::At { line, column, .. } => Some((*line, *column)),
            ScenarioError::Read { .. } => None,
        }
    }
}

/// Reads and checks a drill file (everything that does not need the topology; see
/// [`validate`] for the rest).
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = display_path(path);
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Reads and checks a drill from its text; `file` names it in messages.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    form::parse(file, text)
}

fn display_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|c| p.strip_prefix(&c).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// A duration written with units: `500ms`, `5s`, `1m30s`, `1.5h` (`us`/`µs`, `ms`, `s`, `m`,
/// `h`). `None` for anything else, including a bare number and values too large to hold;
/// never panics, whatever the input.
pub(crate) fn duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num.parse().ok()?;
        let scale = match unit {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(n * scale).ok()?)?;
        rest = tail;
    }
    Some(total)
}

/// The candidate nearest to `word` by edit distance, if near enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::topology::{self, Topology};

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn topology_for(s: &Scenario) -> Topology {
        let path = repo().join("compose").join(format!("{}.yaml", s.topology));
        let opts = topology::LoadOptions {
            profile: s.profile.clone(),
            flavor: s.flavor.clone(),
            sets: s.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..Default::default()
        };
        topology::load(&path, &opts).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_shipped_drill_loads_and_validates() {
        let mut names = Vec::new();
        let dir = repo().join("scenarios");
        for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
            let path = entry.expect("readable entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let s = load(&path).unwrap_or_else(|e| panic!("{e}"));
            // Also against the default-options topology, as the brief's runner may load it.
            let plain = topology::load(
                &repo().join("compose").join(format!("{}.yaml", s.topology)),
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            validate(&s, &plain).unwrap_or_else(|e| panic!("{e}"));
            validate(&s, &topology_for(&s)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.assertions.is_empty(), "{} asserts nothing", s.name());
            names.push(s.name().to_string());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "redis-cluster-master-kill",
                "redis-cluster-minority-partition",
                "redis-sentinel-disk-full-aof",
                "redis-sentinel-leader-crash",
                "redis-sentinel-master-kill",
                "redis-sentinel-master-pause",
                "redis-sentinel-replica-kill",
                "redis-sentinel-replica-lost-and-back",
                "redis-sentinel-seed-timers",
                "redis-sentinel-sentinel-clock-skew",
                "redis-sentinel-sentinel-majority-lost",
                "redis-sentinel-sentinel-minority-lost",
                "redis-sentinel-slow-disk-aof",
                "redis-sentinel-slow-replica-link",
                "redis-sentinel-split-brain",
            ]
        );
    }

    #[test]
    fn the_master_kill_drill_reads_as_intended() {
        let s = load(&repo().join("scenarios/redis-sentinel-master-kill.yaml")).expect("loads");
        assert_eq!(s.workload.mode, LoadMode::Open { rate: 2000 });
        let faults: Vec<_> = s.faults().collect();
        assert_eq!(faults.len(), 1);
        assert_eq!(
            faults[0].2,
            &FaultSpec::Kill {
                target: Target::MasterOf("g1".into()),
                signal: "SIGKILL".into()
            }
        );
        assert!(s
            .steps
            .iter()
            .any(|st| matches!(&st.action, Action::Wait { until: Condition::Promoted(g), .. } if g == "g1")));
    }

    /// Each bad fixture, with the exact message and where it points.
    #[test]
    fn bad_fixtures_name_the_place() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios");
        let sentinel = topology::load(
            &repo().join("compose/redis-sentinel.yaml"),
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            (
                "unknown-key.yaml",
                "7:3: workload: unknown field `rat`, expected one of `mode`, `rate`, `clients`, `pipeline`, `keyspace`, `value_size`, `read_ratio`, `track_writes`, `op_timeout`, `groups`; did you mean `rate`?",
            ),
            (
                "bad-duration.yaml",
                "9:12: steps[1].after: `5 seconds` is not a duration; write it like 500ms, 5s or 1m30s",
            ),
            (
                "unknown-target-node.yaml",
                "7:35: topology redis-sentinel has no node `redis-9`; did you mean `redis-1`?",
            ),
            (
                "unknown-metric.yaml",
                "12:5: unknown metric `failover.unavailability`; did you mean `failover.unavailable`?",
            ),
        ];
        for (name, want) in cases {
            let path = dir.join(name);
            let err = match load(&path) {
                Err(e) => e,
                Ok(s) => match validate(&s, &sentinel) {
                    Err(e) => e,
                    Ok(()) => panic!("{name} was accepted"),
                },
            };
            let text = err.to_string();
            let want = format!("{name}:{want}");
            assert!(
                text.ends_with(&want),
                "{name}:\n got: {text}\nwant: …{want}"
            );
            assert!(text.contains("tests/fixtures/scenarios/"), "{text}");
        }
    }

    #[test]
    fn validation_errors_point_at_the_value() {
        let cluster = topology::load(
            &repo().join("compose/redis-cluster.yaml"),
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let check = |body: &str| -> String {
            let text = format!("description: d\ntopology: redis-cluster\n{body}");
            let s = parse("t.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
            match validate(&s, &cluster) {
                Ok(()) => "ok".into(),
                Err(e) => e.to_string().trim_start_matches("t.yaml:").to_string(),
            }
        };
        assert_eq!(
            check("steps:\n  - fault: {kill: {target: {node: node-1}}}\n"),
            "ok"
        );
        assert_eq!(
            check("steps:\n  - fault: {kill: {target: {master_of: g1}}}\n"),
            "4:40: topology redis-cluster has no group `g1`; its groups: shard-1, shard-2, shard-3"
        );
        assert_eq!(
            check("steps:\n  - fault: {stop: {target: {any_of: {role: sentinel}}}}\n"),
            "4:44: topology redis-cluster has no sentinel node; its roles: cluster-node, exporter"
        );
        assert_eq!(
            check("steps:\n  - wait: {until: {event: +switch-master}}\n"),
            "4:27: topology redis-cluster has no Sentinel, so no Sentinel event will come; wait for `promoted` or `healthy` instead"
        );
        assert_eq!(
            check("steps:\n  - wait: {until: {role: {node: redis-exporter, is: master}}}\n"),
            "4:33: redis-exporter is an exporter node, and only data nodes have a replication role; name a data node"
        );
        assert_eq!(
            check("set: {LAB_CLUSTER_NODE_TIMEOUT_MS: 5000, quorum: 2}\nsteps: [{note: x}]\n"),
            "3:7: `LAB_CLUSTER_NODE_TIMEOUT_MS` is the variable behind setting `cluster-node-timeout`; write the setting's name"
        );
        assert_eq!(
            check("set: {cluster-node-timeout: 5000, quorum: 2}\nsteps: [{note: x}]\n"),
            "3:35: topology redis-cluster has no setting `quorum`; settable: cluster-node-timeout, maxmemory, maxmemory-policy"
        );
        assert_eq!(
            check("profile: quick\nsteps: [{note: x}]\n"),
            "3:10: topology redis-cluster has no profile `quick`; its profiles: drill, seed"
        );
        assert_eq!(
            check("workload: {groups: [shard-1, shard-4]}\nsteps: [{note: x}]\n"),
            "3:30: topology redis-cluster has no group `shard-4`; did you mean `shard-1`?"
        );
        assert_eq!(
            check("pinned_clients:\n  - {name: p, target: {node: redis-exporter}, rate: 5}\nsteps: [{note: x}]\n"),
            "4:30: redis-exporter is an exporter node, and a pinned client writes to it; name a data node"
        );
        assert_eq!(
            check("steps:\n  - fault: {kill: {target: {sentinel_leader: shard-1}}}\n"),
            "4:46: topology redis-cluster has no Sentinels, so nobody leads a failover"
        );
        // Of several problems, the first in the file.
        assert_eq!(
            check("steps:\n  - wait: {until: {promoted: g9}}\n  - fault: {kill: {target: {node: x}}}\nprofile: quick\n"),
            "4:30: topology redis-cluster has no group `g9`; its groups: shard-1, shard-2, shard-3"
        );
    }

    #[test]
    fn durations_need_units_and_never_panic() {
        let d = |s: &str| duration(s);
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("250us"), Some(Duration::from_micros(250)));
        assert_eq!(d(" 2h "), Some(Duration::from_secs(7200)));
        for bad in [
            "",
            "5",
            "5 s",
            "s",
            "5x",
            "1e3s",
            "inf",
            "-1s",
            "1..2s",
            "99999999999999999999999h",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_missing_file_says_so() {
        let err = load(Path::new("scenarios/no-such-drill.yaml")).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("failed to read drill file scenarios/no-such-drill.yaml: "),
            "{msg}"
        );
        assert!(
            msg.ends_with("; check the path (drills live in scenarios/)"),
            "{msg}"
        );
    }

    #[test]
    fn steps_read_as_sentences() {
        let s = load(&repo().join("scenarios/redis-sentinel-master-pause.yaml")).expect("loads");
        let lines: Vec<String> = s.steps.iter().map(|st| st.action.to_string()).collect();
        assert_eq!(
            lines,
            [
                "wait for redis-1 to be a master (up to 5 s)",
                "pause the master of g1",
                "wait for a new master in g1 (up to 30 s)",
                "heal fault 1",
                "wait for redis-1 to be a replica (up to 60 s)",
                "wait for the topology to be healthy (up to 60 s)",
            ]
        );
        assert_eq!(s.pinned_clients[0].target.to_string(), "the master of g1");
        assert_eq!(s.name(), "redis-sentinel-master-pause");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(closest("rat", ["rate", "mode"]), Some("rate"));
        assert_eq!(closest("speed", ["rate", "mode"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
