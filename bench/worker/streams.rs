//! The worker holding many long SSE streams: memory per open stream, event timing, CPU
//! per event, at counts beyond one process's open-file limit.
//!
//! A tiny SSE server (this binary with `serve`, in processes of its own so its memory is
//! not counted) sends one event every `INTERVAL_MS` on every stream for the run's length,
//! as an agent stream with slow steps between tool calls does; each event carries the time
//! it was due. The client is the worker's own HTTP path (`barrage_worker::http::Http` on one
//! thread, as a worker runs, each stream read through the worker's SSE parser).
//!
//! One process holds one open file per stream and its open-file limit is its own, so the
//! streams are split as a worker host splits them: over `PROCS` client processes (default
//! ⌈streams / 15,000⌉, as several workers on one host), each raising its descriptor limit as
//! the worker does and leaving from its own `SOURCES` loopback source addresses (the plan's
//! `target.source_addrs`: client i uses 127.0.0.(2 + i·SOURCES) …), against as many server
//! processes sharing one port (`SO_REUSEPORT`). This process starts them, samples the
//! clients' memory while every stream is open and past its first event, and merges.
//!
//! Reported: RSS growth per open stream summed over the client processes, every stream's
//! event count, first-event times, the lateness of every event against the server's
//! schedule (p50/p99/max, in ms and in % of the interval), the clients' CPU per event, and
//! each process's open-file limit. The event rate is streams ÷ interval: size it to the
//! machine.
//!
//! `cargo bench -p barrage-controller --bench worker_streams [-- STREAMS SECONDS SOURCES INTERVAL_MS PROCS]`
//! (default 10000 streams, 60 s, 4 sources per client process, 1000 ms, ⌈streams / 15,000⌉)
use barrage_worker::http::sse::SseParser;
use barrage_worker::http::{build_client, raise_fd_limit, BodySink, Http, Request, TooLarge};
use std::cell::{Cell, RefCell};
#[path = "../controller/common.rs"]
mod common;
use common::proc_kib;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Streams one process is given at most (under a 20,000-descriptor limit, with room).
const PER_PROCESS: usize = 15_000;
/// Lateness histogram: 100 µs buckets up to 10 s (later events go to the last one; the
/// maximum is kept exactly).
const BUCKET_US: i64 = 100;
const BUCKETS: usize = 100_000;

fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// The soft open-file limit of `pid`, from `/proc/PID/limits`.
fn fd_limit(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            Some(
                l.strip_prefix("Max open files")?
                    .split_whitespace()
                    .next()?
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "?".into())
}

/// A `key=value` field of a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// A server process: every connection gets a chunked `text/event-stream` of
/// `seconds × 1000 / interval_ms` events, one every `interval_ms`, each carrying the time it
/// was due (µs since the epoch). Binds `port` (0: any) with `SO_REUSEPORT`, so the other
/// server processes share it; prints the address.
async fn serve(seconds: u64, interval_ms: u64, port: u16) {
    let _ = raise_fd_limit();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_reuseport(true).unwrap();
    sock.bind(([127, 0, 0, 1], port).into()).unwrap();
    let l = sock.listen(4096).unwrap();
    println!("{}", l.local_addr().unwrap());
    let events = seconds * 1000 / interval_ms;
    let interval = Duration::from_millis(interval_ms);
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut head = [0u8; 2048];
            let mut got = 0;
            while !head[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut head[got..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
                if got == head.len() {
                    return;
                }
            }
            let hdr = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            if s.write_all(hdr).await.is_err() {
                return;
            }
            let t0 = tokio::time::Instant::now();
            for i in 0..events {
                let due = t0 + interval * i as u32;
                tokio::time::sleep_until(due).await;
                let due_us = barrage_controller::coordinator::clock::now_us()
                    - due.elapsed().as_micros() as i64;
                let ev = format!("event: values\ndata: {{\"i\":{i},\"due\":{due_us}}}\n\n");
                let chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
                if s.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        });
    }
}

/// What one client process's streams share (one thread: no locks).
struct Tally {
    /// Streams past their first event and not yet ended.
    open: Cell<usize>,
    late: RefCell<Vec<u32>>,
    max_late_us: Cell<i64>,
}

/// Per stream: its events and when the first came.
struct Stream {
    parser: SseParser,
    tally: Rc<Tally>,
    events: u64,
    first: Option<Duration>,
}

impl BodySink for Stream {
    fn chunk(&mut self, bytes: &[u8], since_start: Duration) -> Result<(), TooLarge> {
        let now = barrage_controller::coordinator::clock::now_us();
        let mut n = 0;
        let tally = &self.tally;
        self.parser.feed(bytes, &mut |ev| {
            n += 1;
            let due = ev
                .data
                .rsplit_once("\"due\":")
                .and_then(|(_, v)| v.trim_end_matches('}').parse::<i64>().ok());
            if let Some(due) = due {
                let late = (now - due).max(0);
                tally.max_late_us.set(tally.max_late_us.get().max(late));
                let b = ((late / BUCKET_US) as usize).min(BUCKETS - 1);
                tally.late.borrow_mut()[b] += 1;
            }
        })?;
        if n > 0 && self.first.is_none() {
            self.first = Some(since_start);
            tally.open.set(tally.open.get() + 1);
        }
        self.events += n;
        Ok(())
    }
    fn end(&mut self, _: Duration) {}
}

/// One client process: `n` streams to `url` from `sources`. Prints `BEFORE`, `ALLOPEN`,
/// `CLOSING` and `DONE` lines for the parent; writes its lateness histogram (u32 per
/// bucket, little-endian) to `out` and its first-event times (u32 µs) to `out.first`.
fn client(n: usize, seconds: u64, interval_ms: u64, sources: &[IpAddr], url: &str, out: &str) {
    let fd = raise_fd_limit().expect("raise RLIMIT_NOFILE");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let want = seconds * 1000 / interval_ms;
    local.block_on(&rt, async {
        let http = Http::new(build_client().unwrap(), Duration::from_secs(seconds + 60))
            .with_sources(sources);
        let tally = Rc::new(Tally {
            open: Cell::new(0),
            late: RefCell::new(vec![0; BUCKETS]),
            max_late_us: Cell::new(0),
        });
        println!(
            "BEFORE rss_kb={} fd_before={} fd_now={}",
            proc_kib("self", "VmRSS:"),
            fd.before,
            fd.now
        );
        let marker = {
            let tally = Rc::clone(&tally);
            tokio::task::spawn_local(async move {
                let mut all = false;
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let open = tally.open.get();
                    if !all && open == n {
                        all = true;
                        println!("ALLOPEN");
                    } else if all && open < n {
                        println!("CLOSING");
                        return;
                    }
                }
            })
        };
        let cancel = CancellationToken::new();
        let c0 = cpu_s();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (http, url, tally, cancel) = (
                http.clone(),
                url.to_owned(),
                Rc::clone(&tally),
                cancel.clone(),
            );
            tasks.push(tokio::task::spawn_local(async move {
                let method = reqwest::Method::GET;
                let req = Request {
                    method: &method,
                    url: &url,
                    body: None,
                    auth: None,
                    accept: Some("text/event-stream"),
                    extra: &[],
                };
                let mut sink = Stream {
                    parser: SseParser::default(),
                    tally: Rc::clone(&tally),
                    events: 0,
                    first: None,
                };
                let ex = http.execute(&req, &mut sink, &cancel).await;
                let ok = matches!(&ex, Ok(e) if e.error.is_none() && e.status == 200);
                if sink.first.is_some() {
                    tally.open.set(tally.open.get() - 1);
                }
                (ok, sink.events, sink.first)
            }));
            if i % 500 == 499 {
                tokio::task::yield_now().await;
            }
        }
        let (mut ok, mut full, mut events, mut firsts) = (0, 0, 0u64, Vec::with_capacity(n));
        for t in tasks {
            let (o, e, first) = t.await.unwrap();
            ok += usize::from(o);
            full += usize::from(e == want);
            events += e;
            if let Some(f) = first {
                firsts.push(f.as_micros().min(u128::from(u32::MAX)) as u32);
            }
        }
        marker.abort();
        let cpu = cpu_s() - c0;
        let bytes: Vec<u8> = tally
            .late
            .borrow()
            .iter()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        std::fs::write(out, bytes).expect("write the histogram");
        let firsts: Vec<u8> = firsts.iter().flat_map(|c| c.to_le_bytes()).collect();
        std::fs::write(format!("{out}.first"), firsts).expect("write the first events");
        println!(
            "DONE ok={ok} full={full} events={events} cpu_s={cpu:.3} max_late_us={}",
            tally.max_late_us.get()
        );
    });
}

/// What the parent reads from one client's stdout.
#[derive(Default)]
struct ChildState {
    before: Option<String>,
    all_open: bool,
    closing: bool,
    done: Option<String>,
}

fn spawn_reader(child: &mut Child) -> Arc<Mutex<ChildState>> {
    let state: Arc<Mutex<ChildState>> = Arc::default();
    let out = child.stdout.take().unwrap();
    let st = Arc::clone(&state);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut s = st.lock().unwrap();
            match line
                .split_once(' ')
                .map_or((line.as_str(), ""), |(a, b)| (a, b))
            {
                ("BEFORE", rest) => s.before = Some(rest.to_owned()),
                ("ALLOPEN", _) => s.all_open = true,
                ("CLOSING", _) => s.closing = true,
                ("DONE", rest) => s.done = Some(rest.to_owned()),
                _ => {}
            }
        }
    });
    state
}

/// The q-quantile (0..=1) of a bucket histogram, in µs (the bucket's upper edge).
fn quantile_us(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
    let mut seen = 0;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return ((i as i64 + 1) * BUCKET_US) as f64;
        }
    }
    f64::NAN
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|x| x.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("serve") => {
            let (seconds, interval, port) = (num(1, 60), num(2, 1000), num(3, 0) as u16);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(serve(seconds, interval, port));
            return;
        }
        Some("client") => {
            let sources: Vec<IpAddr> = args[5].split(',').map(|a| a.parse().unwrap()).collect();
            client(
                num(1, 0) as usize,
                num(2, 60),
                num(3, 1000),
                &sources,
                &args[4],
                &args[6],
            );
            return;
        }
        _ => {}
    }
    let n = num(0, 10_000) as usize;
    let seconds = num(1, 60);
    let sources = num(2, 4) as usize;
    let interval_ms = num(3, 1000);
    let procs = num(4, n.div_ceil(PER_PROCESS) as u64) as usize;
    assert!(
        n > 0 && procs >= 1 && procs <= n,
        "STREAMS > 0, 1 <= PROCS <= STREAMS"
    );
    assert!(
        interval_ms > 0 && seconds * 1000 >= interval_ms,
        "INTERVAL_MS in 1..=SECONDS × 1000"
    );
    assert!(
        2 + procs * sources <= 255,
        "PROCS × SOURCES source addresses must fit 127.0.0.2–254"
    );
    let want = seconds * 1000 / interval_ms;
    let me = std::env::current_exe().unwrap();

    // The servers: one port, `procs` processes.
    let mut servers: Vec<Child> = Vec::new();
    let mut addr = String::new();
    for i in 0..procs {
        let port = if i == 0 {
            "0".to_owned()
        } else {
            addr.rsplit(':').next().unwrap().to_owned()
        };
        let mut s = Command::new(&me)
            .args([
                "serve",
                &seconds.to_string(),
                &interval_ms.to_string(),
                &port,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(s.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        addr = line.trim().to_owned();
        servers.push(s);
    }
    let url = format!("http://{addr}/stream");
    let dir = std::env::temp_dir().join(format!("worker-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let t0 = Instant::now();
    let mut clients = Vec::new();
    for i in 0..procs {
        let share = n / procs + usize::from(i < n % procs);
        let addrs: Vec<String> = (0..sources)
            .map(|k| format!("127.0.0.{}", 2 + i * sources + k))
            .collect();
        let mut c = Command::new(&me)
            .args([
                "client",
                &share.to_string(),
                &seconds.to_string(),
                &interval_ms.to_string(),
            ])
            .args([
                url.clone(),
                addrs.join(","),
                dir.join(i.to_string()).to_string_lossy().into_owned(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let state = spawn_reader(&mut c);
        clients.push((c, state));
    }
    // The clients' memory while every stream of every client is open and past its first event.
    let mut rss_open = 0u64;
    let mut open_at = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if clients
            .iter_mut()
            .all(|(c, _)| c.try_wait().ok().flatten().is_some())
        {
            break;
        }
        let all = clients.iter().all(|(_, s)| {
            let s = s.lock().unwrap();
            s.all_open && !s.closing
        });
        if all {
            open_at.get_or_insert(t0.elapsed());
            let sum = clients
                .iter()
                .map(|(c, _)| proc_kib(c.id(), "VmRSS:"))
                .sum();
            rss_open = rss_open.max(sum);
        }
    }
    let server_fds: Vec<String> = servers
        .iter()
        .map(|s| fd_limit(&s.id().to_string()))
        .collect();
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    std::thread::sleep(Duration::from_millis(50)); // the readers' last lines

    let (mut rss0, mut ok, mut full, mut events, mut cpu, mut max_late) =
        (0u64, 0u64, 0u64, 0u64, 0f64, 0i64);
    let (mut hist, mut firsts, mut fds) = (vec![0u64; BUCKETS], Vec::new(), Vec::new());
    for (i, (c, state)) in clients.iter_mut().enumerate() {
        let status = c.wait().unwrap();
        assert!(status.success(), "client {i} failed: {status}");
        let s = state.lock().unwrap();
        let before = s.before.clone().unwrap_or_default();
        let done = s
            .done
            .clone()
            .unwrap_or_else(|| panic!("client {i} printed no DONE line"));
        let get = |line: &str, k: &str| {
            field(line, k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        rss0 += get(&before, "rss_kb") as u64;
        fds.push(format!(
            "{}->{}",
            get(&before, "fd_before"),
            get(&before, "fd_now")
        ));
        ok += get(&done, "ok") as u64;
        full += get(&done, "full") as u64;
        events += get(&done, "events") as u64;
        cpu += get(&done, "cpu_s");
        max_late = max_late.max(get(&done, "max_late_us") as i64);
        let path = dir.join(i.to_string());
        for (b, c) in std::fs::read(&path).unwrap().chunks_exact(4).enumerate() {
            hist[b] += u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        let f = std::fs::read(path.with_extension("first")).unwrap();
        firsts.extend(
            f.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    let wall = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    firsts.sort_unstable();
    let first_ms = |q: f64| {
        let i = ((q * firsts.len() as f64).ceil() as usize).clamp(1, firsts.len().max(1)) - 1;
        firsts.get(i).map_or(f64::NAN, |&v| f64::from(v) / 1e3)
    };
    let iv_us = (interval_ms * 1000) as f64;
    let (p50, p99) = (quantile_us(&hist, 0.5), quantile_us(&hist, 0.99));
    println!(
        "{n} streams in {procs} client process(es) × {sources} source addresses, against {procs} server process(es) on {addr}; \
         one event every {interval_ms} ms per stream = {:.0} events/s, {seconds} s",
        n as f64 * 1000.0 / interval_ms as f64
    );
    println!(
        "open-file limits: clients {} (raised before->now); servers {}",
        fds.join(", "),
        server_fds.join(", ")
    );
    println!(
        "{ok}/{n} ended 200 OK, {full}/{n} got all {want} events ({events} events); \
         RSS of the clients {:.1} -> {:.1} MiB with every stream open (from {:.1} s) = {:.2} KiB per open stream; \
         first event median {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         event lateness p50 {:.1} ms ({:.2} %), p99 {:.1} ms ({:.2} %), max {:.1} ms ({:.2} %) of the interval; \
         client CPU {:.1} % of a core = {:.1} µs per event",
        rss0 as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        open_at.map_or(f64::NAN, |d| d.as_secs_f64()),
        rss_open.saturating_sub(rss0) as f64 / n as f64,
        first_ms(0.5),
        first_ms(0.99),
        first_ms(1.0),
        p50 / 1e3,
        p50 / iv_us * 100.0,
        p99 / 1e3,
        p99 / iv_us * 100.0,
        max_late as f64 / 1e3,
        max_late as f64 / iv_us * 100.0,
        cpu / wall * 100.0,
        cpu / (events.max(1) as f64) * 1e6,
    );
}
