//! The file-descriptor limit: every open connection is one descriptor, and the usual soft
//! limit (1,024) is far below the tens of thousands of streams a worker host holds (or the
//! mock LLM and the reference runtime serve), while the hard limit usually allows them. So
//! each of those processes raises its soft limit to the hard one at start and says what it
//! got ([`raise_and_log`]).
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Where the soft `RLIMIT_NOFILE` was and where it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub now: u64,
}

/// The kernel's ceiling for any process's descriptors (the hard limit when it is
/// "unlimited").
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (never lowers it).
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    let lim = getrlimit(Resource::Nofile);
    let before = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or_else(nr_open);
    if before >= hard {
        return Ok(FdLimit {
            before,
            now: before,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: lim.maximum,
        },
    )?;
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    Ok(FdLimit { before, now })
}

/// [`raise_fd_limit`], logged: `who` names the process in the log line. A failure is a
/// warning, not an error: the process still runs, capped by the old limit.
pub fn raise_and_log(who: &str) {
    match raise_fd_limit() {
        Ok(l) => tracing::info!(
            process = who,
            before = l.before,
            now = l.now,
            "file-descriptor limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(
            process = who,
            error = %e,
            "could not raise the file-descriptor limit; open connections are capped by it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let got = raise_fd_limit().unwrap();
        let lim = getrlimit(Resource::Nofile);
        assert_eq!(Some(got.now), lim.current);
        assert_eq!(lim.current, Some(lim.maximum.unwrap_or_else(nr_open)));
        assert!(got.now >= got.before);
        // a second call finds nothing to raise
        assert_eq!(
            raise_fd_limit().unwrap(),
            FdLimit {
                before: got.now,
                now: got.now
            }
        );
    }
}
