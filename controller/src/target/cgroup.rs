//! Control groups: the limits of a native tier, and the most faithful source of a target's
//! resource use (the kernel counts every process in the group, also children that exited).
//!
//! Both layouts are handled: cgroup v2 (one tree; `cpu.max`, `memory.max`, `cpu.stat`,
//! `memory.current`/`memory.peak`, `memory.events`) and v1 (one tree per controller:
//! `cpu.cfs_quota_us`, `memory.limit_in_bytes`, `cpuacct.usage`, `memory.usage_in_bytes`/
//! `max_usage_in_bytes`, `memory.oom_control`). Resident memory is usage minus the inactive
//! file cache, as `docker stats` reports it: page cache the kernel can drop is not the
//! target's footprint.
//!
//! A group barrage creates lives under `barrage/` in each hierarchy and is removed when its
//! [`Cgroup`] is dropped (its processes are killed first).
use barrage_core::telemetry::{Limits, Reading};
use std::path::{Path, PathBuf};

/// The CFS period barrage writes (the kernel's default): the quota is a share of it.
pub const CFS_PERIOD_US: u64 = 100_000;
/// `cpu.shares` (v1) / `cpu.weight` (v2) of a tier's group: well above the default, so on a
/// busy machine the target still gets its quota (a tier is a guarantee as well as a cap,
/// like a Kubernetes pod whose request equals its limit).
const SHARES_V1: u64 = 8192;
const WEIGHT_V2: u64 = 800;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {what} {}: {source}; native tiers need root and writable cgroups (/sys/fs/cgroup)", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no cgroup {controller} controller is mounted (see /proc/self/mounts); mount it or use cgroup v2")]
    NoController { controller: &'static str },
    #[error("--target-cgroup {}: not a cgroup directory (no cgroup.procs); give e.g. /sys/fs/cgroup/system.slice/x.service (v2) or /sys/fs/cgroup/memory/x (v1)", path.display())]
    NotACgroup { path: PathBuf },
    #[error("process {pid}: cannot read its cgroups ({source}); is it running?")]
    OfPid {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A control group, v1 (a directory per controller) or v2 (one directory).
#[derive(Debug)]
pub enum Cgroup {
    V2 {
        dir: PathBuf,
        created: bool,
    },
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        created: bool,
    },
}

const UNIFIED: &str = "/sys/fs/cgroup";

/// Whether the machine runs cgroup v2 alone (unified at `/sys/fs/cgroup`).
pub fn is_v2() -> bool {
    Path::new(UNIFIED).join("cgroup.controllers").exists()
}

/// The mount point of a v1 controller, from `/proc/self/mounts`.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == controller))
            .then(|| PathBuf::from(f[1]))
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io("write", path))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn count_lines(path: &Path) -> u64 {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().filter(|l| !l.is_empty()).count() as u64)
}

impl Cgroup {
    /// Creates `barrage/{name}` with `limits` (CPU quota, memory limit, no swap).
    pub fn create(name: &str, limits: Limits) -> Result<Cgroup, CgroupError> {
        if is_v2() {
            let parent = Path::new(UNIFIED).join("barrage");
            if !parent.exists() {
                std::fs::create_dir(&parent).map_err(io("create", &parent))?;
            }
            // the parent must hand the cpu and memory controllers down
            let root_ctl = Path::new(UNIFIED).join("cgroup.subtree_control");
            write(&root_ctl, "+cpu +memory")?;
            write(&parent.join("cgroup.subtree_control"), "+cpu +memory")?;
            let dir = parent.join(name);
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            let cg = Cgroup::V2 { dir, created: true };
            let Cgroup::V2 { dir, .. } = &cg else {
                unreachable!()
            };
            if let Some(c) = limits.cpu_cores {
                let quota = (c * CFS_PERIOD_US as f64).round() as u64;
                write(&dir.join("cpu.max"), &format!("{quota} {CFS_PERIOD_US}"))?;
                write(&dir.join("cpu.weight"), &WEIGHT_V2.to_string())?;
            }
            if let Some(m) = limits.memory_bytes {
                write(&dir.join("memory.max"), &m.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
            }
            return Ok(cg);
        }
        let mk = |controller: &'static str| -> Result<PathBuf, CgroupError> {
            let root = v1_mount(controller).ok_or(CgroupError::NoController { controller })?;
            let dir = root.join("barrage").join(name);
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            Ok(dir)
        };
        let cpu = mk("cpu")?;
        let cpuacct = mk("cpuacct")?;
        let memory = mk("memory")?;
        let cg = Cgroup::V1 {
            cpu: Some(cpu.clone()),
            cpuacct: Some(cpuacct),
            memory: Some(memory.clone()),
            created: true,
        };
        if let Some(c) = limits.cpu_cores {
            let quota = (c * CFS_PERIOD_US as f64).round() as u64;
            write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
            write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            write(&cpu.join("cpu.shares"), &SHARES_V1.to_string())?;
        }
        if let Some(m) = limits.memory_bytes {
            write(&memory.join("memory.limit_in_bytes"), &m.to_string())?;
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &m.to_string())?;
            }
        }
        Ok(cg)
    }

    /// An existing group (`--target-cgroup`): a v2 directory, or a v1 directory under any
    /// controller's mount (the same relative path is used for the other controllers).
    pub fn open(path: &Path) -> Result<Cgroup, CgroupError> {
        if !path.join("cgroup.procs").exists() {
            return Err(CgroupError::NotACgroup {
                path: path.to_path_buf(),
            });
        }
        if path.join("cgroup.controllers").exists() {
            return Ok(Cgroup::V2 {
                dir: path.to_path_buf(),
                created: false,
            });
        }
        let rel = ["cpu", "cpuacct", "memory"]
            .iter()
            .filter_map(|c| v1_mount(c))
            .find_map(|m| path.strip_prefix(&m).ok().map(Path::to_path_buf))
            .ok_or_else(|| CgroupError::NotACgroup {
                path: path.to_path_buf(),
            })?;
        Ok(Self::v1_at(&rel))
    }

    fn v1_at(rel: &Path) -> Cgroup {
        let at = |c: &str| {
            v1_mount(c)
                .map(|m| m.join(rel))
                .filter(|d| d.join("cgroup.procs").exists())
        };
        Cgroup::V1 {
            cpu: at("cpu"),
            cpuacct: at("cpuacct"),
            memory: at("memory"),
            created: false,
        }
    }

    /// The group `pid` belongs to (a Docker container's, for `--target-container`).
    pub fn of_pid(pid: u32) -> Result<Cgroup, CgroupError> {
        let path = format!("/proc/{pid}/cgroup");
        let text =
            std::fs::read_to_string(&path).map_err(|source| CgroupError::OfPid { pid, source })?;
        if is_v2() {
            let rel = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/");
            return Ok(Cgroup::V2 {
                dir: Path::new(UNIFIED).join(rel.trim_start_matches('/')),
                created: false,
            });
        }
        let rel_of = |controller: &str| {
            text.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, rel) = (f.next()?, f.next()?, f.next()?);
                ctl.split(',')
                    .any(|c| c == controller)
                    .then(|| rel.trim_start_matches('/').to_string())
            })
        };
        let at = |c: &str| Some(v1_mount(c)?.join(rel_of(c)?));
        Ok(Cgroup::V1 {
            cpu: at("cpu"),
            cpuacct: at("cpuacct"),
            memory: at("memory"),
            created: false,
        })
    }

    /// This group's folder (v1: the memory controller's, else the first there is).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Cgroup::V2 { dir, .. } => Some(dir),
            Cgroup::V1 {
                cpu,
                cpuacct,
                memory,
                ..
            } => memory.as_deref().or(cpu.as_deref()).or(cpuacct.as_deref()),
        }
    }

    /// The same group, removed on drop as if created here (a resumed run's target's).
    pub fn owned(mut self) -> Cgroup {
        match &mut self {
            Cgroup::V2 { created, .. } | Cgroup::V1 { created, .. } => *created = true,
        }
        self
    }

    /// The `cgroup.procs` files a process must be written to, to join the group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V2 { dir, .. } => vec![dir.join("cgroup.procs")],
            Cgroup::V1 {
                cpu,
                cpuacct,
                memory,
                ..
            } => [cpu, cpuacct, memory]
                .into_iter()
                .flatten()
                .map(|d| d.join("cgroup.procs"))
                .collect(),
        }
    }

    /// The directory that names the group (v1: the memory one, else any).
    pub fn describe(&self) -> String {
        match self {
            Cgroup::V2 { dir, .. } => format!("cgroup v2 {}", dir.display()),
            Cgroup::V1 {
                cpu,
                cpuacct,
                memory,
                ..
            } => {
                let d = memory.as_ref().or(cpuacct.as_ref()).or(cpu.as_ref());
                format!(
                    "cgroup v1 {}",
                    d.map_or("?".into(), |d| d.display().to_string())
                )
            }
        }
    }

    /// Processes in the group.
    pub fn pids(&self) -> Vec<u32> {
        let file = match self {
            Cgroup::V2 { dir, .. } => dir.join("cgroup.procs"),
            Cgroup::V1 {
                cpu,
                cpuacct,
                memory,
                ..
            } => match memory.as_ref().or(cpuacct.as_ref()).or(cpu.as_ref()) {
                Some(d) => d.join("cgroup.procs"),
                None => return Vec::new(),
            },
        };
        std::fs::read_to_string(file)
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Cumulative CPU seconds of the group.
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Cgroup::V2 { dir, .. } => {
                keyed(&dir.join("cpu.stat"), "usage_usec").map(|us| us as f64 / 1e6)
            }
            Cgroup::V1 { cpuacct, .. } => {
                read_u64(&cpuacct.as_ref()?.join("cpuacct.usage")).map(|ns| ns as f64 / 1e9)
            }
        }
    }

    /// Times the kernel's OOM killer ended a process of the group.
    pub fn oom_kills(&self) -> u64 {
        match self {
            Cgroup::V2 { dir, .. } => keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0),
            Cgroup::V1 { memory, .. } => memory
                .as_ref()
                .and_then(|m| keyed(&m.join("memory.oom_control"), "oom_kill"))
                .unwrap_or(0),
        }
    }

    /// (resident = usage − inactive file, the group's own high-water mark).
    fn memory(&self) -> (u64, Option<u64>) {
        match self {
            Cgroup::V2 { dir, .. } => {
                let usage = read_u64(&dir.join("memory.current")).unwrap_or(0);
                let inactive = keyed(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
                (
                    usage.saturating_sub(inactive),
                    read_u64(&dir.join("memory.peak")),
                )
            }
            Cgroup::V1 {
                memory: Some(m), ..
            } => {
                let usage = read_u64(&m.join("memory.usage_in_bytes")).unwrap_or(0);
                let inactive = keyed(&m.join("memory.stat"), "total_inactive_file").unwrap_or(0);
                (
                    usage.saturating_sub(inactive),
                    read_u64(&m.join("memory.max_usage_in_bytes")),
                )
            }
            Cgroup::V1 { memory: None, .. } => (0, None),
        }
    }

    /// The limits the group runs under (a quota of -1/`max`, or a memory limit beyond any
    /// machine, is none).
    pub fn limits(&self) -> Limits {
        const NO_LIMIT: u64 = 1 << 60;
        match self {
            Cgroup::V2 { dir, .. } => {
                let cpu = std::fs::read_to_string(dir.join("cpu.max"))
                    .ok()
                    .and_then(|t| {
                        let mut f = t.split_whitespace();
                        let q: f64 = f.next()?.parse().ok()?;
                        let p: f64 = f.next()?.parse().ok()?;
                        (p > 0.0).then(|| q / p)
                    });
                let mem = read_u64(&dir.join("memory.max")).filter(|m| *m < NO_LIMIT);
                Limits {
                    cpu_cores: cpu,
                    memory_bytes: mem,
                }
            }
            Cgroup::V1 { cpu, memory, .. } => {
                let cores = cpu.as_ref().and_then(|d| {
                    let q = std::fs::read_to_string(d.join("cpu.cfs_quota_us")).ok()?;
                    let q: i64 = q.trim().parse().ok()?;
                    let p = read_u64(&d.join("cpu.cfs_period_us"))?;
                    (q > 0 && p > 0).then(|| q as f64 / p as f64)
                });
                let mem = memory
                    .as_ref()
                    .and_then(|m| read_u64(&m.join("memory.limit_in_bytes")))
                    .filter(|m| *m < NO_LIMIT);
                Limits {
                    cpu_cores: cores,
                    memory_bytes: mem,
                }
            }
        }
    }

    /// The group's own high-water mark of memory, when it keeps one.
    pub fn max_bytes(&self) -> Option<u64> {
        self.memory().1
    }

    /// Threads in the group.
    fn threads(&self) -> u64 {
        match self {
            Cgroup::V2 { dir, .. } => count_lines(&dir.join("cgroup.threads")),
            Cgroup::V1 {
                cpu,
                cpuacct,
                memory,
                ..
            } => memory
                .as_ref()
                .or(cpuacct.as_ref())
                .or(cpu.as_ref())
                .map_or(0, |d| count_lines(&d.join("tasks"))),
        }
    }

    /// One reading of the group at `at_s`.
    pub fn read(&self, at_s: f64) -> Reading {
        let (rss_bytes, rss_max_bytes) = self.memory();
        Reading {
            at_s,
            cpu_s: self.cpu_seconds().unwrap_or(0.0),
            rss_bytes,
            rss_max_bytes,
            threads: self.threads(),
            fds: self.pids().into_iter().map(super::procfs::fds).sum(),
        }
    }

    /// SIGKILLs every process of the group.
    pub fn kill_all(&self) {
        for pid in self.pids() {
            // SAFETY: kill has no memory effects.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let dirs: Vec<PathBuf> = match &*self {
            Cgroup::V2 { dir, created: true } => vec![dir.clone()],
            Cgroup::V1 {
                cpu,
                cpuacct,
                memory,
                created: true,
            } => [cpu, cpuacct, memory]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            _ => return,
        };
        // a group with processes cannot be removed: end them, give the kernel a moment
        for _ in 0..50 {
            if self.pids().is_empty() {
                break;
            }
            self.kill_all();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for d in dirs {
            if let Err(e) = std::fs::remove_dir(&d) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot remove the target's cgroup");
            }
        }
    }
}

/// Parses a memory size: `256M`, `1G`, `512Mi`, `1.5G`, `1073741824` (binary units, as
/// Docker and Kubernetes read `M`/`Mi`).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("memory {text:?}: not a size; use e.g. 256M, 1G, 512Mi"))?;
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "memory {text:?}: unknown unit {other:?}; use K, M or G (binary)"
            ))
        }
    };
    let bytes = n * mul as f64;
    if !(bytes.is_finite() && bytes >= (4 << 20) as f64) {
        return Err(format!(
            "memory {text:?}: below 4M, no runtime starts in that; use e.g. 256M"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        for (text, want) in [
            ("256M", 256u64 << 20),
            ("1G", 1 << 30),
            ("512Mi", 512 << 20),
            ("1.5G", 3 << 29),
            ("8388608", 8 << 20),
            ("2gb", 2 << 30),
        ] {
            assert_eq!(parse_memory(text), Ok(want), "{text}");
        }
        for (text, needle) in [
            ("x", "not a size"),
            ("1T", "unknown unit"),
            ("1K", "below 4M"),
        ] {
            let e = parse_memory(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.oom_control");
        std::fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(keyed(&f, "oom_kill"), Some(2));
        assert_eq!(keyed(&f, "missing"), None);
    }

    /// This machine has cgroup v1 only: the v2 readings are checked on a directory laid out
    /// as the kernel's v2 files are (Documentation/admin-guide/cgroup-v2.rst formats).
    #[test]
    fn a_v2_group_reads_its_limits_cpu_memory_and_oom_kills() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let files = [
            ("cgroup.controllers", "cpuset cpu io memory pids\n"),
            ("cgroup.procs", &format!("{}\n", std::process::id())),
            ("cgroup.threads", "11\n12\n13\n"),
            ("cpu.max", "25000 100000\n"),
            (
                "cpu.stat",
                "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\n",
            ),
            ("memory.max", "268435456\n"),
            ("memory.current", "104857600\n"),
            ("memory.peak", "209715200\n"),
            (
                "memory.stat",
                "anon 90000000\nfile 14857600\ninactive_file 4857600\n",
            ),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
            ),
        ];
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        let cg = Cgroup::open(d).unwrap();
        assert!(matches!(cg, Cgroup::V2 { .. }), "{}", cg.describe());
        assert_eq!(
            cg.limits(),
            Limits {
                cpu_cores: Some(0.25),
                memory_bytes: Some(256 << 20)
            }
        );
        assert_eq!(cg.cpu_seconds(), Some(2.5));
        assert_eq!(cg.oom_kills(), 1);
        assert_eq!(cg.pids(), vec![std::process::id()]);
        let r = cg.read(1.0);
        // resident: usage less the inactive page cache (memory.current − inactive_file)
        assert_eq!(r.rss_bytes, 104_857_600 - 4_857_600);
        assert_eq!(r.rss_max_bytes, Some(200 << 20));
        assert_eq!(r.threads, 3);
        // no limits: `max` and the kernel's huge memory figure are none
        std::fs::write(d.join("cpu.max"), "max 100000\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        assert_eq!(cg.limits(), Limits::default());
    }
}
