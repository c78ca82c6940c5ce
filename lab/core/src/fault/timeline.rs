//! The instance's own timeline, `<state>/<instance>/timeline.jsonl`: faults applied and healed
//! outside a drill (`lab fault`, `lab heal`, leftovers healed by `lab up`/`down`/`drill`), one
//! JSON line per event, in the drills' `Event` format with `at_us` counted from the Unix epoch
//! and the wall-clock `time` beside it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Applied, FaultError};
use crate::measure::{Event, EventKind};

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, millisecond resolution.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone)]
pub struct InstanceTimeline {
    path: PathBuf,
}

/// The number in a journal id (`f12` -> 12), the id drills use for faults.
pub fn number(id: &str) -> u32 {
    id.trim_start_matches('f').parse().unwrap_or(0)
}

impl InstanceTimeline {
    pub fn new(state_root: &Path, instance: &str) -> Self {
        InstanceTimeline {
            path: state_root.join(instance).join("timeline.jsonl"),
        }
    }

    pub fn at(path: PathBuf) -> Self {
        InstanceTimeline { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl ToString) -> FaultError {
        FaultError::Journal {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Appends one event stamped now.
    pub fn push(&self, kind: EventKind) -> Result<(), FaultError> {
        let now = SystemTime::now();
        let entry = Entry {
            time: humantime::format_rfc3339_millis(now).to_string(),
            event: Event::new(now.duration_since(UNIX_EPOCH).unwrap_or_default(), kind),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let line = serde_json::to_string(&entry).map_err(|e| self.err(e))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.err(e))?;
        writeln!(f, "{line}").map_err(|e| self.err(e))
    }

    pub fn applied(&self, a: &Applied) -> Result<(), FaultError> {
        self.push(EventKind::Fault {
            id: number(&a.id),
            fault: a.describe(),
            target: a.node.clone(),
        })
    }

    pub fn healed(&self, a: &Applied) -> Result<(), FaultError> {
        self.push(EventKind::FaultHealed {
            id: number(&a.id),
            target: a.node.clone(),
        })
    }

    /// Every entry, oldest first; a missing file is an empty timeline.
    pub fn read(&self) -> Result<Vec<Entry>, FaultError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.err(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| self.err(e)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Kind;

    #[test]
    fn entries_round_trip_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = InstanceTimeline::new(dir.path(), "x");
        assert!(t.read().expect("empty").is_empty());
        let a = Applied {
            id: "f7".into(),
            kind: Kind::Stress { cpu: 2, memory: 0 },
            node: "redis-1".into(),
            container: "x-redis-1".into(),
            origin: "lab fault".into(),
            since: "now".into(),
        };
        t.applied(&a).expect("push");
        t.healed(&a).expect("push");
        let e = t.read().expect("read");
        assert_eq!(e.len(), 2);
        assert!(e[0].event.at <= e[1].event.at);
        assert_eq!(
            e[0].event.kind,
            EventKind::Fault {
                id: 7,
                fault: "stress (2 cpu workers) redis-1".into(),
                target: "redis-1".into()
            }
        );
        assert_eq!(
            e[1].event.kind,
            EventKind::FaultHealed {
                id: 7,
                target: "redis-1".into()
            }
        );
    }
}
