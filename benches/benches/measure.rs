//! Hot paths of measurement, each beside a bare-hdrhistogram peer measured in the same run, so
//! the figure to read is the ratio, not the absolute time:
//! - `record`: lab's `Recorder::record` (bucketing, counts, per-node attribution) against a bare
//!   `Histogram::record` of the same latencies;
//! - `rollup`: summarising a run into per-bucket percentiles against reading the same
//!   percentiles out of ready-made dense histograms, one per bucket.
//!
//! `cargo bench -p lab-benches --bench measure` (about 20 s); `-- --test` runs each once.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lab_core::measure::{latency_histogram, Outcome, Recorder};

/// Operations per benchmark iteration.
const OPS: u64 = 10_000;
/// Time between two operations of one worker: 10k ops/s, so 1000 ops per 100 ms bucket.
const STEP: Duration = Duration::from_micros(100);

/// Latencies in µs, spread like a real run (mostly 100-600 µs, a 1% tail to 50 ms).
fn latencies(n: u64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 100 == 7 {
                1_000 + x % 49_000
            } else {
                100 + x % 500
            }
        })
        .collect()
}

fn record(c: &mut Criterion) {
    let lat = latencies(OPS);
    let mut g = c.benchmark_group("record");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(OPS));

    g.bench_function("bare hdrhistogram record (peer)", |b| {
        b.iter_batched_ref(
            latency_histogram,
            |h| {
                for &us in &lat {
                    let _ = h.record(black_box(us));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("Recorder::record", |b| {
        b.iter_batched_ref(
            Recorder::new,
            |r| {
                let mut at = Duration::ZERO;
                for &us in &lat {
                    r.record(
                        black_box(at),
                        Duration::from_micros(us),
                        Outcome::Ok,
                        None,
                        true,
                    );
                    at += STEP;
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("Recorder::record with node", |b| {
        let nodes = ["redis-1", "redis-2", "redis-3"];
        b.iter_batched_ref(
            Recorder::new,
            |r| {
                let mut at = Duration::ZERO;
                for (i, &us) in lat.iter().enumerate() {
                    r.record(
                        black_box(at),
                        Duration::from_micros(us),
                        Outcome::Ok,
                        Some(nodes[i % 3]),
                        i % 2 == 0,
                    );
                    at += STEP;
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn rollup(c: &mut Criterion) {
    // A 30 s run: 300 buckets of 1000 operations.
    const BUCKETS: u64 = 300;
    let per_bucket = 1000;
    let lat = latencies(BUCKETS * per_bucket);
    let mut rec = Recorder::new();
    let mut dense = Vec::new();
    for (bucket, chunk) in lat.chunks(per_bucket as usize).enumerate() {
        let mut h = latency_histogram();
        for (i, &us) in chunk.iter().enumerate() {
            let at = Duration::from_millis(bucket as u64 * 100) + STEP * i as u32;
            rec.record(at, Duration::from_micros(us), Outcome::Ok, None, true);
            let _ = h.record(us);
        }
        dense.push(h);
    }
    let run_end = Duration::from_millis(BUCKETS * 100);

    let mut g = c.benchmark_group("rollup");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(BUCKETS));
    g.bench_function("bare percentiles of dense histograms (peer)", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for h in &dense {
                sum += h.value_at_quantile(0.5)
                    + h.value_at_quantile(0.9)
                    + h.value_at_quantile(0.99)
                    + h.value_at_quantile(0.999)
                    + h.max();
            }
            black_box(sum)
        })
    });
    g.bench_function("Recorder::rollup", |b| {
        b.iter(|| black_box(rec.rollup(black_box(run_end))))
    });
    g.finish();
}

criterion_group!(benches, record, rollup);
criterion_main!(benches);
