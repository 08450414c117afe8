//! Integration tests of `barrage`: real processes on loopback (one test binary, see the
//! crate's Cargo.toml). Helpers live in `util`.
mod baseline;
mod characterize;
mod cli;
mod dashboard;
mod deploy;
mod distributed;
mod faults;
mod fleet;
mod goodput;
mod modes;
mod netns;
mod patterns;
mod report;
mod resume;
mod run;
mod scenarios;
mod soak;
mod stages;
mod sweep;
mod telemetry;
mod thp;
mod tiers;
mod util;
mod validity;
