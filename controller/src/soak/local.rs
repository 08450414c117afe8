//! `barrage run --soak … --resume DIR`: a soak run whose `barrage run` died (kill -9, OOM)
//! continues with the children it left behind.
//!
//! Under `--soak`, `barrage run`'s children (workers, the embedded mock LLM and reference
//! runtime, a `--target-cmd` target) outlive it (`crate::local::Children::surviving`), and
//! the checkpoint folder gets `local.json` ([`RunRecord`]): the first run's arguments and
//! folder, the controller's address, each child's pid, start time (`/proc/PID/stat` field
//! 22, so a pid the kernel gave to another process is told apart) and command line, the
//! target the plan was pointed at, and the keeper (`super::keeper`) that stops the children
//! if nobody resumes within the rejoin grace.
//!
//! A resume reads the record, rebuilds the run's configuration from the first run's
//! arguments, checks the checkpoint is of that plan, and only then takes the children over:
//! it stands the old keeper down, checks every child is the process it started (failing,
//! and stopping what is left, when one is gone or replaced), reads the join token back from
//! a worker's environment (never from a file), binds the same address, and lets the workers
//! rejoin. At the end it stops the children as a normal run does ([`Adopted::stop_all`]).
use super::checkpoint::{read_versioned, ReadFail};
use crate::local::TOKEN_ENV;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The layout of `local.json`.
pub const FORMAT: u32 = 1;
pub const RECORD_FILE: &str = "local.json";

/// One process of the run: who it is, and how to tell it from a later holder of its pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildRecord {
    pub name: String,
    pub pid: u32,
    /// Start time, clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
    /// What its command line ends with (`barrage`'s arguments, or `sh -c CMD`'s).
    pub args: Vec<String>,
}

/// The target the plan was pointed at (for the embedded one and `--target-cmd`, chosen by
/// the first run, so a resume cannot rebuild it from the flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRecord {
    pub url: String,
    pub runtime: String,
    pub version: String,
    pub llm: String,
    /// `host:port` of the mock LLM barrage started behind the target.
    pub mock_llm: Option<String>,
    /// The `--target-cmd` process (its group's leader), when barrage started one.
    pub command: Option<ChildRecord>,
    /// The tier's cgroup of the `--target-cmd`.
    pub cgroup: Option<PathBuf>,
    /// The process telemetry watches for the embedded reference runtime.
    pub embedded_pid: Option<u32>,
}

/// `local.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub format: u32,
    /// The first run's arguments from `run` on.
    pub args: Vec<String>,
    /// Its working folder (relative paths in `args` are relative to it).
    pub cwd: PathBuf,
    pub listen: SocketAddr,
    /// The `barrage run` process (the resumed one after a resume).
    pub controller: ChildRecord,
    pub target: TargetRecord,
    pub workers: Vec<ChildRecord>,
    /// The mock LLM and the embedded reference runtime.
    pub servers: Vec<ChildRecord>,
    pub keeper: Option<ChildRecord>,
}

/// Why a run cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("--resume {}: {source}; give the *.checkpoint folder `barrage run --soak` printed (a `barrage controller` checkpoint resumes with `barrage controller --resume`)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--resume {}: not a `barrage run` record ({why}); give the *.checkpoint folder the first run printed", path.display())]
    Decode { path: PathBuf, why: String },
    #[error("--resume {}: record format {found}, this barrage writes {FORMAT}; resume with the barrage release that wrote it", path.display())]
    Format { path: PathBuf, found: u32 },
    #[error("--resume: give it alone (`barrage run --resume DIR`); the run's flags are the first run's, read from DIR/{RECORD_FILE} (given besides: {given})")]
    OtherFlags { given: String },
    #[error("--resume: the first run's flags no longer parse ({why}); resume with the barrage release that started it")]
    Args { why: String },
    #[error("--resume {}: the first run's folder {} is gone ({source}); its relative paths cannot be resolved", dir.display(), cwd.display())]
    Cwd {
        dir: PathBuf,
        cwd: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--resume: the run in {} is still going (barrage run, pid {pid}); resume it only after that process died", dir.display())]
    StillRunning { dir: PathBuf, pid: u32 },
    #[error("--resume: the run cannot continue: {what}; its last checkpoint's partial summary is {}/summary.json", dir.display())]
    Gone { dir: PathBuf, what: String },
}

/// A process's identity now: start ticks, and whether it is still running (not a zombie).
pub fn identity(pid: u32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_identity(&text)
}

/// `(start ticks, running)` of a `/proc/PID/stat` line; field 2 may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_identity(text: &str) -> Option<(u64, bool)> {
    let f: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    // f[0] is field 3 (state), field 22 (starttime) is f[19]
    let state = *f.first()?;
    let start = f.get(19)?.parse().ok()?;
    Some((start, state != "Z" && state != "X"))
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl ChildRecord {
    /// `pid`'s record now (`None`: it is gone already).
    pub fn of(name: &str, pid: u32, args: Vec<String>) -> Option<ChildRecord> {
        let (start_ticks, _) = identity(pid)?;
        Some(ChildRecord {
            name: name.to_string(),
            pid,
            start_ticks,
            args,
        })
    }

    /// Whether the process with this pid is still the one recorded and running.
    pub fn alive(&self) -> bool {
        identity(self.pid).is_some_and(|(t, running)| running && t == self.start_ticks)
    }

    /// Why this is not the recorded, running process (`None`: it is).
    pub fn check(&self) -> Option<String> {
        let who = format!("{} (pid {})", self.name, self.pid);
        match identity(self.pid) {
            None | Some((_, false)) => Some(format!("{who} has exited")),
            Some((t, _)) if t != self.start_ticks => Some(format!(
                "{who} has exited and its pid belongs to another process now"
            )),
            Some(_) if !cmdline(self.pid).ends_with(&self.args) => Some(format!(
                "{who} runs another command than the one started ({:?})",
                cmdline(self.pid)
            )),
            Some(_) => None,
        }
    }

    /// Sends `sig` if it is still the recorded process.
    pub fn signal(&self, sig: i32) {
        if self.alive() {
            // SAFETY: kill has no memory effects.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(self.pid as libc::pid_t, sig);
            }
        }
    }

    /// Sends `sig` to its process group (a `--target-cmd`, which leads its group) while any
    /// member is left: the group id cannot be reused before the last member is gone.
    pub fn signal_group(&self, sig: i32) {
        if self.alive() || group_alive(self.pid) {
            // SAFETY: kill has no memory effects; a negative pid names the process group.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-(self.pid as libc::pid_t), sig);
            }
        }
    }
}

/// Whether a running process has `pgid` as its group.
fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
            return false;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] state, f[2] pgrp (field 5)
        f.first().is_some_and(|s| *s != "Z" && *s != "X")
            && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
    })
}

impl RunRecord {
    /// Reads `dir/local.json`.
    pub fn load(dir: &Path) -> Result<RunRecord, ResumeError> {
        let path = dir.join(RECORD_FILE);
        read_versioned(&path, FORMAT).map_err(|e| match e {
            ReadFail::Io(source) => ResumeError::Read { path, source },
            ReadFail::Format(found) => ResumeError::Format { path, found },
            ReadFail::Decode(why) => ResumeError::Decode { path, why },
        })
    }

    /// Writes it into `dir` atomically.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        Ok(barrage_core::results::write_atomic(
            &dir.join(RECORD_FILE),
            &bytes,
        )?)
    }
}

/// The arguments of a resumed `barrage run`: `current` (this process's, from `run` on) must
/// be `run --resume DIR` (or `--resume=DIR`) and nothing else; returns the first run's
/// arguments with `--resume DIR` added.
pub fn resume_args(
    current: &[String],
    record: &RunRecord,
    dir: &Path,
) -> Result<Vec<String>, ResumeError> {
    let mut rest: Vec<&str> = Vec::new();
    let mut i = 1; // current[0] is `run`
    while i < current.len() {
        let a = current[i].as_str();
        if a == "--resume" {
            i += 2;
            continue;
        }
        if !a.starts_with("--resume=") {
            rest.push(a);
        }
        i += 1;
    }
    if !rest.is_empty() {
        return Err(ResumeError::OtherFlags {
            given: rest.join(" "),
        });
    }
    let mut args = record.args.clone();
    args.push("--resume".into());
    args.push(dir.display().to_string());
    Ok(args)
}

impl TargetRecord {
    /// The plan's target as the run pointed it, and what barrage started behind it.
    pub fn of(
        t: &barrage_core::plan::TargetConfig,
        prepared: Option<&crate::target::Prepared>,
        embedded_pid: Option<u32>,
    ) -> TargetRecord {
        let (command, cgroup) = prepared.map_or((None, None), crate::target::Prepared::started);
        TargetRecord {
            url: t.url.clone(),
            runtime: t.runtime.clone(),
            version: t.version.clone(),
            llm: t.llm.clone(),
            mock_llm: prepared.and_then(|p| p.llm().map(str::to_string)),
            // `sh -c CMD` may exec into the target: its command line is not checked
            command: command.and_then(|pid| ChildRecord::of("the target command", pid, Vec::new())),
            cgroup,
            embedded_pid,
        }
    }
}

impl RunRecord {
    /// This run's record (children filled in by the caller): a resumed run keeps the first
    /// run's arguments and folder.
    pub fn new(
        first: Option<&RunRecord>,
        listen: SocketAddr,
        target: TargetRecord,
    ) -> anyhow::Result<RunRecord> {
        use anyhow::Context as _;
        let controller = ChildRecord::of("barrage run", std::process::id(), Vec::new())
            .context("cannot read this process's start time in /proc")?;
        let (args, cwd) = match first {
            Some(r) => (r.args.clone(), r.cwd.clone()),
            None => (
                std::env::args_os()
                    .skip(1)
                    .map(|a| a.into_string())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|a| {
                        anyhow::anyhow!("--soak: argument {a:?} is not UTF-8; a run that can be resumed needs UTF-8 arguments")
                    })?,
                std::env::current_dir().context("cannot read the working folder")?,
            ),
        };
        Ok(RunRecord {
            format: FORMAT,
            args,
            cwd,
            listen,
            controller,
            target,
            workers: Vec::new(),
            servers: Vec::new(),
            keeper: None,
        })
    }
}

/// The records of `children` (one already gone is left out: a resume will say so).
pub fn records(children: &crate::local::Children) -> Vec<ChildRecord> {
    children
        .started()
        .into_iter()
        .filter_map(|(name, pid, args)| ChildRecord::of(&name, pid, args))
        .collect()
}

/// How much longer than the workers' rejoin grace the keeper waits: the workers stop on
/// their own first.
pub const KEEPER_MARGIN: Duration = Duration::from_secs(5);

/// Starts the keeper of `rec`'s children (into `keeper`) and writes `rec`, with it, into
/// the checkpoint folder `dir`.
pub fn keep(
    rec: &mut RunRecord,
    dir: &Path,
    grace: Duration,
    keeper: &mut crate::local::Children,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let children: Vec<&ChildRecord> = rec.workers.iter().chain(&rec.servers).collect();
    let groups: Vec<&ChildRecord> = rec.target.command.iter().collect();
    let args = super::keeper::args(&rec.controller, grace + KEEPER_MARGIN, &children, &groups);
    let pid = keeper.spawn("soak keeper", &args, None, None)?;
    rec.keeper = ChildRecord::of("soak keeper", pid, args);
    rec.write(dir)
        .with_context(|| format!("cannot write {}", dir.join(RECORD_FILE).display()))
}

/// `barrage run --resume DIR`, before anything else: the record, the first run's flags
/// (parsed as it parsed them, in its folder) with `--resume DIR` added.
pub fn resume_run(dir: &Path) -> Result<(crate::cli::RunArgs, RunRecord), ResumeError> {
    use clap::Parser as _;
    let dir = std::path::absolute(dir).map_err(|source| ResumeError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let record = RunRecord::load(&dir)?;
    let current: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args = resume_args(&current, &record, &dir)?;
    std::env::set_current_dir(&record.cwd).map_err(|source| ResumeError::Cwd {
        dir: dir.clone(),
        cwd: record.cwd.clone(),
        source,
    })?;
    let cli = crate::cli::Cli::try_parse_from(std::iter::once("barrage".to_string()).chain(args))
        .map_err(|e| ResumeError::Args {
        why: e.to_string().trim().to_string(),
    })?;
    match cli.command {
        crate::cli::Command::Run(a) => Ok((a, record)),
        _ => Err(ResumeError::Args {
            why: "they are not `barrage run`'s".into(),
        }),
    }
}

/// The children a resumed run took over, and the run's join token.
pub struct Takeover {
    pub workers: Adopted,
    pub servers: Adopted,
    /// The `--target-cmd` (its process group).
    pub target: Adopted,
    pub token: barrage_core::Secret,
}

/// Takes the run's children over (call it after every configuration check passed: the
/// old keeper is stood down here). Workers the checkpoint lists as lost or done are not
/// needed; any other child that is gone or replaced fails the resume, and those left are
/// stopped (nobody else would stop them).
pub fn take_over(
    rec: &RunRecord,
    dir: &Path,
    state: &super::checkpoint::State,
) -> Result<Takeover, ResumeError> {
    if rec.controller.alive() {
        return Err(ResumeError::StillRunning {
            dir: dir.to_path_buf(),
            pid: rec.controller.pid,
        });
    }
    if let Some(k) = &rec.keeper {
        stand_down(k);
    }
    let still_running = |w: &&ChildRecord| {
        !state
            .workers
            .iter()
            .any(|s| s.pid == w.pid && (s.lost.is_some() || s.done.is_some()))
    };
    let needed: Vec<ChildRecord> = rec.workers.iter().filter(still_running).cloned().collect();
    let problems: Vec<String> = needed
        .iter()
        .chain(&rec.servers)
        .chain(&rec.target.command)
        .filter_map(ChildRecord::check)
        .collect();
    let t = Takeover {
        workers: Adopted::new(needed, false),
        servers: Adopted::new(rec.servers.clone(), false),
        target: Adopted::new(rec.target.command.iter().cloned().collect(), true),
        token: barrage_core::Secret::new(String::new()),
    };
    let gone = |what: String| ResumeError::Gone {
        dir: dir.to_path_buf(),
        what,
    };
    if !problems.is_empty() {
        return Err(gone(problems.join("; ")));
    }
    if t.workers.records().is_empty() {
        return Err(gone("no worker of it is left to rejoin".into()));
    }
    let token = t
        .workers
        .records()
        .iter()
        .find_map(token_of)
        .ok_or_else(|| {
            gone(format!(
                "the workers' environment holds no {TOKEN_ENV} (not readable by this user?)"
            ))
        })?;
    Ok(Takeover {
        token: barrage_core::Secret::new(token),
        ..t
    })
}

/// Reads the join token a surviving worker keeps in its environment.
pub fn token_of(worker: &ChildRecord) -> Option<String> {
    let env = std::fs::read(format!("/proc/{}/environ", worker.pid)).ok()?;
    let prefix = format!("{TOKEN_ENV}=");
    env.split(|c| *c == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        kv.strip_prefix(&prefix).map(str::to_string)
    })
}

/// The children a resumed run took over: stopped at its end as a run stops its own, by pid
/// and start time (they are not this process's children, so their exit is seen in `/proc`).
#[derive(Debug, Default)]
pub struct Adopted {
    procs: Vec<ChildRecord>,
    /// Signal the process group (a `--target-cmd`), not only the process.
    group: bool,
}

impl Adopted {
    pub fn new(procs: Vec<ChildRecord>, group: bool) -> Adopted {
        Adopted { procs, group }
    }

    pub fn records(&self) -> &[ChildRecord] {
        &self.procs
    }

    fn left(&self) -> bool {
        self.procs
            .iter()
            .any(|p| p.alive() || (self.group && group_alive(p.pid)))
    }

    fn signal(&self, sig: i32) {
        for p in &self.procs {
            if self.group {
                p.signal_group(sig);
            } else {
                p.signal(sig);
            }
        }
    }

    /// Waits up to `wait` for them to exit on their own, then SIGTERM, then after `grace`
    /// SIGKILL (and waits a little for the kernel to reap them).
    pub async fn stop_all(&mut self, wait: Duration, grace: Duration) {
        for (sig, within) in [(None, wait), (Some(libc::SIGTERM), grace)] {
            if let Some(s) = sig {
                self.signal(s);
            }
            let until = Instant::now() + within;
            while Instant::now() < until && self.left() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if self.left() {
            tracing::warn!(procs = ?self.procs, "still running after SIGTERM; killing");
            self.signal(libc::SIGKILL);
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && self.left() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.procs.clear();
    }
}

impl Drop for Adopted {
    /// An error path of a resumed run: the children are its own now, and nobody else will
    /// stop them.
    fn drop(&mut self) {
        if self.procs.is_empty() || !self.left() {
            return;
        }
        self.signal(libc::SIGTERM);
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && self.left() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
    }
}

/// Stands the old keeper down (SIGTERM, it exits without touching anything) and waits
/// for it to go, so it cannot stop the children being taken over.
pub fn stand_down(keeper: &ChildRecord) {
    keeper.signal(libc::SIGTERM);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && keeper.alive() {
        std::thread::sleep(Duration::from_millis(20));
    }
    keeper.signal(libc::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        let me = ChildRecord::of("barrage run", std::process::id(), Vec::new()).unwrap();
        RunRecord {
            format: FORMAT,
            args: vec![
                "run".into(),
                "--soak".into(),
                "--plan".into(),
                "p.toml".into(),
            ],
            cwd: PathBuf::from("/tmp"),
            listen: "127.0.0.1:7400".parse().unwrap(),
            controller: me.clone(),
            target: TargetRecord {
                url: "http://127.0.0.1:1".into(),
                runtime: "reference".into(),
                version: "0".into(),
                llm: "mock".into(),
                mock_llm: None,
                command: None,
                cgroup: None,
                embedded_pid: None,
            },
            workers: vec![me],
            servers: Vec::new(),
            keeper: None,
        }
    }

    #[test]
    fn a_stat_line_names_the_start_and_whether_it_runs() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 987654 1000 200";
        assert_eq!(parse_identity(line), Some((987654, true)));
        let zombie = line.replace(") S ", ") Z ");
        assert_eq!(parse_identity(&zombie), Some((987654, false)));
        assert_eq!(parse_identity("garbage"), None);
        // this process is itself, and not once its start time differs
        let me = ChildRecord::of("me", std::process::id(), Vec::new()).unwrap();
        assert!(me.alive() && me.check().is_none());
        let other = ChildRecord {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!other.alive());
        assert!(other.check().unwrap().contains("another process"));
        let wrong_cmd = ChildRecord {
            args: vec!["not-this-test".into()],
            ..me
        };
        assert!(wrong_cmd.check().unwrap().contains("another command"));
    }

    #[test]
    fn resume_takes_the_first_runs_flags_only() {
        let r = record();
        let dir = Path::new("/r/x.checkpoint");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let args = resume_args(&s(&["run", "--resume", "/r/x.checkpoint"]), &r, dir).unwrap();
        assert_eq!(
            args,
            s(&[
                "run",
                "--soak",
                "--plan",
                "p.toml",
                "--resume",
                "/r/x.checkpoint"
            ])
        );
        assert!(resume_args(&s(&["run", "--resume=/r/x.checkpoint"]), &r, dir).is_ok());
        let e = resume_args(&s(&["run", "--resume", "d", "--workers", "3"]), &r, dir)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("give it alone") && e.contains("--workers 3"),
            "{e}"
        );
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let r = record();
        r.write(dir.path()).unwrap();
        assert_eq!(RunRecord::load(dir.path()).unwrap(), r);
        std::fs::write(dir.path().join(RECORD_FILE), "{\"format\": 9}").unwrap();
        let e = RunRecord::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format 9"), "{e}");
        let e = RunRecord::load(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("barrage controller --resume"), "{e}");
    }
}
