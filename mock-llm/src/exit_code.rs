//! Every exit code of `barrage-mock-llm`.

/// Served and shut down cleanly.
pub const SUCCESS: u8 = 0;
/// A runtime failure: the port could not be bound, the runtime could not start.
pub const FAILURE: u8 = 1;
/// Invalid configuration (a flag or `MOCK_LLM_*` variable); also clap's usage errors.
pub const CONFIG: u8 = 2;
