//! The official `openai` Python package against the mock: non-streaming, streaming with
//! usage, and a tool call (tests/python/test_openai_sdk.py).

use std::process::Command;

use crate::harness::Server;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/test_openai_sdk.py"
);

fn openai_available() -> bool {
    Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn official_openai_python_sdk() {
    let found = openai_available().then_some(());
    if barrage_testkit::require(
        "openai_sdk::official_openai_python_sdk",
        "python3 with the `openai` package",
        found,
        "python3 -m pip install openai, or run .ci/run",
    )
    .is_none()
    {
        return;
    }
    let server = Server::start(&[
        "--tool-call-rate",
        "1",
        "--delay-ms",
        "1",
        "--stream-delay-ms",
        "1",
    ]);
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(server.url("/v1"))
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{SCRIPT} failed\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}\n{}",
        server.diagnostics()
    );
    assert!(stdout.contains("openai sdk: all checks passed"), "{stdout}");
}
