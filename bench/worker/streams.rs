//! The worker holding many long SSE streams: memory per open stream, event timing, CPU
//! per event.
//!
//! A tiny SSE server (this binary with `serve`, its own process so its memory is not
//! counted) sends one event per second on every stream for the run's length, as an agent
//! stream with slow steps between tool calls does. The client is the worker's own HTTP
//! path (`barrage_worker::http::Http` on one thread, as a worker runs, each stream read
//! through the worker's SSE parser), its connections spread over `SOURCES` loopback
//! source addresses (`target.source_addrs`) and its descriptor limit raised as the worker
//! raises it. Reported: RSS growth per open stream (all streams open and past their first
//! event), every stream's event count, the latest first event, the worst lateness of an
//! event against the server's once-per-second schedule, and the client's CPU per event.
//! The event rate is the stream count per second: size it to the machine.
//!
//! `cargo bench -p barrage-controller --bench worker_streams [-- STREAMS SECONDS SOURCES]`
//! (default 10000 streams, 60 s, 4 sources)
use barrage_worker::http::sse::SseParser;
use barrage_worker::http::{build_client, raise_fd_limit, BodySink, Http, Request, TooLarge};
use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// The server: every connection gets a chunked `text/event-stream` of `seconds` events,
/// one per second, each carrying the time it was due (µs since the epoch).
async fn serve(seconds: u64) {
    let _ = raise_fd_limit();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", l.local_addr().unwrap());
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
            for i in 0..seconds {
                let due = t0 + Duration::from_secs(i);
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

/// Per stream: the events and how late the worst one was against its due time.
#[derive(Default)]
struct Stream {
    parser: SseParser,
    events: u64,
    first: Option<Duration>,
    worst_late_us: i64,
}

impl BodySink for Stream {
    fn chunk(&mut self, bytes: &[u8], since_start: Duration) -> Result<(), TooLarge> {
        let now = barrage_controller::coordinator::clock::now_us();
        let (mut n, mut late) = (0, self.worst_late_us);
        self.parser.feed(bytes, &mut |ev| {
            n += 1;
            let due = ev
                .data
                .rsplit_once("\"due\":")
                .and_then(|(_, v)| v.trim_end_matches('}').parse::<i64>().ok());
            if let Some(due) = due {
                late = late.max(now - due);
            }
        })?;
        if n > 0 && self.first.is_none() {
            self.first = Some(since_start);
        }
        self.events += n;
        self.worst_late_us = late;
        Ok(())
    }
    fn end(&mut self, _: Duration) {}
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if args.first().map(String::as_str) == Some("serve") {
        let seconds = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(60);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(serve(seconds));
        return;
    }
    let n: usize = args.first().and_then(|x| x.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(60);
    let sources: u8 = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(4);
    let fd = raise_fd_limit().expect("raise RLIMIT_NOFILE");
    println!("RLIMIT_NOFILE {} -> {}", fd.before, fd.now);
    let mut server = Command::new(std::env::current_exe().unwrap())
        .args(["serve", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = format!("http://{}/stream", line.trim());
    let addrs: Vec<IpAddr> = (0..sources)
        .map(|i| IpAddr::from([127, 0, 0, 2 + i]))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let results = local.block_on(&rt, async {
        let http = Http::new(build_client().unwrap(), Duration::from_secs(seconds + 60))
            .with_sources(&addrs);
        let rss0 = kib("VmRSS:");
        let streams: Vec<Rc<RefCell<Stream>>> = (0..n).map(|_| Rc::default()).collect();
        let cancel = CancellationToken::new();
        let opened = Instant::now();
        let mut tasks = Vec::new();
        for (i, st) in streams.iter().enumerate() {
            let (http, url, st, cancel) = (http.clone(), url.clone(), st.clone(), cancel.clone());
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
                let mut sink = std::mem::take(&mut *st.borrow_mut());
                let ex = http.execute(&req, &mut sink, &cancel).await;
                let ok = matches!(&ex, Ok(e) if e.error.is_none() && e.status == 200);
                *st.borrow_mut() = sink;
                (i, ok)
            }));
            if i % 500 == 499 {
                tokio::task::yield_now().await;
            }
        }
        // every stream open and past its first event (the sinks are inside the tasks until
        // they end: count the connections the server has answered instead, by time)
        let settle = Duration::from_secs(5).min(Duration::from_secs(seconds / 3));
        tokio::time::sleep(settle).await;
        let open_s = opened.elapsed().as_secs_f64();
        let rss1 = kib("VmRSS:");
        let c0 = cpu_s();
        let t0 = Instant::now();
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().1 {
                ok += 1;
            }
        }
        let cpu = cpu_s() - c0;
        let wall = t0.elapsed().as_secs_f64();
        (rss0, rss1, open_s, ok, cpu, wall, streams)
    });
    let (rss0, rss1, open_s, ok, cpu, wall, streams) = results;
    let _ = server.kill();
    let _ = server.wait();
    let mut firsts: Vec<f64> = Vec::new();
    let (mut events, mut full, mut worst) = (0u64, 0usize, 0i64);
    for s in &streams {
        let s = s.borrow();
        events += s.events;
        full += usize::from(s.events == seconds);
        worst = worst.max(s.worst_late_us);
        if let Some(f) = s.first {
            firsts.push(f.as_secs_f64() * 1e3);
        }
    }
    firsts.sort_by(|a, b| a.total_cmp(b));
    let steady_events = events as f64 * (wall / seconds as f64).min(1.0);
    println!(
        "{n} streams over {sources} source addresses, 1 event/s each ({n} events/s), {seconds} s: \
         {ok}/{n} ended 200 OK, {full}/{n} got all {seconds} events; \
         RSS {:.1} -> {:.1} MiB after {open_s:.1} s = {:.2} KiB per open stream; \
         first event median {:.1} ms, max {:.1} ms; worst event lateness {:.1} ms; \
         client CPU {:.1} % of a core = {:.1} µs per event",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        (rss1 - rss0) as f64 / n as f64,
        firsts.get(firsts.len() / 2).copied().unwrap_or(f64::NAN),
        firsts.last().copied().unwrap_or(f64::NAN),
        worst as f64 / 1e3,
        cpu / wall * 100.0,
        cpu / steady_events.max(1.0) * 1e6,
    );
}
