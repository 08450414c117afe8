//! The child processes of `barrage run`: the mock LLM, the reference runtime and the local
//! workers, all this same binary under a hidden subcommand (`barrage mock-llm …`).
//!
//! Each child gets its own process group, so a Ctrl-C on the terminal reaches only
//! `barrage`, which then stops the run and its children in order. Each child also asks the
//! kernel for SIGKILL when `barrage` dies (`PR_SET_PDEATHSIG`), so a `kill -9` of `barrage`
//! leaves no orphan. Workers get the run's token through a pipe inherited as fd 3
//! (`--token-file /dev/fd/3`): it is never written to a file that could be left behind.
//!
//! A soak run's children ([`Children::surviving`]) are the exception: they must outlive a
//! `barrage run` killed mid-soak so that `barrage run --resume` can take them back
//! (`crate::soak::local`). They get a session of their own (no terminal's hangup reaches
//! them) and no death signal; a keeper process (`crate::soak::keeper`) stops them if nobody
//! resumes within the rejoin grace. A surviving worker also carries the token in its
//! environment ([`TOKEN_ENV`]), readable only by its user and root, where a resumed run
//! finds it.
//!
//! Servers print `listening on ADDR` as their first stdout line;
//! [`Children::spawn_server`] reads it (the rest of their stdout is drained). Pinning:
//! `taskset -c K` when available. Stopping: SIGTERM (through `kill -TERM`), then SIGKILL
//! after a grace period; [`Children`]'s `Drop` does the same synchronously, so an error path
//! or a panic never leaves a child behind.
use anyhow::{bail, Context as _};
use barrage_core::Secret;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a server child has to print its `listening on` line.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `taskset` can pin children.
pub fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Cores on this machine.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct Proc {
    name: String,
    pid: u32,
    /// `barrage`'s arguments it was started with (its command line ends with them).
    args: Vec<String>,
    child: Child,
}

/// A set of children, stopped on [`Children::stop_all`] or on drop.
#[derive(Default)]
pub struct Children {
    procs: Vec<Proc>,
    /// Started to outlive `barrage` (a soak run's): own session, no death signal.
    survive: bool,
}

/// The fd a worker reads its token from (`--token-file /dev/fd/3`).
pub const TOKEN_FD: i32 = 3;

/// The environment variable a surviving worker keeps the run's token in, for a resumed
/// run to read back from `/proc/PID/environ` (the worker itself reads fd [`TOKEN_FD`]).
pub const TOKEN_ENV: &str = "BARRAGE_RUN_TOKEN";

/// A pipe holding `token` and already closed for writing: the read end, for one child.
fn token_pipe(token: &Secret) -> anyhow::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create the token pipe");
    }
    // SAFETY: pipe2 succeeded; each descriptor is owned here and nowhere else.
    #[allow(unsafe_code)]
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // a token is far below the pipe's buffer: this write never blocks
    std::fs::File::from(write)
        .write_all(token.expose().as_bytes())
        .context("cannot write the token pipe")?;
    Ok(read)
}

/// In the child, between fork and exec: transparent huge pages as `barrage` found them
/// ([`crate::thp`]); die with the parent, or with `survive` leave its session instead;
/// `token` becomes fd 3.
///
/// The kernel sends the signal when the *thread* that forked exits, not only the process:
/// spawn from the main thread or a runtime worker thread (both live as long as `barrage`),
/// never from a short-lived blocking thread.
#[allow(unsafe_code)]
fn child_setup(cmd: &mut Command, token: Option<i32>, survive: bool) {
    let parent = std::process::id() as libc::pid_t;
    crate::thp::restore_in_children(cmd.as_std_mut());
    // SAFETY: the closure only calls async-signal-safe functions (setsid, prctl, getppid,
    // dup2) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if survive {
                // a session (and process group) of its own: no terminal signal reaches it
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // the parent died before prctl took effect: nobody will stop this child
            if !survive && libc::getppid() != parent {
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
            }
            // dup2 clears close-on-exec on the copy, so the child inherits it
            if let Some(fd) = token {
                if libc::dup2(fd, TOKEN_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn command(
    args: &[String],
    env: &[(String, String)],
    pin: Option<usize>,
    survive: bool,
) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot find barrage's own executable")?;
    let mut cmd = match pin {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    // a surviving child calls setsid, which a group leader may not
    if !survive {
        cmd.process_group(0);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd)
}

fn send_term(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Children {
    pub fn new() -> Self {
        Self::default()
    }

    /// Children that outlive `barrage` (a soak run's; see the module's doc).
    pub fn surviving() -> Self {
        Children {
            procs: Vec::new(),
            survive: true,
        }
    }

    /// Whether these children outlive `barrage` ([`Children::surviving`]).
    pub fn survives(&self) -> bool {
        self.survive
    }

    /// Each child's name, pid and `barrage` arguments, to record for a resume.
    pub fn started(&self) -> Vec<(String, u32, Vec<String>)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.pid, p.args.clone()))
            .collect()
    }

    /// Starts barrage's mock LLM on a free loopback port (pinned to `pin`); returns its
    /// address. The embedded target and a `--target-cmd` target both have one behind them.
    pub async fn spawn_mock_llm(&mut self, pin: Option<usize>) -> anyhow::Result<String> {
        let args: Vec<String> = ["mock-llm", "--host", "127.0.0.1", "--port", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        self.spawn_server("mock LLM", &args, &[], pin).await
    }

    /// Starts `barrage <args>` and returns what follows `listening on ` on its first
    /// stdout line (e.g. `127.0.0.1:41234` or `http://127.0.0.1:41234`).
    pub async fn spawn_server(
        &mut self,
        name: &str,
        args: &[String],
        env: &[(String, String)],
        pin: Option<usize>,
    ) -> anyhow::Result<String> {
        let mut cmd = command(args, env, pin, self.survive)?;
        child_setup(&mut cmd, None, self.survive);
        cmd.stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {name}"))?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take().context("no stdout")?;
        self.procs.push(Proc {
            name: name.into(),
            pid,
            args: args.to_vec(),
            child,
        });
        let mut lines = BufReader::new(stdout).lines();
        let first = match tokio::time::timeout(LISTEN_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                bail!("the {name} exited before it listened; see its message above")
            }
            Err(_) => bail!(
                "the {name} did not listen within {}s",
                LISTEN_TIMEOUT.as_secs()
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = first.strip_prefix("listening on ").with_context(|| {
            format!("the {name} printed {first:?} instead of `listening on ADDR`")
        })?;
        tracing::info!(child = name, pid, %addr, "started");
        Ok(addr.trim().to_string())
    }

    /// Starts `barrage <args>` (stdout and stderr inherited); with `token`, the child reads
    /// it from fd [`TOKEN_FD`].
    pub fn spawn(
        &mut self,
        name: &str,
        args: &[String],
        pin: Option<usize>,
        token: Option<&Secret>,
    ) -> anyhow::Result<u32> {
        let pipe = token.map(token_pipe).transpose()?;
        let env: Vec<(String, String)> = match token {
            Some(t) if self.survive => vec![(TOKEN_ENV.into(), t.expose().to_string())],
            _ => Vec::new(),
        };
        let mut cmd = command(args, &env, pin, self.survive)?;
        child_setup(&mut cmd, pipe.as_ref().map(|p| p.as_raw_fd()), self.survive);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        // the child has its copy; ours closes here
        drop(pipe);
        let pid = child.id().unwrap_or(0);
        tracing::debug!(child = name, pid, "started");
        self.procs.push(Proc {
            name: name.into(),
            pid,
            args: args.to_vec(),
            child,
        });
        Ok(pid)
    }

    /// Children that exited since the last call, with their status.
    pub fn poll_exits(&mut self) -> Vec<(String, ExitStatus)> {
        let mut out = Vec::new();
        self.procs.retain_mut(|p| match p.child.try_wait() {
            Ok(Some(status)) => {
                out.push((format!("{} (pid {})", p.name, p.pid), status));
                false
            }
            _ => true,
        });
        out
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid).collect()
    }

    /// Waits up to `wait` for the children to exit on their own, then SIGTERM, then after
    /// `grace` SIGKILL.
    pub async fn stop_all(&mut self, wait: Duration, grace: Duration) {
        let until = Instant::now() + wait;
        while Instant::now() < until && !self.poll_all_exited() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for p in &self.procs {
            tracing::debug!(child = %p.name, pid = p.pid, "SIGTERM");
            send_term(p.pid);
        }
        let until = Instant::now() + grace;
        while Instant::now() < until && !self.poll_all_exited() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for p in &mut self.procs {
            tracing::warn!(child = %p.name, pid = p.pid, "still running after SIGTERM; killing");
            let _ = p.child.start_kill();
            let _ = p.child.wait().await;
        }
        self.procs.clear();
    }

    fn poll_all_exited(&mut self) -> bool {
        self.procs
            .retain_mut(|p| !matches!(p.child.try_wait(), Ok(Some(_))));
        self.procs.is_empty()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if self.poll_all_exited() {
            return;
        }
        for p in &self.procs {
            send_term(p.pid);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && !self.poll_all_exited() {
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in &mut self.procs {
            let _ = p.child.start_kill();
        }
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && !self.poll_all_exited() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Which core each of `n` workers is pinned to: round robin over `cores`.
pub fn assign_cores(n: usize, cores: &[usize]) -> Vec<Option<usize>> {
    (0..n)
        .map(|i| (!cores.is_empty()).then(|| cores[i % cores.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cores() {
        assert_eq!(assign_cores(3, &[0, 1]), vec![Some(0), Some(1), Some(0)]);
        assert_eq!(assign_cores(2, &[]), vec![None, None]);
        assert!(assign_cores(0, &[1]).is_empty());
    }
}
