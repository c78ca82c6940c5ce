//! Replication round trips measured from outside while a drill runs: every 250 ms a write on
//! the group's master followed by `WAIT 1`, timed by the client. A slowed master-replica link
//! shows here as the injected delay, twice (the write goes out, the acknowledgement comes back).

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::target;
use crate::lifecycle::probe::{cmd, redis_conn};
use crate::lifecycle::Instance;
use crate::measure::replication::Sample;
use crate::scenario::Target;

const EVERY: Duration = Duration::from_millis(250);
const T: Duration = Duration::from_secs(3);

/// Probes until `stop`; returns the samples.
pub async fn probe(
    inst: std::sync::Arc<Instance>,
    group: String,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut out = vec![];
    let mut conn = None;
    let mut n: u64 = 0;
    while !*stop.borrow() {
        let at = t0.elapsed();
        if conn.is_none() {
            if let Ok(node) = target::resolve(&inst, &Target::MasterOf(group.clone())).await {
                if let Some(port) = inst.host_port(&node, 6379) {
                    conn = redis_conn(port, inst.password.as_deref(), T).await.ok();
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            n += 1;
            let start = Instant::now();
            let set: Result<(), _> =
                cmd(c, redis::cmd("SET").arg("lab:repl-probe").arg(n), T).await;
            let acked: Result<i64, _> = if set.is_ok() {
                cmd(
                    c,
                    redis::cmd("WAIT").arg(1).arg(T.as_millis() as u64),
                    T + T,
                )
                .await
            } else {
                Err(set.err().map(|e| e.to_string()).unwrap_or_default())
            };
            match acked {
                Ok(k) if k >= 1 => out.push((at, Some(start.elapsed()))),
                Ok(_) => out.push((at, None)),
                Err(_) => conn = None,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => {}
        }
    }
    out
}
