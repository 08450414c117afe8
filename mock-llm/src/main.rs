//! `barrage-mock-llm`: parse flags, start tracing, run the server.

#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// An OpenAI-compatible mock LLM for benchmarking agent runtimes.
#[derive(Debug, Parser)]
#[command(name = "barrage-mock-llm", version)]
struct Cli {
    #[command(flatten)]
    args: mock_llm::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match mock_llm::run(cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("barrage-mock-llm: {e:#}");
            ExitCode::from(mock_llm::exit_code::FAILURE)
        }
    }
}
