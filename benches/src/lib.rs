//! Benchmarks live under `benches/benches/`; this crate only hosts them.
