//! One child `barrage run` (or `barrage controller`) and the summary it leaves: what
//! `barrage sweep` does per pair and `barrage characterize` per plateau (a `barrage
//! controller` with remote workers).
//!
//! Why a child process per run: a run is then exactly what a user gets by running it alone
//! (same flags, same summary, same target telemetry), a crashed or OOM-killed target ends
//! only its own run, and the caller keeps no state but the result files.
use crate::exit_code;
use anyhow::Context as _;
use barrage_core::summary::Summary;
use std::path::Path;
use std::process::{Command, Stdio};

/// How a child ended: its exit code (`None`: killed by a signal) and its subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit(pub Option<i32>, pub &'static str);

impl ChildExit {
    /// The run refused its flags or plan (exit 2): every later run would too.
    pub fn refused_flags(self) -> bool {
        self.0 == Some(i32::from(exit_code::CONFIG))
    }
}

/// Runs `exe args…` with stdin closed, stdout (the printed summary) into `log`, stderr
/// inherited (its messages reach the user as they happen); waits for the end. `args[0]`
/// is the subcommand: `run` or `controller`.
pub fn run(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<ChildExit> {
    let command = match args.first().map(String::as_str) {
        Some("controller") => "controller",
        _ => "run",
    };
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut child = Command::new(exe);
    crate::thp::restore_in_children(&mut child);
    let status = child
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .status()
        .with_context(|| format!("cannot start `barrage {command}`"))?;
    Ok(ChildExit(status.code(), command))
}

/// The summary a child left at `path`, or why there is none (with how the child ended,
/// when known).
pub fn read_summary(path: &Path, exit: Option<ChildExit>) -> Result<Summary, String> {
    Summary::read(path).map_err(|e| match exit {
        Some(ChildExit(Some(c), cmd)) => format!("no summary (barrage {cmd} exited {c}): {e}"),
        Some(ChildExit(None, cmd)) => {
            format!("no summary (barrage {cmd} killed by a signal): {e}")
        }
        None => format!("no summary: {e}"),
    })
}
