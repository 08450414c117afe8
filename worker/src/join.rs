//! The worker's side of `Controller.Join` (see proto/barrage.proto's header comment):
//!
//! ```text
//! connect (retry ≤ --connect-timeout, crate::dial) ─► Hello ─► Welcome | Reject (exit 3)
//! Ping ─► Pong (always)     Assignment ─► validate, build flow ─► Ready | WorkerError (exit 2)
//! Start ─► run at start_at + clock_offset ─► Snapshot / PointBatch every interval
//! Reassign ─► follow the new segment       Stop{graceful} / Abort ─► stop ─► Done ─► exit 0
//! schedule over by itself ─► Done ─► wait ≤ 10 s for Stop or end of stream ─► exit 0
//! stream error / EOF before Stop ─┐
//! no word (Ping, …) while running ├► stop all load (barrage_core::liveness) ─► Done{error} ─► exit 4
//! ```
//!
//! While running, the controller pings every `liveness::heartbeat(interval)`; a worker that
//! hears nothing for `liveness::worker_silence(interval)` gives up and stops its load within
//! `liveness::stop_bound(interval)`: strictly before the controller, which after
//! `liveness::controller_gives_up` of silence hands its share to the others. It still
//! tries to deliver its last figures (`Done` with an `error`), so a controller that was only
//! stalled loses nothing.
//!
//! "exit N" above is how one conversation ends ([`Ended`]); a worker with `--serve`
//! (`crate::serve`) goes on to the next run after a 0, and after a `Reject` that says
//! `retry` (the controller's run started without it, or is full).
//!
//! The outgoing half is an `mpsc` channel read by tonic through a `ReceiverStream`; the
//! incoming half is read in one `select!` with the run's end, so a broken stream is
//! noticed at once.
use crate::cli::JoinArgs;
use crate::clock::{unix_now_us, Clock};
use crate::dial::{connect_until, error_chain, hello, DialError, OUT_QUEUE};
use crate::executor::{Controls, ScenarioEngine};
use crate::interval::Tick;
use crate::registry::Registry;
use crate::rejoin::{rejoin_hello, Relay};
use crate::sample::Scenario;
use crate::session::{self, RunEnd, RunSpec};
use crate::{exit_code, pin};
use barrage_core::validity::WorkerHealth;
use barrage_core::{liveness, Plan, Secret, Segment, Snapshot};
use barrage_proto::pb::{self, controller_message::Msg as In, worker_message::Msg as Out};
use barrage_proto::{health_to_pb, segment_from_pb, snapshot_to_pb};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Duration, Instant};
use tokio_util::sync::CancellationToken;

/// After the schedule ended by itself and Done went out: how long to wait for the
/// controller's Stop or end of stream.
pub const AFTER_DONE_WAIT: Duration = Duration::from_secs(10);
/// A lost controller, load stopped: how long the run's end may take to come in after the
/// hard cancel, and then how long the last figures get to leave before the process exits.
pub const LOST_FLUSH: Duration = Duration::from_secs(1);

/// Builds the flow of an assignment; an `Err` is sent as a fatal `WorkerError`.
pub type MakeScenario<S> = dyn Fn(&Plan, &BTreeMap<String, Secret>) -> Result<S, String>;

/// The binary's join mode: runtime, pinning, the agent flow, the conversation.
pub fn run(args: JoinArgs) -> anyhow::Result<ExitCode> {
    let (runtime, local) = pin::vu_runtime(args.core)?;
    let make: Box<MakeScenario<crate::flow::AgentFlow>> = Box::new(|plan, secrets| {
        crate::flow::AgentFlow::new(plan, secrets).map_err(|e| e.to_string())
    });
    let code = match args.serve {
        Some(idle) => local.block_on(&runtime, crate::serve::serve(args, idle, &*make)),
        None => local.block_on(&runtime, converse(args, &*make)),
    };
    Ok(exit_code::code(code))
}

/// A failure that ends the conversation with an exit code.
struct Exit(u8);

/// How one conversation with a controller ended.
pub enum Ended {
    /// Exit with this code (0: the run is over).
    Code(u8),
    /// No controller answered at the address by the dial deadline.
    Unreachable { attempts: u32, failure: String },
    /// The controller did not take this worker into its run: a `Reject.retry` (the run
    /// started already, or is full), or, serving, a stream closed before any assignment
    /// (a finished run's controller shutting down); another run may.
    NotNow(String),
}

/// One assignment, validated.
struct Assigned<S> {
    plan: Rc<Plan>,
    /// One per scenario of the plan, each with its flow.
    scenarios: Vec<ScenarioEngine<S>>,
    segment: Segment,
    clock: Clock,
    raw_points: bool,
    plan_hash: String,
    /// Soak runs: how long the load keeps running without the controller (0: it stops).
    rejoin_grace: Duration,
    rejoin_keep: usize,
}

/// A run in progress.
struct Running {
    segment: watch::Sender<Segment>,
    stop: watch::Sender<Option<Duration>>,
    hard: CancellationToken,
    done: oneshot::Receiver<RunEnd>,
    grace: Duration,
    /// No word from the controller for this long: it is lost.
    silence: Duration,
    /// A lost controller: running iterations get this long, then are cancelled.
    stop_bound: Duration,
    /// Soak runs: how long the load keeps running without the controller.
    rejoin_grace: Duration,
    start_at_us: i64,
}

/// Talks to the controller (dialling it for `--connect-timeout`) until the run is over;
/// returns the exit code.
pub async fn converse<S: Scenario + 'static>(args: JoinArgs, make: &MakeScenario<S>) -> u8 {
    match conversation(&args, make, Instant::now() + args.connect_timeout).await {
        Ended::Code(code) => code,
        Ended::Unreachable { attempts, failure } => {
            barrage_core::errln!(
                "barrage-worker: cannot reach the controller at {} after {attempts} attempts ({failure}); check the address or raise --connect-timeout",
                args.controller
            );
            exit_code::LOST_CONTROLLER
        }
        Ended::NotNow(reason) => {
            barrage_core::errln!("barrage-worker: rejected by the controller: {reason}");
            exit_code::REJECTED
        }
    }
}

/// One conversation: dials the controller until `dial_deadline`, then takes part in its
/// run to the end.
pub async fn conversation<S: Scenario + 'static>(
    args: &JoinArgs,
    make: &MakeScenario<S>,
    dial_deadline: Instant,
) -> Ended {
    match converse_inner(args, make, dial_deadline).await {
        Ok(ended) => ended,
        Err(Exit(code)) => Ended::Code(code),
    }
}

fn msg(m: Out) -> pb::WorkerMessage {
    pb::WorkerMessage { msg: Some(m) }
}

async fn send(tx: &mpsc::Sender<pb::WorkerMessage>, m: Out) -> Result<(), Exit> {
    match timeout(Duration::from_secs(5), tx.send(msg(m))).await {
        Ok(Ok(())) => Ok(()),
        _ => {
            barrage_core::errln!("barrage-worker: lost the controller (cannot send)");
            Err(Exit(exit_code::LOST_CONTROLLER))
        }
    }
}

/// Sends a fatal `WorkerError`, half-closes and waits (≤ 2 s) for the controller to end
/// the stream, so the message is on the wire before the process exits with 2.
async fn fatal(
    tx: mpsc::Sender<pb::WorkerMessage>,
    mut inbound: tonic::Streaming<pb::ControllerMessage>,
    message: String,
) -> Exit {
    barrage_core::errln!("barrage-worker: {message}");
    let _ = send(
        &tx,
        Out::Error(pb::WorkerError {
            message,
            fatal: true,
        }),
    )
    .await;
    drop(tx);
    let drained = async { while let Ok(Some(_)) = inbound.message().await {} };
    let _ = timeout(Duration::from_secs(2), drained).await;
    Exit(exit_code::CONFIG)
}

/// A wire snapshot carrying the worker's health over its interval.
fn with_health(mut p: pb::Snapshot, health: &WorkerHealth) -> pb::Snapshot {
    p.health = Some(health_to_pb(health));
    p
}

/// `Done` with the run's last figures; `None`: stopped before any run.
fn done_msg(end: Option<&RunEnd>, error: String) -> Out {
    let (iterations, dropped) = end.map_or((0, 0), |e| (e.totals.iterations, e.totals.dropped));
    let empty = Snapshot::default();
    let last = match snapshot_to_pb(end.map_or(&empty, |e| &e.last)) {
        Ok(s) => Some(match end {
            Some(e) => with_health(s, &e.last_health),
            None => s,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "the last snapshot does not encode; sending Done without it");
            None
        }
    };
    Out::Done(pb::Done {
        last,
        iterations,
        dropped_iterations: dropped,
        error,
    })
}

/// Why an assignment cannot be run (sent to the controller as a fatal `WorkerError`, with
/// its sources: see [`error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    #[error("bad assignment: the plan does not decode")]
    Plan(#[source] barrage_core::PlanError),
    #[error("bad assignment: plan_hash {sent} does not match the plan's hash {computed}; controller and worker disagree on the plan encoding (same barrage version on both?)")]
    Hash { sent: String, computed: String },
    #[error("bad assignment: the segment")]
    Segment(#[source] barrage_proto::WireError),
    #[error("bad assignment: the flow cannot start: {0}")]
    Flow(String),
}

fn validate<S>(a: &pb::Assignment, make: &MakeScenario<S>) -> Result<Assigned<S>, AssignmentError> {
    let plan = Plan::from_json_str(&a.plan_json).map_err(AssignmentError::Plan)?;
    if plan.hash() != a.plan_hash {
        return Err(AssignmentError::Hash {
            sent: a.plan_hash.clone(),
            computed: plan.hash(),
        });
    }
    let segment = segment_from_pb(a.segment.as_ref()).map_err(AssignmentError::Segment)?;
    let secrets: BTreeMap<String, Secret> = a
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
        .collect();
    let named = plan.has_named_scenarios();
    let scenarios =
        crate::executor::engines(&plan, |p| make(p, &secrets)).map_err(|(name, e)| {
            AssignmentError::Flow(if named {
                format!("scenario {name}: {e}")
            } else {
                e
            })
        })?;
    Ok(Assigned {
        plan: Rc::new(plan),
        scenarios,
        segment,
        clock: Clock::new(a.clock_offset_us),
        raw_points: a.raw_points,
        plan_hash: a.plan_hash.clone(),
        rejoin_grace: Duration::from_millis(u64::from(a.rejoin_grace_ms)),
        rejoin_keep: a.rejoin_keep_snapshots as usize,
    })
}

fn start_run<S: Scenario + 'static>(
    a: &Assigned<S>,
    start_at_us: i64,
    tx: &mpsc::Sender<pb::WorkerMessage>,
    root: &CancellationToken,
) -> Running {
    let start = a.clock.instant_at(start_at_us);
    let registry = Rc::new(Registry::new(&a.plan.tags));
    let points_ready = a.raw_points.then(|| registry.enable_raw_points(a.clock));
    let (segment_tx, segment) = watch::channel(a.segment);
    let (stop_tx, stop) = watch::channel(None);
    let hard = root.child_token();
    let spec = RunSpec {
        plan: a.plan.clone(),
        scenarios: a.scenarios.clone(),
        registry,
        clock: a.clock,
        start,
        controls: Controls {
            segment,
            stop,
            hard: hard.clone(),
        },
        points_ready,
    };
    let (done_tx, done) = oneshot::channel();
    let out = tx.clone();
    tracing::info!(
        in_ms = start.saturating_duration_since(Instant::now()).as_millis() as u64,
        segment = %a.segment,
        "run scheduled"
    );
    tokio::task::spawn_local(async move {
        let end = session::execute(spec, |tick| {
            let m = match tick {
                Tick::Snapshot(s, health) => match snapshot_to_pb(&s) {
                    Ok(p) => Out::Snapshot(with_health(p, &health)),
                    Err(e) => {
                        tracing::warn!(error = %e, seq = s.seq, "snapshot does not encode; skipped");
                        return;
                    }
                },
                Tick::Points(points) => Out::Points(pb::PointBatch {
                    points: points.into_iter().map(barrage_proto::point_to_pb).collect(),
                }),
            };
            if let Err(e) = out.try_send(msg(m)) {
                tracing::warn!(error = %e, "the controller is not reading; a snapshot was dropped");
            }
        })
        .await;
        let _ = done_tx.send(end);
    });
    Running {
        segment: segment_tx,
        stop: stop_tx,
        hard,
        done,
        grace: a.plan.graceful_stop,
        // a soak's worker waits for its controller as long as the grace (it dials again
        // as soon as its stream breaks; silence alone ends the wait only at the grace)
        silence: liveness::worker_silence(a.plan.interval).max(a.rejoin_grace),
        stop_bound: liveness::stop_bound(a.plan.interval),
        rejoin_grace: a.rejoin_grace,
        start_at_us,
    }
}

async fn converse_inner<S: Scenario + 'static>(
    args: &JoinArgs,
    make: &MakeScenario<S>,
    dial_deadline: Instant,
) -> Result<Ended, Exit> {
    let (mut tx, mut inbound) = match connect_until(args, hello(args), dial_deadline).await {
        Ok(c) => c,
        Err(DialError::Fatal(code)) => return Err(Exit(code)),
        Err(DialError::Unreachable { attempts, failure }) => {
            return Ok(Ended::Unreachable { attempts, failure })
        }
    };
    // the run task's snapshots go through the relay to whichever stream is current
    let (relay_tx, mut relay) = Relay::new(OUT_QUEUE);
    let mut worker_id = String::new();
    let root = CancellationToken::new();
    let mut assigned: Option<Assigned<S>> = None;
    let mut running: Option<Running> = None;
    let mut stop_asked = false;
    // when the controller last said anything (a run's watchdog counts from here)
    let mut last_word = Instant::now();
    loop {
        let watchdog = running.as_ref().map(|r| last_word + r.silence);
        let next = async {
            match running.as_mut() {
                Some(r) => (&mut r.done).await.ok(),
                None => std::future::pending().await,
            }
        };
        let silent = async {
            match watchdog {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            end = next => {
                let end = end.ok_or(Exit(exit_code::FAILURE))?;
                // the run's last snapshots go out before its Done
                while let Some(m) = relay.try_recv() {
                    let _ = tx.try_send(relay.remember(m));
                }
                tracing::info!(iterations = end.totals.iterations, dropped = end.totals.dropped, "run over; sending Done");
                send(&tx, done_msg(Some(&end), String::new())).await?;
                return Ok(Ended::Code(finish(tx, inbound, stop_asked).await));
            }
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(pb::ControllerMessage { msg: Some(m) })) => m,
                    Ok(Some(_)) => { last_word = Instant::now(); continue } // an empty oneof
                    Ok(None) | Err(_) => {
                        let why = match m { Err(s) => s.to_string(), _ => "end of stream".into() };
                        let grace = running.as_ref().map_or(Duration::ZERO, |r| r.rejoin_grace);
                        if let (Some(r), Some(a)) = (running.as_ref().filter(|_| grace > Duration::ZERO), assigned.as_ref()) {
                            tracing::warn!(reason = %why, grace_ms = grace.as_millis() as u64, "lost the controller; the load goes on while dialling it again");
                            let again = rejoin_hello(hello(args), pb::Rejoin {
                                worker_id: worker_id.clone(),
                                plan_hash: a.plan_hash.clone(),
                                start_at_unix_us: r.start_at_us,
                            });
                            let dial = connect_until(args, again, last_word + grace);
                            tokio::pin!(dial);
                            let back = loop {
                                tokio::select! {
                                    back = &mut dial => break back,
                                    Some(m) = relay.recv() => { relay.remember(m); }
                                }
                            };
                            if let Ok((t, i)) = back {
                                (tx, inbound) = (t, i);
                                last_word = Instant::now();
                                let kept: Vec<_> = relay.kept().cloned().collect();
                                tracing::info!(resent = kept.len(), "rejoined the controller");
                                for m in kept {
                                    if timeout(Duration::from_secs(5), tx.send(m)).await.is_err() {
                                        break;
                                    }
                                }
                                continue;
                            }
                        }
                        if args.serve.is_some() && assigned.is_none() {
                            // nothing ran: a finished run's controller shutting down
                            return Ok(Ended::NotNow(format!("the controller closed the stream before assigning a share ({why})")));
                        }
                        return Err(lost(&why, running.take(), &root, tx, None).await);
                    }
                };
                last_word = Instant::now();
                match m {
                    In::Welcome(w) => {
                        tracing::info!(worker = %w.worker_id, interval_ms = w.interval_ms, controller = %w.controller_version, "welcomed");
                        worker_id = w.worker_id;
                    }
                    In::Reject(r) if r.retry && assigned.is_none() => return Ok(Ended::NotNow(r.reason)),
                    In::Reject(r) => {
                        barrage_core::errln!("barrage-worker: rejected by the controller: {}", r.reason);
                        return Err(Exit(exit_code::REJECTED));
                    }
                    In::Ping(p) => {
                        send(&tx, Out::Pong(pb::Pong { seq: p.seq, controller_time_us: p.controller_time_us, worker_time_us: unix_now_us() })).await?;
                    }
                    In::Assignment(a) => {
                        if running.is_some() {
                            return Err(fatal(tx, inbound, "protocol: an Assignment arrived during a run".into()).await);
                        }
                        match validate(&a, make) {
                            Ok(x) => {
                                tracing::info!(plan = %x.plan.name, hash = %a.plan_hash, segment = %x.segment, offset_us = a.clock_offset_us, "assignment accepted");
                                relay.keep(x.rejoin_keep);
                                send(&tx, Out::Ready(pb::Ready { plan_hash: a.plan_hash.clone() })).await?;
                                assigned = Some(x);
                            }
                            Err(e) => return Err(fatal(tx, inbound, error_chain(&e)).await),
                        }
                    }
                    In::Start(s) => {
                        let Some(a) = assigned.as_ref() else {
                            return Err(fatal(tx, inbound, "protocol: Start arrived before an Assignment".into()).await);
                        };
                        if running.is_none() {
                            running = Some(start_run(a, s.start_at_unix_us, &relay_tx, &root));
                        }
                    }
                    In::Reassign(r) => match segment_from_pb(r.segment.as_ref()) {
                        Ok(seg) => {
                            tracing::info!(segment = %seg, remaining = r.remaining_count, ids = ?r.remaining, "reassigned");
                            if let Some(a) = assigned.as_mut() { a.segment = seg; }
                            if let Some(run) = &running { let _ = run.segment.send(seg); }
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring a Reassign with a bad segment"),
                    },
                    In::Stop(s) => {
                        stop_asked = true;
                        tracing::info!(reason = %s.reason, graceful = s.graceful, "stop");
                        match &running {
                            Some(run) => { let _ = run.stop.send(Some(if s.graceful { run.grace } else { Duration::ZERO })); }
                            None => {
                                send(&tx, done_msg(None, String::new())).await?;
                                return Ok(Ended::Code(finish(tx, inbound, true).await));
                            }
                        }
                    }
                    In::Abort(a) => {
                        stop_asked = true;
                        tracing::warn!(reason = %a.reason, "abort");
                        match &running {
                            Some(run) => { let _ = run.stop.send(Some(Duration::ZERO)); run.hard.cancel(); }
                            None => {
                                send(&tx, done_msg(None, String::new())).await?;
                                return Ok(Ended::Code(finish(tx, inbound, true).await));
                            }
                        }
                    }
                }
            }
            Some(m) = relay.recv() => {
                let m = relay.remember(m);
                if let Err(e) = tx.try_send(m) {
                    tracing::warn!(error = %e, "the controller is not reading; a snapshot was dropped");
                }
            }
            _ = silent => {
                let why = format!(
                    "no word from the controller for {} ms while running",
                    running.as_ref().map_or(0, |r| r.silence.as_millis())
                );
                return Err(lost(&why, running.take(), &root, tx, Some(inbound)).await);
            }
        }
    }
}

/// After Done: half-close our stream and wait (bounded) for the controller's Stop or the
/// end of its stream.
async fn finish(
    tx: mpsc::Sender<pb::WorkerMessage>,
    mut inbound: tonic::Streaming<pb::ControllerMessage>,
    stop_asked: bool,
) -> u8 {
    drop(tx);
    let wait = async {
        loop {
            match inbound.message().await {
                Ok(Some(pb::ControllerMessage {
                    msg: Some(In::Stop(_) | In::Abort(_)),
                })) if !stop_asked => return,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    };
    if timeout(AFTER_DONE_WAIT, wait).await.is_err() {
        tracing::info!("the controller neither stopped us nor closed the stream; exiting anyway");
    }
    exit_code::SUCCESS
}

/// The controller is gone (or silent): stop all load within the run's stop bound (grace,
/// then hard cancel), try to deliver the last figures as a `Done` that says why (a
/// controller that was only stalled reads them when it resumes), and exit 4.
async fn lost(
    why: &str,
    running: Option<Running>,
    root: &CancellationToken,
    tx: mpsc::Sender<pb::WorkerMessage>,
    inbound: Option<tonic::Streaming<pb::ControllerMessage>>,
) -> Exit {
    tracing::error!(reason = why, "lost the controller; stopping all load");
    barrage_core::errln!("barrage-worker: lost the controller ({why}); stopping all load");
    if let Some(mut run) = running {
        let _ = run.stop.send(Some(run.stop_bound.min(run.grace)));
        let end = match timeout(run.stop_bound, &mut run.done).await {
            Ok(end) => end.ok(),
            Err(_) => {
                run.hard.cancel();
                tracing::warn!("load still running at the stop bound; cancelled hard");
                timeout(LOST_FLUSH, run.done)
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        root.cancel();
        if let Some(end) = end {
            let error = format!("lost the controller ({why}); load stopped early");
            let done = done_msg(Some(&end), error);
            if tx.try_send(msg(done)).is_ok() {
                // half-close, then give the message a bounded chance to leave
                drop(tx);
                if let Some(mut inbound) = inbound {
                    let drained = async { while let Ok(Some(_)) = inbound.message().await {} };
                    let _ = timeout(LOST_FLUSH, drained).await;
                }
            }
        }
    }
    root.cancel();
    Exit(exit_code::LOST_CONTROLLER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::Profile;

    fn assignment() -> pb::Assignment {
        let plan = Plan::profile(Profile::Smoke);
        pb::Assignment {
            plan_json: plan.to_json(),
            plan_hash: plan.hash(),
            segment: Some(barrage_proto::segment_to_pb(Segment::FULL)),
            ..Default::default()
        }
    }

    #[test]
    fn an_assignment_is_checked_field_by_field() {
        let ok: &MakeScenario<()> = &|_, _| Ok(());
        assert!(validate(&assignment(), ok).is_ok());

        let mut a = assignment();
        a.plan_hash = "feed".into();
        let e = validate(&a, ok).err().unwrap();
        assert!(
            matches!(&e, AssignmentError::Hash { sent, .. } if sent == "feed"),
            "{e}"
        );
        assert!(e.to_string().contains("same barrage version"), "{e}");

        let mut a = assignment();
        a.plan_json = "{".into();
        let e = validate(&a, ok).err().unwrap();
        assert!(matches!(e, AssignmentError::Plan(_)), "{e}");
        // the source says what is wrong with the JSON
        assert!(error_chain(&e).contains("plan JSON"), "{}", error_chain(&e));

        let mut a = assignment();
        a.segment = None;
        let e = validate(&a, ok).err().unwrap();
        assert!(matches!(e, AssignmentError::Segment(_)), "{e}");
        assert!(error_chain(&e).contains("segment"), "{}", error_chain(&e));

        let no_flow: &MakeScenario<()> = &|_, _| Err("no such secret: api_key".into());
        let e = validate(&assignment(), no_flow).err().unwrap();
        assert_eq!(
            e.to_string(),
            "bad assignment: the flow cannot start: no such secret: api_key"
        );
    }
}
