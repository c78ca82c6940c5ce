//! The Sentinel leader's crash, timed by Sentinel itself: every chosen Sentinel is armed with
//! `SENTINEL SIMULATE-FAILURE crash-after-election`, so the one that wins the next failover
//! election exits (code 99) right after publishing `+elected-leader`, before it picks a
//! replica (valkey/redis sentinel.c, `sentinelFailoverWaitStart`). Killing the leader from
//! outside cannot be timed that well: it sends REPLICAOF NO ONE two or three of its 50-100 ms
//! ticks after the election, faster than lab can see the event and call the engine.
//!
//! The flag is per Sentinel, not per master, and stays until cleared: a watcher task of the
//! applying process polls the armed Sentinels' containers and, once one has exited, disarms
//! the others (`SENTINEL SIMULATE-FAILURE help`, see [`simulate`]), so the failover the survivors hold
//! later completes. The survivors cannot hold it sooner than 2 x failover-timeout after their
//! vote for the crashed leader, which leaves the watcher seconds to spare. No election within
//! `within`: every Sentinel is disarmed and the watcher ends.
//!
//! One journal entry per armed Sentinel. Its heal disarms the Sentinel if it runs and starts
//! it if it does not (the crashed one), so it is idempotent and right whether the watcher ran
//! to its end or the `lab` holding it was killed.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Applied, FaultError, Journal, Kind};
use crate::engine::Engine;

/// How often the watcher looks at the armed Sentinels' containers. A crash is seen at most
/// this late; the survivors hold their own election 20 s (2 x failover-timeout) later at the
/// soonest with the drill profile, 6 min with Sentinel's default.
pub const POLL: Duration = Duration::from_millis(200);

/// The exit code `sentinelSimFailureCrash` ends the Sentinel with.
pub const CRASH_EXIT: i64 = 99;

/// How an armed set ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `node` exited (with `exit`, 99 for the simulated crash); `disarmed` are the others.
    Crashed {
        node: String,
        exit: Option<i64>,
        disarmed: Vec<String>,
    },
    /// No armed Sentinel exited within the limit; all were disarmed.
    Expired { within: Duration },
    /// Healed (its journal entries gone) before any crash.
    Healed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Crashed {
                node,
                exit,
                disarmed,
            } => {
                match exit {
                    Some(CRASH_EXIT) => {
                        write!(f, "{node} crashed right after its election (exit 99)")?
                    }
                    Some(c) => write!(
                        f,
                        "{node} exited (code {c}; not the simulated crash, which exits 99)"
                    )?,
                    None => write!(f, "{node} is down")?,
                }
                if !disarmed.is_empty() {
                    write!(f, "; disarmed {}", disarmed.join(", "))?;
                }
                Ok(())
            }
            Outcome::Expired { within } => write!(
                f,
                "no armed Sentinel was elected within {:.0}s; all disarmed",
                within.as_secs_f64()
            ),
            Outcome::Healed => f.write_str("healed before any election"),
        }
    }
}

/// Told once, when the armed set ends.
pub type OnEnd = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// `SENTINEL SIMULATE-FAILURE <flags>` on the Sentinel in `container`, through the image's
/// own cli (5 s limit: a frozen Sentinel answers nothing).
fn script(flags: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "cli=$(command -v valkey-cli || command -v redis-cli) || {{ echo 'no valkey-cli or redis-cli in this image'; exit 127; }}; \
             if [ -n \"${{LAB_PASSWORD:-}}\" ]; then set -- -a \"$LAB_PASSWORD\" --no-auth-warning; fi; \
             timeout 5 \"$cli\" -p 26379 \"$@\" SENTINEL SIMULATE-FAILURE {flags} 2>&1"
        ),
    ]
}

/// Arms (`crash-after-election`) or disarms the Sentinel in `container`. There is no flag
/// that clears: the command clears every flag before it reads its arguments, and valkey and
/// redis 7+ refuse it with none, so `help` disarms (it answers the list of flags, and sets
/// none of them).
async fn simulate(
    engine: &Engine,
    node: &str,
    container: &str,
    arm: bool,
) -> Result<(), FaultError> {
    let flag = if arm { "crash-after-election" } else { "help" };
    let out = engine.exec(container, &script(flag)).await?;
    let text = out.output.trim();
    let done = if arm {
        text == "OK"
    } else {
        text.contains("crash-after-election") && !text.contains("ERR")
    };
    if out.code == 0 && done {
        return Ok(());
    }
    Err(FaultError::Apply {
        node: node.to_string(),
        what: if arm {
            "arm SENTINEL SIMULATE-FAILURE crash-after-election".into()
        } else {
            "disarm SENTINEL SIMULATE-FAILURE".into()
        },
        detail: format!("exit {}: {text}", out.code),
    })
}

async fn running(engine: &Engine, container: &str) -> Result<(bool, Option<i64>), FaultError> {
    Ok(match engine.inspect_container(container).await? {
        Some(c) => {
            let s = c.state.unwrap_or_default();
            // Paused counts as running: frozen is not crashed.
            (s.running == Some(true), s.exit_code)
        }
        None => (false, None),
    })
}

/// Journals and arms every `(node, container)` (Sentinels), then starts the watcher. All or
/// nothing: a Sentinel that cannot be armed disarms and forgets the ones already armed.
pub async fn apply(
    engine: &Engine,
    journal: &Journal,
    members: &[(String, String)],
    within: Duration,
    origin: &str,
    on_end: OnEnd,
) -> Result<Vec<Applied>, FaultError> {
    let mut applied: Vec<Applied> = vec![];
    for (node, container) in members {
        let r = match running(engine, container).await {
            Ok((true, _)) => Ok(()),
            Ok((false, _)) => Err(FaultError::Apply {
                node: node.clone(),
                what: "arm the leader crash".into(),
                detail: "the Sentinel is not running".into(),
            }),
            Err(e) => Err(e),
        };
        let r = match r {
            Ok(()) => match journal.record(Kind::LeaderCrash { within }, node, container, origin) {
                Ok(a) => {
                    let armed = simulate(engine, node, container, true).await;
                    applied.push(a);
                    armed
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            for a in &applied {
                let _ = heal(engine, journal, a).await;
            }
            return Err(e);
        }
    }
    let (engine, journal, ids) = (
        engine.clone(),
        journal.clone(),
        applied.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
    );
    let members = members.to_vec();
    tokio::spawn(async move {
        let outcome = watch(&engine, &journal, &ids, &members, within).await;
        on_end(&outcome);
    });
    Ok(applied)
}

/// Polls until an armed Sentinel is down, the entries are healed, or `within` passes.
async fn watch(
    engine: &Engine,
    journal: &Journal,
    ids: &[String],
    members: &[(String, String)],
    within: Duration,
) -> Outcome {
    let end = Instant::now() + within;
    while Instant::now() < end {
        match journal.list() {
            Ok(all) if all.iter().any(|a| ids.contains(&a.id)) => {}
            _ => return Outcome::Healed,
        }
        for (i, (node, container)) in members.iter().enumerate() {
            let Ok((false, exit)) = running(engine, container).await else {
                continue;
            };
            let mut disarmed = vec![];
            for (j, (other, c)) in members.iter().enumerate() {
                if j != i && simulate(engine, other, c, false).await.is_ok() {
                    disarmed.push(other.clone());
                }
            }
            return Outcome::Crashed {
                node: node.clone(),
                exit,
                disarmed,
            };
        }
        tokio::time::sleep(POLL).await;
    }
    for (node, c) in members {
        let _ = simulate(engine, node, c, false).await;
    }
    Outcome::Expired { within }
}

/// Undoes one armed Sentinel: disarmed if it runs, started if it does not (the crashed
/// leader), then forgotten. A container that is gone has nothing left to heal.
pub async fn heal(engine: &Engine, journal: &Journal, a: &Applied) -> Result<(), FaultError> {
    if let Some(c) = engine.inspect_container(&a.container).await? {
        let state = c.state.unwrap_or_default();
        if state.paused == Some(true) {
            engine.unpause_container(&a.container).await?;
        }
        if state.running == Some(true) {
            simulate(engine, &a.node, &a.container, false).await?;
        } else {
            // Started unarmed: the flag lives in the process, not in its config.
            engine.start_container(&a.container).await?;
        }
    }
    journal.forget(&a.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_plainly() {
        let c = Outcome::Crashed {
            node: "sentinel-2".into(),
            exit: Some(99),
            disarmed: vec!["sentinel-1".into(), "sentinel-3".into()],
        };
        assert_eq!(
            c.to_string(),
            "sentinel-2 crashed right after its election (exit 99); disarmed sentinel-1, sentinel-3"
        );
        let other = Outcome::Crashed {
            node: "sentinel-1".into(),
            exit: Some(137),
            disarmed: vec![],
        };
        assert!(other.to_string().contains("not the simulated crash"));
        let e = Outcome::Expired {
            within: Duration::from_secs(60),
        };
        assert_eq!(
            e.to_string(),
            "no armed Sentinel was elected within 60s; all disarmed"
        );
    }

    #[test]
    fn the_script_passes_the_password_only_when_set() {
        let s = script("crash-after-election").join(" ");
        assert!(s.contains("SENTINEL SIMULATE-FAILURE crash-after-election"));
        assert!(s.contains("${LAB_PASSWORD:-}") && s.contains("timeout 5"));
    }
}
