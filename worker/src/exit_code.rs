//! Every exit code of `barrage-worker`, in one place (k6's convention: 99 = thresholds).
//!
//! | code | meaning                                                                 |
//! |------|-------------------------------------------------------------------------|
//! | 0    | the run ended normally (or the controller stopped/aborted it)           |
//! | 1    | an unexpected internal error (an `anyhow` error reached `main`)          |
//! | 2    | bad input: flags, plan file, environment, or a bad assignment           |
//! | 3    | the controller rejected this worker (token, version, run started...)    |
//! | 4    | the controller was lost (stream broke before `Stop`); load was stopped  |
//! | 99   | standalone: at least one threshold failed                               |
use std::process::ExitCode;

pub const OK: u8 = 0;
pub const INTERNAL: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const REJECTED: u8 = 3;
pub const LOST_CONTROLLER: u8 = 4;
pub const THRESHOLDS_FAILED: u8 = 99;

/// `code` as a process exit code.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
