//! `barrage sweep`: every runtime × tier pair, one at a time, each a `barrage run` of its
//! own with the runtime started by `--target-cmd` under the tier's limits (native: a cgroup
//! with the tier's CPU quota and memory limit, pinned to cores the load does not get).
//!
//! Why a child `barrage run` per pair (`crate::child_run`): a pair is then exactly what a
//! user gets by running it alone, a crashed or OOM-killed target ends only its own pair, and
//! the sweep itself keeps no state but the result files, which is what `--resume` reads.
//!
//! Per pair, in `--results-dir`: `{runtime}-{tier}.summary.json` (tier in `target.tier`,
//! the target's consumption in `target_telemetry`), `{runtime}-{tier}.json` (k6 NDJSON of
//! every sample, as the seed's `k6 --out json`), `{runtime}-{tier}.log` (the run's printed
//! summary). At the end a table: runtime × tier with req/s, requests per CPU-second of the
//! target, p95 of the flow, errors, peak RSS.
mod compose;
pub mod config;
mod table;

pub use config::SweepArgs;

use crate::child_run::{self, ChildExit};
use crate::exit_code;
use anyhow::Context as _;
use barrage_core::{errln, outln};
use config::{PlanChoice, RuntimeSpec, Sweep};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use table::Row;

/// The result files of one pair.
pub fn pair_files(dir: &Path, runtime: &str, tier: &str) -> (PathBuf, PathBuf, PathBuf) {
    let base = format!("{runtime}-{tier}");
    (
        dir.join(format!("{base}.summary.json")),
        dir.join(format!("{base}.json")),
        dir.join(format!("{base}.log")),
    )
}

/// The `barrage run` arguments of one pair; `container`: docker mode, the runtime's
/// container, already healthy at `rt.url`.
pub fn run_args(
    s: &Sweep,
    rt: &RuntimeSpec,
    tier: &crate::target::Tier,
    container: Option<&str>,
) -> Vec<String> {
    let (_, ndjson, _) = pair_files(&s.results_dir, &rt.name, &tier.name);
    let mut a: Vec<String> = vec![
        "run".into(),
        "--no-progress".into(),
        "--results-dir".into(),
        s.results_dir.display().to_string(),
        "--runtime-name".into(),
        rt.name.clone(),
        "--tier".into(),
        tier.name.clone(),
        "--out".into(),
        format!("json={}", ndjson.display()),
        "--overwrite".into(),
    ];
    match container {
        Some(id) => a.extend([
            "--target".into(),
            rt.url.clone().unwrap_or_default(),
            "--target-container".into(),
            id.to_string(),
            "--target-llm".into(),
            compose::llm_addr(),
        ]),
        None => a.extend([
            "--target-cmd".into(),
            rt.cmd.clone(),
            "--target-health".into(),
            rt.health.clone().unwrap_or_else(|| s.health.clone()),
            "--target-health-timeout".into(),
            format!("{}s", s.health_timeout.as_secs().max(1)),
            "--target-cpus".into(),
            tier.cpus.to_string(),
            "--target-memory".into(),
            tier.memory.clone(),
        ]),
    }
    match &s.plan {
        PlanChoice::File(p) => a.extend(["--plan".into(), p.display().to_string()]),
        PlanChoice::Profile(n) => a.extend(["--profile".into(), n.clone()]),
    }
    if let Some(n) = s.workers {
        a.extend(["--workers".into(), n.to_string()]);
    }
    a
}

/// Runs `barrage sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let s = match config::load(&args) {
        Ok(s) => s,
        Err(e) => {
            errln!("barrage sweep: {}", e.trim_end());
            return Ok(ExitCode::from(exit_code::CONFIG));
        }
    };
    std::fs::create_dir_all(&s.results_dir)
        .with_context(|| format!("cannot create {}", s.results_dir.display()))?;
    let mut existing = Vec::new();
    for rt in &s.runtimes {
        for t in &s.tiers {
            let (summary, _, _) = pair_files(&s.results_dir, &rt.name, &t.name);
            if summary.exists() {
                existing.push(summary.display().to_string());
            }
        }
    }
    if !s.resume && !existing.is_empty() {
        errln!(
            "barrage sweep: results exist ({}); pass --resume to skip those pairs, or pick another --results-dir",
            existing.join(", ")
        );
        return Ok(ExitCode::from(exit_code::CONFIG));
    }
    let exe = std::env::current_exe().context("cannot find barrage's own executable")?;
    let docker = s.compose.as_ref().map(|f| compose::Compose {
        file: f.clone(),
        project: format!("barrage-sweep-{}", std::process::id()),
    });
    if let Some(d) = &docker {
        d.up("mock-llm", &[])?;
    }
    let result = pairs(&s, &exe, docker.as_ref());
    if let Some(d) = &docker {
        d.down();
    }
    let rows = match result? {
        Ok(rows) => rows,
        Err(code) => return Ok(code),
    };
    let text = table::render(&rows);
    outln!("{text}");
    let failed = rows.iter().filter(|r| r.failed()).count();
    if failed > 0 {
        errln!("barrage sweep: {failed} of {} pairs produced no summary (see their .log and the messages above)", rows.len());
        return Ok(ExitCode::from(exit_code::FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every pair in order: the table's rows, or the exit code that stopped the sweep.
fn pairs(
    s: &Sweep,
    exe: &Path,
    docker: Option<&compose::Compose>,
) -> anyhow::Result<Result<Vec<Row>, ExitCode>> {
    let mut rows = Vec::new();
    let total = s.runtimes.len() * s.tiers.len();
    let mut n = 0;
    for rt in &s.runtimes {
        for t in &s.tiers {
            n += 1;
            let (summary, _, log) = pair_files(&s.results_dir, &rt.name, &t.name);
            if summary.exists() {
                errln!(
                    "barrage sweep: [{n}/{total}] {} × {}: done before, skipped (--resume)",
                    rt.name,
                    t.name
                );
                rows.push(row_of(&rt.name, &t.name, &summary, None));
                continue;
            }
            errln!(
                "barrage sweep: [{n}/{total}] {} × {} ({} CPU, {})",
                rt.name,
                t.name,
                t.cpus,
                t.memory
            );
            let container = match docker {
                Some(d) => {
                    let service = rt.service.clone().unwrap_or_else(|| rt.name.clone());
                    match start_service(d, &service, rt, t, s) {
                        Ok(id) => Some((service, id)),
                        Err(e) => {
                            errln!("barrage sweep: {} × {}: {e:#}", rt.name, t.name);
                            let _ = d.stop(&service);
                            rows.push(Row::missing(&rt.name, &t.name, format!("no summary: {e}")));
                            continue;
                        }
                    }
                }
                None => None,
            };
            let exit = child_run::run(
                exe,
                &run_args(s, rt, t, container.as_ref().map(|c| c.1.as_str())),
                &log,
            )?;
            if let (Some(d), Some((service, _))) = (docker, &container) {
                d.stop(service)?;
            }
            if exit.refused_flags() {
                errln!(
                    "barrage sweep: the run of {} × {} refused its flags (see above); stopping",
                    rt.name,
                    t.name
                );
                return Ok(Err(ExitCode::from(exit_code::CONFIG)));
            }
            rows.push(row_of(&rt.name, &t.name, &summary, Some(exit)));
        }
    }
    Ok(Ok(rows))
}

/// Docker mode: recreates the runtime's service with the tier's limits, waits until it
/// answers; its container id.
fn start_service(
    d: &compose::Compose,
    service: &str,
    rt: &RuntimeSpec,
    t: &crate::target::Tier,
    s: &Sweep,
) -> anyhow::Result<String> {
    d.up(
        service,
        &[
            ("BENCH_CPUS", t.cpus.to_string()),
            ("BENCH_MEMORY", t.memory.clone()),
        ],
    )?;
    let url = rt.url.as_deref().unwrap_or_default();
    let health = rt.health.as_deref().unwrap_or(&s.health);
    compose::wait_healthy(url, health, s.health_timeout)?;
    d.container(service)
}

fn row_of(runtime: &str, tier: &str, summary: &Path, exit: Option<ChildExit>) -> Row {
    match child_run::read_summary(summary, exit) {
        Ok(s) => Row::of(runtime, tier, &s),
        Err(e) => Row::missing(runtime, tier, e),
    }
}
