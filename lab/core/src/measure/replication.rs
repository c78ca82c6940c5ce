//! Replication round trips as the drill report carries them: medians before the first fault
//! and while a latency fault was in force, from samples taken by the drill's probe
//! (`drill/repl.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One sample: when it started (from t0) and its round trip (`None`: no acknowledgement).
pub type Sample = (Duration, Option<Duration>);

/// Median replication round trips of one group before the first fault and while the first
/// latency fault was in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationRtt {
    pub group: String,
    #[serde(with = "crate::measure::serde_us::opt", rename = "before_us")]
    pub before: Option<Duration>,
    #[serde(with = "crate::measure::serde_us::opt", rename = "during_us")]
    pub during: Option<Duration>,
    pub samples_before: usize,
    pub samples_during: usize,
    /// Round trips that got no acknowledgement within 3 s (counted, left out of the medians).
    pub unacknowledged: usize,
    /// Clock resolution of one sample.
    #[serde(with = "crate::measure::serde_us", rename = "resolution_us")]
    pub resolution: Duration,
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

/// Summarises the samples: before `first_fault`, and within `[from, to)` (the latency
/// fault's window, less the first second while the replica reconnects through the proxy).
pub fn summarise(
    group: &str,
    samples: &[Sample],
    first_fault: Duration,
    window: Option<(Duration, Duration)>,
) -> ReplicationRtt {
    let before: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at < first_fault)
        .filter_map(|(_, r)| *r)
        .collect();
    let during: Vec<Duration> = match window {
        Some((from, to)) => samples
            .iter()
            .filter(|(at, _)| *at >= from + Duration::from_secs(1) && *at < to)
            .filter_map(|(_, r)| *r)
            .collect(),
        None => vec![],
    };
    ReplicationRtt {
        group: group.to_string(),
        samples_before: before.len(),
        samples_during: during.len(),
        before: median(before),
        during: median(during),
        unacknowledged: samples.iter().filter(|(_, r)| r.is_none()).count(),
        resolution: Duration::from_micros(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_split_at_the_fault_and_skip_the_reconnect() {
        let ms = Duration::from_millis;
        let s: Vec<Sample> = vec![
            (ms(0), Some(ms(2))),
            (ms(250), Some(ms(3))),
            (ms(500), Some(ms(4))),
            (ms(1000), Some(ms(900))), // reconnecting: left out
            (ms(2100), Some(ms(210))),
            (ms(2350), None),
            (ms(2600), Some(ms(220))),
            (ms(2850), Some(ms(205))),
            (ms(4000), Some(ms(3))), // healed
        ];
        let r = summarise("g1", &s, ms(900), Some((ms(900), ms(3000))));
        assert_eq!(r.before, Some(ms(3)));
        assert_eq!(r.during, Some(ms(210)));
        assert_eq!(
            (r.samples_before, r.samples_during, r.unacknowledged),
            (3, 3, 1)
        );
    }
}
