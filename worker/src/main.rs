//! `barrage-worker`: parses flags, starts tracing (RUST_LOG, default info, on stderr) and
//! calls [`worker::run`].
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
    args: worker::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match worker::run(cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("barrage-worker: {e:#}");
            ExitCode::from(worker::exit_code::INTERNAL)
        }
    }
}
