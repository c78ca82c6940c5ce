//! Measurement: timelines, 100 ms buckets, latency histograms and failover maths.
