//! Reports: a measured run as JSON (everything, for tools and `lab report compare`), a Markdown
//! summary for people, an SVG chart of throughput and latency with the faults on it, and JUnit
//! XML so CI shows each assertion as a test. Pure functions from a [`RunReport`] to text.

mod compare;
mod fmt;
mod junit;
mod markdown;
mod svg;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::measure::{
    BucketSummary, Event, FailoverConfig, FaultReport, LostWrites, Rollup, RunSummary, Timeline,
};

pub use compare::compare;
pub use junit::junit_for;

/// Version of the JSON layout; bumped when a field changes meaning or is removed.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to write the run report as JSON: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("failed to read a run report from JSON (line {line}, column {column}): {source}; is this a file written by `lab run`?")]
    Parse {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("run report has schema version {found}, this lab reads version {SCHEMA_VERSION}; re-run the drill or use a matching lab")]
    Schema { found: u32 },
}

/// Who ran what, where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    pub title: String,
    pub topology: String,
    pub scenario: String,
    /// Wall-clock start, as text (RFC 3339); every other time in the report is monotonic.
    pub started_at: String,
    pub profile: String,
    /// Settings that shape the figures (down-after-milliseconds, rate, clients...).
    #[serde(default)]
    pub settings: IndexMap<String, String>,
    /// Container engine and version.
    pub engine: String,
    /// Anything about the host a reader needs to trust the figures (cores, client-bound...).
    #[serde(default)]
    pub host_notes: Vec<String>,
}

/// One checked expectation of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionResult {
    /// The assertion as written in the scenario, e.g. "failover.unavailability < 5s".
    pub expr: String,
    pub passed: bool,
    /// Measured value with its unit, e.g. "7.4 s".
    pub actual: String,
    /// Threshold with its comparison, e.g. "< 5 s".
    pub expected: String,
    #[serde(default)]
    pub message: String,
}

/// Everything one drill measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    pub meta: RunMeta,
    /// The rules the failover figures were computed with.
    #[serde(default)]
    pub analysis: FailoverConfig,
    pub summary: RunSummary,
    pub buckets: Vec<BucketSummary>,
    pub timeline: Vec<Event>,
    pub faults: Vec<FaultReport>,
    pub lost_writes: Option<LostWrites>,
    /// Replication round trips, measured when the drill slows a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::measure::replication::ReplicationRtt>,
    pub assertions: Vec<AssertionResult>,
}

impl RunReport {
    pub fn new(
        meta: RunMeta,
        analysis: FailoverConfig,
        rollup: Rollup,
        timeline: Timeline,
        faults: Vec<FaultReport>,
    ) -> Self {
        RunReport {
            schema: SCHEMA_VERSION,
            meta,
            analysis,
            summary: rollup.summary,
            buckets: rollup.buckets,
            timeline: timeline.into_events(),
            faults,
            lost_writes: None,
            replication: None,
            assertions: Vec::new(),
        }
    }

    /// Whether every assertion held.
    pub fn passed(&self) -> bool {
        self.assertions.iter().all(|a| a.passed)
    }

    pub fn to_json(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self).map_err(ReportError::Serialize)
    }

    pub fn from_json(text: &str) -> Result<Self, ReportError> {
        let report: RunReport = serde_json::from_str(text).map_err(|e| ReportError::Parse {
            line: e.line(),
            column: e.column(),
            source: e,
        })?;
        if report.schema != SCHEMA_VERSION {
            return Err(ReportError::Schema {
                found: report.schema,
            });
        }
        Ok(report)
    }

    /// A Markdown summary: figures, faults, assertions, lost writes.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// A self-contained SVG chart of throughput and latency over time.
    pub fn to_svg(&self) -> String {
        svg::render(self)
    }

    /// JUnit XML with this drill as one testsuite.
    pub fn to_junit(&self) -> String {
        junit::junit_for(std::slice::from_ref(self))
    }
}

#[cfg(test)]
pub(crate) mod testdata;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let r = testdata::report();
        let json = r.to_json().expect("serializes");
        let back = RunReport::from_json(&json).expect("parses");
        assert_eq!(back, r);
        // Units are in the field names.
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert!(v["summary"]["duration_us"].is_u64());
        assert!(v["faults"][0]["metrics"]["detection_us"].is_u64());
        assert_eq!(
            v["faults"][0]["metrics"]["unavailability"]["kind"],
            "outage"
        );
        assert_eq!(v["timeline"][0]["type"], "note");
    }

    /// Writes the sample run's renderings to $LAB_SAMPLE_DIR (or the temp dir) to look at:
    /// `cargo test -p lab-core write_sample_reports -- --ignored`.
    #[test]
    #[ignore]
    fn write_sample_reports() {
        let dir = std::env::var_os("LAB_SAMPLE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let r = testdata::report();
        let b = testdata::report_with("Faster clients", 0.5, 13_000);
        // A busy drill: an outage still open at the end and a burst of events.
        let mut busy = testdata::report_with("Busy drill", 2.0, 40_000);
        for i in 0..14u64 {
            busy.timeline.push(crate::measure::Event::new(
                std::time::Duration::from_millis(12_000 + i * 90),
                crate::measure::EventKind::ClusterState {
                    node: format!("node-{i}"),
                    state: crate::measure::ClusterHealth::Fail,
                },
            ));
            busy.timeline.push(crate::measure::Event::new(
                std::time::Duration::from_millis(33_000 + i * 100),
                crate::measure::EventKind::ReplicaLink {
                    node: format!("node-{i}"),
                    up: true,
                },
            ));
        }
        busy.timeline.sort_by_key(|e| e.at);
        // A ten-minute run: the sample's buckets repeated.
        let mut long = r.clone();
        long.buckets = (0..17u64)
            .flat_map(|k| {
                r.buckets.iter().map(move |b| BucketSummary {
                    start_ms: b.start_ms + k * 35_000,
                    ..b.clone()
                })
            })
            .collect();
        long.summary.duration = std::time::Duration::from_secs(17 * 35);
        let files = [
            ("long.svg", long.to_svg()),
            ("busy.svg", busy.to_svg()),
            ("sample.svg", r.to_svg()),
            ("sample.md", r.to_markdown()),
            ("sample.xml", r.to_junit()),
            ("sample.json", r.to_json().expect("serializes")),
            ("compare.md", compare(&r, &b)),
        ];
        for (name, body) in files {
            std::fs::write(dir.join(name), body).expect("writable sample dir");
        }
    }

    #[test]
    fn json_errors_name_the_place() {
        let err = RunReport::from_json("{\n  \"schema\": 1,\n  \"meta\": 7\n}").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("line 3"), "{msg}");
        let mut r = testdata::report();
        r.schema = 99;
        let json = r.to_json().expect("serializes");
        assert!(matches!(
            RunReport::from_json(&json),
            Err(ReportError::Schema { found: 99 })
        ));
    }
}
