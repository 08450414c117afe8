//! Integration tests of `barrage`: real processes on loopback (one test binary, see the
//! crate's Cargo.toml). Helpers live in `util`.
mod cli;
mod deploy;
mod distributed;
mod faults;
mod netns;
mod run;
mod sweep;
mod telemetry;
mod tiers;
mod util;
