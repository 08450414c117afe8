//! The file-descriptor limit, raised at start: one definition in `barrage_core::fdlimit`,
//! re-exported here where the worker's HTTP client (and its benches) look for it.
pub use barrage_core::fdlimit::{raise_and_log, raise_fd_limit, FdLimit};
