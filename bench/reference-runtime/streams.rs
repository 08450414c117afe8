//! The reference runtime holding many concurrent streaming runs (issue 15 §2): its memory per
//! run, its CPU, its open descriptors at the peak, and whether every stream ends with all
//! its events.
//!
//! This binary starts barrage's mock LLM and the reference runtime (the release binaries next
//! to it in `target/release/`, each its own process, so the figures are theirs alone), then
//! opens `--streams` concurrent `POST /runs/stream` (stateless, `stream_mode`
//! `["messages-tuple","values"]`, so each LLM chunk becomes one SSE event) from the loopback
//! source addresses 127.0.0.2 … 127.0.0.(1+K), at `--open-per-s`. The mock answers each call
//! with `--words` chunks, one per `--interval-ms`: slow streams, as agent runs between tool
//! calls have. The LLM leg is HTTP/2 (`OPENAI_HTTP2=1`) unless `--llm-http2 false`.
//!
//! Each stream is checked as it arrives (chunked framing undone, SSE split into events):
//! `metadata` first, one `messages` event per word whose contents join to the answer, the
//! final `values` last with the answer as the AI message. Sampled every 200 ms: the runtime's
//! VmRSS, open descriptors and the streams open; reported: RSS growth per run at the peak
//! (all streams open), CPU of the runtime over the run (and per run, per event), descriptors
//! at the peak, and the mock's connections then.
//!
//! ```text
//! ref_streams [--streams N] [--interval-ms MS] [--words W] [--sources K] [--open-per-s R]
//!             [--llm-http2 true|false] [--runtime-threads T] [--runtime-core C] [--mock-core C]
//!             [--deadline-s S]
//! ```
//! Bounded: every stream ends by `--deadline-s` (default 180) or counts as failed; both
//! children are killed by PID at the end. Load goes to 127.0.0.1 only.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::Instant;

struct Opts {
    streams: usize,
    interval_ms: u64,
    words: usize,
    sources: u8,
    open_per_s: u32,
    llm_http2: bool,
    runtime_threads: usize,
    runtime_core: Option<usize>,
    mock_core: Option<usize>,
    deadline: Duration,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        streams: 1000,
        interval_ms: 1500,
        words: 20,
        sources: 4,
        open_per_s: 1000,
        llm_http2: true,
        runtime_threads: 1,
        runtime_core: None,
        mock_core: None,
        deadline: Duration::from_secs(180),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(format!("{pair:?}: every flag takes a value"));
        };
        let bad = |e: &dyn std::fmt::Display| format!("{name} {value:?}: {e}");
        match name.as_str() {
            "--streams" => o.streams = value.parse().map_err(|e| bad(&e))?,
            "--interval-ms" => o.interval_ms = value.parse().map_err(|e| bad(&e))?,
            "--words" => o.words = value.parse().map_err(|e| bad(&e))?,
            "--sources" => o.sources = value.parse().map_err(|e| bad(&e))?,
            "--open-per-s" => o.open_per_s = value.parse().map_err(|e| bad(&e))?,
            "--llm-http2" => o.llm_http2 = value.parse().map_err(|e| bad(&e))?,
            "--runtime-threads" => o.runtime_threads = value.parse().map_err(|e| bad(&e))?,
            "--runtime-core" => o.runtime_core = Some(value.parse().map_err(|e| bad(&e))?),
            "--mock-core" => o.mock_core = Some(value.parse().map_err(|e| bad(&e))?),
            "--deadline-s" => o.deadline = Duration::from_secs(value.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {name}")),
        }
    }
    if o.streams == 0 || o.words == 0 || o.open_per_s == 0 || o.runtime_threads == 0 {
        return Err("--streams, --words, --open-per-s and --runtime-threads must be > 0".into());
    }
    if o.sources == 0 || o.sources > 250 {
        return Err(format!("--sources {}: 1..=250", o.sources));
    }
    Ok(o)
}

/// The answer: `words` words, `w1 w2 …`.
fn answer(words: usize) -> String {
    (1..=words)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A child process, killed by PID when dropped.
struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin args` (under `taskset -c core` when given) and reads its address from the
/// first stdout line (`listening on [http://]ADDR`).
fn spawn(bin: &PathBuf, args: &[String], env: &[(&str, &str)], core: Option<usize>) -> Proc {
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("listening on ")
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{}: first line {line:?}: {e}", bin.display()));
    Proc { child, addr }
}

/// utime + stime of `pid`, seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11) + get(12)) as f64 / 100.0
}

/// A `kB` field of `/proc/PID/status`.
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// What all streams share (one thread: no locks).
#[derive(Default)]
struct Shared {
    open: usize,
    ok: usize,
    events: u64,
    errors: usize,
    first_error: Option<String>,
}

/// Undoes chunked transfer coding as bytes arrive.
#[derive(Default)]
struct Dechunk {
    /// Bytes left in the current chunk's data.
    left: usize,
    /// The size line (or the CRLF after data) being read.
    line: Vec<u8>,
    /// Expecting the CRLF that ends a chunk's data.
    after_data: bool,
    done: bool,
}

impl Dechunk {
    /// Appends the payload within `bytes` to `out`.
    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !bytes.is_empty() && !self.done {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                out.extend_from_slice(&bytes[..n]);
                self.left -= n;
                bytes = &bytes[n..];
                self.after_data = self.left == 0;
                continue;
            }
            let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(bytes);
                return Ok(());
            };
            self.line.extend_from_slice(&bytes[..nl]);
            bytes = &bytes[nl + 1..];
            let line = std::mem::take(&mut self.line);
            let text = std::str::from_utf8(&line)
                .map_err(|e| e.to_string())?
                .trim();
            if self.after_data {
                self.after_data = false;
                if !text.is_empty() {
                    return Err(format!("no CRLF after chunk data: {text:?}"));
                }
                continue;
            }
            let size = usize::from_str_radix(text.split(';').next().unwrap_or(""), 16)
                .map_err(|e| format!("chunk size {text:?}: {e}"))?;
            if size == 0 {
                self.done = true;
            }
            self.left = size;
        }
        Ok(())
    }
}

/// One stream's checks, fed SSE bytes.
struct Check {
    buf: Vec<u8>,
    events: u64,
    seen_metadata: bool,
    messages: usize,
    content: String,
    last_event: String,
    final_answer: Option<String>,
}

impl Check {
    fn new() -> Self {
        Check {
            buf: Vec::new(),
            events: 0,
            seen_metadata: false,
            messages: 0,
            content: String::new(),
            last_event: String::new(),
            final_answer: None,
        }
    }

    /// Splits complete events off the buffer and checks them.
    fn events(&mut self) -> Result<(), String> {
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let block = String::from_utf8(block).map_err(|e| e.to_string())?;
            let (mut name, mut data) = ("", String::new());
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            self.events += 1;
            if self.events == 1 && name != "metadata" {
                return Err(format!("first event is {name:?}, not metadata"));
            }
            self.seen_metadata |= name == "metadata";
            let data: Value = serde_json::from_str(&data).map_err(|e| format!("{name}: {e}"))?;
            match name {
                "messages" => {
                    self.messages += 1;
                    self.content
                        .push_str(data[0]["content"].as_str().unwrap_or(""));
                }
                "values" => {
                    self.final_answer = data["messages"][1]["content"].as_str().map(str::to_owned);
                }
                "error" => return Err(format!("error event: {data}")),
                _ => {}
            }
            self.last_event = name.to_owned();
        }
        Ok(())
    }

    fn verdict(&self, answer: &str) -> Result<(), String> {
        if self.last_event != "values" || self.final_answer.as_deref() != Some(answer) {
            return Err(format!(
                "ended after {} events with {:?}, final answer {:?}",
                self.events, self.last_event, self.final_answer
            ));
        }
        if self.content != answer {
            return Err(format!("messages joined to {:?}", self.content));
        }
        Ok(())
    }
}

/// One stream: connect from `src`, send the run, read and check the answer to its end.
async fn stream(
    addr: SocketAddr,
    src: IpAddr,
    req: Rc<[u8]>,
    answer: Rc<str>,
    shared: Rc<RefCell<Shared>>,
) -> Result<u64, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::new(src, 0))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let mut s = sock
        .connect(addr)
        .await
        .map_err(|e| format!("connect from {src}: {e}"))?;
    let _ = s.set_nodelay(true);
    shared.borrow_mut().open += 1;
    let result = async {
        s.write_all(&req).await.map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        let mut in_body = false;
        let mut dechunk = Dechunk::default();
        let mut check = Check::new();
        while !dechunk.done {
            let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("closed after {} events", check.events));
            }
            let mut bytes = &buf[..n];
            if !in_body {
                head.extend_from_slice(bytes);
                let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let status = String::from_utf8_lossy(&head[..end]).into_owned();
                if !status.starts_with("HTTP/1.1 200") {
                    return Err(format!("answer head {status:?}"));
                }
                if !status
                    .to_ascii_lowercase()
                    .contains("transfer-encoding: chunked")
                {
                    return Err(format!("not chunked: {status:?}"));
                }
                in_body = true;
                let rest = head.split_off(end + 4);
                let before = check.events;
                dechunk.feed(&rest, &mut check.buf)?;
                check.events()?;
                shared.borrow_mut().events += check.events - before;
                bytes = &[];
            }
            let before = check.events;
            dechunk.feed(bytes, &mut check.buf)?;
            check.events()?;
            shared.borrow_mut().events += check.events - before;
        }
        check.verdict(&answer)?;
        Ok(check.events)
    }
    .await;
    shared.borrow_mut().open -= 1;
    result
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ref_streams: {e}");
            std::process::exit(2);
        }
    };
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .to_path_buf();
    let answer_text = answer(o.words);
    let mock = spawn(
        &bin_dir.join("barrage-mock-llm"),
        &[
            "--port".into(),
            "0".into(),
            "--threads".into(),
            "1".into(),
            "--delay-ms".into(),
            o.interval_ms.to_string(),
            "--stream-delay-ms".into(),
            o.interval_ms.to_string(),
            "--response".into(),
            answer_text.clone(),
            "--call-log-size".into(),
            "0".into(),
        ],
        &[],
        o.mock_core,
    );
    let llm = format!("http://{}/v1", mock.addr);
    let h2 = if o.llm_http2 { "1" } else { "0" };
    let runtime = spawn(
        &bin_dir.join("barrage-reference-runtime"),
        &[
            "--port".into(),
            "0".into(),
            "--threads".into(),
            o.runtime_threads.to_string(),
            "--llm-timeout-secs".into(),
            (o.deadline.as_secs() + 60).to_string(),
        ],
        &[("OPENAI_BASE_URL", &llm), ("OPENAI_HTTP2", h2)],
        o.runtime_core,
    );
    let pid = runtime.child.id();
    println!(
        "runtime pid {pid} at {} (threads {}, LLM over {}), mock {} ({} words every {} ms)",
        runtime.addr,
        o.runtime_threads,
        if o.llm_http2 { "HTTP/2" } else { "HTTP/1.1" },
        mock.addr,
        o.words,
        o.interval_ms
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let ok = local.block_on(
        &rt,
        run(o, runtime.addr, pid, mock.addr.port(), answer_text),
    );
    drop(runtime);
    drop(mock);
    std::process::exit(if ok { 0 } else { 1 });
}

/// The peak readings.
#[derive(Default, Clone, Copy)]
struct Peak {
    open: usize,
    rss_kb: u64,
    fds: usize,
    mock_connections: usize,
}

async fn run(o: Opts, addr: SocketAddr, pid: u32, mock_port: u16, answer: String) -> bool {
    let body = serde_json::json!({
        "assistant_id": "agent",
        "input": {"messages": [{"role": "user", "content": "hello"}]},
        "stream_mode": ["messages-tuple", "values"],
    })
    .to_string();
    let req: Rc<[u8]> = format!(
        "POST /runs/stream HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into();
    let answer: Rc<str> = answer.into();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let rss0 = status_kb(pid, "VmRSS:");
    let fds0 = open_fds(pid);
    let cpu0 = cpu_s(pid);
    let t0 = Instant::now();
    let deadline = t0 + o.deadline;

    // Sampler: the readings at the moment the most streams were open (the last such sample).
    let peak = Rc::new(RefCell::new(Peak::default()));
    let sampler = {
        let (shared, peak) = (Rc::clone(&shared), Rc::clone(&peak));
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let open = shared.borrow().open;
                let mut p = peak.borrow_mut();
                if open >= p.open && open > 0 {
                    *p = Peak {
                        open,
                        rss_kb: status_kb(pid, "VmRSS:"),
                        fds: open_fds(pid),
                        mock_connections: barrage_testkit::net::established_on_port(mock_port),
                    };
                }
            }
        })
    };

    let mut tasks = Vec::with_capacity(o.streams);
    for i in 0..o.streams {
        let due = t0 + Duration::from_secs_f64(i as f64 / f64::from(o.open_per_s));
        tokio::time::sleep_until(due).await;
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % o.sources as usize) as u8));
        let (req, answer, sh) = (Rc::clone(&req), Rc::clone(&answer), Rc::clone(&shared));
        tasks.push(tokio::task::spawn_local(async move {
            let outcome =
                tokio::time::timeout_at(deadline, stream(addr, src, req, answer, Rc::clone(&sh)))
                    .await
                    .unwrap_or_else(|_| Err("deadline".into()));
            let mut s = sh.borrow_mut();
            match outcome {
                Ok(_) => s.ok += 1,
                Err(e) => {
                    s.errors += 1;
                    s.first_error.get_or_insert(e);
                }
            }
        }));
    }
    let opened_s = t0.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    sampler.abort();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_s(pid) - cpu0;
    let hwm = status_kb(pid, "VmHWM:");
    let sh = shared.borrow();
    let p = *peak.borrow();
    let expected_events = (o.words + 5) as u64 * o.streams as u64;
    let per_run_kib = p.rss_kb.saturating_sub(rss0) as f64 / p.open.max(1) as f64;
    println!(
        "streams={} ok={} errors={} first_error={:?} events={} (each: metadata, values, {} messages incl. stop and usage, values) opened_in_s={opened_s:.1} wall_s={wall:.1}",
        o.streams,
        sh.ok,
        sh.errors,
        sh.first_error.as_deref().unwrap_or("none"),
        sh.events,
        o.words + 2,
    );
    println!(
        "RESULT streams={} ok={} errors={} peak_open={} llm_http2={} rss_before_mb={:.1} rss_peak_mb={:.1} rss_per_run_kib={per_run_kib:.1} hwm_mb={:.1} fds_before={fds0} fds_peak={} mock_connections_peak={} cpu_s={cpu:.2} cpu_ms_per_run={:.3} cpu_us_per_event={:.1} cpu_pct_of_wall={:.1} events={}",
        o.streams,
        sh.ok,
        sh.errors,
        p.open,
        o.llm_http2,
        rss0 as f64 / 1024.0,
        p.rss_kb as f64 / 1024.0,
        hwm as f64 / 1024.0,
        p.fds,
        p.mock_connections,
        cpu * 1e3 / o.streams as f64,
        cpu * 1e6 / sh.events.max(1) as f64,
        cpu / wall * 100.0,
        sh.events,
    );
    sh.ok == o.streams && sh.events == expected_events
}
