//! The command line: what the user typed ([`Cli`]), parsed by clap, plus the small parsers
//! clap cannot express (`--worker-cores 0-7`, `--out json=FILE`). Validation into a
//! [`crate::config::RunConfig`] happens in `config.rs`, before any port is bound.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// barrage: distributed load generation for LLM agent runtimes (LangGraph Agent Protocol).
#[derive(Debug, Parser)]
#[command(name = "barrage", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a plan with local workers. With no --target: starts the mock LLM and the
    /// reference runtime itself and runs the seed's default ramp against them.
    Run(RunArgs),
    /// Coordinate remote workers: wait for --expect-workers to join, then run the plan.
    Controller(ControllerArgs),
    /// Print a mock HS256 JWT, like the seed's create-mock-jwt.sh.
    Token(TokenArgs),
    /// Charts and a self-contained HTML report from summaries (one run, several runs, or a
    /// runtime × tier sweep: then an animated GIF, and an MP4 when ffmpeg is installed).
    Report(ReportArgs),
    /// Compare a baseline with a current run (or two sets): exit 1 on a regression.
    Compare(CompareArgs),
    /// The seed's jq recipes (iterations, flow duration, per-operation latency) from a
    /// barrage summary or a k6 NDJSON file.
    Summarize(SummarizeArgs),
    /// Run every runtime × tier pair, one at a time, each runtime under the tier's limits.
    Sweep(crate::sweep::SweepArgs),
    /// Step the load up in plateaus until the target breaks its SLO or saturates, bisect to
    /// the limit: capacity under SLO, max sustainable throughput, the knee, the curve.
    Characterize(crate::characterize::CharacterizeArgs),
    /// The built-in flows: `barrage flow list`, `barrage flow show agent` (prints it as
    /// plan TOML, to copy into a plan and change).
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Run one worker (spawned by `barrage run`; same flags as `barrage-worker`).
    #[command(hide = true)]
    Worker(barrage_worker::Args),
    /// Run the mock LLM (same flags as `barrage-mock-llm`).
    #[command(hide = true, name = "mock-llm")]
    MockLlm(barrage_mock_llm::Args),
    /// Run the reference runtime (same flags as `barrage-reference-runtime`).
    #[command(hide = true, name = "reference-runtime")]
    ReferenceRuntime(barrage_reference_runtime::Args),
    /// Stop a soak run's children if its `barrage run` died and was not resumed (started
    /// by `barrage run --soak`).
    #[command(hide = true, name = "soak-keeper")]
    SoakKeeper(crate::soak::keeper::KeeperArgs),
}

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Names and descriptions of the built-in flows.
    List,
    /// Print a built-in flow as plan TOML (`[flows.NAME]`).
    Show {
        /// The flow's name, e.g. agent.
        name: String,
    },
}

/// What to run: a plan file or a built-in profile, with overrides of its target and auth.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Plan file (TOML); default: the built-in --profile.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub plan: Option<PathBuf>,
    /// Built-in profile: default (the seed's 90 s ramp 0→5 VUs), smoke (1 VU × 1), tier,
    /// scaling (10 VUs, then 100: summary.patterns.scaling).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Base URL of an external runtime (else the plan's; `barrage run` starts its own).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Runtime label for results and file names (e.g. ts, python).
    #[arg(long, value_name = "NAME")]
    pub runtime_name: Option<String>,
    /// Runtime version label.
    #[arg(long, value_name = "VERSION")]
    pub runtime_version: Option<String>,
    /// Which LLM is behind the target (label, e.g. mock).
    #[arg(long, value_name = "NAME")]
    pub llm: Option<String>,
    /// Resource tier label (xs, s, m, l) when the run is part of a sweep.
    #[arg(long, value_name = "TIER")]
    pub tier: Option<String>,
    /// Authenticate VUs with HS256 JWTs minted from the secret in this env variable.
    #[arg(long, value_name = "VAR", conflicts_with = "auth_token_env")]
    pub jwt_secret_env: Option<String>,
    /// Authenticate VUs with the fixed bearer token in this env variable.
    #[arg(long, value_name = "VAR")]
    pub auth_token_env: Option<String>,
    /// One VU, one iteration (the smoke profile's scenario) of the plan's flow.
    #[arg(long)]
    pub smoke: bool,
    /// The graph the flow's assistants use (`flow.graph_id`).
    #[arg(long, value_name = "ID")]
    pub graph_id: Option<String>,
    /// The model name in the assistants' config (`flow.model_name`), provider prefix
    /// included, e.g. openai:mock-gpt-4o.
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Set by [`PlanArgs::with_env`] when `AUTH_TOKEN` is set: a plan without auth then
    /// sends it as a bearer token.
    #[arg(skip)]
    pub env_auth_token: bool,
}

/// The seed's k6 script's environment variables, each the default of a flag.
pub const K6_ENV: &[(&str, &str)] = &[
    ("RUNTIME_URL", "--target"),
    ("RUNTIME_NAME", "--runtime-name"),
    ("SMOKE", "--smoke (when 1 or true)"),
    ("AUTH_TOKEN", "the bearer token of a plan without auth"),
    ("GRAPH_ID", "--graph-id"),
    ("MODEL_NAME", "--model-name"),
];

impl PlanArgs {
    /// Fills what the command line left unset from the seed's k6 environment variables
    /// ([`K6_ENV`]), so a user coming from `RUNTIME_URL=… SMOKE=1 k6 run` gets the same
    /// run. A flag wins over its variable; an empty variable counts as unset.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> PlanArgs {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        for (field, var) in [
            (&mut self.target, "RUNTIME_URL"),
            (&mut self.runtime_name, "RUNTIME_NAME"),
            (&mut self.graph_id, "GRAPH_ID"),
            (&mut self.model_name, "MODEL_NAME"),
        ] {
            if field.is_none() {
                *field = get(var);
            }
        }
        if !self.smoke {
            self.smoke = get("SMOKE")
                .is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"));
        }
        self.env_auth_token = self.auth_token_env.is_none()
            && self.jwt_secret_env.is_none()
            && get("AUTH_TOKEN").is_some();
        self
    }
}

/// Where results go and how the run reacts to trouble.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Extra outputs: json=FILE (k6 NDJSON) or csv=FILE (k6 CSV); repeatable.
    #[arg(long = "out", value_name = "FORMAT=FILE", value_parser = OutSpec::parse)]
    pub outs: Vec<OutSpec>,
    /// Folder of the summary (`{runtime}-v{version}-{llm}-{vus}vu.summary.json`).
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results_dir: PathBuf,
    /// What to do when a worker is lost mid-run.
    #[arg(long, value_enum, default_value_t = OnWorkerLoss::Rebalance)]
    pub on_worker_loss: OnWorkerLoss,
    /// No live progress on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Replace an existing --out file (by default an existing file is an error). The
    /// summary is never replaced: a second run with the same labels gets `-2`, `-3`…
    #[arg(long)]
    pub overwrite: bool,
    /// Serve a live dashboard (page, SSE, Prometheus `/metrics`) on this address, e.g.
    /// 127.0.0.1:7401 (port 0: any free port, printed at start). Loopback only unless
    /// --dashboard-public.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<SocketAddr>,
    /// Allow --dashboard on a non-loopback address: anyone who reaches it sees the plan,
    /// the target and the workers' hosts (it has no authentication).
    #[arg(long, requires = "dashboard")]
    pub dashboard_public: bool,
    /// Exit as if valid when the load generator did not deliver the plan (a worker
    /// saturated, iterations not started on time): the summary still says INVALID.
    /// Without it such a run exits 97.
    #[arg(long)]
    pub allow_invalid: bool,
    #[command(flatten)]
    pub soak: crate::soak::SoakArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Local worker processes; default: the cores left after the target's and the mock
    /// LLM's (at least 1), or the number of --worker-cores. At most 4 per core.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Allow more than 4 local workers per core.
    #[arg(long)]
    pub allow_many_workers: bool,
    /// Cores to pin workers to, round robin: `0-7`, `0,2,4`, `0-3,6`.
    #[arg(long, value_name = "LIST", value_parser = parse_cores)]
    pub worker_cores: Option<Cores>,
    /// The target's processes: measured, or started under a tier (`controller/src/target/`).
    #[command(flatten)]
    pub target_proc: crate::target::TargetArgs,
}

/// `barrage controller`: the plan, the outputs and the worker-facing side, with the
/// controller's defaults (`--listen 127.0.0.1:7400`, `--join-timeout 10m`) and
/// `--expect-workers` required.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("listen", |a| a.default_value(DEFAULT_LISTEN)),
    mut_arg("expect_workers", |a| a.required(true)),
    mut_arg("join_timeout", |a| a.default_value(DEFAULT_JOIN_TIMEOUT))
)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub workers: WorkerSideArgs,
}

impl ControllerArgs {
    /// `--listen` (clap fills in the default; also when built by hand).
    pub fn listen(&self) -> SocketAddr {
        self.workers.listen.unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a socket address")
        })
    }

    /// `--join-timeout` (clap fills in the default; also when built by hand).
    pub fn join_timeout(&self) -> std::time::Duration {
        self.workers.join_timeout.unwrap_or_else(|| {
            parse_duration(DEFAULT_JOIN_TIMEOUT).expect("DEFAULT_JOIN_TIMEOUT is a duration")
        })
    }
}

/// `barrage controller --listen`'s default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
/// `barrage controller --join-timeout`'s default.
pub const DEFAULT_JOIN_TIMEOUT: &str = "10m";

/// The worker-facing side of a controller: where workers join, how many, and how they are
/// let in. One flag block for `barrage controller` and for `barrage characterize --listen`
/// (whose plateaus are `barrage controller`s, given these flags by [`Self::to_flags`]), so
/// a flag added here is there for both. The fields are optional because characterize's
/// `--listen` is what turns remote mode on; [`ControllerArgs`] sets the controller's
/// defaults and makes `--expect-workers` required.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct WorkerSideArgs {
    /// Address to listen on for workers.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Workers to wait for before the run starts.
    #[arg(long, value_name = "N")]
    pub expect_workers: Option<usize>,
    /// File holding the shared worker token (required unless listening on loopback).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// TLS certificate (PEM) for the worker-facing port.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Send the plan's auth secrets to workers beyond loopback without TLS (they travel in
    /// clear text; refused without this flag).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Accept workers of another barrage version (the protocol must still match).
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// How long to wait for all workers to join.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub join_timeout: Option<std::time::Duration>,
}

impl WorkerSideArgs {
    /// The long flags of this block (`--listen`, `--expect-workers`, …), read from clap so
    /// the list cannot miss a flag.
    pub fn flag_names() -> Vec<String> {
        WorkerSideArgs::augment_args(clap::Command::new("worker-side"))
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect()
    }

    /// The flags that give `barrage controller` these settings (unset ones left out).
    pub fn to_flags(&self) -> Vec<String> {
        let mut f: Vec<String> = Vec::new();
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                f.extend([flag.to_string(), v]);
            }
        };
        opt("--listen", self.listen.map(|a| a.to_string()));
        opt(
            "--expect-workers",
            self.expect_workers.map(|n| n.to_string()),
        );
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        opt("--token-file", path(&self.token_file));
        opt("--tls-cert", path(&self.tls_cert));
        opt("--tls-key", path(&self.tls_key));
        opt(
            "--join-timeout",
            self.join_timeout
                .map(barrage_core::duration::format_duration),
        );
        for (flag, set) in [
            ("--insecure-plaintext", self.insecure_plaintext),
            ("--allow-version-mismatch", self.allow_version_mismatch),
        ] {
            if set {
                f.push(flag.into());
            }
        }
        f
    }
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Env variable holding the HS256 secret.
    #[arg(long, value_name = "VAR", default_value = "SUPABASE_JWT_SECRET")]
    pub secret_env: String,
    /// File holding the secret (trailing newline ignored); wins over --secret-env.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The token's `sub` claim.
    #[arg(long, default_value = "benchmark-user")]
    pub sub: String,
    /// Validity.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
}

/// `--on-worker-loss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnWorkerLoss {
    /// Split the lost worker's VUs among the others (`Reassign`).
    Rebalance,
    /// Abort the run.
    Fail,
}

/// Output format of `--out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Json,
    Csv,
}

/// `--out FORMAT=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSpec {
    pub format: OutFormat,
    pub path: PathBuf,
}

impl OutSpec {
    pub fn parse(text: &str) -> Result<OutSpec, String> {
        let (format, path) = text
            .split_once('=')
            .ok_or_else(|| format!("--out {text:?}: use json=FILE or csv=FILE"))?;
        let format = match format {
            "json" => OutFormat::Json,
            "csv" => OutFormat::Csv,
            other => {
                return Err(format!(
                    "--out {text:?}: unknown format {other:?}; use json=FILE or csv=FILE"
                ))
            }
        };
        if path.trim().is_empty() {
            return Err(format!(
                "--out {text:?}: the file name is missing, e.g. json=out.json"
            ));
        }
        Ok(OutSpec {
            format,
            path: PathBuf::from(path),
        })
    }
}

/// A list of CPU cores, in the order given, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cores(pub Vec<usize>);

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|c| c.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `0-7`, `0,2,4`, `0-3,6`.
pub fn parse_cores(text: &str) -> Result<Cores, String> {
    let bad = |why: &str| format!("--worker-cores {text:?}: {why}; use e.g. 0-7 or 0,2,4");
    let mut out: Vec<usize> = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("empty entry"));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo
            .parse()
            .map_err(|_| bad(&format!("{lo:?} is not a core number")))?;
        let hi: usize = hi
            .parse()
            .map_err(|_| bad(&format!("{hi:?} is not a core number")))?;
        if hi < lo {
            return Err(bad(&format!("range {part} runs backwards")));
        }
        if hi > 4095 {
            return Err(bad(&format!("core {hi} is out of range")));
        }
        for c in lo..=hi {
            if out.contains(&c) {
                return Err(bad(&format!("core {c} is listed twice")));
            }
            out.push(c);
        }
    }
    Ok(Cores(out))
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    barrage_core::duration::parse_duration(text)
}

/// `barrage report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Summaries (`*.summary.json`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Folder to write report.html, the PNGs and (for a sweep) sweep.gif/sweep.mp4 into.
    #[arg(long, value_name = "DIR", default_value = "report")]
    pub out: PathBuf,
}

/// `barrage compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// BASELINE CURRENT: one results file each (summary or k6 NDJSON).
    #[arg(value_name = "FILE", num_args = 0..=2, conflicts_with_all = ["baseline", "current"])]
    pub pair: Vec<PathBuf>,
    /// The baseline set (runs of one build), instead of BASELINE.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "current")]
    pub baseline: Vec<PathBuf>,
    /// The current set, instead of CURRENT.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "baseline")]
    pub current: Vec<PathBuf>,
    /// Override a budget: throughput=10%, p50=5%, p95=15%, p99=20%, error_rate=0.5pp.
    #[arg(long = "budget", value_name = "KEY=VALUE")]
    pub budgets: Vec<String>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = CompareFormat::Markdown)]
    pub format: CompareFormat,
    /// Seed of the percentile bootstrap.
    #[arg(long, default_value_t = barrage_report::stats::DEFAULT_SEED)]
    pub seed: u64,
}

/// Output of `barrage compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Markdown,
    Json,
}

/// `barrage summarize`.
#[derive(Debug, Clone, Args)]
pub struct SummarizeArgs {
    /// A barrage summary or a k6 NDJSON file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_k6_environment_variables_are_the_flags_defaults() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Run(r) => r.plan,
            _ => unreachable!(),
        };
        let env = |k: &str| match k {
            "RUNTIME_URL" => Some("http://127.0.0.1:3000".to_string()),
            "RUNTIME_NAME" => Some("python".into()),
            "SMOKE" => Some("1".into()),
            "AUTH_TOKEN" => Some("secret".into()),
            "GRAPH_ID" => Some("g2".into()),
            "MODEL_NAME" => Some("openai:m2".into()),
            _ => None,
        };
        let a = parse(&["barrage", "run"]).with_env(env);
        assert_eq!(a.target.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(a.runtime_name.as_deref(), Some("python"));
        assert_eq!(a.graph_id.as_deref(), Some("g2"));
        assert_eq!(a.model_name.as_deref(), Some("openai:m2"));
        assert!(a.smoke && a.env_auth_token);
        // flags win; empty or other values count as unset
        let a = parse(&[
            "barrage",
            "run",
            "--target",
            "http://127.0.0.1:9",
            "--graph-id",
            "mine",
            "--jwt-secret-env",
            "S",
        ])
        .with_env(|k| match k {
            "SMOKE" => Some("0".into()),
            "RUNTIME_NAME" => Some(" ".into()),
            _ => env(k),
        });
        assert_eq!(a.target.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(a.graph_id.as_deref(), Some("mine"));
        assert_eq!(a.runtime_name, None);
        assert!(!a.smoke && !a.env_auth_token);
        let a = parse(&["barrage", "run"]).with_env(|_| None);
        assert!(a.target.is_none() && !a.smoke && !a.env_auth_token);
    }

    #[test]
    fn worker_cores() {
        let ok: &[(&str, &[usize])] = &[
            ("0-7", &[0, 1, 2, 3, 4, 5, 6, 7]),
            ("0,2,4", &[0, 2, 4]),
            ("3", &[3]),
            ("0-1,6", &[0, 1, 6]),
            (" 1 - 2 ", &[1, 2]),
        ];
        for (text, want) in ok {
            assert_eq!(parse_cores(text).unwrap().0, *want, "{text}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty entry"),
            ("a", "not a core number"),
            ("7-0", "backwards"),
            ("0,,1", "empty entry"),
            ("0-2,1", "listed twice"),
            ("1-x", "not a core number"),
            ("99999", "out of range"),
        ];
        for (text, needle) in bad {
            let e = parse_cores(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn out_specs() {
        assert_eq!(
            OutSpec::parse("json=a/b.json").unwrap(),
            OutSpec {
                format: OutFormat::Json,
                path: "a/b.json".into()
            }
        );
        assert_eq!(OutSpec::parse("csv=x.csv").unwrap().format, OutFormat::Csv);
        // a path may itself contain '='
        assert_eq!(
            OutSpec::parse("json=a=b").unwrap().path,
            PathBuf::from("a=b")
        );
        for (text, needle) in [
            ("json", "use json=FILE"),
            ("xml=a", "unknown format"),
            ("json=", "file name is missing"),
        ] {
            let e = OutSpec::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    /// `barrage controller` and `barrage characterize --listen` share one flag block, and
    /// what characterize hands each plateau's controller is every flag of it: a flag added
    /// to [`WorkerSideArgs`] needs a value here (the struct literal), and `to_flags` must
    /// carry it for the round trip to hold.
    #[test]
    fn the_worker_side_flags_are_one_block_and_round_trip() {
        let all = WorkerSideArgs {
            listen: Some("127.0.0.1:7499".parse().unwrap()),
            expect_workers: Some(3),
            token_file: Some("tok".into()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            insecure_plaintext: true,
            allow_version_mismatch: true,
            join_timeout: Some(std::time::Duration::from_secs(90)),
        };
        let flags = all.to_flags();
        for name in WorkerSideArgs::flag_names() {
            assert!(flags.contains(&name), "{name} is not handed on: {flags:?}");
        }
        let parse = |sub: &str, extra: &[&str]| {
            let argv = ["barrage", sub]
                .into_iter()
                .map(String::from)
                .chain(extra.iter().map(|s| s.to_string()))
                .chain(flags.iter().cloned());
            Cli::try_parse_from(argv).unwrap().command
        };
        let Command::Controller(c) = parse("controller", &[]) else {
            unreachable!()
        };
        assert_eq!(c.workers, all);
        let Command::Characterize(ch) = parse("characterize", &[]) else {
            unreachable!()
        };
        assert_eq!(ch.remote, all);
        // the controller's defaults, and --expect-workers required
        let Command::Controller(c) =
            Cli::try_parse_from(["barrage", "controller", "--expect-workers", "1"])
                .unwrap()
                .command
        else {
            unreachable!()
        };
        assert_eq!(c.listen(), "127.0.0.1:7400".parse::<SocketAddr>().unwrap());
        assert_eq!(c.join_timeout(), std::time::Duration::from_secs(600));
        assert!(Cli::try_parse_from(["barrage", "controller"]).is_err());
        // characterize: no defaults (no --listen: local plateaus)
        let Command::Characterize(ch) = Cli::try_parse_from(["barrage", "characterize"])
            .unwrap()
            .command
        else {
            unreachable!()
        };
        assert_eq!(ch.remote, WorkerSideArgs::default());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "barrage",
            "run",
            "--workers",
            "2",
            "--worker-cores",
            "0-1",
            "--out",
            "json=x.json",
            "--out",
            "csv=x.csv",
            "--on-worker-loss",
            "fail",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.workers, Some(2));
        assert_eq!(r.output.outs.len(), 2);
        assert_eq!(r.output.on_worker_loss, OnWorkerLoss::Fail);
        assert!(
            Cli::try_parse_from(["barrage", "run", "--plan", "a", "--profile", "smoke"]).is_err()
        );
    }
}
