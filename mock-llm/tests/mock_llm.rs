//! Integration tests of `barrage-mock-llm`: each test starts the real binary on a port the
//! OS picks (`--port 0`, address read from the first stdout line) and talks HTTP to it.

#[path = "mock_llm/harness.rs"]
mod harness;

#[path = "mock_llm/calls_admin.rs"]
mod calls_admin;
#[path = "mock_llm/endpoints.rs"]
mod endpoints;
#[path = "mock_llm/faults.rs"]
mod faults;
#[path = "mock_llm/h2c.rs"]
mod h2c;
#[path = "mock_llm/model_mode.rs"]
mod model_mode;
#[path = "mock_llm/openai_sdk.rs"]
mod openai_sdk;
#[path = "mock_llm/process.rs"]
mod process;
#[path = "mock_llm/reuse_port.rs"]
mod reuse_port;
#[path = "mock_llm/streaming.rs"]
mod streaming;
