//! The client loop. Each worker owns its connections (one per node it talks to), its
//! recorder and its write log; nothing is shared per operation but the route table (read
//! without awaiting) and the id counter (one atomic add per write).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::resp::{Answer, RespConn};
use super::route::{key_slot, Discovery, NodeAddr, Routes};
use super::{IdSource, KeyPlan, LoadMode, Output, Spec, WriteOp};
use crate::measure::{Outcome, Recorder};

const FLUSH_EVERY: Duration = Duration::from_millis(200);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for choosing keys, and no lock or syscall.
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Op {
    write: bool,
    id: u64,
    group: u16,
    /// Where its key sits in `Batch::keys`.
    key: Range<usize>,
}

/// One pipelined batch, reused from batch to batch so that building one allocates nothing:
/// the operations, their keys back to back in one buffer, and the value every SET writes.
struct Batch {
    ops: Vec<Op>,
    keys: Vec<u8>,
    value: Vec<u8>,
}

impl Batch {
    fn key(&self, op: &Op) -> &[u8] {
        &self.keys[op.key.clone()]
    }
}

/// Each operation's outcome and the node that answered it.
type Results = Vec<(Outcome, Option<NodeAddr>)>;

pub(super) async fn run_all(run: super::Run) -> Output {
    let super::Run {
        routes,
        keys,
        spec,
        password,
        t0,
        ids,
        live,
        stop,
    } = run;
    let clients = spec.clients.max(1);
    let mut ready = if spec.connect_first {
        connect_all(&routes, &keys, &spec, password.as_deref()).await
    } else {
        vec![]
    };
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..clients {
        let conns = ready
            .get_mut(i as usize)
            .map(std::mem::take)
            .unwrap_or_default();
        let w = Worker {
            conns,
            routes: routes.clone(),
            keys: keys.clone(),
            spec: spec.clone(),
            password: password.clone(),
            t0,
            ids: ids.clone(),
            live: live.clone(),
            stop: stop.clone(),
            sent: sent.clone(),
            index: i,
            started,
            deadline: None,
        };
        set.spawn(w.run());
    }
    let mut recorder = Recorder::with_bucket_width(spec.bucket_width).unwrap_or_default();
    let mut writes = vec![];
    let mut ops = 0;
    while let Some(r) = set.join_next().await {
        if let Ok((rec, w, n)) = r {
            let _ = recorder.merge(&rec);
            writes.extend(w);
            ops += n;
        }
    }
    writes.sort_unstable_by_key(|w: &WriteOp| w.id);
    let elapsed = started.elapsed();
    let interval = match spec.mode {
        LoadMode::Open { rate } if rate > 0.0 => Duration::from_secs_f64(1.0 / rate),
        _ if ops > 0 => elapsed / (ops as u32).max(1),
        _ => Duration::from_millis(1),
    };
    Output {
        label: spec.label.clone(),
        recorder,
        writes,
        group_names: routes.group_names.clone(),
        ops,
        elapsed,
        interval,
    }
}

/// The groups client `index` sends to (indices into the key plan's groups).
fn groups_of(spec: &Spec, index: u32, ngroups: usize) -> Vec<usize> {
    let allowed: Vec<usize> = if spec.groups.is_empty() {
        (0..ngroups).collect()
    } else {
        spec.groups.clone()
    };
    if spec.sticky_groups && !allowed.is_empty() {
        vec![allowed[index as usize % allowed.len()]]
    } else {
        allowed
    }
}

/// The master each group's keys go to now.
fn target_of(routes: &Routes, group: usize, first_key: &[u8]) -> Option<NodeAddr> {
    match routes.discovery {
        Discovery::Cluster { .. } => routes.slot_owner(key_slot(first_key)),
        Discovery::Pinned { .. } => routes.master_of(0),
        Discovery::Sentinel { .. } => routes.master_of(group),
    }
}

/// Opens every client's connections to the masters of its groups, all at once, before the
/// clock starts (`Spec::connect_first`). A node that does not answer is left to the client,
/// which connects on its first request as usual.
async fn connect_all(
    routes: &Arc<Routes>,
    keys: &Arc<KeyPlan>,
    spec: &Spec,
    password: Option<&str>,
) -> Vec<HashMap<u16, RespConn>> {
    let ngroups = keys.groups.len().max(1);
    let mut set = tokio::task::JoinSet::new();
    let mut key = Vec::with_capacity(32);
    for i in 0..spec.clients.max(1) {
        let mut targets: Vec<NodeAddr> = vec![];
        for g in groups_of(spec, i, ngroups) {
            key.clear();
            keys.push_read_key(g, 0, &mut key);
            if let Some(t) = target_of(routes, g, &key) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        let routes = routes.clone();
        let (password, timeout) = (password.map(str::to_string), spec.op_timeout);
        set.spawn(async move {
            let mut conns = HashMap::new();
            for t in targets {
                let addr = routes.socket_addr(&t);
                if let Ok(c) =
                    RespConn::connect_to(addr, t.port, password.as_deref(), timeout).await
                {
                    conns.insert(t.port, c);
                }
            }
            (i, conns)
        });
    }
    let mut out: Vec<HashMap<u16, RespConn>> =
        (0..spec.clients.max(1)).map(|_| HashMap::new()).collect();
    while let Some(r) = set.join_next().await {
        if let Ok((i, conns)) = r {
            out[i as usize] = conns;
        }
    }
    out
}

struct Worker {
    /// Connections opened before the clock started (`Spec::connect_first`).
    conns: HashMap<u16, RespConn>,
    routes: Arc<Routes>,
    keys: Arc<KeyPlan>,
    spec: Spec,
    password: Option<String>,
    t0: Instant,
    ids: Arc<IdSource>,
    live: Option<tokio::sync::mpsc::UnboundedSender<Recorder>>,
    stop: tokio::sync::watch::Receiver<bool>,
    sent: Arc<AtomicU64>,
    index: u32,
    started: Instant,
    /// Open loop: when the current request's time is up (planned send + op timeout).
    deadline: Option<Instant>,
}

enum Fail {
    Timeout,
    Io,
}

impl Worker {
    async fn run(mut self) -> (Recorder, Vec<WriteOp>, u64) {
        let mut rec = Recorder::with_bucket_width(self.spec.bucket_width).unwrap_or_default();
        let mut log = Vec::new();
        let mut conns: HashMap<u16, RespConn> = std::mem::take(&mut self.conns);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15
            ^ ((self.index as u64 + 1) << 17)
            ^ self.t0.elapsed().as_nanos() as u64);
        let pipeline = self.spec.pipeline.max(1);
        let ngroups = self.keys.groups.len().max(1);
        let allowed = groups_of(&self.spec, self.index, ngroups);
        // Open loop: this worker's share of the rate, offset so workers do not send in step.
        let period = match self.spec.mode {
            LoadMode::Open { rate } if rate > 0.0 => Some(Duration::from_secs_f64(
                self.spec.clients.max(1) as f64 * pipeline as f64 / rate,
            )),
            _ => None,
        };
        let offset = period.map(|p| p.mul_f64(self.index as f64 / self.spec.clients.max(1) as f64));
        let mut k: u64 = 0;
        let mut last_flush = Instant::now();
        let mut done = 0u64;
        let mut batch = Batch {
            ops: Vec::with_capacity(pipeline as usize),
            keys: Vec::with_capacity(pipeline as usize * 32),
            value: vec![b'x'; self.spec.value_size.max(1)],
        };
        let mut answers: Vec<Answer> = Vec::with_capacity(pipeline as usize);
        let mut results: Results = Vec::with_capacity(pipeline as usize);
        loop {
            if *self.stop.borrow() {
                break;
            }
            if let Some(d) = self.spec.duration {
                if self.started.elapsed() >= d {
                    break;
                }
            }
            if let Some(n) = self.spec.requests {
                if self.sent.fetch_add(pipeline as u64, Ordering::Relaxed) >= n {
                    break;
                }
            }
            let planned = match (period, offset) {
                (Some(p), Some(o)) => {
                    let at = self.started + o + p.mul_f64(k as f64);
                    k += 1;
                    let now = Instant::now();
                    if at > now {
                        tokio::select! {
                            _ = tokio::time::sleep_until(at.into()) => {}
                            _ = self.stop.changed() => { if *self.stop.borrow() { break; } }
                        }
                    }
                    at
                }
                _ => Instant::now(),
            };
            // Build the batch: one group per batch so it goes to one node.
            let g = allowed[(rng.next() % allowed.len() as u64) as usize];
            batch.ops.clear();
            batch.keys.clear();
            for _ in 0..pipeline {
                let write = rng.unit() >= self.spec.read_ratio;
                let from = batch.keys.len();
                let id = if write && self.spec.track_writes {
                    let id = self.ids.0.fetch_add(1, Ordering::Relaxed) + 1;
                    self.keys.push_write_key(g, id, &mut batch.keys);
                    id
                } else {
                    // Untracked writes share the read keyspace, like redis-benchmark's SET.
                    let n = rng.next() % self.spec.keyspace.max(1);
                    self.keys.push_read_key(g, n, &mut batch.keys);
                    0
                };
                batch.ops.push(Op {
                    write,
                    id,
                    group: g as u16,
                    key: from..batch.keys.len(),
                });
            }
            let target = target_of(&self.routes, g, batch.key(&batch.ops[0]));
            let at = planned.saturating_duration_since(self.t0);
            // Open loop: a request already older than the op timeout when its turn comes is one
            // the client has given up on. Sending it late would count it as a success at its
            // planned time and hide the outage, and flood a thawed node with a backlog.
            let overdue = period.is_some() && planned.elapsed() >= self.spec.op_timeout;
            self.deadline = period.map(|_| planned + self.spec.op_timeout);
            results.clear();
            match target {
                _ if overdue => results.resize(batch.ops.len(), (Outcome::Timeout, None)),
                None => {
                    self.routes.trouble.notify_one();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    results.resize(batch.ops.len(), (Outcome::Error, None));
                }
                Some(t) => {
                    self.send(&mut conns, &t, &batch, &mut answers, &mut results)
                        .await
                }
            }
            let latency = planned.elapsed();
            // A pipelined batch mostly ends alike (same node, outcome and kind): each run of
            // equal operations is recorded once with its length.
            let mut i = 0;
            while i < results.len() {
                let (outcome, node) = &results[i];
                let write = batch.ops[i].write;
                let mut j = i + 1;
                while j < results.len()
                    && results[j].0 == *outcome
                    && results[j].1 == *node
                    && batch.ops[j].write == write
                {
                    j += 1;
                }
                let node_name = node.as_ref().map(|n: &NodeAddr| &*n.node);
                rec.record_n(at, latency, *outcome, node_name, write, (j - i) as u64);
                i = j;
            }
            if self.spec.track_writes {
                for (op, (outcome, _)) in batch.ops.iter().zip(&results) {
                    if op.write {
                        log.push(WriteOp {
                            id: op.id,
                            at,
                            ok: *outcome == Outcome::Ok,
                            group: op.group,
                        });
                    }
                }
            }
            results.clear();
            done += batch.ops.len() as u64;
            if let Some(tx) = &self.live {
                if last_flush.elapsed() >= FLUSH_EVERY {
                    last_flush = Instant::now();
                    let _ = tx.send(rec.drain());
                }
            }
        }
        if let Some(tx) = &self.live {
            let _ = tx.send(rec.drain());
        }
        (rec, log, done)
    }

    /// Sends a batch to `target` and appends each op's outcome and the node that answered
    /// to `out`. Follows MOVED (up to twice) and ASK for single operations.
    async fn send(
        &mut self,
        conns: &mut HashMap<u16, RespConn>,
        target: &NodeAddr,
        batch: &Batch,
        answers: &mut Vec<Answer>,
        out: &mut Results,
    ) {
        match self
            .roundtrip(conns, target, batch, None, false, answers)
            .await
        {
            Err(fail) => {
                let o = match fail {
                    Fail::Timeout => Outcome::Timeout,
                    Fail::Io => Outcome::Error,
                };
                self.routes.trouble.notify_one();
                if matches!(self.spec.mode, LoadMode::Closed) {
                    // Do not spin on a dead node: a real client backs off too.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                out.resize(batch.ops.len(), (o, Some(target.clone())));
            }
            Ok(()) => {
                // Taken out so a redirect can reuse the scratch vector.
                let got = std::mem::take(answers);
                for (i, a) in got.iter().enumerate() {
                    match a {
                        Answer::Fine => out.push((Outcome::Ok, Some(target.clone()))),
                        Answer::Error(e) => {
                            let r = self.judge(conns, target, batch, i, e, answers).await;
                            out.push(r);
                        }
                    }
                }
                *answers = got;
            }
        }
    }

    /// An error reply to op `i`: follows MOVED/ASK (twice at most), else counts the error.
    async fn judge(
        &mut self,
        conns: &mut HashMap<u16, RespConn>,
        target: &NodeAddr,
        batch: &Batch,
        i: usize,
        first: &str,
        answers: &mut Vec<Answer>,
    ) -> (Outcome, Option<NodeAddr>) {
        let mut err = first.to_string();
        let mut node = target.clone();
        for _ in 0..2 {
            let (moved, ask) = (err.starts_with("MOVED "), err.starts_with("ASK "));
            if !(moved || ask) {
                self.routes.trouble.notify_one();
                return (Outcome::Error, Some(node));
            }
            let mut parts = err.split_whitespace().skip(1);
            let slot: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let addr = parts.next().unwrap_or("");
            let (h, p) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
            let p: u16 = p.parse().unwrap_or(6379);
            let next = if moved {
                self.routes.trouble.notify_one();
                self.routes.moved(slot, h, p)
            } else {
                self.routes.translate(h, p)
            };
            let Some(next) = next else {
                return (Outcome::Error, Some(node));
            };
            node = next;
            match self
                .roundtrip(conns, &node, batch, Some(i), ask, answers)
                .await
            {
                Ok(()) => match answers.pop() {
                    Some(Answer::Fine) => return (Outcome::Ok, Some(node)),
                    Some(Answer::Error(e)) => err = e,
                    None => return (Outcome::Error, Some(node)),
                },
                Err(Fail::Io) => return (Outcome::Error, Some(node)),
                Err(Fail::Timeout) => return (Outcome::Timeout, Some(node)),
            }
        }
        (Outcome::Error, Some(node))
    }

    /// Sends the whole batch (or only op `only`, for a redirect) and reads one answer per op
    /// into `answers`.
    async fn roundtrip(
        &mut self,
        conns: &mut HashMap<u16, RespConn>,
        target: &NodeAddr,
        batch: &Batch,
        only: Option<usize>,
        asking: bool,
        answers: &mut Vec<Answer>,
    ) -> Result<(), Fail> {
        let timeout = self.spec.op_timeout;
        let deadline = match self.deadline {
            Some(d) => d.into(),
            None => tokio::time::Instant::now() + timeout,
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = conns.entry(target.port) {
            match tokio::time::timeout_at(
                deadline,
                RespConn::connect_to(
                    self.routes.socket_addr(target),
                    target.port,
                    self.password.as_deref(),
                    timeout,
                ),
            )
            .await
            {
                Ok(Ok(c)) => {
                    slot.insert(c);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Fail::Timeout)
                }
                Ok(Err(_)) => return Err(Fail::Io),
                Err(_) => return Err(Fail::Timeout),
            }
        }
        let Some(c) = conns.get_mut(&target.port) else {
            return Err(Fail::Io);
        };
        let ops = match only {
            Some(i) => &batch.ops[i..=i],
            None => &batch.ops[..],
        };
        if asking {
            c.queue(&[b"ASKING"]);
        }
        for op in ops {
            if op.write {
                c.queue_set(batch.key(op), &batch.value);
            } else {
                c.queue_get(batch.key(op));
            }
        }
        let expected = ops.len() + usize::from(asking);
        let io = async {
            c.flush().await?;
            c.read_answers(expected, answers).await
        };
        match tokio::time::timeout_at(deadline, io).await {
            Ok(Ok(())) => {
                if asking {
                    answers.remove(0);
                }
                Ok(())
            }
            Ok(Err(_)) => {
                // The stream is out of step after an error: never reuse it.
                conns.remove(&target.port);
                Err(Fail::Io)
            }
            Err(_) => {
                conns.remove(&target.port);
                Err(Fail::Timeout)
            }
        }
    }
}
