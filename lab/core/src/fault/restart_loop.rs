//! A restart loop: the container is killed (SIGKILL, a crash) and started again every period
//! while the fault is in force, the first time when it is applied. The loop is a task of the
//! `lab` process that applied it, so it dies with that process; heal stops it and leaves the
//! container running (a `lab` killed mid-restart leaves it stopped, and `lab heal` starts it).
//!
//! A heal run by another `lab` process removes the journal entry: the loop looks for its entry
//! before each restart and ends when it is gone, so the journal stays the one source of truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Journal;
use crate::engine::Engine;

/// Told of each restart: its number (from 1) and whether it worked.
pub type OnRestart = Arc<dyn Fn(u32, Result<(), String>) + Send + Sync>;

/// How long one restart may take before it counts as failed: the kill, the container's exit
/// as the engine sees it, and the start.
const RESTART_LIMIT: Duration = Duration::from_secs(20);

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn loops() -> &'static Mutex<HashMap<String, Running>> {
    static L: std::sync::OnceLock<Mutex<HashMap<String, Running>>> = std::sync::OnceLock::new();
    L.get_or_init(Default::default)
}

fn key(journal: &Journal, id: &str) -> String {
    format!("{}#{id}", journal.key())
}

/// Starts the loop of journalled fault `id` on `container`.
pub fn start(
    engine: &Engine,
    journal: &Journal,
    id: &str,
    container: &str,
    every: Duration,
    on_restart: OnRestart,
) {
    let (stop, mut stopped) = watch::channel(false);
    let (engine, journal, id, container) = (
        engine.clone(),
        journal.clone(),
        id.to_string(),
        container.to_string(),
    );
    let k = key(&journal, &id);
    let task = tokio::spawn(async move {
        let mut n = 0u32;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                break;
            }
            // Healed by another lab process: its entry is gone.
            match journal.list() {
                Ok(all) if all.iter().any(|a| a.id == id) => {}
                _ => break,
            }
            let began = Instant::now();
            n += 1;
            let r = tokio::time::timeout(RESTART_LIMIT, once(&engine, &container))
                .await
                .unwrap_or_else(|_| Err(format!("not restarted within {RESTART_LIMIT:?}")));
            let gone = r.as_ref().is_err_and(|e| e.contains("no longer exists"));
            on_restart(n, r);
            if gone {
                break;
            }
            // Period from start to start; a restart slower than the period is followed at once.
            next = began + every;
        }
    });
    loops()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(k, Running { stop, task });
}

/// One restart: SIGKILL, wait for the engine to see the container stopped, start it.
async fn once(engine: &Engine, container: &str) -> Result<(), String> {
    let running = |engine: &Engine| {
        let c = container.to_string();
        let engine = engine.clone();
        async move {
            match engine.inspect_container(&c).await {
                Ok(Some(i)) => Ok(i.state.and_then(|s| s.running) == Some(true)),
                Ok(None) => Err(format!("container {c} no longer exists")),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    if running(engine).await? {
        // Already exiting between the check and the kill is fine: the wait below sees it.
        let _ = engine.kill_container(container, "SIGKILL").await;
        while running(engine).await? {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    engine
        .start_container(container)
        .await
        .map_err(|e| e.to_string())
}

/// Stops the loop of fault `id` if this process runs it, letting a restart in progress finish
/// (so the container is not left stopped by the stop itself).
pub async fn stop(journal: &Journal, id: &str) {
    let running = loops()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key(journal, id));
    if let Some(Running { stop, mut task }) = running {
        let _ = stop.send(true);
        if tokio::time::timeout(RESTART_LIMIT + Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
