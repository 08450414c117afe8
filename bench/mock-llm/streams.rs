//! The client side of bench/mock-llm/scale.sh: holds many concurrent chat streams (or
//! sends many large requests) against a running barrage-mock-llm and reports what the
//! server did: chunk timing against its schedule, its memory per open stream, its CPU per
//! request and per chunk.
//!
//! ```text
//! streams --addr 127.0.0.1:PORT --pid PID [--streams N] [--interval-ms MS] [--sources K]
//!         [--open-per-s R] [--body-bytes B] [--repeat R] [--stream true|false] [--deadline-s S]
//! ```
//!
//! - Connections are spread over the source addresses 127.0.0.2 … 127.0.0.(1+K): one source
//!   address has about 28,000 ephemeral ports towards one destination.
//! - Connections are opened at `--open-per-s`, so the streams' chunk phases are spread the
//!   way independent clients spread them (not all at the same instant).
//! - Chunk timing: a stream's frames are due at `first + i × interval`. The client takes, per
//!   stream, the earliest start its arrivals imply (`min(t_i − i × interval)`), and the
//!   lateness of every frame against it; reported as percentiles in % of the interval.
//!   Frames that arrive together (the server fell behind) count as late as they are.
//! - Memory: the server's VmRSS is sampled every 100 ms; the figure is (VmRSS when all
//!   streams were open − VmRSS before the first) ÷ streams.
//! - CPU: the server's utime + stime over the run (from `/proc/PID/stat`) ÷ requests, and
//!   ÷ frames.
//!
//! One output line of `key=value` pairs (parsed by scale.sh) after a human-readable summary.
//! Everything is bounded: `--deadline-s` (default 120) ends the run, unfinished streams
//! count as errors.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::Instant;

struct Opts {
    addr: SocketAddr,
    pid: u32,
    streams: usize,
    interval: Duration,
    sources: u8,
    open_per_s: u32,
    body_bytes: usize,
    repeat: usize,
    stream: bool,
    deadline: Duration,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:11434".parse().unwrap(),
        pid: 0,
        streams: 1000,
        interval: Duration::from_millis(1000),
        sources: 4,
        open_per_s: 5000,
        body_bytes: 0,
        repeat: 1,
        stream: true,
        deadline: Duration::from_secs(120),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(format!("{pair:?}: every flag takes a value"));
        };
        let bad = |e: &dyn std::fmt::Display| format!("{name} {value:?}: {e}");
        match name.as_str() {
            "--addr" => o.addr = value.parse().map_err(|e| bad(&e))?,
            "--pid" => o.pid = value.parse().map_err(|e| bad(&e))?,
            "--streams" => o.streams = value.parse().map_err(|e| bad(&e))?,
            "--interval-ms" => {
                o.interval = Duration::from_millis(value.parse().map_err(|e| bad(&e))?)
            }
            "--sources" => o.sources = value.parse().map_err(|e| bad(&e))?,
            "--open-per-s" => o.open_per_s = value.parse().map_err(|e| bad(&e))?,
            "--body-bytes" => o.body_bytes = value.parse().map_err(|e| bad(&e))?,
            "--repeat" => o.repeat = value.parse().map_err(|e| bad(&e))?,
            "--stream" => o.stream = value.parse().map_err(|e| bad(&e))?,
            "--deadline-s" => o.deadline = Duration::from_secs(value.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {name}")),
        }
    }
    if o.pid == 0 || o.sources == 0 || o.sources > 250 || o.open_per_s == 0 || o.repeat == 0 {
        return Err("--pid is required; --sources 1..=250, --open-per-s and --repeat > 0".into());
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("{}: the bench sends load to loopback only", o.addr));
    }
    Ok(o)
}

/// The request: a chat body padded to about `body_bytes` with words in one user message.
fn request(o: &Opts) -> Vec<u8> {
    let head = r#"{"model":"mock-gpt-4o","stream":STREAM,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":""#
        .replace("STREAM", if o.stream { "true" } else { "false" });
    let tail = r#""}]}"#;
    let mut body = head.into_bytes();
    let pad = o.body_bytes.saturating_sub(body.len() + tail.len()).max(4);
    body.extend(b"word ".iter().cycle().take(pad));
    body.extend_from_slice(tail.as_bytes());
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        o.addr,
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

/// What all streams share (one thread: no locks).
#[derive(Default)]
struct Shared {
    open: usize,
    peak_open: usize,
    /// Lateness of every frame, µs.
    lateness_us: Vec<u32>,
    /// Request sent → last byte, µs, per request.
    total_us: Vec<u64>,
    frames: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Finds `pat` in a byte stream that arrives in pieces.
struct Matcher {
    pat: &'static [u8],
    at: usize,
}

impl Matcher {
    fn new(pat: &'static [u8]) -> Self {
        Matcher { pat, at: 0 }
    }

    /// Calls `on_match` for every match completed within `bytes`.
    fn feed(&mut self, bytes: &[u8], mut on_match: impl FnMut()) {
        for &b in bytes {
            if b == self.pat[self.at] {
                self.at += 1;
                if self.at == self.pat.len() {
                    self.at = 0;
                    on_match();
                }
            } else {
                self.at = usize::from(b == self.pat[0]);
            }
        }
    }
}

/// One connection: `repeat` requests, one after the other (keep-alive).
async fn connection(
    o: Rc<Opts>,
    src: IpAddr,
    req: Rc<[u8]>,
    shared: Rc<RefCell<Shared>>,
) -> Result<(), String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::new(src, 0))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let mut s = sock
        .connect(o.addr)
        .await
        .map_err(|e| format!("connect from {src}: {e}"))?;
    let _ = s.set_nodelay(true);
    {
        let mut sh = shared.borrow_mut();
        sh.open += 1;
        sh.peak_open = sh.peak_open.max(sh.open);
    }
    let result = async {
        let mut buf = vec![0u8; 4096];
        for _ in 0..o.repeat {
            let t0 = Instant::now();
            s.write_all(&req).await.map_err(|e| format!("write: {e}"))?;
            let mut times: Vec<Instant> = Vec::new();
            let mut events = Matcher::new(b"data: ");
            let mut end = Matcher::new(b"\r\n0\r\n\r\n");
            let mut head = Vec::new();
            let mut body_left: Option<usize> = None;
            loop {
                let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("server closed the connection".into());
                }
                let now = Instant::now();
                let bytes = &buf[..n];
                if !o.stream {
                    // Content-length answers: parse the head once, then count the body.
                    let body = match body_left {
                        Some(_) => bytes,
                        None => {
                            head.extend_from_slice(bytes);
                            let mut hs = [httparse::EMPTY_HEADER; 16];
                            let mut res = httparse::Response::new(&mut hs);
                            match res.parse(&head).map_err(|e| format!("parse: {e}"))? {
                                httparse::Status::Partial => continue,
                                httparse::Status::Complete(len) => {
                                    if res.code != Some(200) {
                                        return Err(format!("status {:?}", res.code));
                                    }
                                    let cl = res
                                        .headers
                                        .iter()
                                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                                        .and_then(|h| {
                                            std::str::from_utf8(h.value).ok()?.parse().ok()
                                        })
                                        .ok_or("no content-length")?;
                                    body_left = Some(cl);
                                    let rest = head.len() - len;
                                    body_left = body_left.map(|l: usize| l.saturating_sub(rest));
                                    &[][..]
                                }
                            }
                        }
                    };
                    let left = body_left.unwrap_or(0).saturating_sub(body.len());
                    body_left = Some(left);
                    if left == 0 {
                        let mut sh = shared.borrow_mut();
                        sh.requests += 1;
                        sh.total_us.push(t0.elapsed().as_micros() as u64);
                        break;
                    }
                    continue;
                }
                events.feed(bytes, || times.push(now));
                let mut saw_end = false;
                end.feed(bytes, || saw_end = true);
                if saw_end {
                    break;
                }
            }
            if o.stream {
                // The last event is [DONE], in the same frame as the stop chunk.
                times.pop();
                let iv = o.interval.as_micros() as i128;
                let start = times
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (*t - t0).as_micros() as i128 - i as i128 * iv)
                    .min()
                    .unwrap_or(0);
                let mut sh = shared.borrow_mut();
                for (i, t) in times.iter().enumerate() {
                    let late = (*t - t0).as_micros() as i128 - i as i128 * iv - start;
                    sh.lateness_us.push(late.clamp(0, u32::MAX as i128) as u32);
                }
                sh.frames += times.len() as u64;
                sh.requests += 1;
                sh.total_us.push(t0.elapsed().as_micros() as u64);
            }
        }
        Ok(())
    }
    .await;
    shared.borrow_mut().open -= 1;
    result
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
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

fn pct(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => Rc::new(o),
        Err(e) => {
            eprintln!("streams: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(o));
}

async fn run(o: Rc<Opts>) {
    let req: Rc<[u8]> = request(&o).into();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let rss_before = status_kb(o.pid, "VmRSS:");
    let cpu_before = cpu_ticks(o.pid);
    let t_start = Instant::now();
    let deadline = t_start + o.deadline;

    // Memory sampler: VmRSS when every stream is open (the largest such sample).
    let rss_all_open = Rc::new(RefCell::new(0u64));
    let sampler = {
        let (shared, rss, o) = (Rc::clone(&shared), Rc::clone(&rss_all_open), Rc::clone(&o));
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if shared.borrow().open == o.streams {
                    let now = status_kb(o.pid, "VmRSS:");
                    let mut r = rss.borrow_mut();
                    *r = (*r).max(now);
                }
            }
        })
    };

    let mut tasks = Vec::with_capacity(o.streams);
    let per_ms = (o.open_per_s as f64 / 1000.0).max(0.001);
    for i in 0..o.streams {
        // Pace the opening: connection i starts at i / open_per_s.
        let due = t_start + Duration::from_secs_f64(i as f64 / (per_ms * 1000.0));
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % o.sources as usize) as u8));
        let (o2, req, sh) = (Rc::clone(&o), Rc::clone(&req), Rc::clone(&shared));
        tasks.push(tokio::task::spawn_local(async move {
            match tokio::time::timeout_at(deadline, connection(o2, src, req, Rc::clone(&sh))).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let mut s = sh.borrow_mut();
                    s.errors += 1;
                    s.first_error.get_or_insert(e);
                }
                Err(_) => {
                    let mut s = sh.borrow_mut();
                    s.errors += 1;
                    s.first_error.get_or_insert("deadline".into());
                }
            }
        }));
    }
    let opened_in = t_start.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    sampler.abort();
    let wall = t_start.elapsed();
    let cpu_ticks_used = cpu_ticks(o.pid).saturating_sub(cpu_before);
    let hz = 100.0; // USER_HZ on Linux
    let cpu_us = cpu_ticks_used as f64 / hz * 1e6;
    let hwm = status_kb(o.pid, "VmHWM:");

    let mut sh = shared.borrow_mut();
    sh.lateness_us.sort_unstable();
    let iv_us = o.interval.as_micros() as f64;
    let late = |q: f64| pct(&sh.lateness_us, q) / iv_us * 100.0;
    let mut totals: Vec<u32> = sh
        .total_us
        .iter()
        .map(|&t| t.min(u32::MAX as u64) as u32)
        .collect();
    totals.sort_unstable();
    let rss_open = *rss_all_open.borrow();
    let per_stream_kb = if rss_open > 0 {
        (rss_open.saturating_sub(rss_before)) as f64 / o.streams as f64
    } else {
        f64::NAN
    };
    println!(
        "streams={} peak_open={} opened_in_s={:.1} wall_s={:.1} requests={} frames={} errors={} first_error={:?}",
        o.streams,
        sh.peak_open,
        opened_in.as_secs_f64(),
        wall.as_secs_f64(),
        sh.requests,
        sh.frames,
        sh.errors,
        sh.first_error.as_deref().unwrap_or("none"),
    );
    println!(
        "RESULT streams={} peak_open={} errors={} late_p50_pct={:.2} late_p99_pct={:.2} late_max_pct={:.2} total_p50_ms={:.1} total_p99_ms={:.1} rss_before_mb={:.1} rss_open_mb={:.1} rss_per_stream_kb={:.2} hwm_mb={:.1} cpu_s={:.2} cpu_us_per_req={:.1} cpu_us_per_frame={:.2} requests={} frames={}",
        o.streams,
        sh.peak_open,
        sh.errors,
        late(0.50),
        late(0.99),
        late(1.0),
        pct(&totals, 0.5) / 1000.0,
        pct(&totals, 0.99) / 1000.0,
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        per_stream_kb,
        hwm as f64 / 1024.0,
        cpu_us / 1e6,
        if sh.requests > 0 { cpu_us / sh.requests as f64 } else { f64::NAN },
        if sh.frames > 0 { cpu_us / sh.frames as f64 } else { f64::NAN },
        sh.requests,
        sh.frames,
    );
}
