//! Test support: the stub LLM, the server process, the HTTP client.

pub mod flow;
pub mod http;
pub mod server;
pub mod stub_llm;

pub use flow::{assert_stats_after_flows, flow};
pub use http::{expect, user, Answer, Http};
pub use server::{command, Server};
pub use stub_llm::{dead_llm_url, stub_chunk_count, StubBehaviour, StubLlm, ANSWER};
