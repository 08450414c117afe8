//! The coordinator: the gRPC service workers join ([`server`]), one session per worker
//! stream ([`session`], clock offsets in [`clock`]), and the hub ([`hub`]) that owns the
//! run: the start, merging, thresholds, the phases. Who joined, their segments, liveness and
//! rebalancing are the roster's ([`roster`]); the end-of-run report is assembled in
//! [`finish`]. [`simulate`] is the other side: simulated workers for the fleet bench and
//! tests.
//!
//! Phases of the hub:
//!
//! | phase     | enters when                      | leaves when                                          |
//! |-----------|----------------------------------|------------------------------------------------------|
//! | Joining   | the listener is bound            | N workers joined and were measured → `Assignment`s  |
//! | Assigning | assignments sent                 | every worker `Ready` → one `Start{now + d}` (d: below) |
//! | Running   | `Start` sent                     | all workers `Done`; SIGINT → `Stop`; abortOnFail, 2nd SIGINT, deadline → `Abort` |
//! | Stopping  | `Stop`/`Abort` sent              | all live workers `Done`, or the stop timeout          |
//!
//! `d`, the delay to stage time 0, is measured, not guessed ([`hub::start_delay`]): twice the
//! assignment round (assignments out, every `Ready` back) plus twice the slowest worker's
//! RTT, within 250 ms..5 s; a thousand workers get more room than two.
//!
//! A worker whose stream breaks, or from which nothing arrived for 2.5 intervals while
//! running (`barrage_core::liveness::controller_gives_up`), is lost: its snapshots so far
//! stay merged; by policy its segment is split among the rest (`Reassign`) or the run
//! fails. Silence is wall-clock time since the worker's last message reached its session
//! (stamped there, so it does not wait behind other workers' snapshots in the hub's
//! queue), less any stall of the controller itself, checked at the earliest deadline
//! rather than per tick ([`heard`]). While running, the hub pings
//! every worker so that a worker cut off from it stops its own load first
//! (`barrage_core::liveness`); the pongs stamp liveness in the session and go no further,
//! at fleet size they would otherwise be most of the hub's events.
pub mod clock;
mod finish;
mod heard;
pub mod hub;
mod roster;
pub mod server;
pub mod session;
pub mod simulate;

use crate::cli::OnWorkerLoss;
use crate::output::Output;
use crate::report::RunReport;
use barrage_core::threshold::ThresholdSet;
use barrage_core::{Plan, Secret};
use barrage_proto::pb::{self, ControllerMessage};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::ServerTlsConfig;
use tonic::Status;

/// Everything the coordinator needs, validated.
pub struct CoordinatorConfig {
    pub plan: Plan,
    pub thresholds: ThresholdSet,
    /// Sent to workers in the assignment.
    pub secrets: BTreeMap<String, Secret>,
    pub expect_workers: usize,
    /// Workers must present it; `None` accepts any (loopback only).
    pub token: Option<Secret>,
    pub tls: Option<ServerTlsConfig>,
    pub allow_version_mismatch: bool,
    pub on_worker_loss: OnWorkerLoss,
    /// Ask workers for raw points (an output needs them).
    pub raw_points: bool,
    /// How long to wait for all workers to join and be ready.
    pub join_timeout: Duration,
    pub progress: bool,
    /// `--dashboard`: the hub publishes its live state here each tick.
    pub live: Option<crate::dashboard::LiveFeed>,
    /// `--soak`: trends, checkpoints, rejoin terms for the workers.
    pub soak: Option<crate::soak::SoakConfig>,
    /// Where checkpoints go (with `--soak`).
    pub checkpoints: Option<crate::soak::checkpoint::Writer>,
    /// `--resume`: the checkpointed run to continue.
    pub resume: Option<hub::Resumed>,
}

/// Controls from outside the service: signals and the fate of local worker processes.
#[derive(Debug, Clone)]
pub enum Control {
    /// SIGINT (or SIGTERM): the first stops gracefully, the second aborts.
    Interrupt,
    /// A local worker process exited (`barrage run`); fatal before the start.
    ChildExited(String),
}

/// What sessions tell the hub.
pub(crate) enum Event {
    Hello {
        hello: pb::Hello,
        peer: Option<SocketAddr>,
        out: mpsc::Sender<Result<ControllerMessage, Status>>,
        /// Its session stamps it with each message's arrival (liveness: [`heard`]).
        heard: std::sync::Arc<heard::Heard>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    Measured {
        id: String,
        offset_us: i64,
        rtt_us: i64,
    },
    Message {
        id: String,
        msg: pb::worker_message::Msg,
    },
    Gone {
        id: String,
        reason: String,
    },
}

/// Why a run could not go on (a run that went on and failed is a [`RunReport`] instead).
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The gRPC service ended with an error before the run did (bad TLS material, a
    /// failing listener): no worker can join, so the run fails at once.
    #[error("the worker service failed: {0}; check --listen and the --tls-cert/--tls-key files")]
    Serve(#[source] tonic::transport::Error),
    /// The gRPC service task ended before the run did, without an error (or panicked).
    #[error("the worker service stopped before the run ended: {why}")]
    ServiceEnded { why: String },
    /// The hub's thread or its runtime could not be started (the process is out of
    /// threads or descriptors).
    #[error("could not start the controller's hub thread: {0}; raise the process's thread or descriptor limit")]
    HubThread(#[source] std::io::Error),
    /// The hub's thread ended without a report (a bug: its panic message is above).
    #[error("the controller's hub stopped without a report (see the panic above)")]
    HubPanicked,
    #[error("{what} before the run started; see its message above")]
    LocalWorkerExited { what: String },
    #[error("worker {worker} is ready for plan {theirs} but the controller sent {ours}; run the same barrage release on both sides")]
    PlanHashMismatch {
        worker: String,
        theirs: String,
        ours: String,
    },
    #[error("worker {worker} left before the start: {reason}")]
    LeftBeforeStart { worker: String, reason: String },
    #[error(
        "{joined} of {expected} workers joined and {ready} got ready within {}s; start more workers or raise --join-timeout",
        timeout.as_secs()
    )]
    JoinTimeout {
        joined: usize,
        ready: usize,
        expected: usize,
        timeout: Duration,
    },
}

/// Serves workers on `listener` and runs the plan; returns when the run is over (the
/// service is shut down by then). `outputs` are started already and get every raw point.
pub async fn run(
    listener: TcpListener,
    cfg: CoordinatorConfig,
    outputs: Vec<Box<dyn Output>>,
    control: mpsc::UnboundedReceiver<Control>,
) -> HubResult {
    let (events_tx, events_rx) = mpsc::channel(1024);
    let shared = Arc::new(session::SessionShared {
        allow_version_mismatch: cfg.allow_version_mismatch,
        interval_ms: cfg.plan.interval.as_millis() as u32,
    });
    let check = server::TokenCheck {
        token: cfg.token.clone(),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut server = tokio::spawn(server::serve(
        listener,
        cfg.tls.clone(),
        check,
        events_tx,
        shared,
        async {
            let _ = stop_rx.await;
        },
    ));
    let (hub, cancel_hub) = hub_thread(hub::Hub::new(cfg, outputs), events_rx, control)?;
    // a service that dies (bad TLS material, a broken listener) fails the run at once
    // instead of leaving it to wait for workers that cannot join
    let result = tokio::select! {
        r = hub => r.unwrap_or_else(|_| Err(CoordinatorError::HubPanicked)),
        ended = &mut server => {
            let _ = cancel_hub.send(());
            let err = match ended {
                Ok(Err(e)) => CoordinatorError::Serve(e),
                Ok(Ok(())) => CoordinatorError::ServiceEnded { why: "it returned".into() },
                Err(e) => CoordinatorError::ServiceEnded { why: e.to_string() },
            };
            tracing::error!(error = %err, "worker service ended early");
            return Err(err);
        }
    };
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(3), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "worker service ended with an error"),
        Ok(_) => {}
        Err(_) => tracing::warn!("worker service still draining after 3s; leaving it"),
    }
    result
}

/// What the hub's thread hands back: the run's report, or why it could not go on.
type HubResult = Result<(RunReport, Vec<Box<dyn Output>>), CoordinatorError>;

/// Runs the hub on a thread of its own with its own timer (a current-thread runtime): its
/// liveness deadline and ticks fire on time however busy the sessions keep the service's
/// runtime (a thousand workers' snapshots decoded at each interval's edge, which is where
/// every deadline falls), and its turns are the OS scheduler's to share, not a place in a
/// queue of thousands of tasks. Sending on the returned `oneshot` ends it early.
fn hub_thread(
    hub: hub::Hub,
    events: mpsc::Receiver<Event>,
    control: mpsc::UnboundedReceiver<Control>,
) -> Result<(oneshot::Receiver<HubResult>, oneshot::Sender<()>), CoordinatorError> {
    let (done_tx, done_rx) = oneshot::channel();
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CoordinatorError::HubThread)?;
    std::thread::Builder::new()
        .name("barrage-hub".into())
        .spawn(move || {
            let ended = rt.block_on(async move {
                tokio::select! {
                    r = hub.run(events, control) => Some(r),
                    _ = cancel_rx => None,
                }
            });
            if let Some(r) = ended {
                let _ = done_tx.send(r);
            }
        })
        .map_err(CoordinatorError::HubThread)?;
    Ok((done_rx, cancel_tx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::plan::Profile;
    use tonic::transport::Identity;

    fn config(tls: Option<ServerTlsConfig>) -> CoordinatorConfig {
        CoordinatorConfig {
            plan: Plan::profile(Profile::Smoke),
            thresholds: ThresholdSet::default(),
            secrets: BTreeMap::new(),
            expect_workers: 1,
            token: None,
            tls,
            allow_version_mismatch: false,
            on_worker_loss: OnWorkerLoss::Fail,
            raw_points: false,
            // without the fix the run waits this long and ends with JoinTimeout instead
            join_timeout: Duration::from_secs(30),
            progress: false,
            live: None,
            soak: None,
            checkpoints: None,
            resume: None,
        }
    }

    #[tokio::test]
    async fn a_service_that_cannot_serve_fails_the_run_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bad = ServerTlsConfig::new().identity(Identity::from_pem("not a PEM", "not a PEM"));
        let (_control_tx, control) = mpsc::unbounded_channel();
        let got = run(listener, config(Some(bad)), Vec::new(), control).await;
        match got {
            Err(e @ CoordinatorError::Serve(_)) => {
                let text = e.to_string();
                assert!(text.contains("--tls-cert"), "{text}");
                assert!(std::error::Error::source(&e).is_some());
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a run without a service must fail"),
        }
    }
}
