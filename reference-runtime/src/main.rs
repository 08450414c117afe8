//! `barrage-reference-runtime`: parses flags, starts tracing (stderr, `RUST_LOG`,
//! default `info`), and hands over to [`reference_runtime::run`].

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A small, fast, in-memory Agent Protocol server (LangGraph API wire shapes).
#[derive(Debug, Parser)]
#[command(name = "barrage-reference-runtime", version)]
struct Cli {
    #[command(flatten)]
    args: reference_runtime::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match reference_runtime::run(cli.args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("barrage-reference-runtime: {err:#}");
            ExitCode::FAILURE
        }
    }
}
