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
//! Per case, per round, over a window after a warm-up: the worker's CPU, system CPU and
//! context switches (`/proc/PID/task/*`), the target's requests and SSE events (its
//! `/stats`) and the CPU of its thread; and the bytes sent and received per request (the
//! run's summary). Rounds alternate the cases and builds; the figures are medians.
//! Beside them, **two floors**, measured in every round after each case ([`floor`]): one
//! thread (core 0) keeping as many exchanges in flight as the worker has VUs, each
//! connection replaying the flow's exchanges in its order with their bytes (per step,
//! the request's and the answer's bytes from the summary's `data_sent{operation:…}`,
//! `data_received{operation:…}` and `http_reqs{operation:…}`: 3 run bodies, 9 small
//! requests, the large state answer), over loopback TCP, to a peer on core 1 that keeps
//! up with anything (the kernel's cost of moving those bytes, which no client can go
//! below), and to one paced as the target was in that round (one thread reading as hyper
//! does and spending the target's CPU per request: what moving the bytes costs when the
//! far end is as slow as the real one). A third, the paced floor with every exchange
//! the average one, is listed beside them: what the flow's unevenness adds to it. The
//! tables give the worker's CPU per request divided by each of the first two floors, and
//! that ratio against the 1 KB case's (the work the worker adds as requests grow), in
//! the medians and per round (the goal of issue 15 §3).
//!
//! `cargo bench -p barrage-worker --bench bigbody [-- SECONDS ROUNDS VUS]` (default 8 s,
//! 3 rounds, 4 VUs); `BEFORE_WORKER=/path/to/barrage-worker` adds that build.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barrage_worker::flow::history;

mod floor;
use floor::{floor, task_usage, Exchange, Floor, Peer, Sequence, Usage};

/// One stage of a case: what was measured in its window.
#[derive(Debug, Clone)]
struct Round {
    cpu_s: f64,
    /// The worker's system (kernel) CPU, part of `cpu_s`.
    sys_s: f64,
    /// The worker's context switches (all its threads).
    switches: f64,
    /// The target's thread (reference runtime + mock LLM) CPU: the far end's pace.
    target_cpu_s: f64,
    requests: f64,
    events: f64,
    /// Bytes per request, sent and received (the whole run's average).
    sent: f64,
    received: f64,
    /// An iteration's exchanges, step by step (the whole run's average per step).
    flow: Sequence,
}

impl Round {
    fn us_per_request(&self) -> f64 {
        self.cpu_s * 1e6 / self.requests.max(1.0)
    }
    fn sys_us_per_request(&self) -> f64 {
        self.sys_s * 1e6 / self.requests.max(1.0)
    }
    fn switches_per_request(&self) -> f64 {
        self.switches / self.requests.max(1.0)
    }
    fn target_us_per_request(&self) -> f64 {
        self.target_cpu_s * 1e6 / self.requests.max(1.0)
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
/// their own thread pinned to core 1; the runtime's URL and that thread's id.
fn start_target(words: usize) -> (String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        barrage_worker::pin::pin_current_thread(1);
        let tid = thread_id();
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
            tx.send((format!("http://{}", l.local_addr().unwrap()), tid))
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

/// The usage of a process: the sum over its threads (its `status` counts the switches
/// of its first thread only).
fn proc_usage(pid: u32) -> Usage {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    tasks.flatten().fold(Usage::default(), |u, t| {
        let t = task_usage(&t.path().to_string_lossy());
        Usage {
            cpu: u.cpu + t.cpu,
            sys: u.sys + t.sys,
            switches: u.switches + t.switches,
        }
    })
}

/// This thread's id, as `/proc/self/task/` names it.
fn thread_id() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name().unwrap().to_string_lossy().into_owned()
}

/// The CPU time of a thread of this process, seconds, in nanoseconds' resolution
/// (`schedstat`'s first field).
fn thread_cpu(tid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    let ns: f64 = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    ns * 1e-9
}

/// From the worker's summary, over the whole run: (bytes sent, bytes received) per
/// request (`data_sent`, `data_received`, `http_reqs`), and per step of `steps` (the flow's
/// step names, in its order) the same per request of that step
/// (`data_sent{operation:NAME}`, …): the exchanges of an iteration as the flow sent them.
fn bytes_per_request(results: &Path, steps: &[String]) -> (f64, f64, Sequence) {
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
    let flow = steps
        .iter()
        .map(|step| {
            let of = |m: &str| count(&format!("{m}{{operation:{step}}}"));
            let n = of("http_reqs");
            assert!(n > 0.0, "no request of step {step} in {}", file.display());
            Exchange {
                sent: (of("data_sent") / n).round() as usize,
                received: (of("data_received") / n).round() as usize,
            }
        })
        .collect();
    (count("data_sent") / n, count("data_received") / n, flow)
}

/// The names of the steps of the plan's flow (`[flows.agent]`), in its order.
fn flow_steps(plan: &str) -> Vec<String> {
    let plan = barrage_core::Plan::from_toml_str(plan).expect("the bench plan is valid");
    let flow = plan.flows.get("agent").expect("the plan's [flows.agent]");
    flow.steps.iter().map(|s| s.name.clone()).collect()
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
fn run_case(
    exe: &Path,
    target: &(String, String),
    case: &Case,
    secs: u64,
    vus: u64,
    tag: &str,
) -> Round {
    let (url, tid) = target;
    let warm = 2;
    let plan = plan_text(url, case.history, warm + secs + 1, vus);
    let mut w = spawn_worker(exe, &plan, tag);
    let pid = w.child.id();
    std::thread::sleep(Duration::from_secs(warm));
    let (u0, t0, (q0, e0)) = (proc_usage(pid), thread_cpu(tid), target_counts(url));
    std::thread::sleep(Duration::from_secs(secs));
    let (u1, t1, (q1, e1)) = (proc_usage(pid), thread_cpu(tid), target_counts(url));
    let u = u1 - u0;
    assert!(
        w.child.try_wait().ok().flatten().is_none(),
        "the worker ended before its window did: see {}",
        w.dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (sent, received, flow) = bytes_per_request(&w.dir.join("results"), &flow_steps(&plan));
    Round {
        cpu_s: u.cpu,
        sys_s: u.sys,
        switches: u.switches,
        target_cpu_s: t1 - t0,
        requests: q1 - q0,
        events: e1 - e0,
        sent,
        received,
        flow,
    }
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
    // per case, per round: (eager floor, paced floor, paced floor of the average exchange)
    let mut floors: Vec<Vec<(Floor, Floor, Floor)>> = vec![Vec::new(); CASES.len()];
    for r in 0..rounds {
        for k in 0..CASES.len() {
            let c = (k + r) % CASES.len();
            let case = &CASES[c];
            let target = if case.chunks == 42 { &short } else { &long };
            for b in 0..builds.len() {
                let b = (b + r) % builds.len();
                let (name, exe) = &builds[b];
                let round = run_case(exe, target, case, secs, vus, &format!("{r}-{c}-{name}"));
                println!(
                    "round {} {name} {}: {:.0} requests, {:.0} events, {:.2} CPU s, {:.1} µs/request ({:.1} system), target {:.1} µs/request, load {}",
                    r + 1,
                    case.name,
                    round.requests,
                    round.events,
                    round.cpu_s,
                    round.us_per_request(),
                    round.sys_us_per_request(),
                    round.target_us_per_request(),
                    load()
                );
                got[b][c].push(round);
            }
            // The floors for this case's exchanges, in the same round; the paced peer at
            // the target's CPU per request measured in this round (the builds' mean).
            let last: Vec<&Round> = got.iter().map(|g| g[c].last().unwrap()).collect();
            let flow = last[0].flow.clone();
            if r == 0 {
                let kb = |e: &Exchange| {
                    format!(
                        "{:.1}/{:.1}",
                        e.sent as f64 / 1024.0,
                        e.received as f64 / 1024.0
                    )
                };
                let steps: Vec<String> = flow.iter().map(kb).collect();
                println!(
                    "{} exchanges, KB sent/received: {}",
                    case.name,
                    steps.join(", ")
                );
            }
            let pace =
                last.iter().map(|r| r.target_us_per_request()).sum::<f64>() / last.len() as f64;
            let paced_peer = Peer::Paced {
                us_per_request: pace,
            };
            let eager = floor(&flow, vus as usize, 2.0, Peer::Eager);
            let paced = floor(&flow, vus as usize, 2.0, paced_peer);
            // the same bytes spread evenly over the exchanges: what the flow's unevenness
            // adds to the paced floor
            let average = Exchange {
                sent: last[0].sent as usize,
                received: last[0].received as usize,
            };
            let even = floor(&Sequence::from([average]), vus as usize, 2.0, paced_peer);
            println!(
                "round {} floors {}: eager {:.1} µs/request ({:.1} system, {:.2} switches), paced at {pace:.1} µs {:.1} µs/request ({:.1} system, {:.2} switches, {:.0}/s)",
                r + 1,
                case.name,
                eager.us,
                eager.sys_us,
                eager.switches,
                paced.us,
                paced.sys_us,
                paced.switches,
                paced.rate
            );
            println!(
                "round {} floor {} paced, average exchange: {:.1} µs/request ({:.1} system, {:.2} switches)",
                r + 1,
                case.name,
                even.us,
                even.sys_us,
                even.switches
            );
            floors[c].push((eager, paced, even));
        }
    }
    println!();
    println!("| case | sent KB/request | received KB/request | target µs/request | eager floor µs | its system µs | its switches/request | paced floor µs | its system µs | its switches/request | paced exchanges/s | paced, average exchange µs | its switches/request |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (c, case) in CASES.iter().enumerate() {
        let f = |g: fn(&(Floor, Floor, Floor)) -> f64| median(floors[c].iter().map(g).collect());
        let w = |g: fn(&Round) -> f64| median(got[0][c].iter().map(g).collect());
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {:.0} | {:.1} | {:.2} |",
            case.name,
            w(|r| r.sent) / 1024.0,
            w(|r| r.received) / 1024.0,
            w(Round::target_us_per_request),
            f(|f| f.0.us),
            f(|f| f.0.sys_us),
            f(|f| f.0.switches),
            f(|f| f.1.us),
            f(|f| f.1.sys_us),
            f(|f| f.1.switches),
            f(|f| f.1.rate),
            f(|f| f.2.us),
            f(|f| f.2.switches),
        );
    }
    println!();
    println!("| build | case | µs/request | system µs | switches/request | requests/s | ÷ eager floor | ÷ 1 KB's | ÷ paced floor | ÷ 1 KB's | µs/event | events/iteration |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (b, (name, _)) in builds.iter().enumerate() {
        let m = |c: usize, f: fn(&Round) -> f64| median(got[b][c].iter().map(f).collect());
        // per-round ratios to the floors of the same round, then the median
        let ratio = |c: usize, paced: bool| {
            let v = got[b][c].iter().zip(&floors[c]);
            median(
                v.map(|(r, f)| r.us_per_request() / if paced { f.1.us } else { f.0.us })
                    .collect(),
            )
        };
        for (c, case) in CASES.iter().enumerate() {
            println!(
                "| {name} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                case.name,
                m(c, Round::us_per_request),
                m(c, Round::sys_us_per_request),
                m(c, Round::switches_per_request),
                m(c, |r| r.requests) / secs as f64,
                ratio(c, false),
                ratio(c, false) / ratio(0, false),
                ratio(c, true),
                ratio(c, true) / ratio(0, true),
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
            "| {name} | marginal µs per added event (1 KB: 42 → 2,000 chunks) | {:.2} | | | | | | | | | |",
            (long_it - short_it) / (long_ev - short_ev).max(1.0)
        );
    }
    // The goal (issue 15 §3): per round, the case's worker ÷ floor over the 1 KB case's.
    println!();
    println!("| build | case | goal ratio per round, paced floor (median) | same, eager floor (median) | same, paced floor of the average exchange (median) |");
    println!("| --- | --- | --- | --- | --- |");
    for (b, (name, _)) in builds.iter().enumerate() {
        for (c, case) in CASES
            .iter()
            .enumerate()
            .filter(|(_, k)| k.chunks == 42)
            .skip(1)
        {
            let per_round = |which: fn(&(Floor, Floor, Floor)) -> f64| {
                let of = |c: usize| -> Vec<f64> {
                    let v = got[b][c].iter().zip(&floors[c]);
                    v.map(|(r, f)| r.us_per_request() / which(f)).collect()
                };
                let v: Vec<f64> = of(c).iter().zip(of(0)).map(|(x, one)| x / one).collect();
                let list: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
                format!("{} ({:.2})", list.join(" / "), median(v))
            };
            println!(
                "| {name} | {} | {} | {} | {} |",
                case.name,
                per_round(|f| f.1.us),
                per_round(|f| f.0.us),
                per_round(|f| f.2.us)
            );
        }
    }
    println!("load average at the end {}", load());
}
