//! Large requests and long answers, worker side (issue 15 §3): the worker's CPU per
//! request and per SSE event running the agent flow with ~1 KB, 100 KB and 500 KB run
//! inputs and with streamed answers of 42 and 2,000 chunks, against the reference runtime
//! and the mock LLM (in this process, zero delays, on core 1); the worker binary
//! (`barrage-worker --standalone`) on core 0.
//!
//! The flow is the built-in agent flow given as the plan's `[flows.agent]` with the
//! history written into its three run bodies, `stream_mode = ["messages-tuple"]` (the
//! runtime forwards each LLM chunk as an event). It is what `flow.history_bytes` produces,
//! written so that an older worker (`BEFORE_WORKER=path`, which lacks that setting) runs
//! the very same plan in the same rounds.
//!
//! Per case, per round, over a window after a warm-up: the worker's CPU (utime + stime of
//! `/proc/PID/stat`), the target's requests and SSE events (its `/stats`); and the bytes
//! sent and received per request (the run's summary). Rounds alternate the cases and builds; the
//! figures are medians. Beside them, **the floor**, measured in every round after each
//! case: one thread (core 0) keeping as many exchanges in flight as the worker has VUs,
//! writing the same bytes per request to loopback TCP sockets and reading the same answer
//! bytes back from threads on core 1 that do nothing else: the kernel's cost of moving
//! those bytes, which no client can go below. The table gives, per case, the worker's CPU
//! above the floor and its ratio to the 1 KB case's: the work the worker adds on top of
//! the bytes.
//!
//! `cargo bench -p barrage-worker --bench bigbody [-- SECONDS ROUNDS VUS]` (default 8 s,
//! 3 rounds, 4 VUs); `BEFORE_WORKER=/path/to/barrage-worker` adds that build.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barrage_worker::flow::history;

/// One stage of a case: what was measured in its window.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    cpu_s: f64,
    requests: f64,
    events: f64,
    /// Bytes per request, sent and received (the whole run's average).
    sent: f64,
    received: f64,
}

impl Round {
    fn us_per_request(&self) -> f64 {
        self.cpu_s * 1e6 / self.requests.max(1.0)
    }
    fn us_per_event(&self) -> f64 {
        self.cpu_s * 1e6 / self.events.max(1.0)
    }
    /// µs per iteration (12 requests).
    fn us_per_iteration(&self) -> f64 {
        self.us_per_request() * 12.0
    }
    fn events_per_iteration(&self) -> f64 {
        self.events / (self.requests / 12.0).max(1.0)
    }
}

struct Case {
    name: &'static str,
    history: usize,
    chunks: usize,
}

const CASES: [Case; 4] = [
    Case {
        name: "1 KB, 42 chunks",
        history: 1024,
        chunks: 42,
    },
    Case {
        name: "100 KB, 42 chunks",
        history: 100 * 1024,
        chunks: 42,
    },
    Case {
        name: "500 KB, 42 chunks",
        history: 500 * 1024,
        chunks: 42,
    },
    Case {
        name: "1 KB, 2,000 chunks",
        history: 1024,
        chunks: 2000,
    },
];

/// The mock LLM answering `words` words, and the reference runtime in front of it, on
/// their own threads pinned to core 1; the runtime's URL.
fn start_target(words: usize) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        barrage_worker::pin::pin_current_thread(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let llm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let llm_url = format!("http://{}", llm.local_addr().unwrap());
            let base = barrage_mock_llm::Config::default().response;
            let response: Vec<&str> = base.split(' ').cycle().take(words).collect();
            let config = barrage_mock_llm::Config {
                delay: Duration::ZERO,
                stream_delay: Duration::ZERO,
                response: response.join(" "),
                max_body_bytes: 16 << 20,
                call_log_size: 0,
                ..Default::default()
            };
            tokio::spawn(barrage_mock_llm::serve(llm, config, std::future::pending()));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", l.local_addr().unwrap()))
                .unwrap();
            let args = barrage_reference_runtime::Args {
                host: "127.0.0.1".into(),
                port: 0,
                openai_base_url: format!("{llm_url}/v1"),
                openai_api_key: "mock".into(),
                model_name: "openai:mock-gpt-4o".into(),
                jwt_secret: None,
                jwt_secret_file: None,
                threads: Some(1),
                llm_timeout_secs: 60,
                max_body_bytes: 16 << 20,
                assistant_id_from_config: false,
                buffer_sse: false,
                leak_runs: false,
                llm_http2: None,
            };
            let config = args.into_config().unwrap();
            let _ = barrage_reference_runtime::serve(l, config, std::future::pending()).await;
        });
    });
    rx.recv().expect("the target started")
}

/// The plan of a case: the agent flow with the history written into its run bodies.
fn plan_text(url: &str, history: usize, secs: u64, vus: u64) -> String {
    let flow = barrage_core::plan::builtin_flow_plan_toml("agent").expect("the agent flow");
    let text = history::generate(history);
    let flow: String = flow
        .lines()
        .map(|l| match l.starts_with("body") {
            true => l.replace("{history}", &text) + "\n",
            false => format!("{l}\n"),
        })
        .collect();
    // 3 runs' worth of history can come back in one answer (the thread's state)
    let limit = (3 * history + (1 << 20)).max(1 << 20);
    format!(
        "name = \"bigbody\"\ngraceful_stop = \"10s\"\n[target]\nurl = \"{url}\"\n\
         [scenario]\nexecutor = \"constant-vus\"\nvus = {vus}\nduration = \"{secs}s\"\n\
         [flow]\nstream_mode = [\"messages-tuple\"]\nresponse_body_limit = {limit}\n\
         request_timeout = \"60s\"\n{flow}"
    )
}

fn get_json(url: &str) -> serde_json::Value {
    let addr = url.trim_start_matches("http://");
    let (host, path) = addr.split_once('/').unwrap_or((addr, ""));
    let mut s = TcpStream::connect(host).expect("the target answers");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// (requests, SSE events) the target served so far.
fn target_counts(url: &str) -> (f64, f64) {
    let s = get_json(&format!("{url}/stats"));
    (
        s["requests_total"].as_f64().unwrap_or(0.0),
        s["sse_events"].as_f64().unwrap_or(0.0),
    )
}

/// utime + stime of a process, seconds.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // fields 14 and 15 of stat (utime, stime), the 12th and 13th after the command's
    // `)`, in USER_HZ ticks: 100 per second on Linux whatever the kernel's HZ
    (ticks(11) + ticks(12)) / 100.0
}

/// (bytes sent, bytes received) per request over the whole run, from the worker's
/// summary (`data_sent`, `data_received`, `http_reqs`).
fn bytes_per_request(results: &Path) -> (f64, f64) {
    let file = std::fs::read_dir(results)
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".summary.json"))
        })
        .unwrap_or_else(|| panic!("no summary in {}", results.display()));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).expect("a summary");
    let count = |m: &str| s["metrics"][m]["count"].as_f64().unwrap_or(0.0);
    let n = count("http_reqs").max(1.0);
    (count("data_sent") / n, count("data_received") / n)
}

struct Worker {
    child: Child,
    dir: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_worker(exe: &Path, plan: &str, tag: &str) -> Worker {
    let dir = std::env::temp_dir().join(format!("bigbody-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plan.toml");
    std::fs::write(&path, plan).unwrap();
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe)
        .args(["--standalone", "--plan"])
        .arg(&path)
        .arg("--results-dir")
        .arg(dir.join("results"))
        .env("RUST_LOG", "warn")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("taskset and the worker binary");
    Worker { child, dir }
}

/// One run of a case: the measured window is `secs` after a `warm` second(s).
fn run_case(exe: &Path, url: &str, case: &Case, secs: u64, vus: u64, tag: &str) -> Round {
    let warm = 2;
    let plan = plan_text(url, case.history, warm + secs + 1, vus);
    let mut w = spawn_worker(exe, &plan, tag);
    let pid = w.child.id();
    std::thread::sleep(Duration::from_secs(warm));
    let (c0, (q0, e0)) = (proc_cpu(pid), target_counts(url));
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, (q1, e1)) = (proc_cpu(pid), target_counts(url));
    assert!(
        w.child.try_wait().ok().flatten().is_none(),
        "the worker ended before its window did: see {}",
        w.dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (sent, received) = bytes_per_request(&w.dir.join("results"));
    Round {
        cpu_s: c1 - c0,
        requests: q1 - q0,
        events: e1 - e0,
        sent,
        received,
    }
}

/// The kernel's floor: CPU per exchange of one client thread (core 0) keeping `vus`
/// exchanges in flight on as many loopback connections, as the worker's VUs do, each
/// writing `sent` bytes and reading `received` bytes back; the other ends (core 1) only
/// read and answer. The client is a tokio current-thread runtime (the worker's event loop
/// at its least), so a small exchange's wake-ups are shared between connections as the
/// worker's are, and what is left is the cost of moving the bytes.
fn floor_us(sent: usize, received: usize, vus: usize, secs: f64) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let answers: Vec<_> = (0..vus)
            .map(|_| {
                let (mut s, _) = l.accept().unwrap();
                std::thread::spawn(move || {
                    barrage_worker::pin::pin_current_thread(1);
                    s.set_nodelay(true).unwrap();
                    let answer = vec![b'a'; received.max(1)];
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let mut got = 0;
                        while got < sent.max(1) {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got += n,
                            }
                        }
                        if s.write_all(&answer).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        for a in answers {
            let _ = a.join();
        }
    });
    let client = std::thread::spawn(move || {
        barrage_worker::pin::pin_current_thread(0);
        let cpu = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut conns = Vec::new();
            for _ in 0..vus {
                let s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                conns.push(s);
            }
            let (t0, c0) = (Instant::now(), cpu());
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|mut s| {
                    tokio::spawn(async move {
                        let request = vec![b'r'; sent.max(1)];
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut n = 0u64;
                        while t0.elapsed().as_secs_f64() < secs {
                            s.write_all(&request).await.unwrap();
                            let mut got = 0;
                            while got < received.max(1) {
                                match s.read(&mut buf).await.unwrap() {
                                    0 => panic!("the floor's server closed"),
                                    k => got += k,
                                }
                            }
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut n = 0;
            for t in tasks {
                n += t.await.unwrap();
            }
            (cpu() - c0) * 1e6 / n.max(1) as f64
        })
    });
    let us = client.join().unwrap();
    let _ = server.join();
    us
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(8);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let vus: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let after = PathBuf::from(env!("CARGO_BIN_EXE_barrage-worker"));
    let mut builds = vec![("after", after)];
    if let Some(before) = std::env::var_os("BEFORE_WORKER") {
        builds.push(("before", PathBuf::from(before)));
    }
    let short = start_target(42);
    let long = start_target(2000);
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "worker on core 0 ({vus} VUs, agent flow, stream_mode messages-tuple), reference runtime + mock LLM on core 1; \
         {rounds} rounds of {secs} s per case and build, medians; load average {}",
        load()
    );
    let mut got: Vec<Vec<Vec<Round>>> = vec![vec![Vec::new(); CASES.len()]; builds.len()];
    let mut floors: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    for r in 0..rounds {
        for k in 0..CASES.len() {
            let c = (k + r) % CASES.len();
            let case = &CASES[c];
            let url = if case.chunks == 42 { &short } else { &long };
            for b in 0..builds.len() {
                let b = (b + r) % builds.len();
                let (name, exe) = &builds[b];
                let round = run_case(exe, url, case, secs, vus, &format!("{r}-{c}-{name}"));
                println!(
                    "round {} {name} {}: {:.0} requests, {:.0} events, {:.2} CPU s, {:.1} µs/request, load {}",
                    r + 1,
                    case.name,
                    round.requests,
                    round.events,
                    round.cpu_s,
                    round.us_per_request(),
                    load()
                );
                got[b][c].push(round);
            }
            // The floor for this case's bytes, in the same round.
            let last = got.iter().find_map(|g| g[c].last()).expect("a round");
            let floor = floor_us(
                last.sent as usize,
                last.received as usize,
                vus as usize,
                2.0,
            );
            println!("round {} floor {}: {floor:.1} µs/request", r + 1, case.name);
            floors[c].push(floor);
        }
    }
    println!();
    println!("| build | case | µs/request | ratio to 1 KB | sent KB/request | received KB/request | floor µs/request | above floor µs | above floor, ratio to 1 KB | µs/event | events/iteration |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let floor: Vec<f64> = floors.into_iter().map(median).collect();
    for (b, (name, _)) in builds.iter().enumerate() {
        let m = |c: usize, f: fn(&Round) -> f64| median(got[b][c].iter().map(f).collect());
        let small = m(0, Round::us_per_request);
        for (c, case) in CASES.iter().enumerate() {
            let us = m(c, Round::us_per_request);
            let sent = m(c, |r| r.sent);
            let received = m(c, |r| r.received);
            println!(
                "| {name} | {} | {us:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} |",
                case.name,
                us / small,
                sent / 1024.0,
                received / 1024.0,
                floor[c],
                us - floor[c],
                (us - floor[c]) / (small - floor[0]),
                m(c, Round::us_per_event),
                m(c, Round::events_per_iteration),
            );
        }
        // A chunk's own cost: the iteration's CPU added by 1,973 more events.
        let (short_it, long_it) = (m(0, Round::us_per_iteration), m(3, Round::us_per_iteration));
        let (short_ev, long_ev) = (
            m(0, Round::events_per_iteration),
            m(3, Round::events_per_iteration),
        );
        println!(
            "| {name} | marginal µs per added event (1 KB: 42 → 2,000 chunks) | {:.2} | | | | | | | | |",
            (long_it - short_it) / (long_ev - short_ev).max(1.0)
        );
    }
    println!("load average at the end {}", load());
}
