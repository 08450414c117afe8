//! Every exit code of `barrage-worker`, in one place (k6's convention: 99 = thresholds).
//!
//! | code | meaning                                                                 |
//! |------|-------------------------------------------------------------------------|
//! | 0    | the run ended normally (or the controller stopped/aborted it)           |
//! | 1    | an unexpected internal error (an `anyhow` error reached `main`)          |
//! | 2    | bad input: flags, plan file, environment, or a bad assignment           |
//! | 3    | the controller rejected this worker (token, version, run started...)    |
//! | 4    | the controller was lost (stream broke before `Stop`); load was stopped  |
//! | 97   | standalone: the run was invalid (it did not deliver its plan), unless `--allow-invalid` |
//! | 99   | standalone: at least one threshold failed                               |
//!
//! 97 wins over 99: thresholds judged on figures the generator could not deliver say
//! nothing about the target. With `--allow-invalid` the code is what a valid run would get
//! (0 or 99); the summary still says INVALID.
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
/// Standalone: the run did not deliver its plan (`barrage_core::validity`).
pub const INVALID: u8 = 97;
/// Standalone: at least one threshold failed.
pub const THRESHOLDS_FAILED: u8 = 99;

/// The code of a run once its validity is known: an invalid run that would have exited
/// [`SUCCESS`] or [`THRESHOLDS_FAILED`] exits [`INVALID`], unless `allow_invalid`.
pub fn with_validity(code: u8, valid: bool, allow_invalid: bool) -> u8 {
    match code {
        SUCCESS | THRESHOLDS_FAILED if !valid && !allow_invalid => INVALID,
        c => c,
    }
}

/// `code` as a process exit code.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
