//! `barrage soak-keeper` (hidden): stops a soak run's children when their `barrage run`
//! died and nobody resumed it.
//!
//! A soak run's children outlive `barrage run` so that `--resume` can take them back
//! (`super::local`); without a keeper, a run killed for good would leave its mock LLM and
//! reference runtime running forever (its workers stop on their own after the rejoin
//! grace). The keeper is started by `barrage run --soak` in a session of its own, watches
//! that process by pid and start time, and once it is gone waits `--grace` (the rejoin
//! grace and a margin): if the children are still there then, it stops them (SIGTERM,
//! SIGKILL after 10 s), each checked by start time so no later holder of a pid is hit.
//! A resumed run stands it down with SIGTERM (which just ends it) and starts its own.
use super::local::ChildRecord;
use clap::Args;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often the keeper looks.
const POLL: Duration = Duration::from_millis(200);
/// SIGTERM to SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `barrage soak-keeper`'s flags (written by `barrage run`, not by hand).
#[derive(Debug, Clone, Args)]
pub struct KeeperArgs {
    /// The `barrage run` to watch, PID:START_TICKS.
    #[arg(long, value_name = "PID:TICKS", value_parser = parse_ident)]
    pub watch: (u32, u64),
    /// How long after it died to wait for a resume.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Duration,
    /// A child to stop, PID:START_TICKS; repeatable.
    #[arg(long, value_name = "PID:TICKS", value_parser = parse_ident)]
    pub child: Vec<(u32, u64)>,
    /// A child leading a process group to stop as a whole (`--target-cmd`), PID:START_TICKS.
    #[arg(long, value_name = "PID:TICKS", value_parser = parse_ident)]
    pub group: Vec<(u32, u64)>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    barrage_core::duration::parse_duration(text)
}

fn parse_ident(text: &str) -> Result<(u32, u64), String> {
    let bad = || format!("{text:?}: give PID:START_TICKS");
    let (pid, ticks) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        pid.parse().map_err(|_| bad())?,
        ticks.parse().map_err(|_| bad())?,
    ))
}

/// The keeper's arguments for a run: watch `controller`, stop `children` and `groups`.
pub fn args(
    controller: &ChildRecord,
    grace: Duration,
    children: &[&ChildRecord],
    groups: &[&ChildRecord],
) -> Vec<String> {
    let mut a = vec![
        "soak-keeper".to_string(),
        "--watch".into(),
        format!("{}:{}", controller.pid, controller.start_ticks),
        "--grace".into(),
        format!("{}ms", grace.as_millis()),
    ];
    for (flag, list) in [("--child", children), ("--group", groups)] {
        for c in list {
            a.push(flag.into());
            a.push(format!("{}:{}", c.pid, c.start_ticks));
        }
    }
    a
}

fn record(name: &str, (pid, start_ticks): (u32, u64)) -> ChildRecord {
    ChildRecord {
        name: name.into(),
        pid,
        start_ticks,
        args: Vec::new(),
    }
}

/// Runs the keeper; returns when the children are gone (stopped by it or not).
pub fn run(a: KeeperArgs) -> anyhow::Result<ExitCode> {
    let controller = record("barrage run", a.watch);
    let children: Vec<ChildRecord> = a.child.iter().map(|c| record("child", *c)).collect();
    let groups: Vec<ChildRecord> = a.group.iter().map(|c| record("group", *c)).collect();
    let left = || children.iter().any(ChildRecord::alive) || groups.iter().any(ChildRecord::alive);
    while controller.alive() {
        std::thread::sleep(POLL);
    }
    let until = Instant::now() + a.grace;
    while Instant::now() < until {
        if !left() {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(POLL);
    }
    if !left() {
        return Ok(ExitCode::SUCCESS);
    }
    barrage_core::errln!(
        "barrage soak-keeper: barrage run (pid {}) died and was not resumed within {:?}; stopping its children",
        controller.pid,
        a.grace
    );
    for (sig, wait) in [(libc::SIGTERM, STOP_GRACE), (libc::SIGKILL, Duration::ZERO)] {
        for c in &children {
            c.signal(sig);
        }
        for g in &groups {
            g.signal_group(sig);
        }
        let until = Instant::now() + wait;
        while Instant::now() < until && left() {
            std::thread::sleep(POLL);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_and_print_back() {
        assert_eq!(parse_ident("42:987"), Ok((42, 987)));
        for bad in ["42", "a:1", "1:b", ""] {
            assert!(parse_ident(bad).unwrap_err().contains("PID:START_TICKS"));
        }
        let c = record("x", (7, 8));
        let g = record("g", (9, 10));
        let a = args(&c, Duration::from_secs(65), &[&c], &[&g]);
        assert_eq!(
            a.join(" "),
            "soak-keeper --watch 7:8 --grace 65000ms --child 7:8 --group 9:10"
        );
    }
}
