//! Readings of a process and its descendants from `/proc`: what `--target-pid` measures, and
//! a target command started without a tier (no cgroup of its own).
//!
//! CPU is `utime + stime + cutime + cstime` summed over the live tree: a descendant that
//! exited and was reaped has its time folded into its parent's `cutime`/`cstime`, so work
//! done by short-lived children is not lost. (A child reaped by a process outside the tree
//! is, which is why a cgroup is the better source when there is one.)
use barrage_core::telemetry::Reading;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One process's line of `/proc/PID/stat`, the fields used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime + cutime + cstime, clock ticks.
    pub ticks: u64,
    pub threads: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses, so
/// the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3]
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: num(4)? as u32,
        ticks: num(14)? + num(15)? + num(16)? + num(17)?,
        threads: num(20)?,
        rss_pages: num(24)?,
    })
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process's parent, from `/proc`.
fn parents() -> BTreeMap<u32, Stat> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(s) = read_stat(pid) {
            out.insert(pid, s);
        }
    }
    out
}

/// `root` and its live descendants (empty when `root` is gone).
pub fn tree(root: u32) -> BTreeMap<u32, Stat> {
    let all = parents();
    let mut keep = BTreeMap::new();
    if let Some(s) = all.get(&root) {
        keep.insert(root, *s);
    } else {
        return keep;
    }
    let mut frontier: BTreeSet<u32> = [root].into();
    while !frontier.is_empty() {
        let next: BTreeSet<u32> = all
            .iter()
            .filter(|(pid, s)| frontier.contains(&s.ppid) && !keep.contains_key(pid))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in &next {
            keep.insert(*pid, all[pid]);
        }
        frontier = next;
    }
    keep
}

/// Open file descriptors of `pid` (0 when unreadable).
pub fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Page size, bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    #[allow(unsafe_code)]
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// One reading of `root`'s tree at `at_s`; `None` when `root` is gone.
pub fn read_tree(root: u32, at_s: f64) -> Option<Reading> {
    let t = tree(root);
    if t.is_empty() {
        return None;
    }
    let (hz, page) = (clock_ticks(), page_size());
    Some(Reading {
        at_s,
        cpu_s: t.values().map(|s| s.ticks).sum::<u64>() as f64 / hz,
        rss_bytes: t.values().map(|s| s.rss_pages).sum::<u64>() * page,
        rss_max_bytes: None,
        threads: t.values().map(|s| s.threads).sum(),
        fds: t.keys().map(|p| fds(*p)).sum(),
    })
}

/// Whether `/proc/PID` exists.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 5 0 1000 12345678 321 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 1,
                ticks: 210,
                threads: 5,
                rss_pages: 321
            }
        );
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_stat("no paren"), None);
    }

    #[test]
    fn this_process_is_read() {
        let me = std::process::id();
        let r = read_tree(me, 0.0).unwrap();
        assert!(r.threads >= 1, "{r:?}");
        assert!(r.rss_bytes > 1 << 20, "{r:?}");
        assert!(r.fds >= 3, "{r:?}");
        let t = tree(me);
        assert!(t.contains_key(&me));
    }
}
