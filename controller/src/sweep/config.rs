//! `barrage sweep`'s inputs: the sweep file (TOML) and the flags for the common case, merged
//! into one validated [`Sweep`]; every problem is reported at once, naming the field.
use crate::target::Tier;
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `barrage sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Sweep file (TOML): runtimes, tiers, plan; flags below override it.
    #[arg(long, value_name = "FILE")]
    pub sweep: Option<PathBuf>,
    /// A runtime and the command that starts it: `NAME=CMD` (repeatable). The command gets
    /// PORT, OPENAI_BASE_URL (barrage's mock LLM) and BARRAGE (this binary) in its env.
    #[arg(long = "runtime", value_name = "NAME=CMD", value_parser = parse_runtime)]
    pub runtimes: Vec<RuntimeSpec>,
    /// Tiers to run, in order: built-in xs, s, m, l, or the sweep file's.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub tiers: Vec<String>,
    /// Plan file of every pair (default: the built-in --profile).
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub plan: Option<PathBuf>,
    /// Built-in profile of every pair (default: tier).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Folder of the results: `{runtime}-{tier}.summary.json` and `{runtime}-{tier}.json`.
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Skip pairs that already have a summary (else existing results are an error).
    #[arg(long)]
    pub resume: bool,
    /// Health path of the runtimes that name none.
    #[arg(long, value_name = "PATH")]
    pub health: Option<String>,
    /// How long a runtime has to become healthy.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_timeout: Option<Duration>,
    /// Local workers of every run (default: `barrage run`'s).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Docker mode: a compose file with one service per runtime (limits from BENCH_CPUS /
    /// BENCH_MEMORY) and a `mock-llm` service; each pair recreates only its runtime's
    /// container. Runtimes then give NAME=URL (`--runtime`) or `url` (sweep file).
    #[arg(long, value_name = "FILE")]
    pub compose: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    barrage_core::duration::parse_duration(text)
}

/// One runtime of a sweep.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// Names result files: `{name}-{tier}.summary.json`.
    pub name: String,
    /// `sh -c` command that starts it in the foreground (native mode).
    #[serde(default)]
    pub cmd: String,
    /// Compose mode: the URL its service answers on (127.0.0.1).
    #[serde(default)]
    pub url: Option<String>,
    /// Compose mode: its service (default: `name`).
    #[serde(default)]
    pub service: Option<String>,
    /// Health path (default: the sweep's).
    #[serde(default)]
    pub health: Option<String>,
}

/// `--runtime NAME=CMD`.
pub fn parse_runtime(text: &str) -> Result<RuntimeSpec, String> {
    let (name, cmd) = text.split_once('=').ok_or_else(|| {
        format!("--runtime {text:?}: use NAME=CMD, e.g. ref='exec \"$BARRAGE\" reference-runtime'")
    })?;
    Ok(RuntimeSpec {
        name: name.trim().to_string(),
        cmd: cmd.to_string(),
        health: None,
        url: None,
        service: None,
    })
}

/// The sweep file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    #[serde(default)]
    pub results_dir: Option<PathBuf>,
    #[serde(default)]
    pub plan: Option<PathBuf>,
    #[serde(default)]
    pub profile: Option<String>,
    /// Tier names, in order.
    #[serde(default)]
    pub tiers: Vec<String>,
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default)]
    pub health_timeout: Option<String>,
    #[serde(default)]
    pub workers: Option<usize>,
    #[serde(default)]
    pub compose: Option<PathBuf>,
    #[serde(default, rename = "runtime")]
    pub runtimes: Vec<RuntimeSpec>,
    /// User tiers (besides xs/s/m/l), `[[tier]] name cpus memory`.
    #[serde(default, rename = "tier")]
    pub user_tiers: Vec<Tier>,
}

/// What to run, validated.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub runtimes: Vec<RuntimeSpec>,
    pub tiers: Vec<Tier>,
    /// `--plan FILE` or `--profile NAME` for every pair.
    pub plan: PlanChoice,
    pub results_dir: PathBuf,
    pub resume: bool,
    pub health: String,
    pub health_timeout: Duration,
    pub workers: Option<usize>,
    /// Docker mode's compose file.
    pub compose: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanChoice {
    File(PathBuf),
    Profile(String),
}

/// Merges the file (if any) and the flags; every problem at once.
pub fn load(a: &SweepArgs) -> Result<Sweep, String> {
    let file = match &a.sweep {
        Some(p) => read_file(p)?,
        None => SweepFile::default(),
    };
    let base = a
        .sweep
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    let rel = |p: &Path| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.to_path_buf()
        }
    };
    let mut errors = Vec::new();
    let compose = a.compose.clone().or(file.compose.as_deref().map(rel));
    let mut runtimes = if a.runtimes.is_empty() {
        file.runtimes.clone()
    } else {
        a.runtimes.clone()
    };
    if compose.is_some() {
        // --runtime NAME=URL in compose mode
        for r in &mut runtimes {
            if r.url.is_none() && r.cmd.starts_with("http") {
                r.url = Some(std::mem::take(&mut r.cmd));
            }
        }
    }
    if runtimes.is_empty() {
        errors.push(
            "runtimes: none given; add --runtime NAME=CMD or [[runtime]] entries to the sweep file"
                .to_string(),
        );
    }
    for (i, r) in runtimes.iter().enumerate() {
        if let Err(e) = barrage_core::label::check_path_label(&r.name) {
            errors.push(format!("runtime[{i}].name: {e}"));
        }
        if compose.is_some() {
            if r.url.is_none() {
                errors.push(format!(
                    "runtime[{i}] ({}): compose mode needs its url (--runtime NAME=http://127.0.0.1:PORT)",
                    r.name
                ));
            }
        } else if r.cmd.trim().is_empty() {
            errors.push(format!(
                "runtime[{i}] ({}): cmd is empty; give the command that starts it",
                r.name
            ));
        }
        if runtimes[..i].iter().any(|o| o.name == r.name) {
            errors.push(format!("runtime[{i}]: {} is listed twice", r.name));
        }
    }
    let names = if a.tiers.is_empty() {
        file.tiers.clone()
    } else {
        a.tiers.clone()
    };
    let names = if names.is_empty() {
        tier_names_default()
    } else {
        names
    };
    let mut tiers = Vec::new();
    for n in &names {
        let n = n.trim().to_ascii_lowercase();
        let t = file
            .user_tiers
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&n))
            .cloned()
            .or_else(|| Tier::builtin(&n));
        match t {
            Some(t) => match t.limits() {
                Ok(_) => tiers.push(Tier { name: n, ..t }),
                Err(e) => errors.push(format!("tiers: {e}")),
            },
            None => errors.push(format!(
                "tiers: {n:?} is neither built in (xs, s, m, l) nor a [[tier]] of the sweep file"
            )),
        }
    }
    let plan = match (&a.plan, &a.profile, &file.plan, &file.profile) {
        (Some(p), _, _, _) => PlanChoice::File(p.clone()),
        (None, Some(n), _, _) => PlanChoice::Profile(n.clone()),
        (None, None, Some(p), _) => PlanChoice::File(rel(p)),
        (None, None, None, Some(n)) => PlanChoice::Profile(n.clone()),
        _ => PlanChoice::Profile("tier".into()),
    };
    if let PlanChoice::File(p) = &plan {
        if !p.is_file() {
            errors.push(format!("plan: {} is not a file", p.display()));
        }
    }
    let health = a
        .health
        .clone()
        .or(file.health.clone())
        .unwrap_or_else(|| "/ok".into());
    if !health.starts_with('/') {
        errors.push(format!("health: {health:?} must start with /, e.g. /ok"));
    }
    let health_timeout = match (&a.health_timeout, &file.health_timeout) {
        (Some(d), _) => *d,
        (None, Some(t)) => barrage_core::duration::parse_duration(t).unwrap_or_else(|e| {
            errors.push(format!("health_timeout: {e}"));
            Duration::ZERO
        }),
        _ => Duration::from_secs(120),
    };
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Sweep {
        runtimes,
        tiers,
        plan,
        results_dir: a
            .results_dir
            .clone()
            .or(file.results_dir.as_deref().map(rel))
            .unwrap_or_else(|| "results".into()),
        resume: a.resume,
        health,
        health_timeout,
        workers: a.workers.or(file.workers),
        compose,
    })
}

fn tier_names_default() -> Vec<String> {
    crate::target::tier::BUILTIN
        .iter()
        .map(|t| t.0.to_string())
        .collect()
}

fn read_file(p: &Path) -> Result<SweepFile, String> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("--sweep {}: cannot read: {e}", p.display()))?;
    toml::from_str(&text).map_err(|e| format!("--sweep {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SweepArgs {
        SweepArgs {
            sweep: None,
            runtimes: vec![],
            tiers: vec![],
            plan: None,
            profile: None,
            results_dir: None,
            resume: false,
            health: None,
            health_timeout: None,
            workers: None,
            compose: None,
        }
    }

    #[test]
    fn file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sweep.toml");
        std::fs::write(
            &f,
            r#"
tiers = ["xs", "XL"]
profile = "smoke"
results_dir = "out"
[[runtime]]
name = "py"
cmd = "deploy/targets/langgraph-py/start.sh"
[[tier]]
name = "xl"
cpus = 4
memory = "4G"
"#,
        )
        .unwrap();
        let s = load(&SweepArgs {
            sweep: Some(f.clone()),
            ..args()
        })
        .unwrap();
        assert_eq!(s.runtimes[0].name, "py");
        assert_eq!(
            s.tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["xs", "xl"]
        );
        assert_eq!(s.tiers[1].cpus, 4.0);
        assert_eq!(s.plan, PlanChoice::Profile("smoke".into()));
        assert_eq!(s.results_dir, dir.path().join("out"));
        assert_eq!(s.health, "/ok");
        // flags win
        let s = load(&SweepArgs {
            sweep: Some(f),
            tiers: vec!["m".into()],
            runtimes: vec![parse_runtime("ref=exec x").unwrap()],
            ..args()
        })
        .unwrap();
        assert_eq!(s.tiers[0].name, "m");
        assert_eq!(s.runtimes[0].cmd, "exec x");
        // defaults: all four seed tiers, the tier profile
        let s = load(&SweepArgs {
            runtimes: vec![parse_runtime("a=b").unwrap()],
            ..args()
        })
        .unwrap();
        assert_eq!(s.tiers.len(), 4);
        assert_eq!(s.plan, PlanChoice::Profile("tier".into()));
    }

    #[test]
    fn every_problem_at_once() {
        let e = load(&SweepArgs {
            runtimes: vec![
                parse_runtime("a/b=x").unwrap(),
                parse_runtime("c=").unwrap(),
            ],
            tiers: vec!["huge".into()],
            health: Some("ok".into()),
            ..args()
        })
        .unwrap_err();
        for needle in [
            "runtime[0].name",
            "cmd is empty",
            "\"huge\"",
            "must start with /",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        assert!(load(&args()).unwrap_err().contains("runtimes: none given"));
        assert!(parse_runtime("nocmd").unwrap_err().contains("NAME=CMD"));
    }
}
