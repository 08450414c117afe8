//! Integration tests of `barrage`: real processes on loopback (one test binary, see the
//! crate's Cargo.toml). Helpers live in `util`.
mod cli;
mod distributed;
mod faults;
mod fleet;
mod netns;
mod run;
mod util;
