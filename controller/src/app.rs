//! The subcommands end to end: validate everything first (exit 2 before anything starts),
//! then start what is needed, run, write the results, stop what was started.
use crate::analyze;
use crate::cli::{Cli, Command, ControllerArgs, FlowCommand, RunArgs, TokenArgs};
use crate::config::{self, LocalRun, RunConfig, WorkerSide};
use crate::coordinator::{self, Control};
use crate::dashboard::{Dashboard, LiveFeed, RunInfo};
use crate::local::{self, Children};
use crate::output::{self, Output};
use crate::report::RunReport;
use crate::soak::local::{RunRecord, Takeover, TargetRecord};
use crate::soak::SoakRun;
use crate::target::{Prepared, TargetSetup, Watch};
use crate::{exit_code, results, summary, token};
use anyhow::Context as _;
use barrage_core::{errln, outln, Secret};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Runs one `barrage` command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Run(_) | Command::Controller(_) | Command::Sweep(_) | Command::Characterize(_)
    ) {
        crate::thp::disable_for_this_process();
    }
    match cli.command {
        Command::Token(a) => token_cmd(a),
        Command::Flow(c) => Ok(flow_cmd(c)),
        Command::Worker(a) => barrage_worker::run(a),
        Command::MockLlm(a) => barrage_mock_llm::run(a),
        Command::ReferenceRuntime(a) => barrage_reference_runtime::run(a),
        Command::SoakKeeper(a) => crate::soak::keeper::run(a),
        Command::Run(a) => run_cmd(a),
        Command::Controller(a) => controller_cmd(a),
        Command::Report(a) => analyze::report_cmd(a),
        Command::Compare(a) => analyze::compare_cmd(a),
        Command::Summarize(a) => analyze::summarize_cmd(a),
        Command::Sweep(a) => crate::sweep::run(a),
        Command::Characterize(a) => crate::characterize::run(a),
    }
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    errln!("barrage: {}", e.to_string().trim_end());
    ExitCode::from(exit_code::CONFIG)
}

fn token_cmd(a: TokenArgs) -> anyhow::Result<ExitCode> {
    let (secret, source) = match token::resolve_secret(&a, |k| std::env::var(k).ok()) {
        Ok(x) => x,
        Err(e) => return Ok(config_error(e)),
    };
    if source == token::SecretSource::Default {
        errln!(
            "barrage token: {} is unset; signed with the seed's default mock secret",
            a.secret_env
        );
    }
    outln!("{}", token::mint(&a, &secret)?);
    Ok(ExitCode::SUCCESS)
}

fn flow_cmd(c: FlowCommand) -> ExitCode {
    use barrage_core::plan::{builtin_flow, builtin_flow_plan_toml, BUILTIN_FLOWS};
    match c {
        FlowCommand::List => {
            for (name, _) in BUILTIN_FLOWS {
                let d = builtin_flow(name)
                    .map(|f| f.description)
                    .unwrap_or_default();
                outln!("{name:<12} {d}");
            }
            ExitCode::SUCCESS
        }
        FlowCommand::Show { name } => match builtin_flow_plan_toml(&name) {
            Some(text) => {
                outln!("{}", text.trim_end());
                ExitCode::SUCCESS
            }
            None => config_error(format!(
                "flow show: no built-in flow is named {name:?}; `barrage flow list` names them"
            )),
        },
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// SIGINT, SIGTERM and SIGHUP, each as one [`Control::Interrupt`]: the first stops the
/// run gracefully and its results are written, the second stops it at once. (SIGHUP too: a
/// closed terminal or `kill -HUP` must not lose a run.)
fn forward_signals(tx: mpsc::UnboundedSender<Control>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot listen for SIGINT/SIGTERM/SIGHUP");
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
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

/// `--dashboard`: its listener, bound before anything starts so a taken port fails early.
async fn bind_dashboard(cfg: &RunConfig) -> anyhow::Result<Option<TcpListener>> {
    match cfg.dashboard {
        Some(addr) => Ok(Some(Dashboard::bind(addr).await?)),
        None => Ok(None),
    }
}

/// Serves the dashboard on `listener` and returns it with the feed the hub publishes to.
fn serve_dashboard(
    listener: Option<TcpListener>,
    cfg: &RunConfig,
    workers: usize,
) -> Option<(Dashboard, LiveFeed)> {
    let (feed, rx) = LiveFeed::new(RunInfo::of(&cfg.plan, workers));
    let d = Dashboard::serve(listener?, rx);
    errln!(
        "barrage: dashboard on {} (Prometheus: {}metrics)",
        d.url(),
        d.url()
    );
    Some((d, feed))
}

/// Publishes the end of the run to the dashboard, if any, and stops it.
async fn close_dashboard(dashboard: Option<(Dashboard, LiveFeed)>, failure: Option<String>) {
    if let Some((d, feed)) = dashboard {
        if let Some(why) = failure {
            feed.failed(&why);
        }
        d.shutdown().await;
    }
}

/// Stops the outputs, writes the summary atomically, prints the human summary; tells the
/// dashboard (`live`) where the summary is.
fn finalize(
    cfg: &RunConfig,
    report: &RunReport,
    outputs: Vec<Box<dyn Output>>,
    live: Option<&LiveFeed>,
    target_telemetry: Option<barrage_core::telemetry::TargetSummary>,
    soak: Option<&SoakRun>,
    resources: Option<barrage_core::trend::ResourceCheck>,
) -> anyhow::Result<ExitCode> {
    if let Some(l) = live {
        l.writing();
    }
    let mut failed_outputs = false;
    for o in outputs {
        if let Err(e) = o.stop() {
            errln!("barrage: an output could not be written: {e}");
            failed_outputs = true;
        }
    }
    // soak trends, and the slope thresholds judged on them (at the end, once)
    // (and the back-to-baseline check, which a run without --soak reports there too)
    let trends = match soak {
        Some(s) => Some(s.trends(&report.timeseries, target_telemetry.as_ref(), resources)),
        None if cfg.thresholds.has_slopes() || resources.is_some() => Some(trend_with(
            resources,
            barrage_core::trend::compute(
                &report.timeseries,
                target_telemetry.as_ref(),
                report.plan.scenario.duration() / 10,
            ),
        )),
        None => None,
    };
    let slope_verdicts = cfg.thresholds.evaluate_trends(trends.as_ref());
    let with_slopes;
    let report = if slope_verdicts.is_empty() {
        report
    } else {
        with_slopes = RunReport {
            thresholds: [report.thresholds.clone(), slope_verdicts].concat(),
            ..report.clone()
        };
        &with_slopes
    };
    let valid = report.validity.as_ref().is_none_or(|v| v.valid);
    let mut code = exit_code::with_validity(report.exit_code(), valid, cfg.allow_invalid);
    if code == exit_code::SUCCESS && failed_outputs {
        code = exit_code::FAILURE;
    }
    let mut doc = summary::summarize(report, target_telemetry);
    doc.result.exit_code = code;
    if let Some(v) = doc.validity.as_mut() {
        v.allow_invalid = cfg.allow_invalid;
    }
    doc.trends = trends;
    let bytes = serde_json::to_vec_pretty(&doc).context("summary does not serialize")?;
    let path = results::write_new(
        &results::summary_path(&cfg.results_dir, &report.plan),
        &bytes,
    )?;
    let text = barrage_core::summary::render_text(&doc, Some(&path));
    if let Some(l) = live {
        l.finished(&doc, &path);
    }
    let mut stdout = barrage_core::logging::stdout();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(ExitCode::from(code))
}

fn trend_with(
    resources: Option<barrage_core::trend::ResourceCheck>,
    mut t: barrage_core::trend::Trends,
) -> barrage_core::trend::Trends {
    t.resources = resources;
    t
}

fn live(dashboard: &Option<(Dashboard, LiveFeed)>) -> Option<&LiveFeed> {
    dashboard.as_ref().map(|d| &d.1)
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_cmd(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    // `--resume DIR`: the first run's flags, from DIR (crate::soak::local)
    let mut record = None;
    if let Some(dir) = args.output.soak.resume.clone() {
        match crate::soak::local::resume_run(&dir) {
            Ok((first, r)) => {
                args = first;
                record = Some(r);
            }
            Err(e) => return Ok(config_error(e)),
        }
    }
    args.plan = args.plan.with_env(|k| std::env::var(k).ok());
    let local = match config::local_run(&args, local::cores(), local::taskset_available()) {
        Ok(l) => l,
        Err(e) => return Ok(config_error(e)),
    };
    let target = match crate::target::setup(
        &args.target_proc,
        local.cfg.plan.target.tier.as_deref(),
        local::cores(),
    ) {
        Ok(t) => t,
        Err(e) => return Ok(config_error(e)),
    };
    runtime()?.block_on(run_local(local, target, record))
}

/// Starts the mock LLM and the reference runtime and points the plan at them; returns the
/// mock LLM's address.
async fn start_embedded_target(
    cfg: &mut RunConfig,
    servers: &mut Children,
    server_cores: Option<(usize, usize)>,
) -> anyhow::Result<String> {
    let s = |x: &str| x.to_string();
    let mock = servers.spawn_mock_llm(server_cores.map(|c| c.0)).await?;
    let mut env = vec![(s("OPENAI_BASE_URL"), format!("http://{mock}/v1"))];
    // The LLM leg over HTTP/2: every concurrent call a stream of one connection, so the
    // runtime's descriptors go to its clients (the mock speaks h2c). OPENAI_HTTP2 in
    // barrage's own environment, inherited by the child, wins.
    if std::env::var_os("OPENAI_HTTP2").is_none() {
        env.push((s("OPENAI_HTTP2"), s("1")));
    }
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
    cfg.plan
        .validate()
        .context("the embedded target's plan is invalid")?;
    errln!(
        "barrage: target {} (reference runtime), mock LLM {mock}",
        cfg.plan.target.url
    );
    Ok(mock)
}

/// Starts the target barrage starts (`--target-cmd`, or the embedded one) or watches the
/// one it is told of.
async fn start_target(
    cfg: &mut RunConfig,
    target: &TargetSetup,
    servers: &mut Children,
    worker_cores: &mut Vec<usize>,
    server_cores: Option<(usize, usize)>,
) -> anyhow::Result<(Option<Prepared>, Option<u32>)> {
    Ok(match &target.watch {
        Watch::Command(cmd) => {
            // the load stays off the target's cores
            if let Some(tc) = &target.cores {
                worker_cores.retain(|c| !tc.contains(c));
            }
            let mock_core = target.cores.as_ref().and(worker_cores.first().copied());
            let p = crate::target::start_command(cmd, target, cfg, servers, mock_core).await?;
            (Some(p), None)
        }
        _ => {
            let embedded = if cfg.embedded_target {
                let mock = start_embedded_target(cfg, servers, server_cores).await?;
                servers.pids().last().map(|pid| (*pid, mock))
            } else {
                None
            };
            let pid = embedded.as_ref().map(|e| e.0);
            (crate::target::watch_existing(target, embedded)?, pid)
        }
    })
}

/// Why a resume did not start: bad input (exit 2, nothing touched) or a run that cannot go on.
enum ResumeFail {
    Config(String),
    Run(anyhow::Error),
}

/// `--resume`: points the plan where the first run did, checks the checkpoint is of it,
/// then takes the children over and watches the target again.
fn resume_target(
    cfg: &mut RunConfig,
    rec: &RunRecord,
    target: &TargetSetup,
) -> Result<(Option<Prepared>, Takeover), ResumeFail> {
    let t = &rec.target;
    cfg.plan.target.url = t.url.clone();
    cfg.plan.target.runtime = t.runtime.clone();
    cfg.plan.target.version = t.version.clone();
    cfg.plan.target.llm = t.llm.clone();
    let dir = cfg.soak.as_ref().and_then(|s| s.resume.clone());
    let dir = dir.ok_or_else(|| ResumeFail::Config("--resume: needs --soak".into()))?;
    let config = |e: &dyn std::fmt::Display| ResumeFail::Config(e.to_string());
    cfg.plan.validate().map_err(|e| config(&e))?;
    let state =
        crate::soak::checkpoint::State::load(&dir, &cfg.plan.hash()).map_err(|e| config(&e))?;
    let takeover = match crate::soak::local::take_over(rec, &dir, &state) {
        Ok(t) => t,
        Err(e @ crate::soak::local::ResumeError::StillRunning { .. }) => return Err(config(&e)),
        Err(e) => return Err(ResumeFail::Run(e.into())),
    };
    let prepared = match (&target.watch, &t.command) {
        (Watch::Command(_), Some(c)) => {
            crate::target::watch_adopted(c.pid, t.cgroup.as_deref(), t.mock_llm.clone()).map(Some)
        }
        _ => crate::target::watch_existing(target, t.embedded_pid.zip(t.mock_llm.clone())),
    }
    .map_err(ResumeFail::Run)?;
    errln!(
        "barrage: resuming {}: took over {} workers, target {}; workers rejoin at {}",
        dir.display(),
        takeover.workers.records().len(),
        t.url,
        rec.listen
    );
    Ok((prepared, takeover))
}

async fn run_local(
    local: LocalRun,
    target: TargetSetup,
    record: Option<RunRecord>,
) -> anyhow::Result<ExitCode> {
    let LocalRun {
        mut cfg,
        workers: n,
        mut worker_cores,
        server_cores,
    } = local;
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    forward_signals(control_tx.clone());
    let dashboard_listener = bind_dashboard(&cfg).await?;
    // a soak run's children outlive it, so that `--resume` can take them back
    let children = || match cfg.soak {
        Some(_) => Children::surviving(),
        None => Children::new(),
    };
    let mut servers = children();
    let mut workers = children();
    let (prepared, embedded_pid, mut takeover) = match &record {
        Some(rec) => match resume_target(&mut cfg, rec, &target) {
            Ok((p, t)) => (p, rec.target.embedded_pid, Some(t)),
            Err(ResumeFail::Config(e)) => return Ok(config_error(e)),
            Err(ResumeFail::Run(e)) => return Err(e),
        },
        None => {
            let (p, pid) = start_target(
                &mut cfg,
                &target,
                &mut servers,
                &mut worker_cores,
                server_cores,
            )
            .await?;
            (p, pid, None)
        }
    };
    let dashboard = serve_dashboard(dashboard_listener, &cfg, n);
    let token = match &takeover {
        Some(t) => t.token.clone(),
        None => Secret::new(random_token()),
    };
    let bind = record
        .as_ref()
        .map_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |r| {
            r.listen
        });
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind the controller on {bind}"))?;
    let addr = listener.local_addr()?;
    let outputs = start_outputs(&cfg)?;
    let mut coord = cfg.coordinator(WorkerSide {
        expect_workers: n,
        token: Some(token.clone()),
        tls: None,
        allow_version_mismatch: false,
        join_timeout: config::LOCAL_JOIN_TIMEOUT,
    });
    coord.live = dashboard.as_ref().map(|d| d.1.clone());
    let soak = match SoakRun::prepare(&cfg, &mut coord).await {
        Ok(s) => s,
        Err(e @ crate::soak::SoakStartError::Checkpoint(_)) => return Ok(config_error(e)),
        Err(e) => return Err(e.into()),
    };
    let baseline = match crate::soak::baseline(&cfg, soak.as_ref()).await {
        Ok(b) => b,
        Err(e) => return Ok(config_error(e)),
    };
    // a resumed run measures its target from the resume on: its figures per request too
    let base = coord.resume.as_ref().map(|r| r.settled.total.clone());
    let target_record = match &record {
        Some(r) => r.target.clone(),
        None => TargetRecord::of(&cfg.plan.target, prepared.as_ref(), embedded_pid),
    };
    let measuring = match prepared {
        Some(p) => {
            let ladder = cfg.soak.as_ref().map(|s| s.ladder).unwrap_or_default();
            Some(
                p.start(target.interval, ladder, live(&dashboard).cloned())
                    .await,
            )
        }
        None => None,
    };
    let run = tokio::spawn(coordinator::run(listener, coord, outputs, control_rx));
    for (i, core) in local::assign_cores(n, &worker_cores)
        .into_iter()
        .enumerate()
        .filter(|_| takeover.is_none())
    {
        let mut a = vec![
            "worker".to_string(),
            "--controller".into(),
            format!("http://{addr}"),
            "--token-file".into(),
            format!("/dev/fd/{}", local::TOKEN_FD),
            "--name".into(),
            format!("local-{}", i + 1),
        ];
        if let Some(c) = core {
            a.push("--core".into());
            a.push(c.to_string());
        }
        workers.spawn(&format!("worker {}", i + 1), &a, None, Some(&token))?;
    }
    // the children and where they rejoin, for `--resume`, and a keeper for them
    let mut keeper = Children::surviving();
    if let (Some(s), Some(soak_cfg)) = (&soak, &cfg.soak) {
        let mut rec = RunRecord::new(record.as_ref(), addr, target_record)?;
        match &takeover {
            Some(t) => {
                rec.workers = t.workers.records().to_vec();
                rec.servers = t.servers.records().to_vec();
            }
            None => {
                rec.workers = crate::soak::local::records(&workers);
                rec.servers = crate::soak::local::records(&servers);
            }
        }
        crate::soak::local::keep(&mut rec, &s.dir, soak_cfg.rejoin_grace, &mut keeper)?;
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
    let measured = match measuring {
        Some(m) => Some(m.finish().await?),
        None => None,
    };
    let result = match outcome {
        Ok((report, outputs)) => {
            let telemetry = measured
                .as_ref()
                .map(|m| m.summary(&report.total, base.as_ref()));
            let resources = match &baseline {
                Some(b) => b.check().await,
                None => None,
            };
            finalize(
                &cfg,
                &report,
                outputs,
                live(&dashboard),
                telemetry,
                soak.as_ref(),
                resources,
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context("the run failed")),
    };
    let failure = result.as_ref().err().map(|e| format!("{e:#}"));
    close_dashboard(dashboard, failure).await;
    if let (Some(s), true) = (soak, result.is_ok()) {
        s.close().await;
    }
    let (wait, grace) = (Duration::from_secs(5), Duration::from_secs(5));
    if let Some(t) = takeover.as_mut() {
        t.target
            .stop_all(Duration::ZERO, Duration::from_secs(10))
            .await;
    }
    if let Some(m) = measured {
        m.stop().await;
    }
    workers.stop_all(wait, grace).await;
    if let Some(t) = takeover.as_mut() {
        t.workers.stop_all(wait, grace).await;
    }
    servers
        .stop_all(Duration::ZERO, Duration::from_secs(12))
        .await;
    if let Some(t) = takeover.as_mut() {
        t.servers
            .stop_all(Duration::ZERO, Duration::from_secs(12))
            .await;
    }
    keeper
        .stop_all(Duration::ZERO, Duration::from_secs(2))
        .await;
    result
}

fn controller_cmd(mut args: ControllerArgs) -> anyhow::Result<ExitCode> {
    args.plan = args.plan.with_env(|k| std::env::var(k).ok());
    let run = match config::controller_run(&args) {
        Ok(r) => r,
        Err(e) => return Ok(config_error(e)),
    };
    let config::ControllerRun {
        cfg,
        listen,
        workers,
        plaintext_secrets,
    } = run;
    if plaintext_secrets {
        errln!(
            "barrage: --insecure-plaintext: the join token and the plan's auth secrets go to workers beyond loopback in clear text"
        );
        tracing::warn!(%listen, "join token and auth secrets sent without TLS (--insecure-plaintext)");
    }
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}; pick another --listen"))?;
        let dashboard = serve_dashboard(bind_dashboard(&cfg).await?, &cfg, workers.expect_workers);
        let addr = listener.local_addr()?;
        outln!("listening on {addr}");
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        forward_signals(control_tx);
        let outputs = start_outputs(&cfg)?;
        let mut coord = cfg.coordinator(workers);
        coord.live = live(&dashboard).cloned();
        let soak = match SoakRun::prepare(&cfg, &mut coord).await {
            Ok(s) => s,
            Err(e @ crate::soak::SoakStartError::Checkpoint(_)) => return Ok(config_error(e)),
            Err(e) => return Err(e.into()),
        };
        let baseline = match crate::soak::baseline(&cfg, soak.as_ref()).await {
            Ok(b) => b,
            Err(e) => return Ok(config_error(e)),
        };
        let result = match coordinator::run(listener, coord, outputs, control_rx).await {
            Ok((report, outputs)) => {
                let resources = match &baseline {
                    Some(b) => b.check().await,
                    None => None,
                };
                finalize(
                    &cfg,
                    &report,
                    outputs,
                    live(&dashboard),
                    None,
                    soak.as_ref(),
                    resources,
                )
            }
            Err(e) => Err(anyhow::Error::new(e).context("the run failed")),
        };
        let failure = result.as_ref().err().map(|e| format!("{e:#}"));
        close_dashboard(dashboard, failure).await;
        if let (Some(s), true) = (soak, result.is_ok()) {
            s.close().await;
        }
        result
    })
}
