//! `barrage`: parse, start tracing, run, turn the outcome into an exit code.
use clap::Parser;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc, as in `barrage-worker`: `barrage run`'s local workers are this binary
/// (`barrage worker`), and their VUs allocate small buffers on every request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = controller::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match controller::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("barrage: {e:#}");
            ExitCode::from(controller::exit_code::FAILURE)
        }
    }
}
