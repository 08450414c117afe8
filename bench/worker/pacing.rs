//! Arrival pacing: `schedule_lag` (an arrival-rate iteration's actual start minus its due
//! time) at 1,000 and 10,000 iterations/s on one worker thread, with the worker's precise
//! pacer (timerfd + a short yield) against tokio's `sleep_until` alone (the pacing it
//! replaced), measured in the same run in alternating rounds.
//!
//! The engine is the worker's own (`executor::run` on a pinned current-thread runtime with
//! a `LocalSet`), its lag read from the registry's `schedule_lag` series. Two flows: `none`
//! (an iteration that does nothing: the pacing alone) and `get` (the one-request flow,
//! `GET /health` against the mock LLM on another core: the pacing while the thread also
//! does HTTP). Reported per configuration: medians over the rounds of the lag's p50, p99
//! and max (µs), the iterations run and dropped, and the worker thread's CPU use.
//!
//! `cargo bench -p barrage-worker --bench pacing [-- SECONDS ROUNDS]` (default 3 s, 3 rounds)
use barrage_core::metrics::builtin;
use barrage_core::{Plan, Segment, Sink};
use barrage_worker::executor::{self, pacer, Controls};
use barrage_worker::flow::AgentFlow;
use barrage_worker::registry::Registry;
use barrage_worker::sample::{IterationCtx, IterationOutcome, Scenario};
use futures_util::future::LocalBoxFuture;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// An iteration that does nothing: what is measured is the pacing and the hand-over.
struct Nothing;

impl Scenario for Nothing {
    fn iteration<'a>(&'a self, _ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome> {
        Box::pin(async { IterationOutcome::Success })
    }
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[derive(Debug, Clone, Copy, Default)]
struct Round {
    p50: f64,
    p99: f64,
    max: f64,
    iterations: u64,
    dropped: u64,
    cpu_pct: f64,
}

fn plan(url: &str, rate: u64, secs: u64) -> Plan {
    Plan::from_toml_str(&format!(
        "name = \"pacing\"\ngraceful_stop = \"2s\"\n[target]\nurl = \"{url}\"\n[scenario]\nexecutor = \"constant-arrival-rate\"\nrate = {rate}\nduration = \"{secs}s\"\npre_allocated_vus = 64\nmax_vus = 512\n[flow]\nrequest = {{ method = \"GET\", path = \"/health\" }}\n"
    ))
    .expect("the bench plan is valid")
}

/// One run on this (pinned) thread: a fresh runtime, so no state carries over.
fn round<S: Scenario + 'static>(plan: &Plan, scenario: Rc<S>, tokio_pacing: bool) -> Round {
    pacer::use_tokio_pacing(tokio_pacing);
    let (rt, local) = barrage_worker::pin::vu_runtime(None).expect("a runtime");
    let registry = Rc::new(Registry::new(&plan.tags));
    let (_seg_tx, seg_rx) = watch::channel(Segment::FULL);
    let (_stop_tx, stop_rx) = watch::channel(None);
    let controls = Controls {
        segment: seg_rx,
        stop: stop_rx,
        hard: CancellationToken::new(),
    };
    let cpu0 = thread_cpu();
    let wall0 = std::time::Instant::now();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let totals = local.block_on(
        &rt,
        executor::run(
            Rc::new(plan.clone()),
            scenario,
            registry.clone(),
            start,
            controls,
        ),
    );
    let cpu = (thread_cpu() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    let snap = registry.cut(0, 0, 1000);
    let Some(Sink::Trend(lag)) = snap.submetric(builtin::SCHEDULE_LAG, &[]) else {
        panic!("no schedule_lag recorded");
    };
    Round {
        p50: lag.percentile(50.0),
        p99: lag.percentile(99.0),
        max: lag.hist.max() as f64,
        iterations: totals.iterations,
        dropped: totals.dropped,
        cpu_pct: cpu * 100.0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The mock LLM (`GET /health` is its cheapest route) on its own thread, on core 1.
fn start_target() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        barrage_worker::pin::pin_current_thread(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", l.local_addr().unwrap()))
                .unwrap();
            let config = barrage_mock_llm::Config::default();
            let _ = barrage_mock_llm::serve(l, config, std::future::pending()).await;
        });
    });
    rx.recv().expect("the target started")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let url = start_target();
    barrage_worker::pin::pin_current_thread(0);
    println!("schedule_lag on one worker thread (core 0), target on core 1; {rounds} rounds of {secs} s, medians");
    println!(
        "| flow | rate/s | pacing | lag p50 µs | lag p99 µs | lag max µs | iterations | dropped | worker CPU % | p99 tokio ÷ precise |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for flow in ["none", "get"] {
        for rate in [1_000u64, 10_000] {
            let p = plan(&url, rate, secs);
            let mut results: [Vec<Round>; 2] = [vec![], vec![]];
            for r in 0..rounds {
                // alternate which pacing goes first
                for k in 0..2 {
                    let tokio_pacing = (k + r) % 2 == 1;
                    let got = match flow {
                        "none" => round(&p, Rc::new(Nothing), tokio_pacing),
                        _ => round(
                            &p,
                            Rc::new(AgentFlow::new(&p, &BTreeMap::new()).expect("the flow")),
                            tokio_pacing,
                        ),
                    };
                    results[usize::from(tokio_pacing)].push(got);
                }
            }
            let p99 = |rs: &[Round]| median(rs.iter().map(|r| r.p99).collect());
            for (i, name) in [(0usize, "precise"), (1, "tokio")] {
                let rs = &results[i];
                let m = |f: fn(&Round) -> f64| median(rs.iter().map(f).collect());
                let ratio = if i == 0 {
                    format!("{:.1}", p99(&results[1]) / p99(&results[0]).max(1.0))
                } else {
                    String::new()
                };
                println!(
                    "| {flow} | {rate} | {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {ratio} |",
                    m(|r| r.p50),
                    m(|r| r.p99),
                    m(|r| r.max),
                    m(|r| r.iterations as f64),
                    m(|r| r.dropped as f64),
                    m(|r| r.cpu_pct),
                );
            }
        }
    }
    pacer::use_tokio_pacing(false);
}
