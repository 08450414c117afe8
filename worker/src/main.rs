//! `barrage-worker`: parses flags, starts tracing (`barrage_core::logging`) and
//! calls [`barrage_worker::run`].
use clap::Parser;
use std::process::ExitCode;

/// mimalloc: VUs allocate and free small buffers on every request (the JSON values the
/// checks read, on the reqwest path header maps and body chunks); it cut the worker's CPU
/// per request in bench/worker (measured with hyper's client, before `h1`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "barrage-worker",
    version,
    about = "barrage worker: runs VUs for a controller, or a plan standalone"
)]
struct Cli {
    #[command(flatten)]
    args: barrage_worker::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    barrage_core::logging::init();
    match barrage_worker::run(cli.args) {
        Ok(code) => code,
        Err(e) => {
            barrage_core::errln!("barrage-worker: {e:#}");
            ExitCode::from(barrage_worker::exit_code::FAILURE)
        }
    }
}
