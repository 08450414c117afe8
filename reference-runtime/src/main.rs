//! `barrage-reference-runtime`: parses flags, starts tracing (`barrage_core::logging`:
//! stderr, `RUST_LOG`, default `info`), and hands over to [`barrage_reference_runtime::run`].

use std::process::ExitCode;

use clap::Parser;

/// A small, fast, in-memory Agent Protocol server (LangGraph API wire shapes).
#[derive(Debug, Parser)]
#[command(name = "barrage-reference-runtime", version)]
struct Cli {
    #[command(flatten)]
    args: barrage_reference_runtime::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    barrage_core::logging::init();
    match barrage_reference_runtime::run(cli.args) {
        Ok(code) => code,
        Err(err) => {
            barrage_core::errln!("barrage-reference-runtime: {err:#}");
            ExitCode::FAILURE
        }
    }
}
