//! Flags → one validated configuration, before any port is bound or child started: the
//! plan (file or profile, with the flags' overrides), its thresholds, the secrets its auth
//! needs, the outputs, a results folder proven writable ([`RunConfig`]); then what each
//! subcommand adds: local workers and their cores ([`LocalRun`]), the worker-facing side of
//! a controller ([`ControllerRun`]). Every check that can fail lives here, so that a bad
//! flag exits 2 with nothing started.
use crate::cli::{ControllerArgs, OnWorkerLoss, OutSpec, OutputArgs, PlanArgs, RunArgs};
use crate::coordinator::CoordinatorConfig;
use crate::results::{self, ResultsError};
use crate::token::{self, TokenError};
use barrage_core::auth::AuthError;
use barrage_core::threshold::ThresholdSet;
use barrage_core::{Plan, PlanError, PlanOverrides, Profile, Secret};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Identity, ServerTlsConfig};

/// Local workers allowed per core without `--allow-many-workers`: beyond a few per core
/// they only compete for CPU, and a typo (`--workers 100000`) must not fork the machine to
/// a standstill.
pub const MAX_WORKERS_PER_CORE: usize = 4;

/// How long `barrage run` waits for its local workers to join.
pub const LOCAL_JOIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the plan's flow: {0}")]
    Flow(#[from] barrage_worker::flow::FlowError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Secrets(#[from] AuthError),
    #[error(transparent)]
    Soak(#[from] crate::soak::SoakError),
    #[error("--profile: {0}")]
    Profile(barrage_core::plan::UnknownProfile),
    #[error("--plan {path}: {source}; give a readable plan file")]
    PlanRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--out: {} is given twice; use one file per output", path.display())]
    OutTwice { path: PathBuf },
    #[error("--out: {} exists; pick another file name, or pass --overwrite to replace it", path.display())]
    OutExists { path: PathBuf },
    #[error("--workers: must be at least 1")]
    NoWorkers,
    #[error("--workers {n}: more than {max} local workers ({MAX_WORKERS_PER_CORE} per core, {cores} cores) would only overload this machine; lower it, or pass --allow-many-workers if you mean it")]
    TooManyWorkers { n: usize, max: usize, cores: usize },
    #[error("--expect-workers: must be at least 1")]
    NoExpectedWorkers,
    #[error("--token-file: {source}")]
    TokenFile {
        #[source]
        source: TokenError,
    },
    #[error("--listen {listen}: a controller reachable beyond loopback needs --token-file (workers present the same token)")]
    TokenRequired { listen: SocketAddr },
    #[error("--tls-{flag} {}: {source}; point it at a readable PEM file", path.display())]
    TlsRead {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--tls-{flag} {}: not a PEM {what} ({why}); give a PEM file (-----BEGIN {label}-----)", path.display())]
    TlsPem {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
        label: &'static str,
        why: String,
    },
    #[error("--listen {listen}: secrets ({names}) would cross the network in clear text; add --tls-cert/--tls-key, listen on loopback, or pass --insecure-plaintext to accept that")]
    PlaintextSecrets { listen: SocketAddr, names: String },
    #[error("--dashboard {addr}: not a loopback address; the dashboard has no authentication and shows the plan, target and workers, so use 127.0.0.1:PORT or [::1]:PORT, or pass --dashboard-public if you mean it")]
    DashboardPublic { addr: SocketAddr },
    #[error("--dashboard {addr}: the same address as --listen; give the dashboard another port")]
    DashboardOnListen { addr: SocketAddr },
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub plan: Plan,
    pub thresholds: ThresholdSet,
    /// By the names of `Assignment.secrets`; never logged.
    pub secrets: BTreeMap<String, Secret>,
    pub outs: Vec<OutSpec>,
    pub results_dir: PathBuf,
    pub on_worker_loss: OnWorkerLoss,
    pub progress: bool,
    /// Neither `--target` nor the plan file names a target: `barrage run` starts its own.
    pub embedded_target: bool,
    /// `--dashboard`: where to serve the live dashboard (checked: loopback unless public).
    pub dashboard: Option<SocketAddr>,
    /// `--allow-invalid`: an invalid run keeps the exit code a valid one would get.
    pub allow_invalid: bool,
    /// `--soak` and its flags, checked against the plan.
    pub soak: Option<crate::soak::SoakConfig>,
    /// Check at the end that the target's resources returned to their count at the start
    /// (`--soak`, or `--baseline-check`).
    pub baseline_check: bool,
}

/// The worker-facing side of a coordinator: who may join and how.
pub struct WorkerSide {
    pub expect_workers: usize,
    /// Workers must present it; `None` accepts any (loopback only).
    pub token: Option<Secret>,
    pub tls: Option<ServerTlsConfig>,
    pub allow_version_mismatch: bool,
    pub join_timeout: Duration,
}

impl RunConfig {
    /// The coordinator's configuration: this run plus `workers`.
    pub fn coordinator(&self, workers: WorkerSide) -> CoordinatorConfig {
        CoordinatorConfig {
            plan: self.plan.clone(),
            thresholds: self.thresholds.clone(),
            secrets: self.secrets.clone(),
            expect_workers: workers.expect_workers,
            token: workers.token,
            tls: workers.tls,
            allow_version_mismatch: workers.allow_version_mismatch,
            on_worker_loss: self.on_worker_loss,
            raw_points: !self.outs.is_empty(),
            join_timeout: workers.join_timeout,
            progress: self.progress,
            live: None,
            soak: self.soak.clone(),
            checkpoints: None,
            resume: None,
        }
    }
}

/// `barrage run`, validated: the run, its local workers and where they are pinned.
#[derive(Debug, Clone)]
pub struct LocalRun {
    pub cfg: RunConfig,
    pub workers: usize,
    /// Cores the workers are pinned to, round robin (empty: not pinned).
    pub worker_cores: Vec<usize>,
    /// (mock LLM, reference runtime) cores, when the embedded target is pinned.
    pub server_cores: Option<(usize, usize)>,
}

/// `barrage controller`, validated.
pub struct ControllerRun {
    pub cfg: RunConfig,
    pub listen: SocketAddr,
    pub workers: WorkerSide,
    /// Secrets go to non-loopback workers without TLS, as the user asked: say so at start.
    pub plaintext_secrets: bool,
}

/// Whether a plan file sets `target.url` (a plan's defaults do not name a target).
pub fn file_names_target(path: &Path) -> Result<bool, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PlanRead {
        path: path.to_path_buf(),
        source,
    })?;
    // a file that does not parse has already been reported by `Plan::from_file`
    let table: toml::Table = toml::from_str(&text).unwrap_or_default();
    Ok(table.get("target").and_then(|t| t.get("url")).is_some())
}

/// Reads the plan (file or profile) and applies the flags' overrides, then validates.
pub fn load_plan(args: &PlanArgs) -> Result<Plan, ConfigError> {
    let mut plan = match (&args.plan, &args.profile) {
        (Some(path), _) => Plan::from_file(path)?,
        (None, Some(name)) => Plan::profile(Profile::parse(name).map_err(ConfigError::Profile)?),
        (None, None) => Plan::profile(Profile::Default),
    };
    plan.apply(&PlanOverrides {
        target: args.target.clone(),
        runtime: args.runtime_name.clone(),
        version: args.runtime_version.clone(),
        llm: args.llm.clone(),
        tier: args.tier.clone(),
        jwt_secret_env: args.jwt_secret_env.clone(),
        auth_token_env: args.auth_token_env.clone(),
        auth_token_env_if_none: args.env_auth_token.then(|| "AUTH_TOKEN".into()),
        graph_id: args.graph_id.clone(),
        model_name: args.model_name.clone(),
        smoke: args.smoke,
    });
    plan.validate()?;
    barrage_worker::flow::check_plan_flow(&plan)?;
    Ok(plan)
}

/// The secrets the plan's auth needs, read from the environment or files
/// (`barrage_core::auth::plan_secrets`).
pub fn read_secrets(
    plan: &Plan,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    Ok(barrage_core::auth::plan_secrets(&plan.auth, env)?)
}

pub fn build(plan_args: &PlanArgs, output: &OutputArgs) -> Result<RunConfig, ConfigError> {
    let plan = load_plan(plan_args)?;
    let embedded_target = plan_args.target.is_none()
        && match &plan_args.plan {
            Some(path) => !file_names_target(path)?,
            None => true,
        };
    let thresholds = ThresholdSet::from_plan(&plan)?;
    let secrets = read_secrets(&plan, |k| std::env::var(k).ok())?;
    let soak = output.soak.validate(&plan)?;
    let mut seen = Vec::new();
    for o in &output.outs {
        if seen.contains(&&o.path) {
            return Err(ConfigError::OutTwice {
                path: o.path.clone(),
            });
        }
        seen.push(&o.path);
        // a regular file only: `--out json=/dev/stdout` or a FIFO is not a result to keep
        if !output.overwrite && std::fs::metadata(&o.path).is_ok_and(|m| m.is_file()) {
            return Err(ConfigError::OutExists {
                path: o.path.clone(),
            });
        }
        results::probe_dir(results::parent_dir(&o.path))?;
    }
    results::probe_dir(&output.results_dir)?;
    if let Some(addr) = output.dashboard {
        if !addr.ip().is_loopback() && !output.dashboard_public {
            return Err(ConfigError::DashboardPublic { addr });
        }
    }
    Ok(RunConfig {
        plan,
        thresholds,
        secrets,
        outs: output.outs.clone(),
        results_dir: output.results_dir.clone(),
        on_worker_loss: output.on_worker_loss,
        progress: !output.no_progress,
        embedded_target,
        dashboard: output.dashboard,
        allow_invalid: output.allow_invalid,
        baseline_check: output.soak.baseline_check || soak.as_ref().is_some_and(|s| s.resources),
        soak,
    })
}

/// How many local workers: `--workers`, else one per `--worker-cores` entry, else the
/// cores left after the embedded target's two (at least 1); at most
/// [`MAX_WORKERS_PER_CORE`] per core unless `allow_many`.
pub fn worker_count(
    requested: Option<usize>,
    listed_cores: Option<usize>,
    embedded: bool,
    cores: usize,
    allow_many: bool,
) -> Result<usize, ConfigError> {
    let n = requested
        .or(listed_cores)
        .unwrap_or_else(|| cores.saturating_sub(if embedded { 2 } else { 0 }).max(1));
    let max = MAX_WORKERS_PER_CORE * cores.max(1);
    match n {
        0 => Err(ConfigError::NoWorkers),
        n if n > max && !allow_many => Err(ConfigError::TooManyWorkers { n, max, cores }),
        n => Ok(n),
    }
}

/// `barrage run`'s flags, validated; `cores` and `taskset` describe this machine.
pub fn local_run(args: &RunArgs, cores: usize, taskset: bool) -> Result<LocalRun, ConfigError> {
    // `--resume` of `barrage run`: the first run's flags, rebuilt by `crate::soak::local`
    let cfg = build(&args.plan, &args.output)?;
    let workers = worker_count(
        args.workers,
        args.worker_cores.as_ref().map(|c| c.0.len()),
        cfg.embedded_target,
        cores,
        args.allow_many_workers,
    )?;
    let server_cores =
        (cfg.embedded_target && cores >= 3 && taskset).then(|| (cores - 1, cores - 2));
    let worker_cores = match &args.worker_cores {
        Some(c) => c.0.clone(),
        None => (0..cores)
            .filter(|c| server_cores.is_none_or(|(a, b)| *c != a && *c != b))
            .collect(),
    };
    Ok(LocalRun {
        cfg,
        workers,
        worker_cores,
        server_cores,
    })
}

/// `barrage controller`'s flags, validated: token, TLS (PEM checked, not only read), and
/// no secret in clear text beyond loopback unless asked.
pub fn controller_run(args: &ControllerArgs) -> Result<ControllerRun, ConfigError> {
    let cfg = build(&args.plan, &args.output)?;
    let expect_workers = match args.workers.expect_workers {
        Some(n) if n > 0 => n,
        _ => return Err(ConfigError::NoExpectedWorkers),
    };
    let listen = args.listen();
    if let Some(addr) = cfg.dashboard.filter(|d| *d == listen && d.port() != 0) {
        return Err(ConfigError::DashboardOnListen { addr });
    }
    let loopback = listen.ip().is_loopback();
    let token = match &args.workers.token_file {
        Some(p) => {
            Some(token::read_secret_file(p).map_err(|source| ConfigError::TokenFile { source })?)
        }
        None if !loopback => return Err(ConfigError::TokenRequired { listen }),
        None => None,
    };
    let tls = match (&args.workers.tls_cert, &args.workers.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    // the join token lets whoever holds it join and receive the plan's secrets: it is one too
    let mut secrets: Vec<&str> = token.iter().map(|_| "the worker join token").collect();
    secrets.extend(cfg.secrets.keys().map(String::as_str));
    let plaintext_secrets = !loopback && tls.is_none() && !secrets.is_empty();
    if plaintext_secrets && !args.workers.insecure_plaintext {
        return Err(ConfigError::PlaintextSecrets {
            listen,
            names: secrets.join(", "),
        });
    }
    Ok(ControllerRun {
        listen,
        workers: WorkerSide {
            expect_workers,
            token,
            tls,
            allow_version_mismatch: args.workers.allow_version_mismatch,
            join_timeout: args.join_timeout(),
        },
        plaintext_secrets,
        cfg,
    })
}

/// Reads and checks the certificate chain and key: a file that is not PEM must fail here,
/// naming it, and not later as a server that listens but completes no handshake.
fn tls_config(cert: &Path, key: &Path) -> Result<ServerTlsConfig, ConfigError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let read = |flag: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| ConfigError::TlsRead {
            flag,
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read("cert", cert)?, read("key", key)?);
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&cert_pem).collect();
    let why = match certs {
        Ok(c) if c.is_empty() => Some("no certificate in it".to_string()),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = why {
        return Err(ConfigError::TlsPem {
            flag: "cert",
            path: cert.to_path_buf(),
            what: "certificate",
            label: "CERTIFICATE",
            why,
        });
    }
    if let Err(e) = PrivateKeyDer::from_pem_slice(&key_pem) {
        return Err(ConfigError::TlsPem {
            flag: "key",
            path: key.to_path_buf(),
            what: "private key",
            label: "PRIVATE KEY",
            why: e.to_string(),
        });
    }
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_args() -> PlanArgs {
        PlanArgs {
            plan: None,
            profile: None,
            target: None,
            runtime_name: None,
            runtime_version: None,
            llm: None,
            tier: None,
            jwt_secret_env: None,
            auth_token_env: None,
            smoke: false,
            graph_id: None,
            model_name: None,
            env_auth_token: false,
        }
    }

    #[test]
    fn overrides_and_errors() {
        let p = load_plan(&PlanArgs {
            target: Some("http://127.0.0.1:9001/".into()),
            runtime_name: Some("ts".into()),
            profile: Some("smoke".into()),
            ..plan_args()
        })
        .unwrap();
        assert_eq!(
            (
                p.target.url.as_str(),
                p.target.runtime.as_str(),
                p.name.as_str()
            ),
            ("http://127.0.0.1:9001", "ts", "smoke")
        );
        let e = load_plan(&PlanArgs {
            profile: Some("warp".into()),
            ..plan_args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--profile") && e.contains("warp"), "{e}");
        let e = load_plan(&PlanArgs {
            runtime_name: Some("a b".into()),
            ..plan_args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("target.runtime"), "{e}");
        let e = load_plan(&PlanArgs {
            plan: Some("/nonexistent/p.toml".into()),
            ..plan_args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/p.toml"), "{e}");
    }

    #[test]
    fn worker_count_is_bounded() {
        // (requested, listed cores, embedded, cores, allow many) -> workers or error text
        type Case = (
            Option<usize>,
            Option<usize>,
            bool,
            usize,
            bool,
            Result<usize, &'static str>,
        );
        let cases: &[Case] = &[
            (None, None, true, 8, false, Ok(6)),
            (None, None, false, 8, false, Ok(8)),
            (None, None, true, 2, false, Ok(1)),
            (None, Some(3), true, 8, false, Ok(3)),
            (Some(2), Some(3), true, 8, false, Ok(2)),
            (Some(32), None, true, 8, false, Ok(32)),
            (
                Some(33),
                None,
                true,
                8,
                false,
                Err("--workers 33: more than 32"),
            ),
            (
                Some(100_000),
                None,
                false,
                2,
                false,
                Err("--allow-many-workers"),
            ),
            (Some(100), None, false, 2, true, Ok(100)),
            (None, Some(4096), false, 2, false, Err("--workers 4096")),
            (
                Some(0),
                None,
                false,
                2,
                true,
                Err("--workers: must be at least 1"),
            ),
        ];
        for (i, (req, listed, embedded, cores, many, want)) in cases.iter().enumerate() {
            let got = worker_count(*req, *listed, *embedded, *cores, *many);
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, *w, "case {i}"),
                (Err(e), Err(needle)) => {
                    let e = e.to_string();
                    assert!(e.contains(needle), "case {i}: {e}");
                }
                (got, want) => panic!("case {i}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_plan_file_names_its_target_only_with_target_url() {
        let dir = tempfile::tempdir().unwrap();
        for (text, names) in [
            (
                "name = \"x\"\n[target]\nurl = \"http://127.0.0.1:1\"\n",
                true,
            ),
            ("name = \"x\"\n[target]\nruntime = \"ts\"\n", false),
            ("name = \"x\"\n", false),
        ] {
            let p = dir.path().join("p.toml");
            std::fs::write(&p, text).unwrap();
            assert_eq!(file_names_target(&p).unwrap(), names, "{text}");
        }
    }

    #[test]
    fn tls_files_must_be_pem() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEl8dDCsZ4sEFUfDcbPPYDlUfcy5zb7HgcXK5uDQuY0u\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = tls_config(&junk, &key_only).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-cert ") && e.contains("junk.pem"),
            "{e}"
        );
        assert!(e.contains("not a PEM certificate"), "{e}");
        // a key file passed as the certificate has no CERTIFICATE section
        let e = tls_config(&key_only, &junk).unwrap_err().to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("no certificate"),
            "{e}"
        );
        let e = tls_config(&dir.path().join("missing.pem"), &junk)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tls-cert") && e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let p = load_plan(&PlanArgs {
            jwt_secret_env: Some("MY_SECRET".into()),
            ..plan_args()
        })
        .unwrap();
        let s = read_secrets(&p, |k| (k == "MY_SECRET").then(|| "s3cret".into())).unwrap();
        assert_eq!(s["jwt_secret"].expose(), "s3cret");
        let e = read_secrets(&p, |_| None).unwrap_err().to_string();
        assert!(
            e.contains("MY_SECRET") && e.contains("--jwt-secret-env"),
            "{e}"
        );
        let p = load_plan(&PlanArgs {
            auth_token_env: Some("TOK".into()),
            ..plan_args()
        })
        .unwrap();
        assert_eq!(
            read_secrets(&p, |_| Some("t".into())).unwrap()["token"].expose(),
            "t"
        );
    }
}
