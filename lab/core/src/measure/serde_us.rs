//! Durations in the JSON report are integer microseconds, and every such field is renamed with
//! an `_us` suffix so a reader of the file never has to guess the unit. Sub-microsecond parts are
//! dropped: no timer lab uses is that fine.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

fn to_us(d: &Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(to_us(d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_micros(u64::deserialize(d)?))
}

/// The same for `Option<Duration>`: `null` when absent.
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&to_us(d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_micros))
    }
}
