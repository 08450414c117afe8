//! Every exit code of `barrage`, in one place (as k6 does).
//!
//! | code | meaning                                                                  |
//! |------|--------------------------------------------------------------------------|
//! | 0    | the run completed and every threshold passed                             |
//! | 1    | the run could not be carried out (I/O, network, a child failed to start) |
//! | 2    | bad flags, plan or thresholds: nothing was started                       |
//! | 97   | the run was invalid: the load generator did not deliver the plan (`barrage_core::validity`), unless `--allow-invalid` |
//! | 98   | workers were lost and the run could not go on (`--on-worker-loss=fail`, or none left) |
//! | 99   | thresholds failed (also when `abortOnFail` stopped the run)              |
//! | 130  | interrupted twice (SIGINT): stopped at once, partial results written     |
//!
//! Precedence: 1, 2, 98 and 130 (the run could not be carried out as asked) stand; then 97
//! wins over 99, because thresholds judged on figures the generator could not deliver say
//! nothing about the target. With `--allow-invalid` an invalid run gets the code a valid
//! one would (0 or 99) and the summary still says INVALID.

/// The run completed and every threshold passed.
pub const SUCCESS: u8 = 0;
/// The run could not be carried out.
pub const FAILURE: u8 = 1;
/// Invalid flags, plan or thresholds; nothing was started.
pub const CONFIG: u8 = 2;
/// The run did not deliver its plan (a worker could not keep up).
pub const INVALID: u8 = 97;
/// Workers were lost and the run could not go on.
pub const WORKERS_LOST: u8 = 98;
/// At least one threshold failed.
pub const THRESHOLDS_FAILED: u8 = 99;
/// Stopped at once by a second SIGINT.
pub const INTERRUPTED: u8 = 130;

/// The code of a run once its validity is known (the precedence above): an invalid run
/// that would have exited [`SUCCESS`] or [`THRESHOLDS_FAILED`] exits [`INVALID`], unless
/// `allow_invalid`.
pub fn with_validity(code: u8, valid: bool, allow_invalid: bool) -> u8 {
    match code {
        SUCCESS | THRESHOLDS_FAILED if !valid && !allow_invalid => INVALID,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_runs_exit_97_before_thresholds_and_after_failures() {
        // (code without validity, valid, --allow-invalid) → code
        let cases = [
            (SUCCESS, true, false, SUCCESS),
            (SUCCESS, false, false, INVALID),
            (SUCCESS, false, true, SUCCESS),
            (THRESHOLDS_FAILED, false, false, INVALID),
            (THRESHOLDS_FAILED, false, true, THRESHOLDS_FAILED),
            (THRESHOLDS_FAILED, true, false, THRESHOLDS_FAILED),
            (WORKERS_LOST, false, false, WORKERS_LOST),
            (INTERRUPTED, false, false, INTERRUPTED),
            (FAILURE, false, false, FAILURE),
        ];
        for (code, valid, allow, want) in cases {
            assert_eq!(
                with_validity(code, valid, allow),
                want,
                "{code} {valid} {allow}"
            );
        }
        assert_eq!(INVALID, 97);
    }
}
