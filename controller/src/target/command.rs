//! `--target-cmd`: a target barrage starts itself, waits for, measures and stops.
//!
//! The command runs under `sh -c` in its own process group, so stopping it reaches every
//! process it started (a start script, its server, the server's workers): SIGTERM to the
//! group, SIGKILL after a grace period. Between fork and exec the child joins the tier's
//! cgroup (before it can start anything, so no descendant escapes the limits), is pinned to
//! its cores, and asks for SIGKILL should barrage die. A soak run's target must outlive a
//! killed `barrage run` instead (`--resume` takes it back): it gets a session of its own
//! (its process group all the same) and no death signal.
//!
//! It is told where to listen and which LLM to call through the environment the
//! `deploy/targets/*/start.sh` scripts and barrage's reference runtime read: `PORT`,
//! `OPENAI_BASE_URL`; `BARRAGE` names barrage's own binary, so
//! `exec "$BARRAGE" reference-runtime` starts the reference runtime.
use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("--target-cmd {cmd:?}: cannot start it: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path} to place the target in its cgroup: {source}")]
    Cgroup {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--target-cmd {cmd:?} exited ({status}) before GET {url} answered 2xx; see its output above")]
    ExitedEarly {
        cmd: String,
        url: String,
        status: ExitStatus,
    },
    #[error("--target-cmd {cmd:?}: GET {url} did not answer 2xx within {secs}s (last: {last}); raise --target-health-timeout or fix --target-health")]
    Unhealthy {
        cmd: String,
        url: String,
        secs: u64,
        last: String,
    },
}

/// A started target command.
#[derive(Debug)]
pub struct TargetProcess {
    pub cmd: String,
    /// The `sh -c` process: the group's leader.
    pub pid: u32,
    child: Child,
    /// Its exit status, once seen.
    exited: Option<ExitStatus>,
}

/// Starts `sh -c cmd` in its own process group with `env`; with `cgroup_procs` it joins
/// those `cgroup.procs` files, with `cores` it is pinned to them; with `survive` it leads a
/// session of its own and outlives barrage.
pub fn spawn(
    cmd: &str,
    env: &[(String, String)],
    cgroup_procs: &[std::path::PathBuf],
    cores: Option<&[usize]>,
    survive: bool,
) -> Result<TargetProcess, CommandError> {
    let files: Vec<OwnedFd> = cgroup_procs
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map(OwnedFd::from)
                .map_err(|source| CommandError::Cgroup {
                    path: p.display().to_string(),
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    let raw: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    let cores: Vec<usize> = cores.map(<[usize]>::to_vec).unwrap_or_default();
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null()).kill_on_drop(true);
    // setsid (below) makes a surviving command its group's leader; a leader cannot call it
    if !survive {
        c.process_group(0);
    }
    if let Ok(exe) = std::env::current_exe() {
        c.env("BARRAGE", exe);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let parent = std::process::id() as libc::pid_t;
    // the target's pages as the system gives them, not as the controller chose
    crate::thp::restore_in_children(c.as_std_mut());
    let zero = CString::new("0").expect("no NUL");
    // SAFETY: the closure calls only async-signal-safe functions (setsid, prctl, getppid,
    // write, sched_setaffinity) on memory prepared before the fork, and allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        c.pre_exec(move || {
            if survive {
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
                || libc::getppid() != parent
            {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process (this child) into the group
            for fd in &raw {
                if libc::write(*fd, zero.as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if !cores.is_empty() {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                for &core in &cores {
                    libc::CPU_SET(core, &mut set);
                }
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = c.spawn().map_err(|source| CommandError::Spawn {
        cmd: cmd.to_string(),
        source,
    })?;
    drop(files);
    let pid = child.id().unwrap_or(0);
    tracing::info!(pid, cmd, "target command started");
    Ok(TargetProcess {
        cmd: cmd.to_string(),
        pid,
        child,
        exited: None,
    })
}

/// `GET path` on `addr` once: the status code and up to 64 KiB of the answer's body.
pub async fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        while buf.len() < 64 << 10 {
            let k = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if k == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {:?}", &text[..text.len().min(40)]))?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .unwrap_or_else(|_| Err("no answer within 5s".into()))
}

/// `host:port` of an `http://host:port/...` URL.
pub fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

impl TargetProcess {
    /// Polls `GET {base}{path}` until it answers 2xx, the process exits, or `timeout` passes.
    pub async fn wait_healthy(
        &mut self,
        base: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(), CommandError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(CommandError::ExitedEarly {
                    cmd: self.cmd.clone(),
                    url,
                    status,
                });
            }
            let last = match http_get(authority(base), path).await {
                Ok((code, _)) if (200..300).contains(&code) => return Ok(()),
                Ok((code, _)) => format!("status {code}"),
                Err(e) => e,
            };
            if Instant::now() >= until {
                return Err(CommandError::Unhealthy {
                    cmd: self.cmd.clone(),
                    url,
                    secs: timeout.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The group leader's exit status, once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
            }
        }
        self.exited
    }

    fn signal_group(&self, sig: i32) {
        // SAFETY: kill has no memory effects; a negative pid names the process group.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-(self.pid as libc::pid_t), sig);
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; waits for the leader.
    pub async fn stop(mut self, grace: Duration) {
        self.signal_group(libc::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until && self.exit_status().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // members of the group may outlive the leader: SIGKILL them all either way
        self.signal_group(libc::SIGKILL);
        if self.exited.is_none() {
            let _ = self.child.wait().await;
        }
        tracing::info!(pid = self.pid, "target command stopped");
    }
}
