//! Metadata of a run's results: which barrage measured, on which host.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// barrage's own version and the git sha it was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RigInfo {
    pub version: String,
    /// `git rev-parse --short HEAD` at build time, or "unknown".
    pub git_sha: String,
    /// The controller–worker protocol version.
    pub protocol: u32,
}

/// This build of barrage; `git_sha` is the binary's `env!("BARRAGE_GIT_SHA")` (set by
/// `build_sha.rs`, the build script of the crates that write summaries).
pub fn rig(git_sha: &str) -> RigInfo {
    RigInfo {
        version: crate::VERSION.to_string(),
        git_sha: git_sha.to_string(),
        protocol: crate::PROTOCOL,
    }
}

/// The machine that measured (Linux sources; "unknown" where unreadable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: usize,
    pub ram_bytes: u64,
    pub os: String,
    pub kernel: String,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `PRETTY_NAME` of /etc/os-release.
pub fn os_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
}

pub fn host() -> HostInfo {
    let unknown = || "unknown".to_string();
    HostInfo {
        hostname: read("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(unknown),
        cpu_model: read("/proc/cpuinfo")
            .as_deref()
            .and_then(cpu_model)
            .unwrap_or_else(unknown),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ram_bytes: read("/proc/meminfo")
            .as_deref()
            .and_then(mem_total)
            .unwrap_or(0),
        os: read("/etc/os-release")
            .as_deref()
            .and_then(os_name)
            .unwrap_or_else(unknown),
        kernel: read("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags: x\n").as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(
            mem_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(
            os_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(cpu_model(""), None);
        let h = host();
        assert!(h.cores >= 1);
    }
}
