//! The client side of bench/mock-llm/scale.sh: holds many concurrent chat streams (or
//! sends many large requests) against one or more running barrage-mock-llm processes (one
//! address shared with `--reuse-port`) and reports what the servers did: chunk timing
//! against its schedule, their memory per open stream, their CPU per request and per chunk,
//! and the client's own memory per open stream.
//!
//! ```text
//! streams --addr 127.0.0.1:PORT --pid PID[,PID…] [--streams N] [--interval-ms MS]
//!         [--procs K] [--sources S] [--open-per-s R] [--body-bytes B] [--repeat R]
//!         [--stream true|false] [--deadline-s S]
//! ```
//!
//! - **Processes.** One process holds one open file per stream, and a process's open-file
//!   limit is its own: `--procs K` splits the streams over K client processes (this binary
//!   again, each one thread), as K workers on one host would. This process only starts
//!   them, samples memory and CPU, and merges what they measured.
//! - **Source addresses.** Client process i leaves from its own S addresses, 127.0.0.(2 +
//!   i·S) … 127.0.0.(1 + (i+1)·S): one source address has about 28,000 ephemeral ports.
//! - Connections are opened at `--open-per-s` in all (each process its share), so the
//!   streams' chunk phases are spread the way independent clients spread them.
//! - Chunk timing: a stream's frames are due at `first + i × interval`. The client takes, per
//!   stream, the earliest start its arrivals imply (`min(t_i − i × interval)`), and the
//!   lateness of every frame against it; reported as percentiles, over every frame of every
//!   process, in % of the interval. Frames that arrive together (the server fell behind)
//!   count as late as they are.
//! - Memory: every 100 ms while every stream of every process is open, the servers' VmRSS
//!   (summed) and the clients' (summed); the figure is (the largest such sum − the sum
//!   before the first stream) ÷ streams, for each side.
//! - CPU: the servers' utime + stime over the run (from `/proc/PID/stat`) ÷ requests, and
//!   ÷ frames; the clients' likewise.
//! - The open-file limit of every process (servers and clients) is printed: it bounds the
//!   streams one process can hold.
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
    /// The servers (one address, `--reuse-port`): memory and CPU are summed over them.
    pids: Vec<u32>,
    streams: usize,
    interval: Duration,
    /// Client processes the streams are split over.
    procs: usize,
    /// Source addresses per client process.
    sources: u8,
    open_per_s: u32,
    body_bytes: usize,
    repeat: usize,
    stream: bool,
    deadline: Duration,
    /// Set in a client process: its index, and where it writes what it measured.
    child: Option<(usize, String)>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:11434".parse().unwrap(),
        pids: Vec::new(),
        streams: 1000,
        interval: Duration::from_millis(1000),
        procs: 1,
        sources: 4,
        open_per_s: 5000,
        body_bytes: 0,
        repeat: 1,
        stream: true,
        deadline: Duration::from_secs(120),
        child: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut child_index, mut child_out) = (None, None);
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(format!("{pair:?}: every flag takes a value"));
        };
        let bad = |e: &dyn std::fmt::Display| format!("{name} {value:?}: {e}");
        match name.as_str() {
            "--addr" => o.addr = value.parse().map_err(|e| bad(&e))?,
            "--pid" => {
                o.pids = value
                    .split(',')
                    .map(|p| p.trim().parse().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?
            }
            "--streams" => o.streams = value.parse().map_err(|e| bad(&e))?,
            "--interval-ms" => {
                o.interval = Duration::from_millis(value.parse().map_err(|e| bad(&e))?)
            }
            "--procs" => o.procs = value.parse().map_err(|e| bad(&e))?,
            "--sources" => o.sources = value.parse().map_err(|e| bad(&e))?,
            "--open-per-s" => o.open_per_s = value.parse().map_err(|e| bad(&e))?,
            "--body-bytes" => o.body_bytes = value.parse().map_err(|e| bad(&e))?,
            "--repeat" => o.repeat = value.parse().map_err(|e| bad(&e))?,
            "--stream" => o.stream = value.parse().map_err(|e| bad(&e))?,
            "--deadline-s" => o.deadline = Duration::from_secs(value.parse().map_err(|e| bad(&e))?),
            "--child" => child_index = Some(value.parse().map_err(|e| bad(&e))?),
            "--out" => child_out = Some(value.clone()),
            _ => return Err(format!("unknown flag {name}")),
        }
    }
    o.child = child_index.zip(child_out);
    if o.child.is_none() && (o.pids.is_empty() || o.pids.contains(&0)) {
        return Err("--pid PID[,PID…] is required: the server processes to measure".into());
    }
    if o.sources == 0 || o.open_per_s == 0 || o.repeat == 0 || o.streams == 0 {
        return Err("--sources, --open-per-s, --repeat and --streams must be > 0".into());
    }
    if o.procs == 0 || o.procs > o.streams {
        return Err(format!("--procs {}: give 1..=--streams", o.procs));
    }
    if 1 + o.procs * usize::from(o.sources) > 254 {
        return Err(format!(
            "--procs {} × --sources {}: the source addresses 127.0.0.2… would pass \
             127.0.0.254; give fewer",
            o.procs, o.sources
        ));
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

/// The soft open-file limit of `pid` ("self" for this process), from `/proc/PID/limits`.
fn fd_limit(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Max open files")
                .and_then(|r| r.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}

/// A `key=value` field of a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("streams: {e}");
            std::process::exit(2);
        }
    };
    if o.child.is_none() {
        parent(&o);
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, child(Rc::new(o)));
}

/// One client process: its share of the streams, from its own source addresses. Prints
/// `BEFORE`, `ALLOPEN` (every stream of it open), `CLOSING` (the first one ended) and
/// `DONE` lines for the parent; writes every frame's lateness (u32 µs, little-endian) to
/// `OUT.late` and every request's time (u32 µs) to `OUT.total`.
async fn child(o: Rc<Opts>) {
    let (index, out) = o.child.clone().expect("a client process");
    println!(
        "BEFORE rss_kb={} fd_limit={}",
        status_kb_self(),
        fd_limit("self")
    );
    let req: Rc<[u8]> = request(&o).into();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let cpu_before = cpu_ticks(std::process::id());
    let t_start = Instant::now();
    let deadline = t_start + o.deadline;

    // Tells the parent when every stream of this process is open, and when one has ended.
    let marker = {
        let (shared, o) = (Rc::clone(&shared), Rc::clone(&o));
        tokio::task::spawn_local(async move {
            let mut all_open = false;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let open = shared.borrow().open;
                if !all_open && open == o.streams {
                    all_open = true;
                    println!("ALLOPEN");
                } else if all_open && open < o.streams {
                    println!("CLOSING");
                    return;
                }
            }
        })
    };

    let mut tasks = Vec::with_capacity(o.streams);
    let first_source = 2 + index * usize::from(o.sources);
    for i in 0..o.streams {
        // Pace the opening: connection i starts at i / open_per_s.
        let due = t_start + Duration::from_secs_f64(i as f64 / f64::from(o.open_per_s));
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let last = (first_source + i % usize::from(o.sources)) as u8;
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
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
    marker.abort();
    let cpu = cpu_ticks(std::process::id()).saturating_sub(cpu_before);
    let sh = shared.borrow();
    let bytes =
        |v: &mut dyn Iterator<Item = u32>| -> Vec<u8> { v.flat_map(u32::to_le_bytes).collect() };
    let late = bytes(&mut sh.lateness_us.iter().copied());
    let totals = bytes(
        &mut sh
            .total_us
            .iter()
            .map(|&t| t.min(u64::from(u32::MAX)) as u32),
    );
    if let Err(e) = std::fs::write(format!("{out}.late"), late)
        .and_then(|()| std::fs::write(format!("{out}.total"), totals))
    {
        eprintln!("streams: client {index}: cannot write {out}.*: {e}");
        std::process::exit(1);
    }
    println!(
        "DONE peak_open={} requests={} frames={} errors={} cpu_ticks={cpu} opened_in_s={:.1} first_error={}",
        sh.peak_open,
        sh.requests,
        sh.frames,
        sh.errors,
        opened_in.as_secs_f64(),
        sh.first_error.as_deref().unwrap_or("none").replace(' ', "_"),
    );
}

fn status_kb_self() -> u64 {
    status_kb(std::process::id(), "VmRSS:")
}

/// What the parent reads from one client process's stdout.
#[derive(Default)]
struct ChildState {
    rss_before_kb: Option<u64>,
    fd_limit: String,
    all_open: bool,
    closing: bool,
    done: Option<String>,
}

/// Starts `o.procs` client processes, samples the servers' and the clients' memory while
/// every stream is open, merges what the clients measured and prints the result.
fn parent(o: &Opts) {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let dir = std::env::temp_dir().join(format!("streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let server_rss = || o.pids.iter().map(|&p| status_kb(p, "VmRSS:")).sum::<u64>();
    let server_cpu = || o.pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>();
    let rss_before = server_rss();
    let each_before: Vec<u64> = o.pids.iter().map(|&p| status_kb(p, "VmRSS:")).collect();
    let mut each_open = vec![0u64; o.pids.len()];
    let cpu_before = server_cpu();
    let t_start = std::time::Instant::now();
    let me = std::env::current_exe().expect("own path");
    let states: Vec<Arc<Mutex<ChildState>>> = (0..o.procs).map(|_| Arc::default()).collect();
    let mut children = Vec::new();
    for (i, state) in states.iter().enumerate() {
        // An even split: the first `streams % procs` processes take one more.
        let n = o.streams / o.procs + usize::from(i < o.streams % o.procs);
        let rate = (o.open_per_s as usize / o.procs).max(1);
        let mut child = std::process::Command::new(&me)
            .args(["--addr", &o.addr.to_string(), "--streams", &n.to_string()])
            .args(["--interval-ms", &o.interval.as_millis().to_string()])
            .args(["--sources", &o.sources.to_string()])
            .args(["--open-per-s", &rate.to_string()])
            .args(["--body-bytes", &o.body_bytes.to_string()])
            .args(["--repeat", &o.repeat.to_string()])
            .args(["--stream", &o.stream.to_string()])
            .args(["--deadline-s", &o.deadline.as_secs().to_string()])
            .args(["--child", &i.to_string()])
            .args(["--out", &dir.join(i.to_string()).to_string_lossy()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a client process");
        let stdout = child.stdout.take().expect("piped");
        let state = Arc::clone(state);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let mut s = state.lock().unwrap();
                if let Some(rest) = line.strip_prefix("BEFORE ") {
                    s.rss_before_kb = field(rest, "rss_kb").and_then(|v| v.parse().ok());
                    s.fd_limit = field(rest, "fd_limit").unwrap_or("?").to_owned();
                } else if line == "ALLOPEN" {
                    s.all_open = true;
                } else if line == "CLOSING" {
                    s.closing = true;
                } else if let Some(rest) = line.strip_prefix("DONE ") {
                    s.done = Some(rest.to_owned());
                }
            }
        });
        children.push(child);
    }
    // Memory of both sides while every stream of every process is open.
    let (mut rss_open, mut client_rss_open) = (0u64, 0u64);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let finished = children
            .iter_mut()
            .all(|c| c.try_wait().ok().flatten().is_some());
        if finished {
            break;
        }
        let all_open = states.iter().all(|s| {
            let s = s.lock().unwrap();
            s.all_open && !s.closing
        });
        if all_open {
            let each: Vec<u64> = o.pids.iter().map(|&p| status_kb(p, "VmRSS:")).collect();
            if each.iter().sum::<u64>() > rss_open {
                rss_open = each.iter().sum();
                each_open = each;
            }
            let clients: u64 = children.iter().map(|c| status_kb(c.id(), "VmRSS:")).sum();
            client_rss_open = client_rss_open.max(clients);
        }
    }
    let wall = t_start.elapsed();
    for c in &mut children {
        let status = c.wait().expect("wait for a client process");
        assert!(status.success(), "a client process failed: {status}");
    }
    std::thread::sleep(Duration::from_millis(50)); // the readers' last lines
    let cpu_us = server_cpu().saturating_sub(cpu_before) as f64 / 100.0 * 1e6; // USER_HZ
    let hwm: u64 = o.pids.iter().map(|&p| status_kb(p, "VmHWM:")).sum();

    let (mut lateness, mut totals) = (Vec::<u32>::new(), Vec::<u32>::new());
    let (mut peak, mut requests, mut frames, mut errors, mut client_ticks) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut client_before, mut first_error, mut opened_in, mut client_fds) =
        (0u64, String::from("none"), 0f64, Vec::new());
    let read = |path: std::path::PathBuf| -> Vec<u32> {
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    for (i, state) in states.iter().enumerate() {
        let s = state.lock().unwrap();
        let done = s
            .done
            .clone()
            .unwrap_or_else(|| panic!("client {i} printed no DONE line"));
        let num = |k: &str| {
            field(&done, k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        peak += num("peak_open");
        requests += num("requests");
        frames += num("frames");
        errors += num("errors");
        client_ticks += num("cpu_ticks");
        client_before += s.rss_before_kb.unwrap_or(0);
        client_fds.push(s.fd_limit.clone());
        let secs: f64 = field(&done, "opened_in_s")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        opened_in = opened_in.max(secs);
        if first_error == "none" {
            first_error = field(&done, "first_error").unwrap_or("none").to_owned();
        }
        lateness.extend(read(dir.join(format!("{i}.late"))));
        totals.extend(read(dir.join(format!("{i}.total"))));
    }
    let _ = std::fs::remove_dir_all(&dir);
    lateness.sort_unstable();
    totals.sort_unstable();
    let iv_us = o.interval.as_micros() as f64;
    let late = |q: f64| pct(&lateness, q) / iv_us * 100.0;
    let per_stream = |open: u64, before: u64| {
        if open > 0 {
            open.saturating_sub(before) as f64 / o.streams as f64
        } else {
            f64::NAN
        }
    };
    let client_cpu_us = client_ticks as f64 / 100.0 * 1e6;
    let server_fds: Vec<String> = o.pids.iter().map(|p| fd_limit(&p.to_string())).collect();
    println!(
        "streams={} servers={} clients={} peak_open={peak} opened_in_s={opened_in:.1} wall_s={:.1} requests={requests} frames={frames} errors={errors} first_error={first_error}",
        o.streams,
        o.pids.len(),
        o.procs,
        wall.as_secs_f64(),
    );
    // How the kernel spread the streams: each server's RSS growth.
    let spread: Vec<String> = each_open
        .iter()
        .zip(&each_before)
        .map(|(o, b)| format!("{:.1}", o.saturating_sub(*b) as f64 / 1024.0))
        .collect();
    println!(
        "RSS growth per server process with every stream open (MiB): {}",
        spread.join(", ")
    );
    println!(
        "open-file limits: servers {}; clients {}",
        server_fds.join(","),
        client_fds.join(",")
    );
    println!(
        "RESULT streams={} servers={} clients={} peak_open={peak} errors={errors} late_p50_pct={:.2} late_p99_pct={:.2} late_max_pct={:.2} late_p99_ms={:.1} late_max_ms={:.1} total_p50_ms={:.1} total_p99_ms={:.1} rss_before_mb={:.1} rss_open_mb={:.1} rss_per_stream_kb={:.2} client_rss_per_stream_kb={:.2} hwm_mb={:.1} cpu_s={:.2} cpu_us_per_req={:.1} cpu_us_per_frame={:.2} client_cpu_us_per_frame={:.2} requests={requests} frames={frames} server_fd_limits={} client_fd_limits={}",
        o.streams,
        o.pids.len(),
        o.procs,
        late(0.50),
        late(0.99),
        late(1.0),
        pct(&lateness, 0.99) / 1000.0,
        pct(&lateness, 1.0) / 1000.0,
        pct(&totals, 0.5) / 1000.0,
        pct(&totals, 0.99) / 1000.0,
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        per_stream(rss_open, rss_before),
        per_stream(client_rss_open, client_before),
        hwm as f64 / 1024.0,
        cpu_us / 1e6,
        if requests > 0 { cpu_us / requests as f64 } else { f64::NAN },
        if frames > 0 { cpu_us / frames as f64 } else { f64::NAN },
        if frames > 0 { client_cpu_us / frames as f64 } else { f64::NAN },
        server_fds.join(","),
        client_fds.join(","),
    );
}
