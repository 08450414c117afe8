//! `barrage-mock-llm`: parse flags, start tracing, run the server.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// An OpenAI-compatible mock LLM for benchmarking agent runtimes.
#[derive(Debug, Parser)]
#[command(name = "barrage-mock-llm", version)]
struct Cli {
    #[command(flatten)]
    args: barrage_mock_llm::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    barrage_core::logging::init();
    match barrage_mock_llm::run(cli.args) {
        Ok(code) => code,
        Err(e) => {
            barrage_core::errln!("barrage-mock-llm: {e:#}");
            ExitCode::from(barrage_mock_llm::exit_code::FAILURE)
        }
    }
}
