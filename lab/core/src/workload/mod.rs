//! The load generator: many async clients driving SET/GET through the topology as real
//! clients would (Sentinel-aware, cluster-aware, or pinned to one node), each write carrying
//! a unique ordered id so acknowledged writes can be checked after recovery.
//!
//! - closed loop: `clients` connections each send, wait, repeat (like `redis-benchmark -c`);
//!   latency is service time, as redis-benchmark reports it.
//! - open loop: a target `rate`; each operation has an intended send time and its latency is
//!   measured from that time, so a stalled server shows up in the percentiles (coordinated
//!   omission corrected the wrk2 way; nothing is corrected twice).
//!
//! Each worker owns its `Recorder` and hands a drained copy to the live channel every 200 ms.

pub mod readback;
pub mod resp;
pub mod route;
mod worker;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::measure::Recorder;
pub use readback::readback;
pub use route::{Discovery, NodeAddr, Routes};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    Closed,
    Open { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// Name of this client population in reports ("main", "stale-writer").
    pub label: String,
    pub mode: LoadMode,
    pub clients: u32,
    pub pipeline: u32,
    pub keyspace: u64,
    pub value_size: usize,
    /// Share of reads, 0..=1.
    pub read_ratio: f64,
    /// Writes go to unique keys carrying their id, checked after recovery.
    pub track_writes: bool,
    pub op_timeout: Duration,
    /// Only these groups (indices into `Routes::group_names`) get load; empty: all.
    pub groups: Vec<usize>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    /// Closed loop: every client connects (and authenticates) to its nodes before the clock
    /// starts, as redis-benchmark creates its clients before it starts timing.
    pub connect_first: bool,
    /// Client `i` sends only to group `i mod n` of its groups, one connection per client, as
    /// `redis-benchmark --cluster` spreads its clients over the masters. Otherwise every
    /// batch picks a group at random.
    pub sticky_groups: bool,
    /// Width of the recorder's time buckets. A benchmark that reports only whole-run figures
    /// uses one wide bucket: each bucket a client opens clears a dense histogram (~70 KiB).
    pub bucket_width: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            label: "main".into(),
            mode: LoadMode::Closed,
            clients: 16,
            pipeline: 1,
            keyspace: 10_000,
            value_size: 64,
            read_ratio: 0.5,
            track_writes: true,
            op_timeout: Duration::from_secs(1),
            groups: vec![],
            duration: Some(Duration::from_secs(10)),
            requests: None,
            connect_first: false,
            sticky_groups: false,
            bucket_width: crate::measure::buckets::DEFAULT_BUCKET_WIDTH,
        }
    }
}

/// How keys are named per group, so that the read-back finds each write where it belongs.
///
/// Write keys carry a run tag as well as the write id: ids start again at 1 in every run,
/// and without the tag a write lost in this run would be found under the key an earlier run
/// wrote with the same id (that hid lost writes whenever a drill followed another drill on
/// the same instance).
#[derive(Debug, Clone)]
pub struct KeyPlan {
    /// Unique per run (random, 8 hex digits).
    pub run: String,
    pub groups: Vec<GroupKeys>,
}

#[derive(Debug, Clone)]
pub struct GroupKeys {
    pub name: String,
    /// Cluster: hash tags whose slots belong to this shard. Empty for Sentinel groups.
    pub tags: Vec<String>,
}

impl KeyPlan {
    /// Sentinel (and pinned) groups: plain keys prefixed with the group's name.
    pub fn plain(names: &[String]) -> KeyPlan {
        KeyPlan {
            run: fresh_run_tag(),
            groups: names
                .iter()
                .map(|n| GroupKeys {
                    name: n.clone(),
                    tags: vec![],
                })
                .collect(),
        }
    }

    /// Cluster shards: 16 hash tags per shard, found by searching tag names whose slot the
    /// shard owned at start, so every key of a group lives on that group's master.
    pub fn cluster(routes: &Routes) -> KeyPlan {
        let n = routes.group_names.len();
        let mut tags: Vec<Vec<String>> = vec![vec![]; n];
        for i in 0..200_000u32 {
            if tags.iter().all(|t| t.len() >= 16) {
                break;
            }
            let tag = format!("t{i}");
            let g = routes.slot_group(route::key_slot(tag.as_bytes())) as usize;
            if let Some(t) = tags.get_mut(g) {
                if t.len() < 16 {
                    t.push(tag);
                }
            }
        }
        KeyPlan {
            run: fresh_run_tag(),
            groups: routes
                .group_names
                .iter()
                .zip(tags)
                .map(|(name, tags)| GroupKeys {
                    name: name.clone(),
                    tags,
                })
                .collect(),
        }
    }

    /// The same plan (same run tag) restricted to one group, for a client that writes to
    /// one group only (a pinned client, a single-node bench).
    pub fn only(&self, group: usize) -> KeyPlan {
        KeyPlan {
            run: self.run.clone(),
            groups: self.groups.get(group).cloned().into_iter().collect(),
        }
    }

    pub fn write_key(&self, group: usize, id: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        self.push_write_key(group, id, &mut k);
        k
    }

    pub fn read_key(&self, group: usize, n: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        self.push_read_key(group, n, &mut k);
        k
    }

    /// Appends `write_key(group, id)` to `out` (the generator's hot path: no allocation).
    pub fn push_write_key(&self, group: usize, id: u64, out: &mut Vec<u8>) {
        self.push_key(group, b"w", Some(&self.run), id, out);
    }

    /// Appends `read_key(group, n)` to `out`.
    pub fn push_read_key(&self, group: usize, n: u64, out: &mut Vec<u8>) {
        self.push_key(group, b"k", None, n, out);
    }

    /// `lab:<kind>:<group>[:<run>]:<n>` for plain groups, `{<tag>}:<kind>[:<run>]:<n>` on a
    /// cluster shard. Write keys carry the run tag; read keys are shared by every run.
    fn push_key(&self, group: usize, kind: &[u8], run: Option<&str>, n: u64, out: &mut Vec<u8>) {
        let g = &self.groups[group.min(self.groups.len().saturating_sub(1))];
        if g.tags.is_empty() {
            out.extend_from_slice(b"lab:");
            out.extend_from_slice(kind);
            out.push(b':');
            out.extend_from_slice(g.name.as_bytes());
        } else {
            out.push(b'{');
            out.extend_from_slice(g.tags[(n % g.tags.len() as u64) as usize].as_bytes());
            out.extend_from_slice(b"}:");
            out.extend_from_slice(kind);
        }
        if let Some(run) = run {
            out.push(b':');
            out.extend_from_slice(run.as_bytes());
        }
        out.push(b':');
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

fn fresh_run_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// One write as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOp {
    pub id: u64,
    /// Start (intended send time in open loop) since the run's t0.
    pub at: Duration,
    pub ok: bool,
    pub group: u16,
}

/// What a workload produced.
#[derive(Debug)]
pub struct Output {
    pub label: String,
    pub recorder: Recorder,
    /// Tracked writes (empty when tracking is off), group names from `group_names`.
    pub writes: Vec<WriteOp>,
    pub group_names: Vec<String>,
    pub ops: u64,
    pub elapsed: Duration,
    /// Mean time between two operations of one client: the resolution of outage figures.
    pub interval: Duration,
}

/// Shared across every workload of a run so write ids are unique and ordered by issue time.
#[derive(Debug, Default)]
pub struct IdSource(pub AtomicU64);

/// Everything one workload run needs; `stop` ends it early.
pub struct Run {
    pub routes: Arc<Routes>,
    pub keys: Arc<KeyPlan>,
    pub spec: Spec,
    pub password: Option<String>,
    pub t0: Instant,
    pub ids: Arc<IdSource>,
    pub live: Option<tokio::sync::mpsc::UnboundedSender<Recorder>>,
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Runs a workload to completion (duration, request count, or `stop`).
pub async fn run(run: Run) -> Output {
    worker::run_all(run).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_keys_differ_between_runs_with_the_same_ids() {
        let names = vec!["g1".to_string()];
        let a = KeyPlan::plain(&names);
        let b = KeyPlan::plain(&names);
        assert_ne!(a.run, b.run);
        assert_ne!(a.write_key(0, 7), b.write_key(0, 7));
        // A pinned client's plan writes under its run's tag, into the same keys as the main
        // plan would for that group.
        assert_eq!(a.only(0).write_key(0, 7), a.write_key(0, 7));
        let key = String::from_utf8(a.write_key(0, 7)).expect("utf8");
        assert_eq!(key, format!("lab:w:g1:{}:7", a.run));
    }

    #[test]
    fn cluster_write_keys_keep_their_hash_tag_first() {
        let plan = KeyPlan {
            run: "0badc0de".into(),
            groups: vec![GroupKeys {
                name: "g1".into(),
                tags: vec!["t0".into(), "t5".into()],
            }],
        };
        assert_eq!(plan.write_key(0, 3), b"{t5}:w:0badc0de:3".to_vec());
        assert_eq!(
            route::key_slot(&plan.write_key(0, 3)),
            route::key_slot(b"t5")
        );
    }

    #[test]
    fn key_names_are_stable() {
        let plan = KeyPlan {
            run: "r1".into(),
            groups: vec![
                GroupKeys {
                    name: "g1".into(),
                    tags: vec![],
                },
                GroupKeys {
                    name: "shard-2".into(),
                    tags: vec!["t0".into(), "t5".into()],
                },
            ],
        };
        // Read-back and earlier reports depend on these exact names.
        assert_eq!(plan.write_key(0, 42), b"lab:w:g1:r1:42");
        assert_eq!(plan.read_key(0, 7), b"lab:k:g1:7");
        assert_eq!(plan.write_key(1, 43), b"{t5}:w:r1:43");
        assert_eq!(plan.read_key(1, 8), b"{t0}:k:8");
        let mut buf = b"x".to_vec();
        plan.push_read_key(1, 9, &mut buf);
        assert_eq!(buf, b"x{t5}:k:9");
    }
}
