//! Lost writes: every write carries a unique, increasing id. After recovery lab reads back which
//! ids the store holds and compares with what the client was told: acknowledged writes that are
//! missing were lost; unacknowledged writes that are present anyway were applied although the
//! client saw an error or a timeout (harmless for idempotent writes, a duplicate for the rest).
//!
//! Sort and sweep: O(n log n) with no hashing, a million ids take tens of milliseconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A run of consecutive ids, e.g. 1000-1041, or a single id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub first: u64,
    pub last: u64,
    /// For acknowledged writes: when the first and last of them were acknowledged.
    #[serde(
        rename = "acked_from_us",
        with = "super::serde_us::opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub acked_from: Option<Duration>,
    #[serde(
        rename = "acked_to_us",
        with = "super::serde_us::opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub acked_to: Option<Duration>,
}

impl IdRange {
    /// Ids in the range.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostCounts {
    pub acknowledged: u64,
    pub unacknowledged: u64,
    pub found: u64,
    /// Acknowledged, not found: lost.
    pub acknowledged_missing: u64,
    /// Not acknowledged (error or timeout), found anyway.
    pub unacknowledged_present: u64,
    /// Found, but never attempted by this run: another writer, or a leftover.
    pub unknown_present: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWrites {
    pub acknowledged_missing: Vec<IdRange>,
    pub unacknowledged_present: Vec<IdRange>,
    pub counts: LostCounts,
}

impl LostWrites {
    /// Share of acknowledged writes that were lost, in percent; `None` if none was acknowledged.
    pub fn lost_pct(&self) -> Option<f64> {
        let n = self.counts.acknowledged;
        (n > 0).then(|| self.counts.acknowledged_missing as f64 * 100.0 / n as f64)
    }
}

fn sort_ids(v: &mut Vec<u64>) {
    if !v.windows(2).all(|w| w[0] < w[1]) {
        v.sort_unstable();
        v.dedup();
    }
}

/// Builds ranges from ids given in increasing order.
#[derive(Default)]
struct RangeBuilder {
    out: Vec<IdRange>,
}

impl RangeBuilder {
    fn take(&mut self, id: u64, at: Option<Duration>) {
        if let Some(r) = self.out.last_mut() {
            if r.last.checked_add(1) == Some(id) {
                r.last = id;
                if let Some(at) = at {
                    r.acked_from = Some(r.acked_from.map_or(at, |f| f.min(at)));
                    r.acked_to = Some(r.acked_to.map_or(at, |t| t.max(at)));
                }
                return;
            }
        }
        self.out.push(IdRange {
            first: id,
            last: id,
            acked_from: at,
            acked_to: at,
        });
    }
}

/// Compares what the client was told with what the store holds.
/// - `acknowledged`: (id, time of acknowledgement since run start) for every acknowledged write;
/// - `unacknowledged`: ids of writes that ended in an error or a timeout;
/// - `found`: ids read back from the store after recovery.
///
/// Inputs need not be sorted; duplicates are ignored.
pub fn lost_writes(
    mut acknowledged: Vec<(u64, Duration)>,
    mut unacknowledged: Vec<u64>,
    mut found: Vec<u64>,
) -> LostWrites {
    if !acknowledged.windows(2).all(|w| w[0].0 < w[1].0) {
        acknowledged.sort_unstable_by_key(|&(id, _)| id);
        acknowledged.dedup_by_key(|&mut (id, _)| id);
    }
    sort_ids(&mut unacknowledged);
    sort_ids(&mut found);

    let mut counts = LostCounts {
        acknowledged: acknowledged.len() as u64,
        unacknowledged: unacknowledged.len() as u64,
        found: found.len() as u64,
        ..LostCounts::default()
    };

    let mut missing = RangeBuilder::default();
    let mut f = 0;
    for &(id, at) in &acknowledged {
        while f < found.len() && found[f] < id {
            f += 1;
        }
        if f >= found.len() || found[f] != id {
            counts.acknowledged_missing += 1;
            missing.take(id, Some(at));
        }
    }

    let mut present = RangeBuilder::default();
    let mut f = 0;
    for &id in &unacknowledged {
        while f < found.len() && found[f] < id {
            f += 1;
        }
        if f < found.len() && found[f] == id {
            counts.unacknowledged_present += 1;
            present.take(id, None);
        }
    }

    // Found ids that are in neither set.
    let (mut a, mut u) = (0, 0);
    for &id in &found {
        while a < acknowledged.len() && acknowledged[a].0 < id {
            a += 1;
        }
        while u < unacknowledged.len() && unacknowledged[u] < id {
            u += 1;
        }
        let known = (a < acknowledged.len() && acknowledged[a].0 == id)
            || (u < unacknowledged.len() && unacknowledged[u] == id);
        if !known {
            counts.unknown_present += 1;
        }
    }

    LostWrites {
        acknowledged_missing: missing.out,
        unacknowledged_present: present.out,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn shown(r: &[IdRange]) -> Vec<String> {
        r.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn ranges_compress_and_count() {
        // Acknowledged 1..=1100 except 1042..=1049 (those timed out).
        let acked: Vec<(u64, Duration)> = (1..=1100u64)
            .filter(|id| !(1042..=1049).contains(id))
            .map(|id| (id, ms(id)))
            .collect();
        let unacked: Vec<u64> = (1042..=1049).collect();
        // The store lost 1000..=1041 and 1050, kept 1051.., and holds 1045 and 1046 although
        // they timed out, plus 5000 which nobody wrote.
        let found: Vec<u64> = (1..=1100u64)
            .filter(|id| !(1000..=1050).contains(id))
            .chain([1045, 1046, 5000])
            .collect();
        let lw = lost_writes(acked, unacked, found);
        assert_eq!(shown(&lw.acknowledged_missing), ["1000-1041", "1050"]);
        assert_eq!(lw.acknowledged_missing[0].count(), 42);
        assert_eq!(lw.acknowledged_missing[0].acked_from, Some(ms(1000)));
        assert_eq!(lw.acknowledged_missing[0].acked_to, Some(ms(1041)));
        assert_eq!(shown(&lw.unacknowledged_present), ["1045-1046"]);
        assert_eq!(lw.counts.acknowledged, 1092);
        assert_eq!(lw.counts.acknowledged_missing, 43);
        assert_eq!(lw.counts.unacknowledged_present, 2);
        assert_eq!(lw.counts.unknown_present, 1);
        assert_eq!(lw.counts.found, 1100 - 51 + 3);
    }

    #[test]
    fn a_found_acknowledged_id_splits_ranges() {
        let acked: Vec<(u64, Duration)> = (1..=10u64).map(|id| (id, ms(id))).collect();
        let lw = lost_writes(acked, vec![], vec![1, 5, 10]);
        assert_eq!(shown(&lw.acknowledged_missing), ["2-4", "6-9"]);
        assert_eq!(lw.counts.acknowledged_missing, 7);
        assert!((lw.lost_pct().unwrap_or(0.0) - 70.0).abs() < 1e-9);
    }

    #[test]
    fn unsorted_and_duplicated_inputs() {
        let lw = lost_writes(
            vec![(3, ms(3)), (1, ms(1)), (2, ms(2)), (3, ms(3))],
            vec![9, 7, 7],
            vec![2, 2, 7],
        );
        assert_eq!(shown(&lw.acknowledged_missing), ["1", "3"]);
        assert_eq!(shown(&lw.unacknowledged_present), ["7"]);
        assert_eq!(lw.counts.acknowledged, 3);
        assert_eq!(lw.counts.unacknowledged, 2);
    }

    #[test]
    fn nothing_lost() {
        let acked: Vec<(u64, Duration)> = (1..=100u64).map(|id| (id, ms(id))).collect();
        let lw = lost_writes(acked, vec![], (1..=100).collect());
        assert!(lw.acknowledged_missing.is_empty());
        assert_eq!(lw.lost_pct(), Some(0.0));
    }

    #[test]
    fn a_million_ids() {
        let n = 1_000_000u64;
        let acked: Vec<(u64, Duration)> = (0..n)
            .filter(|id| id % 10 != 0)
            .map(|id| (id, Duration::from_micros(id)))
            .collect();
        let unacked: Vec<u64> = (0..n).filter(|id| id % 10 == 0).collect();
        // Lost: everything in 400_000..500_000. Present anyway: unacked ids >= 900_000.
        let found: Vec<u64> = (0..n)
            .filter(|id| !(400_000..500_000).contains(id))
            .filter(|id| id % 10 != 0 || *id >= 900_000)
            .collect();
        let lw = lost_writes(acked, unacked, found);
        assert_eq!(lw.counts.acknowledged_missing, 90_000);
        // Every tenth id was never acknowledged, so the lost ids come in runs of nine.
        assert_eq!(lw.acknowledged_missing.len(), 10_000);
        assert_eq!(lw.acknowledged_missing[0].to_string(), "400001-400009");
        assert_eq!(lw.counts.unacknowledged_present, 10_000);
        assert_eq!(lw.unacknowledged_present.len(), 10_000);
    }
}
