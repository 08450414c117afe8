//! The worker crate's one integration-test binary.
//!
//! | module       | what it checks                                                         |
//! |--------------|------------------------------------------------------------------------|
//! | `flow`       | the agent flow against real servers (the flow engineer's)              |
//! | `engine`     | executor timing with paused time: ramps, segments, graceful/hard stops |
//! | `standalone` | the binary with `--standalone` against the reference runtime           |
//! | `join`       | the binary against a fake controller (gRPC conversation, exit codes)   |
//! | `hostile`    | the client and the binary against misbehaving targets (retry, memory)  |
//! | `patterns`   | the built-in orchestration flows (fan-out, chain, diamond, recovery)   |
//! | `goodput`    | `flow_goodput` against `[slo]` objectives the mock LLM meets or not    |
//! | `scenarios`  | `[scenarios.NAME]`: runtimes side by side, start times, the tag        |
//! | `arrivals`   | Poisson/gamma arrivals and `schedule_lag`: real runs, segment merging  |
//! | `bigbody`    | `flow.history_bytes`: a 500 KB history reaches the model; validation  |
//! | `harness`    | shared: in-process targets, the worker binary, output on failure       |
mod arrivals;
mod bigbody;
mod engine;
mod flow;
mod goodput;
mod harness;
mod hostile;
mod join;
mod patterns;
mod scenarios;
mod standalone;
