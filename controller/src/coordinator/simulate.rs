//! Simulated workers: real gRPC `Join` streams, many from one process (tasks, not
//! processes), that speak the worker's side of the protocol and send realistic snapshots
//! every interval without generating any load. A fleet of a thousand real workers needs a
//! thousand cores; the controller cannot tell these from real ones, so its join, clock,
//! start, merge, liveness and rebalancing are exercised at fleet size on one host (the
//! fleet bench, `bench/controller/fleet.rs`, and the fleet integration test).
//!
//! Each simulated worker records what a user would check: when it was welcomed, the
//! `Start` it got (and when), what it sent (so the merged totals can be compared), and
//! when it saw a `Reassign` or the end of its stream.
use barrage_core::metrics::builtin;
use barrage_core::{MetricKind, Plan, SeriesKey, Snapshot};
use barrage_proto::pb::{
    self, controller_message::Msg as In, worker_message::Msg as Out, ControllerMessage,
};
use barrage_proto::{snapshot_to_pb, ControllerClient, AUTH_METADATA, MAX_MESSAGE_BYTES};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// How many series [`realistic_snapshot`] holds: the fleet target's figure.
pub const SERIES: usize = 100;
/// Samples per trend series per interval in [`realistic_snapshot`].
const SAMPLES: usize = 40;

/// What a simulated worker does after the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sends every interval's snapshot, then `Done`.
    Normal,
    /// After the snapshot of this interval, sends nothing more but keeps its stream open
    /// (a hung worker: only liveness can notice it).
    Silent { after_seq: u64 },
    /// After the snapshot of this interval, drops its stream (a killed worker).
    Killed { after_seq: u64 },
}

/// Where and how simulated workers join.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `http://host:port` of the controller.
    pub controller: String,
    pub token: Option<String>,
    /// How long to keep trying to reach the controller.
    pub connect_timeout: Duration,
}

/// What one simulated worker saw and sent.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// When `Welcome` arrived (µs since the Unix epoch): the worker has joined.
    pub welcomed_us: Option<i64>,
    /// The `Start` it received: stage time 0 (µs since the Unix epoch).
    pub start_at_us: Option<i64>,
    /// When that `Start` arrived.
    pub start_received_us: Option<i64>,
    /// Snapshots sent (`Done` not included).
    pub snapshots: u64,
    /// Sums of what it sent: `http_reqs`, `iterations`, and samples of
    /// `http_req_duration` (all operations).
    pub http_reqs: f64,
    pub iterations: f64,
    pub duration_samples: u64,
    /// When it sent its last snapshot.
    pub last_sent_us: Option<i64>,
    /// When each `Reassign` arrived.
    pub reassigned_us: Vec<i64>,
    /// Each `Reassign`'s count of the workers left, and how many of them it named.
    pub reassigned_left: Vec<(u32, usize)>,
    /// When its stream from the controller ended (or broke).
    pub ended_us: Option<i64>,
    pub done_sent: bool,
}

/// Why a simulated worker could not take part.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot reach the controller at {url}: {why}")]
    Connect { url: String, why: String },
    #[error("the controller refused the worker: {0}")]
    Rejected(String),
    #[error("protocol: {0}")]
    Protocol(String),
}

fn now_us() -> i64 {
    super::clock::now_us()
}

struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-uniform-ish between `lo` and `hi`, most values low: a long-tailed latency.
    fn latency(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(self.unit().powi(3))
    }
}

/// One worker's interval as an agent-flow run produces it: per operation a request
/// duration, a waiting time and the operation's own trend (latencies spread over two
/// decades and a long tail, sparse in the histogram), request and byte counters, a failure
/// rate; the flow's trends; tagged checks to make up [`SERIES`]. `seed` varies the values.
pub fn realistic_snapshot(seed: u64) -> Snapshot {
    let mut r = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut s = Snapshot {
        interval_ms: 1000,
        vus: 4,
        vus_max: 4,
        ..Default::default()
    };
    let add = |s: &mut Snapshot, key: SeriesKey, kind, v| s.add(key, kind, v);
    for op in builtin::OPERATIONS {
        let slow = op.starts_with("run") || *op == "stateless_run";
        let (lo, hi) = if slow {
            (10_000.0, 300_000.0)
        } else {
            (200.0, 20_000.0)
        };
        let tag = [("operation", *op)];
        for _ in 0..SAMPLES {
            let v = r.latency(lo, hi);
            add(
                &mut s,
                SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, tag),
                MetricKind::Trend,
                v,
            );
            add(
                &mut s,
                SeriesKey::with_tags(builtin::HTTP_REQ_WAITING, tag),
                MetricKind::Trend,
                v * 0.8,
            );
            add(&mut s, SeriesKey::with_tags(*op, tag), MetricKind::Trend, v);
            let failed = if r.unit() < 0.01 { 1.0 } else { 0.0 };
            add(
                &mut s,
                SeriesKey::with_tags(builtin::HTTP_REQ_FAILED, tag),
                MetricKind::Rate,
                failed,
            );
        }
        add(
            &mut s,
            SeriesKey::with_tags(builtin::HTTP_REQS, tag),
            MetricKind::Counter,
            SAMPLES as f64,
        );
        add(
            &mut s,
            SeriesKey::with_tags(builtin::DATA_SENT, tag),
            MetricKind::Counter,
            SAMPLES as f64 * 600.0,
        );
        add(
            &mut s,
            SeriesKey::with_tags(builtin::DATA_RECEIVED, tag),
            MetricKind::Counter,
            SAMPLES as f64 * 2_000.0,
        );
    }
    for _ in 0..SAMPLES {
        let flow = r.latency(40_000.0, 900_000.0);
        add(
            &mut s,
            SeriesKey::new(builtin::AGENT_FLOW_DURATION),
            MetricKind::Trend,
            flow,
        );
        add(
            &mut s,
            SeriesKey::new(builtin::ITERATION_DURATION),
            MetricKind::Trend,
            flow,
        );
        add(
            &mut s,
            SeriesKey::new(builtin::STREAM_FIRST_EVENT),
            MetricKind::Trend,
            r.latency(500.0, 20_000.0),
        );
        add(
            &mut s,
            SeriesKey::new(builtin::STREAM_EVENTS),
            MetricKind::Trend,
            (3.0 + 20.0 * r.unit()).round(),
        );
        add(
            &mut s,
            SeriesKey::new(builtin::AGENT_FLOW_SUCCESS_RATE),
            MetricKind::Rate,
            1.0,
        );
    }
    add(
        &mut s,
        SeriesKey::new(builtin::ITERATIONS),
        MetricKind::Counter,
        SAMPLES as f64,
    );
    let mut check = 0;
    while s.series.len() < SERIES {
        let name = format!("check-{check}");
        add(
            &mut s,
            SeriesKey::with_tags(builtin::CHECKS, [("check", name.as_str())]),
            MetricKind::Rate,
            1.0,
        );
        check += 1;
    }
    s
}

/// A worker's interval, encoded once for the wire (a simulated fleet sends it every
/// interval, re-stamped, so the simulating process spends its CPU on the streams, not on
/// encoding), with the sums a merged run must show for it.
#[derive(Debug, Clone)]
pub struct Template {
    pub wire: pb::Snapshot,
    pub http_reqs: f64,
    pub iterations: f64,
    pub duration_samples: u64,
}

impl Template {
    pub fn new(s: &Snapshot) -> Result<Template, barrage_proto::WireError> {
        use barrage_core::Sink;
        let mut t = Template {
            wire: snapshot_to_pb(s)?,
            http_reqs: 0.0,
            iterations: 0.0,
            duration_samples: 0,
        };
        for (key, sink) in &s.series {
            match (key.metric.as_str(), sink) {
                (builtin::HTTP_REQS, Sink::Counter(c)) => t.http_reqs += c.sum,
                (builtin::ITERATIONS, Sink::Counter(c)) => t.iterations += c.sum,
                (builtin::HTTP_REQ_DURATION, Sink::Trend(tr)) => t.duration_samples += tr.count(),
                _ => {}
            }
        }
        Ok(t)
    }
}

fn msg(m: Out) -> pb::WorkerMessage {
    pb::WorkerMessage { msg: Some(m) }
}

/// Joins as worker `name`, answers the controller like a worker does, sends `template`
/// (re-stamped per interval) every interval of the assigned plan, and acts out `fate`.
/// Returns when the controller ends the stream (after `Done`, or when it drops the
/// worker), or at `give_up`.
pub async fn run_worker(
    cfg: Arc<SimConfig>,
    name: String,
    template: Arc<Template>,
    fate: Fate,
    give_up: Duration,
) -> Result<SimReport, SimError> {
    let mut report = SimReport::default();
    match tokio::time::timeout(give_up, converse(&cfg, name, &template, fate, &mut report)).await {
        Ok(r) => r.map(|()| report),
        Err(_) => Err(SimError::Protocol(format!(
            "still in the run after {give_up:?}: {report:?}"
        ))),
    }
}

async fn connect(
    cfg: &SimConfig,
    hello: pb::WorkerMessage,
) -> Result<
    (
        mpsc::Sender<pb::WorkerMessage>,
        tonic::Streaming<ControllerMessage>,
    ),
    SimError,
> {
    let fail = |why: String| SimError::Connect {
        url: cfg.controller.clone(),
        why,
    };
    let endpoint = Endpoint::from_shared(cfg.controller.clone())
        .map_err(|e| fail(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
    loop {
        let why = match endpoint.connect().await {
            Ok(channel) => {
                let mut client = ControllerClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
                let (tx, rx) = mpsc::channel(64);
                let _ = tx.send(hello.clone()).await;
                let mut req = tonic::Request::new(ReceiverStream::new(rx));
                if let Some(t) = &cfg.token {
                    let v = format!("Bearer {t}")
                        .parse()
                        .map_err(|_| fail("the token is not a valid header value".into()))?;
                    req.metadata_mut().insert(AUTH_METADATA, v);
                }
                match client.join(req).await {
                    Ok(resp) => return Ok((tx, resp.into_inner())),
                    Err(s) if s.code() == tonic::Code::Unauthenticated => {
                        return Err(SimError::Rejected(s.message().to_string()))
                    }
                    Err(s) => s.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(why));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The interval schedule of a started run.
struct Schedule {
    plan: Plan,
    start_at_us: i64,
    next_seq: u64,
    intervals: u64,
}

impl Schedule {
    fn interval_us(&self) -> i64 {
        self.plan.interval.as_micros() as i64
    }
    /// When interval `next_seq` ends (its snapshot is due).
    fn due(&self) -> tokio::time::Instant {
        let at = self.start_at_us + (self.next_seq as i64 + 1) * self.interval_us();
        let wait = (at - now_us()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_micros(wait)
    }
}

async fn converse(
    cfg: &SimConfig,
    name: String,
    template: &Template,
    fate: Fate,
    report: &mut SimReport,
) -> Result<(), SimError> {
    let hello = msg(Out::Hello(pb::Hello {
        version: barrage_core::VERSION.into(),
        protocol: barrage_core::PROTOCOL,
        host: "simulated".into(),
        cores: 1,
        core: -1,
        pid: std::process::id(),
        name,
        rejoin: None,
    }));
    let (tx, mut inbound) = connect(cfg, hello).await?;
    let send = |m: Out| {
        let tx = tx.clone();
        async move { tx.send(msg(m)).await.is_ok() }
    };
    let mut plan: Option<Plan> = None;
    let mut run: Option<Schedule> = None;
    let mut quiet = false;
    loop {
        let due = run
            .as_ref()
            .filter(|r| r.next_seq < r.intervals && !quiet)
            .map(Schedule::due);
        let tick = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(ControllerMessage { msg: Some(m) })) => m,
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => {
                        report.ended_us = Some(now_us());
                        return Ok(());
                    }
                };
                match m {
                    In::Welcome(_) => report.welcomed_us = Some(now_us()),
                    In::Reject(r) => return Err(SimError::Rejected(r.reason)),
                    In::Ping(p) => {
                        if !quiet {
                            send(Out::Pong(pb::Pong {
                                seq: p.seq,
                                controller_time_us: p.controller_time_us,
                                worker_time_us: now_us(),
                            }))
                            .await;
                        }
                    }
                    In::Assignment(a) => {
                        let p = Plan::from_json_str(&a.plan_json)
                            .map_err(|e| SimError::Protocol(format!("assignment: {e}")))?;
                        send(Out::Ready(pb::Ready { plan_hash: a.plan_hash })).await;
                        plan = Some(p);
                    }
                    In::Start(s) => {
                        let p = plan.clone().ok_or_else(|| {
                            SimError::Protocol("Start before an Assignment".into())
                        })?;
                        report.start_at_us = Some(s.start_at_unix_us);
                        report.start_received_us = Some(now_us());
                        let intervals = (p.duration().as_micros()
                            / p.interval.as_micros().max(1))
                            as u64;
                        run = Some(Schedule {
                            plan: p,
                            start_at_us: s.start_at_unix_us,
                            next_seq: 0,
                            intervals,
                        });
                    }
                    In::Reassign(r) => {
                        report.reassigned_us.push(now_us());
                        report.reassigned_left.push((r.remaining_count, r.remaining.len()));
                    }
                    In::Stop(_) | In::Abort(_) => {
                        if !report.done_sent && !quiet {
                            report.done_sent = true;
                            send(Out::Done(pb::Done {
                                iterations: report.iterations as u64,
                                ..Default::default()
                            }))
                            .await;
                        }
                    }
                }
            }
            () = tick => {
                let Some(r) = run.as_mut() else { continue };
                let seq = r.next_seq;
                let mut wire = template.wire.clone();
                wire.seq = seq;
                wire.interval_ms = r.plan.interval.as_millis() as u32;
                wire.interval_start_unix_us = r.start_at_us + seq as i64 * r.interval_us();
                if !send(Out::Snapshot(wire)).await {
                    report.ended_us = Some(now_us());
                    return Ok(());
                }
                report.http_reqs += template.http_reqs;
                report.iterations += template.iterations;
                report.duration_samples += template.duration_samples;
                report.snapshots += 1;
                report.last_sent_us = Some(now_us());
                r.next_seq += 1;
                match fate {
                    Fate::Silent { after_seq } if seq >= after_seq => quiet = true,
                    Fate::Killed { after_seq } if seq >= after_seq => {
                        report.ended_us = Some(now_us());
                        return Ok(());
                    }
                    _ => {}
                }
                if r.next_seq == r.intervals && !report.done_sent {
                    report.done_sent = true;
                    send(Out::Done(pb::Done {
                        iterations: report.iterations as u64,
                        ..Default::default()
                    }))
                    .await;
                }
            }
        }
    }
}
