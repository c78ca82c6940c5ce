//! Per-operation results rolled into fixed time buckets (100 ms by default): counts of
//! successes, errors and timeouts, a latency histogram per bucket and per node, and a whole-run
//! roll-up. `Recorder::record` is called once per operation by every workload task, so each task
//! owns its own `Recorder` (no lock, no atomics) and the drill merges them per tick or at the end.
//!
//! Conventions every caller must follow:
//! - `at` is when the operation was *started*, as an offset from the run's start on the
//!   monotonic clock. In open-loop mode it is the *planned* send time. Bucketing by start time
//!   puts a request that hung for 2 s in the bucket where the trouble began.
//! - Latency histograms hold operations that got an answer (`Ok`) and timeouts (at the time the
//!   client gave up). Fast error replies (connection refused, READONLY, MOVED storms) are counted
//!   but kept out of the histograms: a client spinning on refused connections would otherwise make
//!   an outage look like a latency improvement.
//! - Coordinated omission: open-loop callers pass latency measured from the *intended* send time
//!   and call [`Recorder::record`]. Closed-loop callers (next request only after the previous
//!   answer) call [`Recorder::record_corrected`] with the interval they meant to keep. Never both:
//!   correcting latencies that are already measured from the intended send time counts each stall
//!   twice.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Default bucket width.
pub const DEFAULT_BUCKET_WIDTH: Duration = Duration::from_millis(100);
/// Lowest latency a histogram distinguishes, in microseconds.
pub const LATENCY_LOW_US: u64 = 1;
/// Highest latency a histogram tracks (60 s), in microseconds; longer ones are clamped to it and
/// counted in `RunSummary::saturated`.
pub const LATENCY_HIGH_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms: values are exact to 0.1%.
pub const LATENCY_SIGFIG: u8 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MeasureError {
    #[error("bucket width must be a whole number of milliseconds, at least 1 ms; got {0:?}")]
    BadBucketWidth(Duration),
    #[error("cannot merge a recorder with {theirs:?} buckets into one with {ours:?} buckets")]
    WidthMismatch { ours: Duration, theirs: Duration },
}

/// How one operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    Timeout,
}

/// Operation counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
}

impl Counts {
    #[inline]
    fn add(&mut self, outcome: Outcome, n: u64) {
        match outcome {
            Outcome::Ok => self.ok += n,
            Outcome::Error => self.errors += n,
            Outcome::Timeout => self.timeouts += n,
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
    }

    /// Operations attempted that ended one way or another.
    pub fn attempted(&self) -> u64 {
        self.ok + self.errors + self.timeouts
    }

    /// Errors plus timeouts.
    pub fn failed(&self) -> u64 {
        self.errors + self.timeouts
    }

    /// `ok / attempted` in percent; `None` when nothing was attempted (not 100%).
    pub fn availability_pct(&self) -> Option<f64> {
        let n = self.attempted();
        (n > 0).then(|| self.ok as f64 * 100.0 / n as f64)
    }
}

/// Latency percentiles in microseconds; all `None` when no latency was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Percentiles {
    p50: Option<u64>,
    p90: Option<u64>,
    p99: Option<u64>,
    p999: Option<u64>,
    max: Option<u64>,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: Some(h.value_at_quantile(0.50)),
            p90: Some(h.value_at_quantile(0.90)),
            p99: Some(h.value_at_quantile(0.99)),
            p999: Some(h.value_at_quantile(0.999)),
            max: Some(h.max()),
        }
    }
}

/// One bucket after roll-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketSummary {
    /// Start of the bucket, milliseconds since the run's start.
    pub start_ms: u64,
    /// Width this bucket covered; only the last one may be shorter than the configured width.
    pub width_ms: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub writes: Counts,
    pub reads: Counts,
    /// Successful operations per second: `ok / width`.
    pub ops_per_s: f64,
    /// Failed operations per second: `(errors + timeouts) / width`.
    pub errors_per_s: f64,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub max_us: Option<u64>,
    /// Counts per node that served the operations (only nodes seen in this bucket).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub nodes: IndexMap<String, Counts>,
}

/// Whole-run figures for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub node: String,
    pub counts: Counts,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
}

/// Whole-run roll-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    #[serde(rename = "duration_us", with = "super::serde_us")]
    pub duration: Duration,
    #[serde(rename = "bucket_width_us", with = "super::serde_us")]
    pub bucket_width: Duration,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub writes: Counts,
    pub reads: Counts,
    /// Successful operations per second over the whole run: `ok / duration`.
    pub ops_per_s: f64,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub max_us: Option<u64>,
    /// Values in the latency histogram, including those synthesised by coordinated-omission
    /// correction; compare with `ok + timeouts` to see how much correction added.
    pub latency_samples: u64,
    /// Operations recorded with `record_corrected`.
    pub corrected_ops: u64,
    /// Latencies above 60 s, clamped to 60 s.
    pub saturated: u64,
    /// Successful writes / attempted writes, in percent; `None` when no write was attempted.
    pub write_availability_pct: Option<f64>,
    /// The same for reads.
    pub read_availability_pct: Option<f64>,
    pub nodes: Vec<NodeSummary>,
}

/// Buckets and run summary, produced together because they share one pass over the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    pub buckets: Vec<BucketSummary>,
    pub summary: RunSummary,
}

/// A closed bucket: counts plus its latency values as a sparse (value, count) list, which is
/// all a merge needs and costs a few KiB instead of a dense histogram's ~140 KiB.
#[derive(Debug, Clone, Default)]
struct Bucket {
    reads: Counts,
    writes: Counts,
    nodes: Vec<Counts>,
    latencies: Vec<(u64, u64)>,
}

impl Bucket {
    #[inline]
    fn count(&mut self, outcome: Outcome, node: Option<usize>, is_write: bool, n: u64) {
        if is_write {
            self.writes.add(outcome, n);
        } else {
            self.reads.add(outcome, n);
        }
        if let Some(i) = node {
            if self.nodes.len() <= i {
                self.nodes.resize(i + 1, Counts::default());
            }
            self.nodes[i].add(outcome, n);
        }
    }

    fn merge_counts(&mut self, other: &Bucket, node_map: &[usize]) {
        self.reads.merge(&other.reads);
        self.writes.merge(&other.writes);
        for (i, c) in other.nodes.iter().enumerate() {
            let j = node_map.get(i).copied().unwrap_or(i);
            if self.nodes.len() <= j {
                self.nodes.resize(j + 1, Counts::default());
            }
            self.nodes[j].merge(c);
        }
    }

    /// Sorts and folds equal values so repeated merges do not grow the list without bound.
    fn normalize(&mut self) {
        let v = &mut self.latencies;
        if v.len() < 2 {
            return;
        }
        v.sort_unstable_by_key(|&(value, _)| value);
        let mut w = 0;
        for r in 1..v.len() {
            if v[r].0 == v[w].0 {
                v[w].1 += v[r].1;
            } else {
                w += 1;
                v[w] = v[r];
            }
        }
        v.truncate(w + 1);
    }
}

#[derive(Debug, Clone)]
struct NodeStats {
    counts: Counts,
    latency: Histogram<u64>,
}

/// An empty latency histogram with lab's bounds (1 µs..60 s, 3 significant digits), for code
/// that keeps its own, e.g. a probe, and for benchmarks comparing against a bare histogram.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOW_US, LATENCY_HIGH_US, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// The open bucket's latencies: a dense histogram for O(1) recording plus the list of values
/// that opened a new bin, so sealing visits only the bins used (a few hundred) instead of
/// scanning all ~17k. Counts are u32: one bucket of one task never sees 4 billion operations,
/// and the smaller array halves the cost of clearing it.
#[derive(Debug, Clone)]
struct OpenLatencies {
    hist: Histogram<u32>,
    touched: Vec<u64>,
}

impl OpenLatencies {
    fn new() -> Self {
        OpenLatencies {
            hist: Histogram::new_with_bounds(LATENCY_LOW_US, LATENCY_HIGH_US, LATENCY_SIGFIG)
                .expect("constant histogram bounds are valid"),
            touched: Vec::new(),
        }
    }

    /// Records `us` `n` times; `us` must already be within the histogram's bounds.
    #[inline]
    fn record(&mut self, us: u64, n: u32) {
        if self.hist.count_at(us) == 0 {
            self.touched.push(us);
        }
        self.hist.saturating_record_n(us, n);
    }

    /// Records `us` and, for closed-loop correction, the values `record_correct` would add,
    /// each `n` times.
    #[inline]
    fn record_correct(&mut self, us: u64, interval_us: u64, n: u32) {
        self.record(us, n);
        if interval_us == 0 || us <= interval_us {
            return;
        }
        let mut missing = us - interval_us;
        while missing >= interval_us {
            self.record(missing, n);
            missing -= interval_us;
        }
    }

    fn sparse(&self) -> Vec<(u64, u64)> {
        self.touched
            .iter()
            .map(|&v| (v, u64::from(self.hist.count_at(v))))
            .collect()
    }

    fn clear(&mut self) {
        if !self.touched.is_empty() {
            self.touched.clear();
            self.hist.reset();
        }
    }
}

/// Latency values of `n` late operations with the same synthetic values `record_correct` adds.
fn push_corrected(out: &mut Vec<(u64, u64)>, us: u64, interval_us: u64, n: u64) {
    out.push((us, n));
    if interval_us == 0 || us <= interval_us {
        return;
    }
    let mut missing = us - interval_us;
    while missing >= interval_us {
        out.push((missing, n));
        missing -= interval_us;
    }
}

/// Records operations into time buckets. One per workload task; see the module docs.
#[derive(Debug, Clone)]
pub struct Recorder {
    width: Duration,
    width_ns: u64,
    /// The bucket currently being filled, with a dense histogram so recording is one array
    /// increment. Operations for earlier buckets (late completions) go to `sealed`.
    cur_live: bool,
    cur_idx: u64,
    cur_start: Duration,
    cur_end: Duration,
    cur: Bucket,
    cur_hist: OpenLatencies,
    sealed: BTreeMap<u64, Bucket>,
    nodes: Vec<String>,
    node_stats: Vec<NodeStats>,
    last_at: Duration,
    corrected_ops: u64,
    saturated: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder with 100 ms buckets.
    pub fn new() -> Self {
        Recorder {
            width: DEFAULT_BUCKET_WIDTH,
            width_ns: DEFAULT_BUCKET_WIDTH.as_nanos() as u64,
            cur_live: false,
            cur_idx: 0,
            cur_start: Duration::ZERO,
            cur_end: Duration::ZERO,
            cur: Bucket::default(),
            cur_hist: OpenLatencies::new(),
            sealed: BTreeMap::new(),
            nodes: Vec::new(),
            node_stats: Vec::new(),
            last_at: Duration::ZERO,
            corrected_ops: 0,
            saturated: 0,
        }
    }

    /// A recorder with buckets of `width`, a whole number of milliseconds.
    pub fn with_bucket_width(width: Duration) -> Result<Self, MeasureError> {
        if width < Duration::from_millis(1) || width.subsec_nanos() % 1_000_000 != 0 {
            return Err(MeasureError::BadBucketWidth(width));
        }
        let mut r = Recorder::new();
        r.width = width;
        r.width_ns =
            u64::try_from(width.as_nanos()).map_err(|_| MeasureError::BadBucketWidth(width))?;
        Ok(r)
    }

    pub fn bucket_width(&self) -> Duration {
        self.width
    }

    /// Records one operation. `at`: start (planned send time in open loop) since run start;
    /// `latency`: from that same instant to the answer or to giving up.
    #[inline]
    pub fn record(
        &mut self,
        at: Duration,
        latency: Duration,
        outcome: Outcome,
        node: Option<&str>,
        is_write: bool,
    ) {
        self.record_inner(at, latency, outcome, node, is_write, 0, 1);
    }

    /// Records `n` operations that started at the same instant and ended alike (one pipelined
    /// batch): the same as `n` calls of [`Recorder::record`], for the price of one.
    #[inline]
    pub fn record_n(
        &mut self,
        at: Duration,
        latency: Duration,
        outcome: Outcome,
        node: Option<&str>,
        is_write: bool,
        n: u64,
    ) {
        if n > 0 {
            self.record_inner(at, latency, outcome, node, is_write, 0, n);
        }
    }

    /// Records one operation of a closed-loop client, adding the samples the client could not
    /// take while it waited (hdrhistogram's `record_correct`): a latency of 2 s with an
    /// `expected_interval` of 10 ms also records 1.99 s, 1.98 s, ... 10 ms. Do not use this for
    /// open-loop latencies measured from the intended send time; they are already corrected.
    #[inline]
    pub fn record_corrected(
        &mut self,
        at: Duration,
        latency: Duration,
        outcome: Outcome,
        node: Option<&str>,
        is_write: bool,
        expected_interval: Duration,
    ) {
        let interval_us = u64::try_from(expected_interval.as_micros()).unwrap_or(u64::MAX);
        self.corrected_ops += 1;
        self.record_inner(at, latency, outcome, node, is_write, interval_us, 1);
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn record_inner(
        &mut self,
        at: Duration,
        latency: Duration,
        outcome: Outcome,
        node: Option<&str>,
        is_write: bool,
        interval_us: u64,
        n: u64,
    ) {
        let node = node.map(|n| self.node_index(n));
        if at > self.last_at {
            self.last_at = at;
        }
        let us = if outcome == Outcome::Error {
            None
        } else {
            Some(self.latency_us(latency))
        };
        if !(self.cur_live && at >= self.cur_start && at < self.cur_end) {
            let idx = u64::try_from(at.as_nanos() / u128::from(self.width_ns)).unwrap_or(u64::MAX);
            if !self.cur_live || idx > self.cur_idx {
                self.open(idx);
            } else {
                self.record_late(idx, us, outcome, node, is_write, interval_us, n);
                return;
            }
        }
        self.cur.count(outcome, node, is_write, n);
        if let Some(us) = us {
            // One bucket of one task never sees 4 billion operations (see `OpenLatencies`).
            self.cur_hist
                .record_correct(us, interval_us, u32::try_from(n).unwrap_or(u32::MAX));
            if let Some(i) = node {
                let _ = self.node_stats[i]
                    .latency
                    .record_n_correct(us, n, interval_us);
            }
        }
        if let Some(i) = node {
            self.node_stats[i].counts.add(outcome, n);
        }
    }

    #[inline]
    fn latency_us(&mut self, latency: Duration) -> u64 {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if us > LATENCY_HIGH_US {
            self.saturated += 1;
            LATENCY_HIGH_US
        } else {
            us.max(LATENCY_LOW_US)
        }
    }

    #[inline]
    fn node_index(&mut self, name: &str) -> usize {
        if let Some(i) = self.nodes.iter().position(|n| n == name) {
            return i;
        }
        self.nodes.push(name.to_string());
        self.node_stats.push(NodeStats {
            counts: Counts::default(),
            latency: latency_histogram(),
        });
        self.nodes.len() - 1
    }

    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn record_late(
        &mut self,
        idx: u64,
        us: Option<u64>,
        outcome: Outcome,
        node: Option<usize>,
        is_write: bool,
        interval_us: u64,
        n: u64,
    ) {
        let b = self.sealed.entry(idx).or_default();
        b.count(outcome, node, is_write, n);
        if let Some(us) = us {
            push_corrected(&mut b.latencies, us, interval_us, n);
            if let Some(i) = node {
                let _ = self.node_stats[i]
                    .latency
                    .record_n_correct(us, n, interval_us);
            }
        }
        if let Some(i) = node {
            self.node_stats[i].counts.add(outcome, n);
        }
    }

    #[cold]
    fn open(&mut self, idx: u64) {
        self.seal();
        self.cur_live = true;
        self.cur_idx = idx;
        self.cur_start = Duration::from_nanos(idx.saturating_mul(self.width_ns));
        self.cur_end = self.cur_start.saturating_add(self.width);
    }

    /// Moves the open bucket into `sealed` as a sparse list and clears the dense histogram.
    fn seal(&mut self) {
        if !self.cur_live {
            return;
        }
        self.cur_live = false;
        let mut bucket = std::mem::take(&mut self.cur);
        bucket.latencies = self.cur_hist.sparse();
        self.cur_hist.clear();
        match self.sealed.get_mut(&self.cur_idx) {
            Some(existing) => {
                existing.merge_counts(&bucket, &[]);
                existing.latencies.extend_from_slice(&bucket.latencies);
                existing.normalize();
            }
            None => {
                self.sealed.insert(self.cur_idx, bucket);
            }
        }
    }

    /// Adds everything `other` recorded. Buckets line up by index, so recorders of different
    /// tasks (or successive drains of one task) combine exactly.
    pub fn merge(&mut self, other: &Recorder) -> Result<(), MeasureError> {
        if other.width != self.width {
            return Err(MeasureError::WidthMismatch {
                ours: self.width,
                theirs: other.width,
            });
        }
        let node_map: Vec<usize> = other.nodes.iter().map(|n| self.node_index(n)).collect();
        let mut add = |idx: u64, b: &Bucket, lat: &[(u64, u64)]| {
            let mine = self.sealed.entry(idx).or_default();
            mine.merge_counts(b, &node_map);
            mine.latencies.extend_from_slice(lat);
            mine.normalize();
        };
        for (&idx, b) in &other.sealed {
            add(idx, b, &b.latencies);
        }
        if other.cur_live {
            add(other.cur_idx, &other.cur, &other.cur_hist.sparse());
        }
        for (i, s) in other.node_stats.iter().enumerate() {
            let mine = &mut self.node_stats[node_map[i]];
            mine.counts.merge(&s.counts);
            if mine.latency.add(&s.latency).is_err() {
                self.saturated += 1;
            }
        }
        self.last_at = self.last_at.max(other.last_at);
        self.corrected_ops += other.corrected_ops;
        self.saturated += other.saturated;
        Ok(())
    }

    /// Takes everything recorded so far, leaving this recorder empty with the same settings:
    /// a worker calls this each tick and sends the result to the aggregator, which `merge`s it.
    pub fn drain(&mut self) -> Recorder {
        self.seal();
        let mut out = Recorder {
            sealed: std::mem::take(&mut self.sealed),
            nodes: self.nodes.clone(),
            node_stats: self.node_stats.clone(),
            last_at: self.last_at,
            corrected_ops: self.corrected_ops,
            saturated: self.saturated,
            ..Recorder::new()
        };
        out.width = self.width;
        out.width_ns = self.width_ns;
        for s in &mut self.node_stats {
            s.counts = Counts::default();
            s.latency.reset();
        }
        self.corrected_ops = 0;
        self.saturated = 0;
        out
    }

    /// Rolls every bucket from 0 up to `run_end` (or the last operation, if later) into
    /// summaries. Buckets with no operation are included with zero counts and no percentiles,
    /// because "nothing completed" is exactly what an outage looks like.
    pub fn rollup(&self, run_end: Duration) -> Rollup {
        let duration = run_end.max(self.last_at);
        let last_idx = self.last_index(duration);
        let mut scratch = latency_histogram();
        let mut run = latency_histogram();
        let mut reads = Counts::default();
        let mut writes = Counts::default();
        let mut buckets = Vec::with_capacity(usize::try_from(last_idx + 1).unwrap_or(0));
        for idx in 0..=last_idx {
            let (b, s) = self.bucket_at(idx, duration, &mut scratch, Some(&mut run));
            reads.merge(&b.reads);
            writes.merge(&b.writes);
            buckets.push(s);
        }
        let p = Percentiles::of(&run);
        let mut total = reads;
        total.merge(&writes);
        let secs = duration.as_secs_f64();
        let nodes = self
            .nodes
            .iter()
            .zip(&self.node_stats)
            .map(|(name, s)| {
                let p = Percentiles::of(&s.latency);
                NodeSummary {
                    node: name.clone(),
                    counts: s.counts,
                    p50_us: p.p50,
                    p99_us: p.p99,
                    max_us: p.max,
                }
            })
            .collect();
        let summary = RunSummary {
            duration,
            bucket_width: self.width,
            ok: total.ok,
            errors: total.errors,
            timeouts: total.timeouts,
            writes,
            reads,
            ops_per_s: if secs > 0.0 {
                total.ok as f64 / secs
            } else {
                0.0
            },
            p50_us: p.p50,
            p90_us: p.p90,
            p99_us: p.p99,
            p999_us: p.p999,
            max_us: p.max,
            latency_samples: run.len(),
            corrected_ops: self.corrected_ops,
            saturated: self.saturated,
            write_availability_pct: writes.availability_pct(),
            read_availability_pct: reads.availability_pct(),
            nodes,
        };
        Rollup { buckets, summary }
    }

    /// Summaries of the buckets from the one containing `from` up to `run_end`: what a live
    /// view redraws each tick without re-rolling the whole run.
    pub fn buckets_since(&self, from: Duration, run_end: Duration) -> Vec<BucketSummary> {
        let duration = run_end.max(self.last_at);
        let first = self.index_of(from);
        let last = self.last_index(duration);
        let mut scratch = latency_histogram();
        (first..=last)
            .map(|idx| self.bucket_at(idx, duration, &mut scratch, None).1)
            .collect()
    }

    fn index_of(&self, at: Duration) -> u64 {
        u64::try_from(at.as_nanos() / u128::from(self.width_ns)).unwrap_or(u64::MAX)
    }

    /// Index of the bucket holding the last instant before `end`.
    fn last_index(&self, end: Duration) -> u64 {
        let data_last = self
            .sealed
            .keys()
            .next_back()
            .copied()
            .into_iter()
            .chain(self.cur_live.then_some(self.cur_idx))
            .max()
            .unwrap_or(0);
        let end_idx = self.index_of(end.saturating_sub(Duration::from_nanos(1)));
        data_last.max(end_idx)
    }

    /// Combines the sealed and open parts of bucket `idx`; leaves its latencies in `scratch`.
    /// Also records the bucket's latencies into `run` when given: cheaper than adding the
    /// dense scratch histogram, which would walk all of its ~17k counters.
    fn bucket_at(
        &self,
        idx: u64,
        run_end: Duration,
        scratch: &mut Histogram<u64>,
        mut run: Option<&mut Histogram<u64>>,
    ) -> (Bucket, BucketSummary) {
        if !scratch.is_empty() {
            scratch.reset();
        }
        let mut b = Bucket::default();
        let mut add = |v: u64, c: u64| {
            scratch.saturating_record_n(v, c);
            if let Some(run) = run.as_deref_mut() {
                run.saturating_record_n(v, c);
            }
        };
        if let Some(s) = self.sealed.get(&idx) {
            b.merge_counts(s, &[]);
            for &(v, c) in &s.latencies {
                add(v, c);
            }
        }
        if self.cur_live && self.cur_idx == idx {
            b.merge_counts(&self.cur, &[]);
            for (v, c) in self.cur_hist.sparse() {
                add(v, c);
            }
        }
        let start = Duration::from_nanos(idx.saturating_mul(self.width_ns));
        let end = start.saturating_add(self.width);
        // The last bucket only covers up to the end of the run.
        let covered = if run_end > start && run_end < end {
            run_end - start
        } else {
            self.width
        };
        let width_ms = u64::try_from(covered.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let secs = width_ms as f64 / 1000.0;
        let mut total = b.reads;
        total.merge(&b.writes);
        let p = Percentiles::of(scratch);
        let nodes = b
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.attempted() > 0)
            .filter_map(|(i, c)| self.nodes.get(i).map(|n| (n.clone(), *c)))
            .collect();
        let summary = BucketSummary {
            start_ms: u64::try_from(start.as_millis()).unwrap_or(u64::MAX),
            width_ms,
            ok: total.ok,
            errors: total.errors,
            timeouts: total.timeouts,
            writes: b.writes,
            reads: b.reads,
            ops_per_s: total.ok as f64 / secs,
            errors_per_s: total.failed() as f64 / secs,
            p50_us: p.p50,
            p90_us: p.p90,
            p99_us: p.p99,
            p999_us: p.p999,
            max_us: p.max,
            nodes,
        };
        (b, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    /// hdrhistogram with 3 significant digits reports values within 0.1%.
    fn close(actual: Option<u64>, expected: u64) -> bool {
        let a = actual.unwrap_or(0) as f64;
        (a - expected as f64).abs() <= expected as f64 * 0.001 + 1.0
    }

    #[test]
    fn ops_per_second_is_count_over_width() {
        let mut r = Recorder::new();
        // 37 ok + 3 errors in bucket 0, 50 ok in bucket 2, nothing in bucket 1.
        for i in 0..37 {
            r.record(ms(i * 2), us(300), Outcome::Ok, None, true);
        }
        for i in 0..3 {
            r.record(ms(90 + i), us(50), Outcome::Error, None, true);
        }
        for i in 0..50 {
            r.record(ms(200 + i), us(300), Outcome::Ok, None, false);
        }
        let roll = r.rollup(ms(300));
        assert_eq!(roll.buckets.len(), 3);
        let b0 = &roll.buckets[0];
        assert_eq!((b0.ok, b0.errors, b0.timeouts), (37, 3, 0));
        assert_eq!(b0.ops_per_s, 370.0);
        assert_eq!(b0.errors_per_s, 30.0);
        let b1 = &roll.buckets[1];
        assert_eq!((b1.start_ms, b1.ok, b1.ops_per_s), (100, 0, 0.0));
        assert_eq!(b1.p99_us, None, "an empty bucket has no latency, not zero");
        assert_eq!(roll.buckets[2].ops_per_s, 500.0);
        assert_eq!(roll.summary.ok, 87);
        assert!((roll.summary.ops_per_s - 290.0).abs() < 1e-9);
    }

    #[test]
    fn partial_last_bucket_divides_by_the_covered_width() {
        let mut r = Recorder::new();
        for i in 0..10 {
            r.record(ms(100 + i), us(100), Outcome::Ok, None, true);
        }
        let roll = r.rollup(ms(150));
        let last = roll.buckets.last().expect("two buckets");
        assert_eq!(last.width_ms, 50);
        assert_eq!(last.ops_per_s, 200.0);
    }

    #[test]
    fn percentiles_match_known_inputs() {
        let mut r = Recorder::new();
        // 1..=10000 µs, one each, spread over 10 buckets of 1000 values.
        for v in 1..=10_000u64 {
            r.record(ms((v - 1) / 1000 * 100), us(v), Outcome::Ok, None, true);
        }
        let s = r.rollup(ms(1000)).summary;
        assert!(close(s.p50_us, 5000), "p50 {:?}", s.p50_us);
        assert!(close(s.p90_us, 9000), "p90 {:?}", s.p90_us);
        assert!(close(s.p99_us, 9900), "p99 {:?}", s.p99_us);
        assert!(close(s.p999_us, 9990), "p99.9 {:?}", s.p999_us);
        assert!(close(s.max_us, 10_000), "max {:?}", s.max_us);
        // Bucket 3 holds 3001..=4000.
        let b3 = &r.rollup(ms(1000)).buckets[3];
        assert!(close(b3.p50_us, 3500), "bucket p50 {:?}", b3.p50_us);
        assert!(close(b3.max_us, 4000), "bucket max {:?}", b3.max_us);
    }

    #[test]
    fn errors_are_counted_but_not_in_latency_and_timeouts_are() {
        let mut r = Recorder::new();
        for _ in 0..98 {
            r.record(ms(1), us(200), Outcome::Ok, None, true);
        }
        for _ in 0..1000 {
            r.record(ms(2), us(5), Outcome::Error, None, true);
        }
        r.record(ms(3), Duration::from_secs(2), Outcome::Timeout, None, true);
        r.record(ms(4), Duration::from_secs(2), Outcome::Timeout, None, true);
        let s = r.rollup(ms(100)).summary;
        assert_eq!(s.latency_samples, 100);
        assert!(close(s.p50_us, 200));
        assert!(close(s.max_us, 2_000_000));
        assert_eq!(s.writes.errors, 1000);
        let avail = s.write_availability_pct.expect("writes attempted");
        assert!((avail - 98.0 * 100.0 / 1100.0).abs() < 1e-9);
        assert_eq!(s.read_availability_pct, None);
    }

    #[test]
    fn merge_of_workers_equals_one_recorder() {
        let mut one = Recorder::new();
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for i in 0..5000u64 {
            let at = ms(i / 10);
            let lat = us(100 + (i * 7919) % 5000);
            let node = if i % 3 == 0 { "redis-1" } else { "redis-2" };
            let outcome = if i % 50 == 0 {
                Outcome::Timeout
            } else {
                Outcome::Ok
            };
            one.record(at, lat, outcome, Some(node), i % 2 == 0);
            let w = if i % 2 == 0 { &mut a } else { &mut b };
            w.record(at, lat, outcome, Some(node), i % 2 == 0);
        }
        let mut agg = Recorder::new();
        // Worker a drains twice (per tick), worker b once at the end.
        let d1 = a.drain();
        agg.merge(&d1).expect("same width");
        agg.merge(&b).expect("same width");
        agg.merge(&a.drain()).expect("same width");
        let x = one.rollup(ms(500));
        let y = agg.rollup(ms(500));
        assert_eq!(x.summary, y.summary);
        assert_eq!(x.buckets, y.buckets);
        assert_eq!(y.summary.nodes.len(), 2);
    }

    /// A pipelined batch recorded once with its size equals its operations recorded one by
    /// one, on time and late, with errors (kept out of the histograms) and two nodes.
    #[test]
    fn record_n_equals_n_records() {
        let mut each = Recorder::new();
        let mut batch = Recorder::new();
        let cases = [
            (ms(10), us(250), Outcome::Ok, Some("redis-1"), true, 16),
            (ms(20), us(900), Outcome::Error, Some("redis-2"), false, 3),
            (ms(250), us(120), Outcome::Ok, Some("redis-2"), false, 7),
            (ms(30), ms(1500), Outcome::Timeout, Some("redis-1"), true, 5),
            (ms(260), us(130), Outcome::Ok, None, true, 1),
            (ms(270), us(130), Outcome::Ok, None, true, 0),
        ];
        for (at, lat, outcome, node, write, n) in cases {
            for _ in 0..n {
                each.record(at, lat, outcome, node, write);
            }
            batch.record_n(at, lat, outcome, node, write, n);
        }
        let (x, y) = (each.rollup(ms(300)), batch.rollup(ms(300)));
        assert_eq!(x.summary, y.summary);
        assert_eq!(x.buckets, y.buckets);
        assert_eq!(y.summary.ok, 24);
        assert_eq!(y.summary.latency_samples, 29);
    }

    #[test]
    fn late_operations_land_in_their_own_bucket() {
        let mut r = Recorder::new();
        r.record(ms(250), us(100), Outcome::Ok, None, true);
        r.record(ms(50), ms(2000), Outcome::Timeout, Some("redis-1"), true);
        r.record(ms(260), us(100), Outcome::Ok, None, true);
        let roll = r.rollup(ms(300));
        assert_eq!(roll.buckets[0].timeouts, 1);
        assert!(close(roll.buckets[0].max_us, 2_000_000));
        assert_eq!(roll.buckets[2].ok, 2);
        assert_eq!(roll.buckets[0].nodes["redis-1"].timeouts, 1);
    }

    #[test]
    fn corrected_recording_adds_the_missed_samples() {
        let mut r = Recorder::new();
        // Closed loop meant to send every 10 ms; one request stalled 100 ms.
        r.record_corrected(ms(0), ms(100), Outcome::Ok, None, true, ms(10));
        let s = r.rollup(ms(100)).summary;
        // 100, 90, 80, ..., 10 ms.
        assert_eq!(s.latency_samples, 10);
        assert_eq!(s.ok, 1);
        assert_eq!(s.corrected_ops, 1);
        // The same late, into a sealed bucket.
        let mut late = Recorder::new();
        late.record(ms(150), us(1), Outcome::Ok, None, true);
        late.record_corrected(ms(0), ms(100), Outcome::Ok, None, true, ms(10));
        assert_eq!(late.rollup(ms(200)).buckets[0].p50_us, s.p50_us);
    }

    #[test]
    fn absurd_latencies_are_clamped_and_counted() {
        let mut r = Recorder::new();
        r.record(
            ms(0),
            Duration::from_secs(600),
            Outcome::Timeout,
            None,
            true,
        );
        let s = r.rollup(ms(100)).summary;
        assert_eq!(s.saturated, 1);
        assert!(close(s.max_us, LATENCY_HIGH_US));
    }

    #[test]
    fn bucket_width_must_be_whole_milliseconds() {
        assert!(Recorder::with_bucket_width(ms(250)).is_ok());
        assert_eq!(
            Recorder::with_bucket_width(us(1500)).err(),
            Some(MeasureError::BadBucketWidth(us(1500)))
        );
        let mut a = Recorder::new();
        let b = Recorder::with_bucket_width(ms(1000)).expect("valid");
        assert!(a.merge(&b).is_err());
    }

    #[test]
    fn buckets_since_matches_the_tail_of_a_full_rollup() {
        let mut r = Recorder::new();
        for i in 0..100u64 {
            r.record(ms(i * 10), us(100 + i), Outcome::Ok, None, true);
        }
        let full = r.rollup(ms(1000)).buckets;
        let tail = r.buckets_since(ms(700), ms(1000));
        assert_eq!(tail.as_slice(), &full[7..]);
    }
}
