//! lab-core: everything `lab` does, without a user interface. The CLI and the TUI are two
//! front ends over this crate, so a drill runs the same with or without a terminal.

pub mod bench;
pub mod drill;
pub mod engine;
pub mod fault;
pub mod images;
pub mod lifecycle;
pub mod live;
pub mod measure;
pub mod observe;
pub mod report;
pub mod scenario;
pub mod state;
pub mod topology;
pub mod workload;
