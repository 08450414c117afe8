//! `barrage`: parse, start tracing, run, turn the outcome into an exit code.
use clap::Parser;
use std::process::ExitCode;

/// mimalloc, as in `barrage-worker`: `barrage run`'s local workers are this binary
/// (`barrage worker`), and their VUs allocate small buffers on every request.
#[cfg(not(feature = "heap-count"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The same allocator, its live bytes counted (`barrage_controller::heap_count`).
#[cfg(feature = "heap-count")]
#[global_allocator]
static GLOBAL: barrage_controller::heap_count::Counting<mimalloc::MiMalloc> =
    barrage_controller::heap_count::Counting::new(mimalloc::MiMalloc);

fn main() -> ExitCode {
    let cli = barrage_controller::cli::Cli::parse();
    barrage_core::logging::init();
    #[cfg(feature = "heap-count")]
    barrage_controller::heap_count::log_every_second(&GLOBAL);
    match barrage_controller::run(cli) {
        Ok(code) => code,
        Err(e) => {
            barrage_core::errln!("barrage: {e:#}");
            ExitCode::from(barrage_controller::exit_code::FAILURE)
        }
    }
}
