//! The target's side of a run: which processes are the target, how barrage starts one under
//! a tier's limits, and what it consumed.
//!
//! | module      | holds                                                                  |
//! |-------------|------------------------------------------------------------------------|
//! | `tier`      | [`Tier`]: XS/S/M/L and user tiers as CPU quota + memory limit          |
//! | `cgroup`    | [`Cgroup`]: v1 and v2 groups, limits, readings, OOM count              |
//! | `procfs`    | readings of a process tree from `/proc`                                |
//! | `command`   | `--target-cmd`: start in its own group and cgroup, health check, stop  |
//! | `docker`    | `--target-container`: a container's cgroup                             |
//! | `sampler`   | the per-interval readings, crash and OOM watch                         |
//!
//! Which processes barrage measures: the embedded reference runtime when it started it; a
//! `--target-cmd` it started (the command's cgroup when it runs under a tier, else its process
//! tree); or what the user names: `--target-pid`, `--target-cgroup`, `--target-container`.
//! The result is `summary.json`'s `target_telemetry` ([`barrage_core::telemetry`]).
//!
//! Tiers are applied natively: with `--target-cmd`, `--tier xs|s|m|l` (or
//! `--target-cpus`/`--target-memory`) runs the command in a cgroup of its own with the
//! tier's CPU quota and memory limit, pinned to cores the load generator does not get.
pub mod cgroup;
pub mod command;
pub mod docker;
pub mod procfs;
pub mod sampler;
pub mod tier;

pub use cgroup::Cgroup;
pub use tier::Tier;

use crate::cli::{parse_cores, Cores};
use crate::config::RunConfig;
use crate::local::Children;
use anyhow::Context as _;
use barrage_core::metrics::builtin;
use barrage_core::telemetry::{Limits, TargetSummary};
use barrage_core::Snapshot;
use clap::Args;
use command::TargetProcess;
use sampler::{Finished, Sampler, Source};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `barrage run`'s flags about the target's processes.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Measure this process and its descendants (CPU, RSS, threads, fds) during the run.
    #[arg(long, value_name = "PID", conflicts_with_all = ["target_cgroup", "target_container", "target_cmd"])]
    pub target_pid: Option<u32>,
    /// Measure this cgroup (v2 directory, or v1 directory under a controller's mount).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["target_container", "target_cmd"])]
    pub target_cgroup: Option<PathBuf>,
    /// Measure this Docker container (through its cgroup).
    #[arg(long, value_name = "NAME", conflicts_with = "target_cmd")]
    pub target_container: Option<String>,
    /// Start the target with `sh -c CMD` (env PORT, OPENAI_BASE_URL of barrage's mock LLM,
    /// BARRAGE), wait for --target-health, measure it, stop its process group at the end.
    /// With --tier xs|s|m|l (or --target-cpus/--target-memory) it runs under those limits.
    #[arg(long, value_name = "CMD")]
    pub target_cmd: Option<String>,
    /// Path the target command must answer 2xx on before the run starts.
    #[arg(long, value_name = "PATH", default_value = "/ok")]
    pub target_health: String,
    /// How long the target command has to become healthy.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub target_health_timeout: Duration,
    /// CPU quota of the target command, cores (overrides the tier's).
    #[arg(long, value_name = "CORES", requires = "target_cmd")]
    pub target_cpus: Option<f64>,
    /// Memory limit of the target command, e.g. 256M, 1G (overrides the tier's).
    #[arg(long, value_name = "SIZE", requires = "target_cmd")]
    pub target_memory: Option<String>,
    /// Cores to pin the target command to (default: the top cores its quota needs, when
    /// the machine has more).
    #[arg(long, value_name = "LIST", value_parser = parse_cores, requires = "target_cmd")]
    pub target_cores: Option<Cores>,
    /// How often the target is sampled.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub target_sample_interval: Duration,
    /// The mock LLM behind a target barrage did not start (`--target-pid`, `-cgroup`,
    /// `-container`), as HOST:PORT: its `/stats` count of calls is reconciled with what the
    /// flow expects, as for a target barrage starts.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "target_cmd")]
    pub target_llm: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    barrage_core::duration::parse_duration(text)
}

/// What to measure, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Watch {
    /// The embedded reference runtime (when `barrage run` starts it).
    Embedded,
    Pid(u32),
    Cgroup(PathBuf),
    Container(String),
    Command(String),
}

/// The target flags, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSetup {
    pub watch: Watch,
    /// Limits of a target command (a tier), if any.
    pub limits: Option<Limits>,
    pub health: String,
    pub health_timeout: Duration,
    /// Cores of a target command.
    pub cores: Option<Vec<usize>>,
    pub interval: Duration,
    /// `--target-llm`: the mock LLM behind a target barrage did not start.
    pub llm: Option<String>,
}

/// Validates the target flags; `tier` is the run's `--tier` label, `cores` this machine's.
pub fn setup(a: &TargetArgs, tier: Option<&str>, cores: usize) -> Result<TargetSetup, String> {
    let watch = if let Some(p) = a.target_pid {
        Watch::Pid(p)
    } else if let Some(c) = &a.target_cgroup {
        Watch::Cgroup(c.clone())
    } else if let Some(n) = &a.target_container {
        Watch::Container(n.clone())
    } else if let Some(c) = &a.target_cmd {
        if c.trim().is_empty() {
            return Err("--target-cmd is empty; give the command that starts the target".into());
        }
        Watch::Command(c.clone())
    } else {
        Watch::Embedded
    };
    if !a.target_health.starts_with('/') {
        return Err(format!(
            "--target-health {:?}: must be a path starting with /, e.g. /ok",
            a.target_health
        ));
    }
    if a.target_sample_interval < Duration::from_millis(50) {
        return Err("--target-sample-interval: at least 50ms".into());
    }
    if let Some(llm) = &a.target_llm {
        if !matches!(
            watch,
            Watch::Pid(_) | Watch::Cgroup(_) | Watch::Container(_)
        ) {
            return Err(format!(
                "--target-llm {llm}: only with --target-pid, --target-cgroup or --target-container (barrage starts and reads its own mock LLM otherwise)"
            ));
        }
        let ok = llm.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(format!(
                "--target-llm {llm:?}: give the mock LLM as HOST:PORT, e.g. 127.0.0.1:11434"
            ));
        }
    }
    let mut limits = None;
    let mut pin = None;
    if matches!(watch, Watch::Command(_)) {
        let base = tier.and_then(Tier::builtin);
        if tier.is_some()
            && base.is_none()
            && (a.target_cpus.is_none() || a.target_memory.is_none())
        {
            return Err(format!(
                "--tier {}: not a built-in tier ({}); give --target-cpus and --target-memory for it",
                tier.unwrap_or_default(),
                tier::BUILTIN.map(|t| t.0).join(", ")
            ));
        }
        if base.is_some() || a.target_cpus.is_some() || a.target_memory.is_some() {
            let t = Tier {
                name: tier.unwrap_or("custom").to_string(),
                cpus: a
                    .target_cpus
                    .or(base.as_ref().map(|b| b.cpus))
                    .unwrap_or(cores as f64),
                memory: a
                    .target_memory
                    .clone()
                    .or(base.as_ref().map(|b| b.memory.clone()))
                    .unwrap_or_else(|| "1G".into()),
            };
            let mut l = t.limits()?;
            if a.target_memory.is_none() && base.is_none() {
                l.memory_bytes = None;
            }
            if a.target_cpus.is_none() && base.is_none() {
                l.cpu_cores = None;
            }
            limits = Some(l);
            pin = match &a.target_cores {
                Some(c) => Some(c.0.clone()),
                None => tier::target_cores(t.cores_needed(), cores),
            };
        } else if let Some(c) = &a.target_cores {
            pin = Some(c.0.clone());
        }
    }
    if let Some(p) = &pin {
        if let Some(bad) = p.iter().find(|c| **c >= cores) {
            return Err(format!(
                "--target-cores: core {bad} does not exist (this machine has {cores})"
            ));
        }
    }
    Ok(TargetSetup {
        watch,
        limits,
        health: a.target_health.clone(),
        health_timeout: a.target_health_timeout,
        cores: pin,
        interval: a.target_sample_interval,
        llm: a.target_llm.clone(),
    })
}

/// A target ready to be sampled: the source, and what barrage started.
pub struct Prepared {
    source: Source,
    limits: Limits,
    process: Option<TargetProcess>,
    /// `host:port` of the mock LLM behind the target, to read its `/stats`.
    llm: Option<String>,
}

/// A free loopback port (bound, read, released) for a target command told `PORT`.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The mock LLM's chat count (`/stats`: chat + chat_stream).
pub async fn llm_chat_count(addr: &str) -> Option<u64> {
    let (code, body) = command::http_get(addr, "/stats").await.ok()?;
    if code != 200 {
        return None;
    }
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(v["requests"]["chat"].as_u64()? + v["requests"]["chat_stream"].as_u64()?)
}

/// Starts the mock LLM and the target command (under its tier's cgroup), waits until it is
/// healthy, and points the plan at it (unless the plan already names a target URL).
pub async fn start_command(
    cmd: &str,
    setup: &TargetSetup,
    cfg: &mut RunConfig,
    servers: &mut Children,
    mock_core: Option<usize>,
) -> anyhow::Result<Prepared> {
    let s = |x: &str| x.to_string();
    let mock = servers.spawn_mock_llm(mock_core).await?;
    let mut env = vec![(s("OPENAI_BASE_URL"), format!("http://{mock}/v1"))];
    if cfg.embedded_target {
        let port = free_port()?;
        env.push((s("PORT"), port.to_string()));
        cfg.plan.target.url = format!("http://127.0.0.1:{port}");
    }
    if let Some(secret) = cfg.secrets.get(barrage_core::auth::keys::JWT_SECRET) {
        env.push((s("SUPABASE_JWT_SECRET"), secret.expose().to_string()));
    }
    let group = match setup.limits {
        Some(l) => {
            let name = format!("target-{}", std::process::id());
            Some(Cgroup::create(&name, l).context("cannot create the tier's cgroup")?)
        }
        None => None,
    };
    let procs = group.as_ref().map(Cgroup::procs_files).unwrap_or_default();
    let mut process = command::spawn(
        cmd,
        &env,
        &procs,
        setup.cores.as_deref(),
        servers.survives(),
    )?;
    let url = cfg.plan.target.url.clone();
    if let Err(e) = process
        .wait_healthy(&url, &setup.health, setup.health_timeout)
        .await
    {
        process.stop(Duration::from_secs(5)).await;
        return Err(e.into());
    }
    cfg.plan
        .validate()
        .context("the target command's plan is invalid")?;
    barrage_core::errln!(
        "barrage: target {url} (--target-cmd, pid {}{}), mock LLM {mock}",
        process.pid,
        group
            .as_ref()
            .map(|g| format!(", {}", g.describe()))
            .unwrap_or_default()
    );
    let source = match group {
        Some(g) => Source::Group(g),
        None => Source::Tree(process.pid),
    };
    Ok(Prepared {
        source,
        limits: setup.limits.unwrap_or_default(),
        process: Some(process),
        llm: Some(mock),
    })
}

/// A target barrage did not start: `--target-pid`, `--target-cgroup`, `--target-container`
/// (with the mock LLM behind it at `--target-llm`, if given), or the embedded reference
/// runtime (`pid`, with its mock LLM at `llm`).
pub fn watch_existing(
    setup: &TargetSetup,
    embedded: Option<(u32, String)>,
) -> anyhow::Result<Option<Prepared>> {
    let given = setup.llm.clone();
    let (source, llm) = match (&setup.watch, embedded) {
        (Watch::Pid(p), _) => {
            anyhow::ensure!(
                procfs::alive(*p),
                "--target-pid {p}: no such process; give the pid of the running target"
            );
            (Source::Tree(*p), given)
        }
        (Watch::Cgroup(path), _) => (Source::Group(Cgroup::open(path)?), given),
        (Watch::Container(name), _) => (Source::Group(docker::container_cgroup(name)?), given),
        (Watch::Embedded, Some((pid, llm))) => (Source::Tree(pid), Some(llm)),
        (Watch::Embedded, None) | (Watch::Command(_), _) => return Ok(None),
    };
    let limits = match &source {
        Source::Group(g) => g.limits(),
        Source::Tree(_) => Limits::default(),
    };
    Ok(Some(Prepared {
        source,
        limits,
        process: None,
        llm,
    }))
}

/// A target command a resumed soak run took over from the `barrage run` that started it
/// (`crate::soak::local`): its process tree, or the tier's cgroup (removed at the end, as
/// the first run would have), and the mock LLM behind it.
pub fn watch_adopted(
    pid: u32,
    cgroup: Option<&std::path::Path>,
    llm: Option<String>,
) -> anyhow::Result<Prepared> {
    let source = match cgroup {
        Some(path) => Source::Group(Cgroup::open(path)?.owned()),
        None => Source::Tree(pid),
    };
    let limits = match &source {
        Source::Group(g) => g.limits(),
        Source::Tree(_) => Limits::default(),
    };
    Ok(Prepared {
        source,
        limits,
        process: None,
        llm,
    })
}

impl Prepared {
    /// What a resume needs of a target barrage started: the command's pid (its group's
    /// leader) and its cgroup's folder, if any.
    pub fn started(&self) -> (Option<u32>, Option<PathBuf>) {
        let cgroup = match &self.source {
            Source::Group(g) => g.path().map(std::path::Path::to_path_buf),
            Source::Tree(_) => None,
        };
        (self.process.as_ref().map(|p| p.pid), cgroup)
    }

    /// The mock LLM behind the target, if barrage knows it.
    pub fn llm(&self) -> Option<&str> {
        self.llm.as_deref()
    }
}

/// Sampling under way.
pub struct Measuring {
    sampler: Sampler,
    llm: Option<(String, Option<u64>)>,
}

impl Prepared {
    /// Starts sampling (the first reading is the run's origin of CPU time).
    /// `live`: the dashboard, shown the target's load each interval.
    /// `ladder`: how the readings are downsampled as they age (the time series' own).
    pub async fn start(
        self,
        interval: Duration,
        ladder: barrage_core::timeseries::Ladder,
        live: Option<crate::dashboard::LiveFeed>,
    ) -> Measuring {
        let llm = match self.llm {
            Some(addr) => {
                let before = llm_chat_count(&addr).await;
                Some((addr, before))
            }
            None => None,
        };
        Measuring {
            sampler: Sampler::start(
                self.source,
                self.limits,
                self.process,
                interval,
                ladder,
                Instant::now(),
                live,
            ),
            llm,
        }
    }
}

/// Sampling done: the recorder, the LLM's count over the run, what is left to stop.
pub struct Measured {
    finished: Finished,
    llm_calls: Option<u64>,
}

impl Measuring {
    /// Takes the last reading and the mock LLM's count.
    pub async fn finish(self) -> anyhow::Result<Measured> {
        let finished = self.sampler.finish().await?;
        let llm_calls = match self.llm {
            Some((addr, Some(before))) => llm_chat_count(&addr)
                .await
                .map(|after| after.saturating_sub(before)),
            _ => None,
        };
        Ok(Measured {
            finished,
            llm_calls,
        })
    }
}

fn counter(total: &Snapshot, metric: &str) -> f64 {
    match total.submetric(metric, &[]) {
        Some(barrage_core::Sink::Counter(c)) => c.sum,
        _ => 0.0,
    }
}

impl Measured {
    /// The summary's `target_telemetry`, with the run's requests and completed iterations
    /// since `base` (a resumed run measures its target from the resume on, so its
    /// per-request figures take the requests since then: the checkpoint's totals).
    pub fn summary(&self, total: &Snapshot, base: Option<&Snapshot>) -> TargetSummary {
        let since =
            |metric: &str| counter(total, metric) - base.map_or(0.0, |b| counter(b, metric));
        let requests = since(builtin::HTTP_REQS).max(0.0);
        let flows = since(builtin::ITERATIONS).max(0.0) as u64;
        self.finished
            .recorder
            .summary(requests, flows, self.llm_calls)
    }

    /// Stops a target command (its process group) and removes its cgroup.
    pub async fn stop(self) {
        if let Some(p) = self.finished.process {
            p.stop(Duration::from_secs(10)).await;
        }
        drop(self.finished.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TargetArgs {
        TargetArgs {
            target_health: "/ok".into(),
            target_health_timeout: Duration::from_secs(5),
            target_sample_interval: Duration::from_secs(1),
            ..Default::default()
        }
    }

    #[test]
    fn tiers_of_a_target_command() {
        let a = TargetArgs {
            target_cmd: Some("x".into()),
            ..args()
        };
        let s = setup(&a, Some("xs"), 2).unwrap();
        assert_eq!(
            s.limits,
            Some(Limits {
                cpu_cores: Some(0.25),
                memory_bytes: Some(256 << 20)
            })
        );
        assert_eq!(s.cores, Some(vec![1]));
        // a user tier needs both limits
        let e = setup(&a, Some("xl"), 2).unwrap_err();
        assert!(e.contains("not a built-in tier"), "{e}");
        let custom = TargetArgs {
            target_cpus: Some(0.75),
            target_memory: Some("768M".into()),
            ..a.clone()
        };
        let s = setup(&custom, Some("xl"), 4).unwrap();
        assert_eq!(s.limits.unwrap().cpu_cores, Some(0.75));
        assert_eq!(s.cores, Some(vec![3]));
        // no tier: no limits, not pinned
        let s = setup(&a, None, 2).unwrap();
        assert_eq!((s.limits, s.cores), (None, None));
        // a tier label without a command is only a label
        assert_eq!(setup(&args(), Some("xs"), 2).unwrap().limits, None);
        let bad = TargetArgs {
            target_health: "ok".into(),
            ..a
        };
        assert!(setup(&bad, None, 2)
            .unwrap_err()
            .contains("starting with /"));
    }

    #[test]
    fn the_llm_behind_a_watched_target() {
        let a = TargetArgs {
            target_container: Some("rt".into()),
            target_llm: Some("127.0.0.1:11434".into()),
            ..args()
        };
        assert_eq!(
            setup(&a, None, 2).unwrap().llm.as_deref(),
            Some("127.0.0.1:11434")
        );
        for bad in ["11434", "127.0.0.1:", ":80", "127.0.0.1:0", "host:99999"] {
            let b = TargetArgs {
                target_llm: Some(bad.into()),
                ..a.clone()
            };
            let e = setup(&b, None, 2).unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
        // the embedded target's mock is barrage's own
        let e = setup(
            &TargetArgs {
                target_llm: Some("127.0.0.1:1".into()),
                ..args()
            },
            None,
            2,
        )
        .unwrap_err();
        assert!(e.contains("only with --target-pid"), "{e}");
    }
}
