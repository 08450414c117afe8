//! Every exit code of `barrage`, in one place (as k6 does).
//!
//! | code | meaning                                                                  |
//! |------|--------------------------------------------------------------------------|
//! | 0    | the run completed and every threshold passed                             |
//! | 1    | the run could not be carried out (I/O, network, a child failed to start) |
//! | 2    | bad flags, plan or thresholds: nothing was started                       |
//! | 98   | workers were lost and the run could not go on (`--on-worker-loss=fail`, or none left) |
//! | 99   | thresholds failed (also when `abortOnFail` stopped the run)              |
//! | 130  | interrupted twice (SIGINT): stopped at once, partial results written     |

/// The run completed and every threshold passed.
pub const SUCCESS: u8 = 0;
/// The run could not be carried out.
pub const FAILURE: u8 = 1;
/// Invalid flags, plan or thresholds; nothing was started.
pub const CONFIG: u8 = 2;
/// Workers were lost and the run could not go on.
pub const WORKERS_LOST: u8 = 98;
/// At least one threshold failed.
pub const THRESHOLDS_FAILED: u8 = 99;
/// Stopped at once by a second SIGINT.
pub const INTERRUPTED: u8 = 130;
