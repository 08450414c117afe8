//! `barrage characterize`: the capacity of a target in one command. The load steps up in
//! plateaus (VUs, or an arrival rate) until one is bad, then bisects between the last good
//! and the first bad plateau; the result is the whole load curve, the capacity under SLO,
//! the max sustainable throughput and the knee.
//!
//! | file         | holds                                                                  |
//! |--------------|------------------------------------------------------------------------|
//! | `config.rs`  | [`CharacterizeArgs`] (flags) → `Settings` (validated), the banner      |
//! | `remote.rs`  | `--listen`/`--expect-workers`: plateaus on remote (serving) workers    |
//! | `plateau.rs` | one plateau: its plan, a child `barrage run`/`controller`, its figures |
//! | `measure.rs` | a plateau's figures from its summary's plateau stage; run validity     |
//! | `search.rs`  | the verdict of a plateau, step-up then bisection (pure)                |
//! | `curve.rs`   | `Report` (`characterize.json`): capacity, throughput, knee, the table  |
//!
//! Why each plateau is a child `barrage run` (as `barrage sweep`'s pairs are): a plateau is
//! then exactly the run a user gets with that plan, with its own `summary.json` to look
//! into, and a target that dies ends only its plateau. The warm-up is a stage of the same
//! run, so it warms the same target processes and is left out by taking only the plateau
//! stage's section of the summary. With `--listen ADDR --expect-workers N` each plateau is
//! a child `barrage controller` on that address instead, and the workers, started once with
//! `barrage worker --controller URL --serve`, join one plateau after the other.
//!
//! Output, in `--results-dir`: `characterize.json`, `characterize.txt` (the table),
//! `characterize.png`/`.svg` (the chart), and `characterize/pNN-LOAD/` per plateau (its
//! `plan.toml`, `run.log` and summary).
pub mod config;
mod curve;
mod measure;
mod plateau;
mod remote;
mod search;

pub use config::CharacterizeArgs;

use crate::{config as run_config, exit_code};
use anyhow::Context as _;
use barrage_core::{errln, outln};
use config::{fmt_load, Settings};
use curve::Report;
use plateau::{PlateauError, Runner};
use std::path::Path;
use std::process::ExitCode;

fn refuse(what: impl std::fmt::Display) -> ExitCode {
    errln!("barrage characterize: {}", what.to_string().trim_end());
    ExitCode::from(exit_code::CONFIG)
}

/// Runs `barrage characterize`.
pub fn run(args: CharacterizeArgs) -> anyhow::Result<ExitCode> {
    let settings = match Settings::from_args(&args) {
        Ok(s) => s,
        Err(errors) => return Ok(refuse(errors.join("\n  "))),
    };
    let plan_args = args.plan.clone().with_env(|k| std::env::var(k).ok());
    if plan_args.smoke {
        return Ok(refuse(
            "--smoke runs one iteration; characterize steps the load itself: drop --smoke (or SMOKE=1)",
        ));
    }
    let base = match run_config::load_plan(&plan_args) {
        Ok(p) => p,
        Err(e) => return Ok(refuse(e)),
    };
    if let Err(e) = run_config::read_secrets(&base, |k| std::env::var(k).ok()) {
        return Ok(refuse(e));
    }
    let embedded = plan_args.target.is_none()
        && match &plan_args.plan {
            Some(path) => match run_config::file_names_target(path) {
                Ok(named) => !named,
                Err(e) => return Ok(refuse(e)),
            },
            None => true,
        };
    let remote =
        match args
            .remote
            .validate(&plan_args, embedded, &args.run_flags, &args.results_dir)
        {
            Ok(r) => r,
            Err(e) => return Ok(refuse(e)),
        };
    let dir = &args.results_dir;
    let json_path = dir.join("characterize.json");
    let plateaus_dir = dir.join("characterize");
    if json_path.exists() || plateaus_dir.exists() {
        return Ok(refuse(format!(
            "results of an earlier characterization are in {} (characterize.json or characterize/); pick another --results-dir",
            dir.display()
        )));
    }
    if let Err(e) = barrage_core::results::probe_dir(dir) {
        return Ok(refuse(e));
    }
    let runner = Runner {
        exe: std::env::current_exe().context("cannot find barrage's own executable")?,
        base,
        embedded,
        settings: settings.clone(),
        dir: plateaus_dir,
        run_flags: args.run_flags.clone(),
        remote,
    };
    errln!(
        "barrage characterize: {} ({})\n{}\n{settings}",
        if embedded {
            "the embedded reference runtime and mock LLM".to_string()
        } else {
            runner.base.target.url.clone()
        },
        runner.base.target.runtime,
        match &runner.remote {
            Some(r) => r.to_string(),
            None => "workers: local (each plateau is a `barrage run`)".to_string(),
        }
    );
    let (found, error) = search::search(&settings, |n, load| {
        errln!(
            "barrage characterize: plateau {n}: {} {}",
            fmt_load(load),
            settings.by.unit()
        );
        let m = runner.run(n, load)?;
        errln!(
            "barrage characterize: plateau {n}: {:.2} iterations/s, p95 {} {}, goodput {}",
            m.throughput,
            settings.latency_metric,
            m.p95_ms
                .map_or_else(|| "-".into(), |v| format!("{v:.0} ms")),
            m.goodput
                .map_or_else(|| "-".into(), |g| format!("{:.1} %", g * 100.0))
        );
        Ok::<_, PlateauError>(m)
    });
    let report = Report::of(&settings, found);
    write(dir, &report, &runner)?;
    outln!("{}", report.text().trim_end());
    errln!(
        "barrage characterize: wrote {} (+ characterize.txt, characterize.png, characterize.svg)",
        json_path.display()
    );
    Ok(match error {
        None => ExitCode::SUCCESS,
        Some(e @ PlateauError::Refused(_)) => refuse(e),
        Some(e) => {
            errln!("barrage characterize: stopped: {e}");
            ExitCode::from(exit_code::FAILURE)
        }
    })
}

/// `characterize.json`, `.txt`, `.png`, `.svg` in `dir`.
fn write(dir: &Path, report: &Report, runner: &Runner) -> anyhow::Result<()> {
    use barrage_core::results::write_atomic;
    let json = serde_json::to_vec_pretty(report).context("characterize.json")?;
    write_atomic(&dir.join("characterize.json"), &json)?;
    write_atomic(&dir.join("characterize.txt"), report.text().as_bytes())?;
    let host = barrage_core::summary::host();
    let chart = barrage_report::capacity::CapacityCurve {
        unit: report.unit.to_string(),
        latency_metric: report.settings.latency_metric.clone(),
        caption: format!(
            "{} · {} · {} ({} cores)",
            runner.base.target.runtime,
            report.settings.by.unit(),
            host.cpu_model,
            host.cores
        ),
        points: report
            .curve
            .iter()
            .filter(|p| p.verdict.valid)
            .map(|p| barrage_report::capacity::CurvePoint {
                load: p.measured.load,
                throughput: p.measured.throughput,
                p50_ms: p.measured.p50_ms,
                p95_ms: p.measured.p95_ms,
                p99_ms: p.measured.p99_ms,
            })
            .collect(),
        capacity_under_slo: report.capacity_under_slo,
        knee: report.knee.as_ref().map(|k| k.load),
    };
    let svg = chart.svg().context("characterize.svg")?;
    write_atomic(&dir.join("characterize.svg"), svg.as_bytes())?;
    chart
        .png(&dir.join("characterize.png"))
        .context("characterize.png")?;
    Ok(())
}
