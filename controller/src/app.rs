//! The subcommands end to end: validate everything first (exit 2 before anything starts),
//! then start what is needed, run, write the results, stop what was started.
use crate::cli::{Cli, Command, ControllerArgs, RunArgs, TokenArgs};
use crate::config::{self, ConfigError, RunConfig};
use crate::coordinator::{self, Control, CoordinatorConfig};
use crate::local::{self, Children};
use crate::output::{self, Output};
use crate::report::RunReport;
use crate::{exit_code, meta, results, summary, token};
use anyhow::Context as _;
use barrage_core::Secret;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Runs one `barrage` command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Token(a) => token_cmd(a),
        Command::Worker(a) => worker::run(a),
        Command::MockLlm(a) => mock_llm::run(a),
        Command::ReferenceRuntime(a) => reference_runtime::run(a),
        Command::Run(a) => run_cmd(a),
        Command::Controller(a) => controller_cmd(a),
    }
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    barrage_core::errln!("barrage: {}", e.to_string().trim_end());
    ExitCode::from(exit_code::CONFIG)
}

fn token_cmd(a: TokenArgs) -> anyhow::Result<ExitCode> {
    let (secret, source) = match token::resolve_secret(&a, |k| std::env::var(k).ok()) {
        Ok(x) => x,
        Err(e) => return Ok(config_error(e)),
    };
    if source == token::SecretSource::Default {
        barrage_core::errln!(
            "barrage token: {} is unset; signed with the seed's default mock secret",
            a.secret_env
        );
    }
    barrage_core::outln!("{}", token::mint(&a, &secret)?);
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// SIGINT and SIGTERM, each as one [`Control::Interrupt`].
fn forward_signals(tx: mpsc::UnboundedSender<Control>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot listen for SIGINT/SIGTERM");
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if tx.send(Control::Interrupt).is_err() {
                return;
            }
        }
    });
}

fn start_outputs(cfg: &RunConfig) -> anyhow::Result<Vec<Box<dyn Output>>> {
    let mut outs = Vec::new();
    for spec in &cfg.outs {
        let mut o = output::open(spec, &cfg.thresholds);
        o.start()
            .with_context(|| format!("cannot start --out {}", spec.path.display()))?;
        outs.push(o);
    }
    Ok(outs)
}

/// Stops the outputs, writes the summary atomically, prints the human summary.
fn finalize(
    cfg: &RunConfig,
    report: &RunReport,
    outputs: Vec<Box<dyn Output>>,
) -> anyhow::Result<ExitCode> {
    let mut failed_outputs = false;
    for o in outputs {
        if let Err(e) = o.stop() {
            barrage_core::errln!("barrage: an output could not be written: {e}");
            failed_outputs = true;
        }
    }
    let doc = summary::summary_json(report, &meta::rig(), &meta::host());
    let path = results::summary_path(&cfg.results_dir, &report.plan);
    let bytes = serde_json::to_vec_pretty(&doc).context("summary does not serialize")?;
    results::write_atomic(&path, &bytes)?;
    let text = summary::render_text(&doc, &path);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    let code = report.exit_code();
    if code == exit_code::SUCCESS && failed_outputs {
        return Ok(ExitCode::from(exit_code::FAILURE));
    }
    Ok(ExitCode::from(code))
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_cmd(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = match config::build(&args.plan, &args.output) {
        Ok(c) => c,
        Err(e) => return Ok(config_error(e)),
    };
    let embedded = args.plan.target.is_none();
    let total = local::cores();
    let n = args
        .workers
        .or(args.worker_cores.as_ref().map(|c| c.0.len()))
        .unwrap_or_else(|| total.saturating_sub(if embedded { 2 } else { 0 }).max(1));
    if n == 0 {
        return Ok(config_error("--workers: must be at least 1"));
    }
    let pin_servers = embedded && total >= 3 && local::taskset_available();
    let server_cores = pin_servers.then(|| (total - 1, total - 2));
    let worker_cores: Vec<usize> = match &args.worker_cores {
        Some(c) => c.0.clone(),
        None => (0..total)
            .filter(|c| server_cores.is_none_or(|(a, b)| *c != a && *c != b))
            .collect(),
    };
    runtime()?.block_on(run_local(cfg, embedded, n, worker_cores, server_cores))
}

async fn run_local(
    mut cfg: RunConfig,
    embedded: bool,
    n: usize,
    worker_cores: Vec<usize>,
    server_cores: Option<(usize, usize)>,
) -> anyhow::Result<ExitCode> {
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    forward_signals(control_tx.clone());
    let mut servers = Children::new();
    if embedded {
        let s = |x: &str| x.to_string();
        let mock = servers
            .spawn_server(
                "mock LLM",
                &[
                    s("mock-llm"),
                    s("--host"),
                    s("127.0.0.1"),
                    s("--port"),
                    s("0"),
                ],
                &[],
                server_cores.map(|c| c.0),
            )
            .await?;
        let mut env = vec![(s("OPENAI_BASE_URL"), format!("http://{mock}/v1"))];
        if let Some(secret) = cfg.secrets.get(barrage_core::auth::keys::JWT_SECRET) {
            env.push((s("SUPABASE_JWT_SECRET"), secret.expose().to_string()));
        }
        let url = servers
            .spawn_server(
                "reference runtime",
                &[
                    s("reference-runtime"),
                    s("--host"),
                    s("127.0.0.1"),
                    s("--port"),
                    s("0"),
                ],
                &env,
                server_cores.map(|c| c.1),
            )
            .await?;
        cfg.plan.target.url = url;
        cfg.plan.target.runtime = "reference".into();
        cfg.plan.target.version = barrage_core::VERSION.into();
        cfg.plan.target.llm = "mock".into();
        cfg.plan.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        barrage_core::errln!(
            "barrage: target {} (reference runtime), mock LLM {mock}",
            cfg.plan.target.url
        );
    }
    let token = random_token();
    let mut token_file = tempfile::Builder::new()
        .prefix("barrage-token-")
        .tempfile()
        .context("cannot create the token file")?;
    token_file
        .write_all(token.as_bytes())
        .context("cannot write the token file")?;
    token_file.flush()?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the controller on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let outputs = start_outputs(&cfg)?;
    let coord = CoordinatorConfig {
        plan: cfg.plan.clone(),
        thresholds: cfg.thresholds.clone(),
        secrets: cfg.secrets.clone(),
        expect_workers: n,
        token: Some(Secret::new(token)),
        tls: None,
        allow_version_mismatch: false,
        on_worker_loss: cfg.on_worker_loss,
        raw_points: !cfg.outs.is_empty(),
        join_timeout: Duration::from_secs(60),
        progress: cfg.progress,
    };
    let run = tokio::spawn(coordinator::run(listener, coord, outputs, control_rx));
    let mut workers = Children::new();
    for (i, core) in local::assign_cores(n, &worker_cores)
        .into_iter()
        .enumerate()
    {
        let mut a = vec![
            "worker".to_string(),
            "--controller".into(),
            format!("http://{addr}"),
            "--token-file".into(),
            token_file.path().display().to_string(),
            "--name".into(),
            format!("local-{}", i + 1),
        ];
        if let Some(c) = core {
            a.push("--core".into());
            a.push(c.to_string());
        }
        workers.spawn(&format!("worker {}", i + 1), &a, None)?;
    }
    // a worker process that dies before joining must not leave the run waiting
    let (stop_watch, mut watch_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut watch_rx => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            for (name, status) in workers.poll_exits() {
                if !status.success() {
                    let _ = control_tx
                        .send(Control::ChildExited(format!("{name} exited with {status}")));
                }
            }
        }
        workers
    });
    let outcome = run.await.context("the coordinator task failed")?;
    let _ = stop_watch.send(());
    let mut workers = watcher.await.context("the worker watcher failed")?;
    let result = match outcome {
        Ok((report, outputs)) => finalize(&cfg, &report, outputs),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    workers
        .stop_all(Duration::from_secs(5), Duration::from_secs(5))
        .await;
    servers
        .stop_all(Duration::ZERO, Duration::from_secs(12))
        .await;
    drop(token_file);
    result
}

fn read_token(path: &std::path::Path) -> Result<Secret, ConfigError> {
    token::read_secret_file(path).map_err(|e| ConfigError::Invalid(format!("--token-file: {e}")))
}

fn controller_cmd(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    let cfg = match config::build(&args.plan, &args.output) {
        Ok(c) => c,
        Err(e) => return Ok(config_error(e)),
    };
    if args.expect_workers == 0 {
        return Ok(config_error("--expect-workers: must be at least 1"));
    }
    let token = match &args.token_file {
        Some(p) => match read_token(p) {
            Ok(t) => Some(t),
            Err(e) => return Ok(config_error(e)),
        },
        None if !args.listen.ip().is_loopback() => {
            return Ok(config_error(format!(
                "--listen {}: a controller reachable beyond loopback needs --token-file (workers present the same token)",
                args.listen
            )))
        }
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let read = |p: &std::path::Path, what: &str| {
                std::fs::read(p).map_err(|e| format!("--tls-{what} {}: {e}", p.display()))
            };
            match (read(c, "cert"), read(k, "key")) {
                (Ok(cert), Ok(key)) => Some(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(cert, key)),
                ),
                (Err(e), _) | (_, Err(e)) => return Ok(config_error(e)),
            }
        }
        _ => None,
    };
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}; pick another --listen", args.listen))?;
        let addr = listener.local_addr()?;
        barrage_core::outln!("listening on {addr}");
        let _ = std::io::stdout().flush();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        forward_signals(control_tx);
        let outputs = start_outputs(&cfg)?;
        let coord = CoordinatorConfig {
            plan: cfg.plan.clone(),
            thresholds: cfg.thresholds.clone(),
            secrets: cfg.secrets.clone(),
            expect_workers: args.expect_workers,
            token,
            tls,
            allow_version_mismatch: args.allow_version_mismatch,
            on_worker_loss: cfg.on_worker_loss,
            raw_points: !cfg.outs.is_empty(),
            join_timeout: args.join_timeout,
            progress: cfg.progress,
        };
        let (report, outputs) = coordinator::run(listener, coord, outputs, control_rx)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        finalize(&cfg, &report, outputs)
    })
}
