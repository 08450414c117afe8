//! One child `barrage run` and the summary it leaves: what `barrage sweep` does per pair and
//! `barrage characterize` per plateau.
//!
//! Why a child process per run: a run is then exactly what a user gets by running it alone
//! (same flags, same summary, same target telemetry), a crashed or OOM-killed target ends
//! only its own run, and the caller keeps no state but the result files.
use crate::exit_code;
use anyhow::Context as _;
use barrage_core::summary::Summary;
use std::path::Path;
use std::process::{Command, Stdio};

/// How a child `barrage run` ended: its exit code (`None`: killed by a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit(pub Option<i32>);

impl ChildExit {
    /// The run refused its flags or plan (exit 2): every later run would too.
    pub fn refused_flags(self) -> bool {
        self.0 == Some(i32::from(exit_code::CONFIG))
    }
}

/// Runs `exe args…` with stdin closed, stdout (the printed summary) into `log`, stderr
/// inherited (its messages reach the user as they happen); waits for the end.
pub fn run(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<ChildExit> {
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let status = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .status()
        .context("cannot start `barrage run`")?;
    Ok(ChildExit(status.code()))
}

/// The summary a child left at `path`, or why there is none (with how the child ended,
/// when known).
pub fn read_summary(path: &Path, exit: Option<ChildExit>) -> Result<Summary, String> {
    Summary::read(path).map_err(|e| match exit {
        Some(ChildExit(Some(c))) => format!("no summary (barrage run exited {c}): {e}"),
        Some(ChildExit(None)) => format!("no summary (barrage run killed by a signal): {e}"),
        None => format!("no summary: {e}"),
    })
}
