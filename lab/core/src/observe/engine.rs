//! The engine's event stream for the instance's containers: die, kill, stop, start, pause,
//! unpause (and OOM kills, as notes).
//!
//! Engine events carry wall-clock times (`time`, `timeNano`) from the daemon's clock. They are
//! stamped on arrival with the run's monotonic clock instead, like every other observer, so
//! the timeline never mixes clocks; the daemon's own time is used only to skip events seen
//! before a reconnection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::{watch, Notify};

use super::{sleep_or_stop, stopped, Backoff, Ctx, Ready};
use crate::engine::{Engine, LABEL_INSTANCE, LABEL_SERVICE};
use crate::measure::timeline::{ContainerAction, EventKind};

pub(super) async fn run(
    ctx: Ctx,
    engine: Engine,
    instance: String,
    started: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    mut ready: Ready,
) {
    let mut filters = HashMap::new();
    filters.insert("type".to_string(), vec!["container".to_string()]);
    filters.insert(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    );
    // Asking from "now" means events between this call and the daemon accepting the request
    // are replayed, not lost; after a reconnection, from the last event seen.
    let mut since = unix_now();
    let mut last_seen: Option<i64> = None;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let opts = EventsOptionsBuilder::default()
            .since(&since_param(since))
            .filters(&filters)
            .build();
        let mut events = engine.raw().events(Some(opts));
        ready.done();
        loop {
            let next = tokio::select! {
                _ = stopped(&mut stop) => return,
                next = events.next() => next,
            };
            let at = ctx.now();
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::debug!("observe: engine event stream for {instance} failed: {e}");
                    break;
                }
                None => break,
            };
            backoff.reset();
            let nanos = msg.time_nano;
            if let (Some(n), Some(last)) = (nanos, last_seen) {
                if n <= last {
                    continue;
                }
            }
            last_seen = nanos.or(last_seen);
            let Some(kind) = to_event(&msg) else { continue };
            if matches!(
                kind,
                EventKind::Container {
                    action: ContainerAction::Start,
                    ..
                }
            ) {
                started.notify_one();
            }
            if !ctx.emit(at, kind) {
                return;
            }
        }
        since = last_seen.map(from_nanos).unwrap_or(since);
        if !sleep_or_stop(&mut stop, backoff.next()).await {
            return;
        }
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn from_nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or_default())
}

/// The engines' `since` takes "seconds.nanoseconds".
fn since_param(t: Duration) -> String {
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// A container event of the instance as a timeline event; `None` for what a drill does not
/// need (exec, health status, create, destroy, ...) and for containers without a service label.
pub(crate) fn to_event(msg: &EventMessage) -> Option<EventKind> {
    if msg
        .typ
        .is_some_and(|t| t != EventMessageTypeEnum::CONTAINER)
    {
        return None;
    }
    let node = msg
        .actor
        .as_ref()?
        .attributes
        .as_ref()?
        .get(LABEL_SERVICE)?
        .clone();
    let action = msg.action.as_deref()?;
    let action = match action {
        "die" | "died" => ContainerAction::Die,
        "kill" => ContainerAction::Kill,
        "stop" => ContainerAction::Stop,
        "start" => ContainerAction::Start,
        "pause" => ContainerAction::Pause,
        "unpause" => ContainerAction::Unpause,
        // The timeline has no OOM action; the die that follows is the state change.
        "oom" => {
            return Some(EventKind::Note {
                text: format!("oom {node}"),
            })
        }
        // "restart" follows its own die and start, which are reported.
        _ => return None,
    };
    Some(EventKind::Container { node, action })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn msg(action: &str, service: Option<&str>) -> EventMessage {
        let mut attrs = HashMap::from([
            ("name".to_string(), "t-redis-1".to_string()),
            (LABEL_INSTANCE.to_string(), "t".to_string()),
        ]);
        if let Some(s) = service {
            attrs.insert(LABEL_SERVICE.to_string(), s.to_string());
        }
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(attrs),
            }),
            time_nano: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn maps_container_actions_to_service_names() {
        for (a, want) in [
            ("die", ContainerAction::Die),
            ("kill", ContainerAction::Kill),
            ("stop", ContainerAction::Stop),
            ("start", ContainerAction::Start),
            ("pause", ContainerAction::Pause),
            ("unpause", ContainerAction::Unpause),
        ] {
            assert_eq!(
                to_event(&msg(a, Some("redis-1"))),
                Some(EventKind::Container {
                    node: "redis-1".into(),
                    action: want
                }),
                "{a}"
            );
        }
        assert_eq!(
            to_event(&msg("oom", Some("redis-1"))),
            Some(EventKind::Note {
                text: "oom redis-1".into()
            })
        );
    }

    #[test]
    fn ignores_other_actions_and_unlabelled_containers() {
        for a in [
            "restart",
            "exec_start: sh /etc/lab/healthcheck.sh 6379",
            "health_status: healthy",
            "create",
            "destroy",
        ] {
            assert_eq!(to_event(&msg(a, Some("redis-1"))), None, "{a}");
        }
        assert_eq!(to_event(&msg("die", None)), None);
        let mut net = msg("die", Some("redis-1"));
        net.typ = Some(EventMessageTypeEnum::NETWORK);
        assert_eq!(to_event(&net), None);
    }

    #[test]
    fn since_has_nanoseconds() {
        assert_eq!(
            since_param(Duration::new(1_700_000_000, 5)),
            "1700000000.000000005"
        );
    }
}
