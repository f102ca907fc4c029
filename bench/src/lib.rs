//! Benchmarks for `pdns-sensor`: a deterministic DNS workload generator
//! ([`r#gen`]) and a harness that runs the sensor over those workloads and
//! records the figures ([`scenario`], [`report`]).

pub mod baseline;
pub mod child;
pub mod cli;
pub mod clickhouse;
pub mod r#gen;
pub mod netns;
pub mod peers;
pub mod plot;
pub mod progress;
pub mod report;
pub mod ringread;
pub mod scenario;
pub mod sensor;
pub mod sysinfo;
pub mod table;
pub mod tools;
pub mod workload;
pub mod wrk;
pub mod zeeklog;
