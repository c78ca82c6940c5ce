//! One pub/sub subscriber per Sentinel: every announcement (`+sdown`, `+switch-master`, ...)
//! becomes an event, with the addresses in its payload rewritten to service names.
//!
//! Pub/sub keeps no history: what a Sentinel announces while we are disconnected from it (it
//! may itself be the fault target) is lost, and the other Sentinels' announcements cover it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::{sleep_or_stop, stopped, Backoff, Ctx, Ready};
use crate::measure::timeline::{EventKind, SentinelEvent};

/// Channels that carry no state change.
const NOISE: &[&str] = &["__sentinel__:hello"];

/// A silent connection (paused Sentinel, dropped packets) is noticed by a PING that goes
/// unanswered for this long.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

type Ping = Pin<Box<dyn Future<Output = bool> + Send>>;

pub(super) async fn run(
    ctx: Ctx,
    sentinel: String,
    port: u16,
    mut stop: watch::Receiver<bool>,
    mut ready: Ready,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut last_error = String::new();
    loop {
        let sub = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = subscribe(port, ctx.password.as_deref()) => r,
        };
        ready.done();
        let pubsub = match sub {
            Ok(p) => p,
            Err(e) => {
                // One log line per distinct failure, not one per attempt.
                if e != last_error {
                    tracing::debug!("observe: cannot subscribe to {sentinel}: {e}");
                    last_error = e;
                }
                if !sleep_or_stop(&mut stop, backoff.next()).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        last_error.clear();
        let (sink, mut messages) = pubsub.split();
        let mut ticker = tokio::time::interval(PING_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        // The PING runs beside the message stream, so a slow answer never delays the stamp
        // of a message that is already waiting.
        let mut ping: Option<Ping> = None;
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        tracing::debug!("observe: subscription to {sentinel} closed");
                        break;
                    };
                    let at = ctx.now();
                    let channel = msg.get_channel_name();
                    if NOISE.contains(&channel) {
                        continue;
                    }
                    let payload: String = msg.get_payload().unwrap_or_default();
                    let kind = EventKind::Sentinel {
                        sentinel: sentinel.clone(),
                        event: SentinelEvent::parse(channel),
                        detail: rewrite(&payload, |h| ctx.names.service_of(h)),
                    };
                    if !ctx.emit(at, kind) {
                        return;
                    }
                }
                _ = ticker.tick(), if ping.is_none() => {
                    let mut sink = sink.clone();
                    ping = Some(Box::pin(async move {
                        matches!(
                            tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await,
                            Ok(Ok(_))
                        )
                    }));
                }
                ok = async {
                    match ping.as_mut() {
                        Some(p) => p.await,
                        None => std::future::pending().await,
                    }
                }, if ping.is_some() => {
                    ping = None;
                    if !ok {
                        tracing::debug!("observe: {sentinel} stopped answering PING; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

async fn subscribe(port: u16, password: Option<&str>) -> Result<redis::aio::PubSub, String> {
    let c = crate::lifecycle::probe::client(port, password)?;
    let attempt = async {
        let mut p = c.get_async_pubsub().await.map_err(|e| e.to_string())?;
        p.psubscribe("*").await.map_err(|e| e.to_string())?;
        Ok(p)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no answer from 127.0.0.1:{port} within {CONNECT_TIMEOUT:?}"))?
}

/// Rewrites every host in a Sentinel payload to its service name. Hosts appear as separate
/// words ("master g1 172.18.0.3 6379 @ ...") or, rarely, as `host:port`; words the resolver
/// does not know (names, ports, run ids, epochs, unknown addresses) stay as they are.
pub(crate) fn rewrite(payload: &str, resolve: impl Fn(&str) -> Option<String>) -> String {
    payload
        .split(' ')
        .map(|word| {
            if let Some(name) = resolve(word) {
                return name;
            }
            if let Some((host, port)) = word.rsplit_once(':') {
                if port.parse::<u16>().is_ok() {
                    if let Some(name) = resolve(host) {
                        return format!("{name}:{port}");
                    }
                }
            }
            word.to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::addr::AddrMap;

    fn map() -> AddrMap {
        let mut m = AddrMap::default();
        for (ip, svc, port, host) in [
            ("172.18.0.3", "redis-1", 6379, 16001),
            ("172.18.0.4", "redis-2", 6379, 16002),
            ("172.18.0.9", "sentinel-1", 26379, 16011),
        ] {
            m.insert(ip, svc, port, host);
            m.insert(svc, svc, port, host);
        }
        m
    }

    fn rw(payload: &str) -> String {
        let m = map();
        rewrite(payload, |h| m.service_of(h).map(str::to_string))
    }

    #[test]
    fn rewrites_instance_addresses_to_names() {
        assert_eq!(rw("master g1 172.18.0.3 6379"), "master g1 redis-1 6379");
        assert_eq!(
            rw("slave 172.18.0.4:6379 172.18.0.4 6379 @ g1 172.18.0.3 6379"),
            "slave redis-2:6379 redis-2 6379 @ g1 redis-1 6379"
        );
        assert_eq!(
            rw("g1 172.18.0.3 6379 172.18.0.4 6379"),
            "g1 redis-1 6379 redis-2 6379"
        );
        assert_eq!(
            rw("sentinel 0f3c5e9a 172.18.0.9 26379 @ g1 172.18.0.3 6379"),
            "sentinel 0f3c5e9a sentinel-1 26379 @ g1 redis-1 6379"
        );
    }

    #[test]
    fn leaves_unknown_words_alone() {
        assert_eq!(
            rw("master g1 10.0.0.7 6379 #quorum 2/2"),
            "master g1 10.0.0.7 6379 #quorum 2/2"
        );
        assert_eq!(rw("3 7c1d"), "3 7c1d");
        assert_eq!(rw(""), "");
        // Names that are already service names stay (announce-hostnames yes).
        assert_eq!(rw("master g1 redis-1 6379"), "master g1 redis-1 6379");
    }

    /// Payloads as valkey 8.1 sends them with `announce-hostnames yes` and the replicas
    /// announcing their hostnames (captured from g1's failover on Podman): nodes arrive as
    /// service names and stay as they are; Sentinels still go by address, and are named.
    #[test]
    fn hostname_payloads_keep_their_names() {
        for p in [
            "master g1 redis-1 6379",
            "master g1 redis-1 6379 #quorum 3/2",
            "g1 redis-1 6379 redis-2 6379",
            "slave redis-1:6379 redis-1 6379 @ g1 redis-2 6379",
            "slave redis-2:6379 redis-2 6379 @ g1 redis-1 6379 new reported role is master",
        ] {
            assert_eq!(rw(p), p);
        }
        assert_eq!(
            rw("sentinel 9fb23d46 172.18.0.9 26379 @ g1 redis-1 6379"),
            "sentinel 9fb23d46 sentinel-1 26379 @ g1 redis-1 6379"
        );
        // A host the lab does not know is left alone: another name, or none at all (what
        // Sentinel reported by address for a node whose name did not resolve while it was down).
        assert_eq!(
            rw("slave redis-9:6379 redis-9 6379 @ g1 redis-1 6379"),
            "slave redis-9:6379 redis-9 6379 @ g1 redis-1 6379"
        );
        assert_eq!(rw("slave :6379  6379"), "slave :6379  6379");
    }

    #[test]
    fn hello_is_noise_and_events_are_not() {
        assert!(NOISE.contains(&"__sentinel__:hello"));
        assert!(!NOISE.contains(&"+sdown"));
        assert_eq!(
            SentinelEvent::parse("+switch-master"),
            SentinelEvent::SwitchMaster
        );
    }
}
