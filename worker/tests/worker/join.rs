//! The worker binary against a fake controller: a tonic server on 127.0.0.1:0 that
//! speaks proto/barrage.proto's conversation from a script and records what it gets.
use crate::harness::{temp_file, Target, Worker};
use barrage_core::{ExecutorConfig, Plan, Profile, Sink, Snapshot};
use barrage_proto::pb::{self, controller_message::Msg as C, worker_message::Msg as W};
use barrage_proto::{segment_to_pb, snapshot_from_pb, Controller, ControllerServer};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const TOKEN: &str = "test-token-123";
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
enum Script {
    /// `Reject{reason, retry}` to every Hello.
    Reject(String, bool),
    /// Welcome, Ping, Assignment (hash tampered when asked), Start in 300 ms, then a Ping
    /// every `liveness::heartbeat` while the heartbeat is on.
    Run { plan: Box<Plan>, bad_hash: bool },
}

/// The fake controller's sending half toward the worker, once the worker joined.
type ToWorker = Arc<Mutex<Option<mpsc::Sender<Result<pb::ControllerMessage, Status>>>>>;

#[derive(Default)]
struct Log {
    got: Vec<(Instant, W)>,
}

struct Fake {
    script: Script,
    log: Arc<Mutex<Log>>,
    to_worker: ToWorker,
    /// Off: the controller stays connected but says nothing (a stall, a silent partition).
    heartbeat: Arc<AtomicBool>,
}

fn cm(m: C) -> Result<pb::ControllerMessage, Status> {
    Ok(pb::ControllerMessage { msg: Some(m) })
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tonic::async_trait]
impl Controller for Fake {
    type JoinStream = ReceiverStream<Result<pb::ControllerMessage, Status>>;

    async fn join(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        let auth = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {TOKEN}")) {
            return Err(Status::unauthenticated("wrong or missing worker token"));
        }
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        *self.to_worker.lock().unwrap() = Some(tx.clone());
        let (script, log) = (self.script.clone(), self.log.clone());
        let heartbeat = self.heartbeat.clone();
        tokio::spawn(async move {
            async fn recv(
                inbound: &mut Streaming<pb::WorkerMessage>,
                log: &Mutex<Log>,
            ) -> Option<W> {
                let m = inbound.message().await.ok().flatten()?.msg?;
                log.lock().unwrap().got.push((Instant::now(), m.clone()));
                Some(m)
            }
            macro_rules! next {
                () => {
                    recv(&mut inbound, &log).await
                };
            }
            let Some(W::Hello(_)) = next!() else { return };
            let plan = match script {
                Script::Reject(reason, retry) => {
                    let _ = tx.send(cm(C::Reject(pb::Reject { reason, retry }))).await;
                    return;
                }
                Script::Run { plan, bad_hash } => (*plan, bad_hash),
            };
            let _ = tx
                .send(cm(C::Welcome(pb::Welcome {
                    worker_id: "w-1".into(),
                    interval_ms: 1000,
                    controller_version: "test".into(),
                })))
                .await;
            let _ = tx
                .send(cm(C::Ping(pb::Ping {
                    seq: 1,
                    controller_time_us: now_us(),
                })))
                .await;
            let Some(W::Pong(_)) = next!() else { return };
            let (plan, bad_hash) = plan;
            let every = barrage_core::liveness::heartbeat(plan.interval);
            let hash = if bad_hash {
                "0000000000000000".into()
            } else {
                plan.hash()
            };
            let assignment = pb::Assignment {
                plan_json: plan.to_json(),
                plan_hash: hash,
                segment: Some(segment_to_pb(barrage_core::Segment::FULL)),
                clock_offset_us: 0,
                raw_points: false,
                secrets: Default::default(),
                ..Default::default()
            };
            let _ = tx.send(cm(C::Assignment(assignment))).await;
            match next!() {
                Some(W::Ready(_)) => {}
                _ => {
                    while next!().is_some() {}
                    return;
                }
            }
            let _ = tx
                .send(cm(C::Start(pb::Start {
                    start_at_unix_us: now_us() + 300_000,
                })))
                .await;
            let mut beat = tokio::time::interval(every);
            loop {
                tokio::select! {
                    m = recv(&mut inbound, &log) => if m.is_none() { break },
                    _ = beat.tick() => {
                        if heartbeat.load(Relaxed) {
                            let ping = pb::Ping { seq: 0, controller_time_us: now_us() };
                            let _ = tx.send(cm(C::Ping(ping))).await;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The fake controller on its own runtime; dropping `rt` makes it vanish abruptly.
struct FakeController {
    url: String,
    log: Arc<Mutex<Log>>,
    to_worker: ToWorker,
    heartbeat: Arc<AtomicBool>,
    rt: Option<tokio::runtime::Runtime>,
}

impl FakeController {
    fn start(script: Script) -> FakeController {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let to_worker = Arc::new(Mutex::new(None));
        let heartbeat = Arc::new(AtomicBool::new(true));
        let fake = Fake {
            script,
            log: log.clone(),
            to_worker: to_worker.clone(),
            heartbeat: heartbeat.clone(),
        };
        let url = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(ControllerServer::new(fake))
                    .serve_with_incoming(TcpListenerStream::new(listener)),
            );
            url
        });
        FakeController {
            url,
            log,
            to_worker,
            heartbeat,
            rt: Some(rt),
        }
    }

    fn send(&self, m: C) {
        let tx = self
            .to_worker
            .lock()
            .unwrap()
            .clone()
            .expect("a worker joined");
        self.rt
            .as_ref()
            .unwrap()
            .block_on(async { tx.send(cm(m)).await.unwrap() });
    }

    fn snapshots(&self) -> Vec<Snapshot> {
        self.log
            .lock()
            .unwrap()
            .got
            .iter()
            .filter_map(|(_, m)| match m {
                W::Snapshot(s) => Some(snapshot_from_pb(s).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn done(&self) -> Option<pb::Done> {
        self.log
            .lock()
            .unwrap()
            .got
            .iter()
            .find_map(|(_, m)| match m {
                W::Done(d) => Some(d.clone()),
                _ => None,
            })
    }

    fn got(&self, pred: impl Fn(&W) -> bool) -> bool {
        self.log.lock().unwrap().got.iter().any(|(_, m)| pred(m))
    }

    /// Waits until `pred` holds (bounded; the one wait of `barrage_testkit`).
    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&FakeController) -> bool) {
        barrage_testkit::wait_for(what, limit, || pred(self).then_some(()));
    }

    /// Goes silent: stays connected, reads everything, says nothing.
    fn stall(&self) {
        self.heartbeat.store(false, Relaxed);
    }

    /// Vanishes: every connection dropped at once.
    fn vanish(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn constant_plan(url: &str, vus: u64, secs: u64) -> Plan {
    let mut p = Plan::profile(Profile::Smoke);
    p.target.url = url.into();
    p.scenario = ExecutorConfig::ConstantVus {
        vus,
        duration: Duration::from_secs(secs),
    };
    p.thresholds.clear();
    p.graceful_stop = Duration::from_secs(5);
    p.validate().unwrap();
    p
}

fn http_reqs(s: &Snapshot) -> f64 {
    match s.submetric("http_reqs", &[]) {
        Some(Sink::Counter(c)) => c.sum,
        _ => 0.0,
    }
}

fn spawn_worker(
    ctl: &FakeController,
    token: &str,
) -> (Worker, crate::harness::tempfile_path::TempPath) {
    let token_file = temp_file(&format!("  {token}\n"), ".token");
    let w = Worker::spawn(
        &[
            "--controller",
            &ctl.url,
            "--token-file",
            token_file.as_str(),
            "--name",
            "t1",
        ],
        &[],
    );
    (w, token_file)
}

#[test]
fn snapshots_every_interval_then_stop_done_and_exit_0() {
    let target = Target::start();
    let before = target.requests_total();
    let ctl = FakeController::start(Script::Run {
        plan: Box::new(constant_plan(&target.url, 2, 30)),
        bad_hash: false,
    });
    let (w, _tf) = spawn_worker(&ctl, TOKEN);
    ctl.wait_for("3 snapshots", Duration::from_secs(20), |c| {
        c.snapshots().len() >= 3
    });
    ctl.send(C::Stop(pb::Stop {
        reason: "test".into(),
        graceful: true,
    }));
    let out = w.wait(LIMIT);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let snaps = ctl.snapshots();
    for (i, s) in snaps.iter().enumerate() {
        assert_eq!(s.seq, i as u64, "seq in order");
        assert_eq!(s.interval_ms, 1000);
        assert_eq!(s.vus_max, 2);
    }
    for w in snaps.windows(2) {
        assert_eq!(w[1].interval_start_us - w[0].interval_start_us, 1_000_000);
    }
    // the snapshots arrive about one interval apart
    let times: Vec<Instant> = ctl
        .log
        .lock()
        .unwrap()
        .got
        .iter()
        .filter(|(_, m)| matches!(m, W::Snapshot(_)))
        .map(|(t, _)| *t)
        .collect();
    // (no upper bound: how late a snapshot may be is a performance matter, see bench/)
    for w in times.windows(2) {
        let gap = (w[1] - w[0]).as_secs_f64();
        assert!(gap >= 0.7, "snapshot gap {gap}");
    }
    let done = ctl
        .done()
        .unwrap_or_else(|| panic!("no Done\n{}", out.show()));
    let last = snapshot_from_pb(done.last.as_ref().unwrap()).unwrap();
    let mut total = Snapshot::default();
    for s in snaps.iter().chain([&last]) {
        total += s;
    }
    let iterations = match total.submetric("iterations", &[]) {
        Some(Sink::Counter(c)) => c.sum as u64,
        _ => 0,
    };
    assert_eq!(done.iterations, iterations);
    assert!(http_reqs(&total) > 10.0);
    assert_eq!(
        http_reqs(&total) as u64,
        target.requests_total() - before,
        "{}",
        out.show()
    );
    // Hello carried the version and the name
    assert!(ctl.got(|m| matches!(m, W::Hello(h) if h.protocol == barrage_core::PROTOCOL && h.version == barrage_core::VERSION && h.name == "t1")));
    assert!(
        !out.stderr.contains(TOKEN),
        "the token must never be logged"
    );
}

#[test]
fn rejected_or_unauthenticated_exits_3() {
    let ctl = FakeController::start(Script::Reject(
        "version mismatch: controller 9.9".into(),
        false,
    ));
    let (w, _tf) = spawn_worker(&ctl, TOKEN);
    let out = w.wait(LIMIT);
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert!(
        out.stderr.contains("version mismatch: controller 9.9"),
        "{}",
        out.show()
    );

    let target_plan = constant_plan("http://127.0.0.1:9", 1, 1);
    let ctl = FakeController::start(Script::Run {
        plan: Box::new(target_plan),
        bad_hash: false,
    });
    let (w, _tf) = spawn_worker(&ctl, "wrong-token");
    let out = w.wait(LIMIT);
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert!(!out.stderr.contains("wrong-token"), "{}", out.show());
}

fn hellos(ctl: &FakeController) -> usize {
    let log = ctl.log.lock().unwrap();
    log.got
        .iter()
        .filter(|(_, m)| matches!(m, W::Hello(_)))
        .count()
}

/// `--serve` waits out a `Reject{retry}` (the run started without it: the next may take
/// it), dialling again until its deadline; a `Reject` without `retry` ends it at once.
#[test]
fn a_serving_worker_dials_again_after_a_retry_reject_only() {
    let token = temp_file(&format!("{TOKEN}\n"), ".token");
    let serve = |ctl: &FakeController| {
        Worker::spawn(
            &[
                "--controller",
                &ctl.url,
                "--token-file",
                token.as_str(),
                "--serve",
                "--connect-timeout",
                "2s",
            ],
            &[],
        )
        .wait(LIMIT)
    };
    let ctl = FakeController::start(Script::Reject("the run has already started".into(), true));
    let out = serve(&ctl);
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert!(out.took >= Duration::from_secs(2), "{}", out.show());
    assert!(hellos(&ctl) >= 3, "{} Hellos\n{}", hellos(&ctl), out.show());
    assert!(
        out.stderr
            .contains("rejected by the controller: the run has already started"),
        "{}",
        out.show()
    );
    let ctl = FakeController::start(Script::Reject("protocol mismatch".into(), false));
    let out = serve(&ctl);
    assert_eq!(out.code(), Some(3), "{}", out.show());
    assert_eq!(hellos(&ctl), 1, "{}", out.show());
}

#[test]
fn a_bad_assignment_sends_a_fatal_error_and_exits_2() {
    let ctl = FakeController::start(Script::Run {
        plan: Box::new(constant_plan("http://127.0.0.1:9", 1, 1)),
        bad_hash: true,
    });
    let (w, _tf) = spawn_worker(&ctl, TOKEN);
    let out = w.wait(LIMIT);
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        ctl.got(|m| matches!(m, W::Error(e) if e.fatal && e.message.contains("plan_hash"))),
        "{}",
        out.show()
    );
}

#[test]
fn a_vanished_controller_stops_the_load_within_5_s_and_exits_4() {
    let target = Target::start();
    let mut ctl = FakeController::start(Script::Run {
        plan: Box::new(constant_plan(&target.url, 3, 60)),
        bad_hash: false,
    });
    let (mut w, _tf) = spawn_worker(&ctl, TOKEN);
    ctl.wait_for("2 snapshots", Duration::from_secs(20), |c| {
        c.snapshots().len() >= 2
    });
    let gone = Instant::now();
    ctl.vanish();
    while !w.exited() {
        assert!(
            gone.elapsed() < Duration::from_secs(6),
            "worker still running 6 s after losing its controller"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = w.wait(LIMIT);
    assert!(
        gone.elapsed() <= Duration::from_secs(5),
        "took {:?}\n{}",
        gone.elapsed(),
        out.show()
    );
    assert_eq!(out.code(), Some(4), "{}", out.show());
    let after_exit = target.requests_total();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        target.requests_total(),
        after_exit,
        "requests after the worker exited"
    );
}

/// Issue 14 §4: a controller that stays connected but says nothing (stalled, or cut off by
/// a silent partition). The worker stops its load before the controller would hand its
/// share to others (`liveness::controller_gives_up`), still offers its last figures as a
/// `Done` that says why, and exits 4.
#[test]
fn a_silent_controller_is_given_up_before_it_would_reassign() {
    let target = Target::start();
    let mut ctl = FakeController::start(Script::Run {
        plan: Box::new(constant_plan(&target.url, 3, 60)),
        bad_hash: false,
    });
    let (w, _tf) = spawn_worker(&ctl, TOKEN);
    ctl.wait_for("2 snapshots", Duration::from_secs(20), |c| {
        c.snapshots().len() >= 2
    });
    ctl.stall();
    let stalled = Instant::now();
    ctl.wait_for("Done", Duration::from_secs(10), |c| c.done().is_some());
    let done_at = ctl
        .log
        .lock()
        .unwrap()
        .got
        .iter()
        .find(|(_, m)| matches!(m, W::Done(_)))
        .map(|(t, _)| *t)
        .unwrap();
    let reassign_after = barrage_core::liveness::controller_gives_up(Duration::from_secs(1));
    assert!(
        done_at - stalled < reassign_after,
        "load stopped {:?} after the controller went silent; it would reassign after {reassign_after:?}",
        done_at - stalled
    );
    let done = ctl.done().unwrap();
    assert!(done.error.contains("lost the controller"), "{done:?}");
    // the Done's figures complete the snapshots: every request the target saw is counted
    let out = w.wait(LIMIT);
    assert_eq!(out.code(), Some(4), "{}", out.show());
    let mut all = ctl.snapshots();
    all.extend(done.last.as_ref().map(|s| snapshot_from_pb(s).unwrap()));
    let counted: f64 = all
        .iter()
        .filter_map(|s| match s.submetric("http_reqs", &[]) {
            Some(Sink::Counter(c)) => Some(c.sum),
            _ => None,
        })
        .sum();
    assert_eq!(counted as u64, target.requests_total(), "{}", out.show());
    ctl.vanish();
}

#[test]
fn a_schedule_that_ends_by_itself_sends_done_then_exits_0_on_end_of_stream() {
    let target = Target::start();
    let ctl = FakeController::start(Script::Run {
        plan: Box::new(constant_plan(&target.url, 1, 1)),
        bad_hash: false,
    });
    let (w, _tf) = spawn_worker(&ctl, TOKEN);
    ctl.wait_for("Done", Duration::from_secs(30), |c| c.done().is_some());
    // the controller answers Done by ending its stream
    *ctl.to_worker.lock().unwrap() = None;
    let out = w.wait(LIMIT);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(ctl.done().unwrap().iterations >= 1);
}
