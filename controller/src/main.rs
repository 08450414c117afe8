//! `barrage`: parse, start tracing, run, turn the outcome into an exit code.
use clap::Parser;
use std::process::ExitCode;

/// mimalloc, as in `barrage-worker`: `barrage run`'s local workers are this binary
/// (`barrage worker`), and their VUs allocate small buffers on every request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = barrage_controller::cli::Cli::parse();
    barrage_core::logging::init();
    match barrage_controller::run(cli) {
        Ok(code) => code,
        Err(e) => {
            barrage_core::errln!("barrage: {e:#}");
            ExitCode::from(barrage_controller::exit_code::FAILURE)
        }
    }
}
