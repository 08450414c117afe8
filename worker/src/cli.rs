//! The worker's flags ([`Args`], parsed) and their validated form ([`Mode`]).
//!
//! `Args` derives `clap::Args` so the `barrage` CLI can flatten it into a hidden
//! `barrage worker` subcommand; `barrage-worker`'s `main.rs` wraps it in a `Parser`.
//! [`Args::validate`] checks everything before any socket is opened and names the flag
//! and the fix in each message.
use barrage_core::duration::parse_duration;
use barrage_core::plan::Profile;
use barrage_core::Secret;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// gRPC address of the controller, e.g. http://127.0.0.1:7400 (https:// with --tls-ca).
    #[arg(long, value_name = "URL")]
    pub controller: Option<String>,

    /// File holding the shared worker token (whitespace trimmed); sent as
    /// `authorization: Bearer <token>`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Pin the worker's thread to this CPU core (a warning, not an error, if it fails).
    #[arg(long, value_name = "N")]
    pub core: Option<usize>,

    /// A name for this worker in the controller's logs and results.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// CA certificate (PEM) to trust for an https:// controller.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// How long to keep retrying the first connection to the controller (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Serve run after run: when a run ends, dial --controller again and join the next
    /// run (the next controller on that address, e.g. each plateau of `barrage
    /// characterize --listen`); exit 0 once none has taken the worker for --idle-timeout.
    #[arg(long)]
    pub serve: bool,

    /// With --serve: how long to wait for the next run before exiting [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Run a plan alone, with no controller, and print a summary at the end.
    #[arg(long)]
    pub standalone: bool,

    /// Standalone: the plan file (TOML).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,

    /// Standalone: a built-in profile (default, smoke, tier) instead of a plan file.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Standalone: base URL of the target, overriding the plan's target.url.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// Standalone: label of the target runtime (ts, python, reference...).
    #[arg(long, value_name = "NAME")]
    pub runtime_name: Option<String>,

    /// Standalone: mint HS256 JWTs from the secret in this environment variable.
    #[arg(long, value_name = "VAR")]
    pub jwt_secret_env: Option<String>,

    /// Standalone: folder for `{name}.summary.json` (the same file `barrage run` writes).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,

    /// Standalone: exit as if valid when the run did not deliver its plan (the summary
    /// still says INVALID); otherwise such a run exits 97.
    #[arg(long)]
    pub allow_invalid: bool,
}

/// Where the plan of a standalone run comes from.
#[derive(Debug, Clone)]
pub enum PlanSource {
    File(PathBuf),
    Profile(Profile),
}

/// Validated flags of a standalone run.
#[derive(Debug, Clone)]
pub struct StandaloneArgs {
    pub plan: PlanSource,
    pub target: Option<String>,
    pub runtime_name: Option<String>,
    pub jwt_secret_env: Option<String>,
    pub core: Option<usize>,
    /// Where the summary goes (default `results`).
    pub results_dir: PathBuf,
    /// `--allow-invalid`: an invalid run keeps the exit code it would have had.
    pub allow_invalid: bool,
}

/// Validated flags of a controller-joined worker.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub controller: String,
    /// Read from `--token-file`, trimmed.
    pub token: Option<Secret>,
    pub core: Option<usize>,
    pub name: String,
    /// PEM bytes of `--tls-ca`.
    pub tls_ca: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    /// `--serve`: join run after run; the value is `--idle-timeout`, how long to wait for
    /// the next run. `None`: one run, then exit.
    pub serve: Option<Duration>,
}

/// `--idle-timeout`'s default: long enough for a controller between two runs (a
/// characterization's next plateau, an operator starting the next plan).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What the flags ask for.
#[derive(Debug, Clone)]
pub enum Mode {
    Standalone(StandaloneArgs),
    Join(JoinArgs),
}

/// A flag problem: the message names the flag and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ArgsError(pub String);

impl Args {
    /// Checks every flag (and reads the token and CA files); the first problems are
    /// reported together.
    pub fn validate(self) -> Result<Mode, ArgsError> {
        let mut errors: Vec<String> = Vec::new();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(core) = self.core {
            if core >= cores {
                errors.push(format!(
                    "--core {core}: this host has cores 0..{}; pick one of them or drop the flag",
                    cores - 1
                ));
            }
        }
        let mode = if self.standalone {
            for (flag, set) in [
                ("--controller", self.controller.is_some()),
                ("--token-file", self.token_file.is_some()),
                ("--tls-ca", self.tls_ca.is_some()),
                ("--name", self.name.is_some()),
                ("--serve", self.serve),
                ("--idle-timeout", self.idle_timeout.is_some()),
            ] {
                if set {
                    errors.push(format!(
                        "{flag} is for joining a controller; drop it with --standalone"
                    ));
                }
            }
            let plan = match (&self.plan, &self.profile) {
                (Some(_), Some(_)) => {
                    errors.push("--plan and --profile both given; keep one".into());
                    None
                }
                (Some(path), None) => Some(PlanSource::File(path.clone())),
                (None, Some(name)) => match Profile::parse(name) {
                    Ok(p) => Some(PlanSource::Profile(p)),
                    Err(e) => {
                        errors.push(format!("--profile: {e}"));
                        None
                    }
                },
                (None, None) => {
                    errors.push(format!(
                        "--standalone needs --plan FILE or --profile NAME ({})",
                        Profile::NAMES
                    ));
                    None
                }
            };
            if let Some(var) = &self.jwt_secret_env {
                if var.is_empty() || var.contains('=') {
                    errors.push(format!("--jwt-secret-env {var:?}: give the name of an environment variable, e.g. SUPABASE_JWT_SECRET"));
                }
            }
            plan.map(|plan| {
                Mode::Standalone(StandaloneArgs {
                    plan,
                    target: self.target.clone(),
                    runtime_name: self.runtime_name.clone(),
                    jwt_secret_env: self.jwt_secret_env.clone(),
                    core: self.core,
                    results_dir: self
                        .results_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("results")),
                    allow_invalid: self.allow_invalid,
                })
            })
        } else {
            for (flag, set) in [
                ("--plan", self.plan.is_some()),
                ("--profile", self.profile.is_some()),
                ("--target", self.target.is_some()),
                ("--runtime-name", self.runtime_name.is_some()),
                ("--jwt-secret-env", self.jwt_secret_env.is_some()),
                ("--results-dir", self.results_dir.is_some()),
                ("--allow-invalid", self.allow_invalid),
            ] {
                if set {
                    errors.push(format!(
                        "{flag} only applies with --standalone (a controller sends the plan)"
                    ));
                }
            }
            let controller = match &self.controller {
                None => {
                    errors.push(
                        "give --controller URL (e.g. http://127.0.0.1:7400) or --standalone".into(),
                    );
                    None
                }
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    errors.push(format!("--controller {url:?}: must be an http:// or https:// URL, e.g. http://127.0.0.1:7400"));
                    None
                }
                Some(url) if url.starts_with("http://") && self.tls_ca.is_some() => {
                    errors.push(format!(
                        "--tls-ca needs an https:// controller URL, not {url:?}"
                    ));
                    None
                }
                Some(url) => Some(url.clone()),
            };
            let token =
                self.token_file
                    .as_ref()
                    .and_then(|path| match std::fs::read_to_string(path) {
                        Ok(text) if text.trim().is_empty() => {
                            errors.push(format!(
                            "--token-file {}: the file is empty; write the shared token into it",
                            path.display()
                        ));
                            None
                        }
                        Ok(text)
                            if text
                                .trim()
                                .chars()
                                .any(|c| c.is_control() || c.is_whitespace()) =>
                        {
                            errors.push(format!(
                                "--token-file {}: the token must be one line without spaces",
                                path.display()
                            ));
                            None
                        }
                        Ok(text) => Some(Secret::new(text.trim())),
                        Err(e) => {
                            errors.push(format!(
                            "--token-file {}: {e}; point it at a readable file holding the token",
                            path.display()
                        ));
                            None
                        }
                    });
            let tls_ca = self
                .tls_ca
                .as_ref()
                .and_then(|path| match std::fs::read(path) {
                    Ok(pem) => Some(pem),
                    Err(e) => {
                        errors.push(format!(
                            "--tls-ca {}: {e}; point it at the controller's CA certificate (PEM)",
                            path.display()
                        ));
                        None
                    }
                });
            if self.connect_timeout.is_zero() {
                errors.push("--connect-timeout must be > 0, e.g. 30s".into());
            }
            match (self.serve, self.idle_timeout) {
                (false, Some(_)) => errors.push(
                    "--idle-timeout only applies with --serve (a worker without it exits after one run); add --serve or drop it".into(),
                ),
                (true, Some(d)) if d.is_zero() => {
                    errors.push("--idle-timeout must be > 0, e.g. 5m".into())
                }
                _ => {}
            }
            let name = self.name.clone().unwrap_or_default();
            if name.chars().any(char::is_control) || name.len() > 128 {
                errors.push("--name: use up to 128 printable characters".into());
            }
            controller.map(|controller| {
                Mode::Join(JoinArgs {
                    controller,
                    token,
                    core: self.core,
                    name,
                    tls_ca,
                    connect_timeout: self.connect_timeout,
                    serve: self
                        .serve
                        .then(|| self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT)),
                })
            })
        };
        match mode {
            Some(mode) if errors.is_empty() => Ok(mode),
            _ => Err(ArgsError(errors.join("\n"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn validate(argv: &[&str]) -> Result<Mode, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("barrage-worker").chain(argv.iter().copied()))
                .map_err(|e| e.to_string())?;
        cli.args.validate().map_err(|e| e.0)
    }

    #[test]
    fn serve_and_idle_timeout_are_checked() {
        let url = "http://127.0.0.1:7400";
        match validate(&["--controller", url, "--serve"]) {
            Ok(Mode::Join(j)) => assert_eq!(j.serve, Some(DEFAULT_IDLE_TIMEOUT)),
            other => panic!("{:?}", other.err()),
        }
        match validate(&["--controller", url, "--serve", "--idle-timeout", "20s"]) {
            Ok(Mode::Join(j)) => assert_eq!(j.serve, Some(Duration::from_secs(20))),
            other => panic!("{:?}", other.err()),
        }
        match validate(&["--controller", url]) {
            Ok(Mode::Join(j)) => assert_eq!(j.serve, None),
            other => panic!("{:?}", other.err()),
        }
        for (argv, needle) in [
            (
                &["--controller", url, "--idle-timeout", "20s"][..],
                "--idle-timeout only applies with --serve",
            ),
            (
                &["--controller", url, "--serve", "--idle-timeout", "0s"][..],
                "--idle-timeout must be > 0",
            ),
            (
                &["--standalone", "--profile", "smoke", "--serve"][..],
                "--serve is for joining a controller",
            ),
        ] {
            let e = validate(argv).err().unwrap_or_default();
            assert!(e.contains(needle), "{argv:?}: {e}");
        }
    }
}
