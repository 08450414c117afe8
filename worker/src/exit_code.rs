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

//
// The names are those of `barrage` and `barrage-mock-llm` (`SUCCESS`, `FAILURE`, `CONFIG`,
// `THRESHOLDS_FAILED`): one scheme across the binaries.

/// The run ended normally (or the controller stopped/aborted it).
pub const SUCCESS: u8 = 0;
/// An unexpected internal error.
pub const FAILURE: u8 = 1;
/// Bad input: flags, plan file, environment, or a bad assignment.
pub const CONFIG: u8 = 2;
/// The controller rejected this worker.
pub const REJECTED: u8 = 3;
/// The controller was lost; load was stopped.
pub const LOST_CONTROLLER: u8 = 4;
/// Standalone: at least one threshold failed.
pub const THRESHOLDS_FAILED: u8 = 99;

/// `code` as a process exit code.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
