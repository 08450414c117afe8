//! `--serve`: one worker process for run after run. When a run is over the worker dials
//! `--controller` again and joins the next run there: the next controller on that address
//! (each plateau of `barrage characterize --listen` is one), or the same controller's next
//! run. It exits 0 once no run has taken it for `--idle-timeout`.
//!
//! Why redial instead of keeping the stream: a controller serves one run and its stream
//! ends with it (`proto/barrage.proto`), so a worker that serves many runs is many joins;
//! nothing in the protocol changes but one flag, `Reject.retry`.
//!
//! ```text
//! dial (≤ --connect-timeout first, then ≤ --idle-timeout) ─► the run ─► exit 0 ─► dial again
//!   Reject{retry} (the run started without us, or is full; a finished run's controller
//!   still waiting for the others' Done), or a stream closed before any assignment (that
//!   controller shutting down) ─► pause, dial again, same deadline
//!   nobody answers by the deadline ─► exit 0 after ≥ 1 run (done), else 4 (unreachable)
//!   any other end (lost controller 4, bad assignment 2, refused 3) ─► exit with it
//! ```
use crate::cli::JoinArgs;
use crate::exit_code;
use crate::join::{conversation, Ended, MakeScenario};
use crate::sample::Scenario;
use barrage_core::errln;
use std::time::Duration;
use tokio::time::Instant;

/// After a `Reject{retry}`: the pause before dialling again (a finished run's controller
/// usually closes within a second).
pub const NOT_NOW_PAUSE: Duration = Duration::from_millis(500);

/// Serves runs until none comes for `idle`; returns the exit code.
pub async fn serve<S: Scenario + 'static>(
    args: JoinArgs,
    idle: Duration,
    make: &MakeScenario<S>,
) -> u8 {
    let mut served = 0u32;
    let mut deadline = Instant::now() + args.connect_timeout;
    // why the last dial did not get a run, for the message at the end
    let mut last_refusal: Option<String> = None;
    loop {
        match conversation(&args, make, deadline).await {
            Ended::Code(exit_code::SUCCESS) => {
                served += 1;
                last_refusal = None;
                deadline = Instant::now() + idle;
                tracing::info!(
                    served,
                    idle_s = idle.as_secs_f64(),
                    "run over; waiting for the next run"
                );
                errln!(
                    "barrage-worker: run {served} over; waiting up to {} for the next run at {}",
                    barrage_core::duration::format_duration(idle),
                    args.controller
                );
            }
            Ended::Code(code) => return code,
            Ended::NotNow(reason) => {
                let now = Instant::now();
                if now >= deadline {
                    return give_up(&args, served, idle, &reason, exit_code::REJECTED);
                }
                tracing::info!(%reason, "the controller cannot take us for its run; waiting for the next");
                last_refusal = Some(reason);
                tokio::time::sleep(NOT_NOW_PAUSE.min(deadline - now)).await;
            }
            Ended::Unreachable { attempts, failure } => {
                return match last_refusal.take() {
                    Some(refusal) => give_up(&args, served, idle, &refusal, exit_code::REJECTED),
                    None => {
                        let why = format!("{attempts} dials, the last: {failure}");
                        give_up(&args, served, idle, &why, exit_code::LOST_CONTROLLER)
                    }
                };
            }
        }
    }
}

/// The end of serving: 0 after at least one run (no next run is how serving ends), else
/// `code` with what went wrong.
fn give_up(args: &JoinArgs, served: u32, idle: Duration, why: &str, code: u8) -> u8 {
    if served > 0 {
        errln!(
            "barrage-worker: served {served} run(s); no next run at {} within {} (--idle-timeout; {why}): done",
            args.controller,
            barrage_core::duration::format_duration(idle)
        );
        return exit_code::SUCCESS;
    }
    if code == exit_code::REJECTED {
        errln!("barrage-worker: rejected by the controller: {why}");
    } else {
        errln!(
            "barrage-worker: cannot reach the controller at {} ({why}); check the address or raise --connect-timeout",
            args.controller
        );
    }
    code
}
