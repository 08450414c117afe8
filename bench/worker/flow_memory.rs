//! The worker's memory per VU holding an agent stream (issue 15 §2: at most 16 KiB per
//! open stream across the worker): the guard beside `bench/worker/flow-streams.sh`, which
//! measures the same thing as RSS of real `barrage run` workers at 10,000 streams and more.
//!
//! In this process: the mock LLM on a thread of its own, and on another thread the
//! worker's real engine (`executor::run`, the VU loop, the flow, the HTTP path, the
//! registry) running a one-step flow, a streamed chat completion (`kind = "sse"`), over
//! and over with VUS VUs (`ramping-vus`: ramp, then hold). The mock's schedule: the first
//! event after 500 ms, then one every STREAM_MS, 10 words; every VU is in a stream nearly
//! all the time (no think time).
//!
//! The global allocator is mimalloc (as in the worker's binaries) with a count of the bytes
//! allocated and not yet freed **by the engine's thread**: the mock's thread is not
//! counted. Printed: that count before the ramp and during the hold (median and largest of
//! its readings every 250 ms, from one stream length after the ramp), per VU; the
//! process's RSS the same way (it includes the mock's side of each stream, so it is an
//! upper bound of the worker's); the size of one iteration's future (allocated per
//! iteration by the VU loop). The exit code is 1 when the heap per VU is over
//! `FLOWMEM_MAX_KIB` (default 16).
//!
//! `cargo bench -p barrage-worker --bench flow_memory [-- VUS HOLD_S STREAM_MS]`
//! (default 2,000 VUs, 20 s, 1,000 ms).
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use barrage_core::{Plan, Segment};
use barrage_worker::executor::{self, Controls};
use barrage_worker::flow::AgentFlow;
use barrage_worker::registry::Registry;
use barrage_worker::sample::{IterationCtx, Scenario};
use tokio_util::sync::CancellationToken;

/// mimalloc, counting what the engine's thread holds.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn tracked() -> bool {
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded to mimalloc unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() && tracked() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() && tracked() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        if tracked() {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() && tracked() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DELAY_MS: u64 = 500;
const WORDS: usize = 10;
const RAMP_S: u64 = 5;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .map(|a| a.parse().expect("VUS HOLD_S STREAM_MS: whole numbers"))
        .unwrap_or(default)
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The mock LLM on a thread of its own; its base URL.
fn start_mock(stream_ms: u64) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", l.local_addr().unwrap()))
                .unwrap();
            let words: Vec<String> = (0..WORDS).map(|i| format!("w{i}")).collect();
            let config = barrage_mock_llm::Config {
                delay: Duration::from_millis(DELAY_MS),
                stream_delay: Duration::from_millis(stream_ms),
                response: words.join(" "),
                call_log_size: 0,
                grace: Duration::ZERO,
                ..Default::default()
            };
            barrage_mock_llm::serve(l, config, std::future::pending())
                .await
                .unwrap();
        });
    });
    rx.recv().unwrap()
}

fn plan(url: &str, vus: u64, hold_s: u64, stream_ms: u64) -> Plan {
    let stream_s = (DELAY_MS + (WORDS as u64 - 1) * stream_ms) / 1000 + 1;
    Plan::from_toml_str(&format!(
        r#"
name = "flow-memory"
interval = "1s"
graceful_stop = "{grace}s"

[target]
url = "{url}"

[flow]
name = "llm_stream"
request_timeout = "{timeout}s"

[flows.llm_stream]
description = "one streamed chat completion, as an agent's runs/stream holds one"
[[flows.llm_stream.steps]]
name = "chat_stream"
method = "POST"
path = "/v1/chat/completions"
body = '{{"model":"mock","stream":true,"messages":[{{"role":"user","content":"vu {{vu}} iteration {{iter}}"}}]}}'
kind = "sse"

[scenarios.streams]
executor = "ramping-vus"
start_vus = 0
stages = [
  {{ duration = "{RAMP_S}s", target = {vus} }},
  {{ duration = "{hold_s}s", target = {vus} }},
]
"#,
        grace = stream_s + 5,
        timeout = stream_s + 30,
    ))
    .expect("the bench's plan")
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let vus = arg(1, 2000);
    let hold_s = arg(2, 20);
    let stream_ms = arg(3, 1000);
    let max_kib: f64 = std::env::var("FLOWMEM_MAX_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16.0);
    let stream_s = (DELAY_MS + (WORDS as u64 - 1) * stream_ms) as f64 / 1000.0;
    assert!(
        (hold_s as f64) > stream_s + 2.0,
        "HOLD_S must be longer than one stream ({stream_s} s) + 2 s"
    );
    let _ = barrage_core::fdlimit::raise_fd_limit();
    let url = start_mock(stream_ms);
    let plan = Rc::new(plan(&url, vus, hold_s, stream_ms));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    TRACKED.with(|t| t.set(true));
    let local = tokio::task::LocalSet::new();
    let (heap, rss, base_heap, base_rss, future) = local.block_on(&rt, async {
        let flow = Rc::new(AgentFlow::new(&plan, &BTreeMap::new()).expect("flow"));
        let registry = Rc::new(Registry::new(&plan.tags));
        let future = {
            let cancel = CancellationToken::new();
            let fut = flow.iteration(IterationCtx {
                vu: 1,
                iteration: 0,
                intended_start: std::time::Instant::now(),
                cancel: &cancel,
                recorder: &*registry,
            });
            std::mem::size_of_val(&*fut)
        };
        let (_seg_tx, segment) = tokio::sync::watch::channel(Segment::FULL);
        let (_stop_tx, stop) = tokio::sync::watch::channel(None);
        let hard = CancellationToken::new();
        let controls = Controls {
            segment,
            stop,
            hard: hard.clone(),
        };
        let (base_heap, base_rss) = (LIVE.load(Ordering::Relaxed), rss_kib());
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let engine = tokio::task::spawn_local(executor::run(
            plan.clone(),
            flow.clone(),
            registry.clone(),
            start,
            controls,
        ));
        // From one stream after the ramp to the end of the hold.
        tokio::time::sleep_until(start + Duration::from_secs_f64(RAMP_S as f64 + stream_s + 1.0))
            .await;
        let until = start + Duration::from_secs(RAMP_S + hold_s);
        let (mut heap, mut rss) = (Vec::new(), Vec::new());
        while tokio::time::Instant::now() < until {
            heap.push(LIVE.load(Ordering::Relaxed));
            rss.push(rss_kib());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        hard.cancel();
        let _ = engine.await;
        (heap, rss, base_heap, base_rss, future)
    });
    TRACKED.with(|t| t.set(false));
    let (mut heap, mut rss) = (heap, rss);
    let n = vus as f64;
    let heap_max = *heap.iter().max().unwrap();
    let rss_max = *rss.iter().max().unwrap();
    let heap_med = median(&mut heap);
    let rss_med = median(&mut rss);
    let per = |a: i64, b: i64, unit: f64| (a - b) as f64 * unit / 1024.0 / n;
    println!(
        "flow_memory: {vus} VUs holding streams (first event after {DELAY_MS} ms, then one every {stream_ms} ms, {WORDS} words); readings during {:.1} s of the hold",
        hold_s as f64 - stream_s - 1.0
    );
    println!(
        "engine thread heap: {:.1} MiB before the ramp -> median {:.1} / max {:.1} MiB = {:.2} / {:.2} KiB per VU",
        base_heap as f64 / 1048576.0,
        heap_med as f64 / 1048576.0,
        heap_max as f64 / 1048576.0,
        per(heap_med, base_heap, 1.0),
        per(heap_max, base_heap, 1.0)
    );
    println!(
        "process RSS (worker + the in-process mock): {:.1} MiB -> median {:.1} / max {:.1} MiB = {:.2} / {:.2} KiB per VU",
        base_rss as f64 / 1024.0,
        rss_med as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        per(rss_med, base_rss, 1024.0),
        per(rss_max, base_rss, 1024.0)
    );
    println!("one iteration's future: {future} bytes");
    let heap_per_vu = per(heap_max, base_heap, 1.0);
    if heap_per_vu > max_kib {
        println!("OVER: {heap_per_vu:.2} KiB of heap per VU > FLOWMEM_MAX_KIB = {max_kib}");
        std::process::exit(1);
    }
    println!("ok: {heap_per_vu:.2} KiB of heap per VU <= {max_kib} KiB");
}
