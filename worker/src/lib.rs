//! barrage-worker: joins a controller over gRPC (or runs a plan standalone) and runs
//! virtual users that drive the agent flow against an Agent Protocol server.
//!
//! (Layout map and data flow: being written.)
#![forbid(unsafe_code)]

pub mod auth;
pub mod flow;
pub mod http;
pub mod sample;
pub mod sse;
