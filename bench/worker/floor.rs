//! The floors of `bigbody`: what one client thread spends moving the same bytes over
//! loopback TCP as the worker does, exchange by exchange in the flow's order, to a peer
//! that keeps up with anything ([`Peer::Eager`]) or to one as slow as the reference
//! runtime ([`Peer::Paced`]).
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

/// One exchange of the flow: the bytes its request writes and its answer brings back
/// (as the worker's summary counts them: head + body).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exchange {
    pub sent: usize,
    pub received: usize,
}

/// An iteration's exchanges, in the order the flow sends them; every connection of a
/// floor replays them in a loop, and its peer expects them in the same order.
pub type Sequence = Arc<[Exchange]>;

/// CPU and context switches of a process or a thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, seconds.
    pub cpu: f64,
    /// stime, seconds.
    pub sys: f64,
    /// Voluntary and involuntary context switches.
    pub switches: f64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            cpu: self.cpu - o.cpu,
            sys: self.sys - o.sys,
            switches: self.switches - o.switches,
        }
    }
}

/// The usage of one task: `dir` is `/proc/PID/task/TID` or `/proc/thread-self`.
pub fn task_usage(dir: &str) -> Usage {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    let switches = status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum();
    // fields 14 and 15 of stat (utime, stime), the 12th and 13th after the command's
    // `)`, in USER_HZ ticks: 100 per second on Linux whatever the kernel's HZ
    Usage {
        cpu: (ticks(11) + ticks(12)) / 100.0,
        sys: ticks(12) / 100.0,
        switches,
    }
}

/// The far end of a floor's connections (core 1).
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A thread per connection that only reads and answers: it keeps up with anything.
    Eager,
    /// One thread serving every connection, as the reference runtime does (one tokio
    /// thread for the runtime and the mock LLM): it reads with hyper's adaptive buffer
    /// (8 KiB, doubled after a read that fills it, up to ~408 KiB, halved after two
    /// short ones), and spends, per request, the CPU the target spent per request in the
    /// same case and round (busy on its own CPU clock between the request and its
    /// answer). A client in front of it waits for a peer as slow as the real one, with
    /// the same bytes.
    Paced { us_per_request: f64 },
}

/// What a floor measured: per exchange, the client thread's CPU, its system CPU and its
/// context switches; and exchanges per second.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floor {
    pub us: f64,
    pub sys_us: f64,
    pub switches: f64,
    pub rate: f64,
}

fn thread_cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The eager peer: a thread per connection reading each exchange's request and writing
/// its answer.
fn eager_peer(l: TcpListener, seq: Sequence, vus: usize) {
    let longest = seq.iter().map(|e| e.received).max().unwrap_or(0).max(1);
    let answers: Vec<_> = (0..vus)
        .map(|_| {
            let (mut s, _) = l.accept().unwrap();
            let seq = seq.clone();
            std::thread::spawn(move || {
                barrage_worker::pin::pin_current_thread(1);
                s.set_nodelay(true).unwrap();
                let answer = vec![b'a'; longest];
                let mut buf = vec![0u8; 256 * 1024];
                for e in seq.iter().cycle() {
                    let mut got = 0;
                    while got < e.sent.max(1) {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                    }
                    if s.write_all(&answer[..e.received.max(1)]).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for a in answers {
        let _ = a.join();
    }
}

/// The paced peer ([`Peer::Paced`]) on one tokio thread pinned to core 1.
fn paced_peer(l: TcpListener, seq: Sequence, vus: usize, us_per_request: f64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // hyper's `ReadStrategy::Adaptive` limits (h1 `io.rs`)
    const INIT: usize = 8192;
    const MAX: usize = 8192 + 4096 * 100;
    barrage_worker::pin::pin_current_thread(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    l.set_nonblocking(true).unwrap();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::from_std(l).unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let c0 = thread_cpu_now();
        let longest = seq.iter().map(|e| e.received).max().unwrap_or(0).max(1);
        let mut tasks = Vec::new();
        for _ in 0..vus {
            let (mut s, _) = l.accept().await.unwrap();
            let (served, seq) = (served.clone(), seq.clone());
            tasks.push(tokio::spawn(async move {
                s.set_nodelay(true).unwrap();
                let answer = vec![b'a'; longest];
                let mut buf = vec![0u8; MAX];
                let (mut next, mut decrease_now) = (INIT, false);
                for e in seq.iter().cycle() {
                    let mut got = 0;
                    while got < e.sent.max(1) {
                        let n = match s.read(&mut buf[..next]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        got += n;
                        if n >= next {
                            (next, decrease_now) = ((next * 2).min(MAX), false);
                        } else if n < next / 2 {
                            if decrease_now {
                                (next, decrease_now) = ((next / 2).max(INIT), false);
                            } else {
                                decrease_now = true;
                            }
                        } else {
                            decrease_now = false;
                        }
                    }
                    // the peer's CPU, its reads included, reaches the target's per request
                    let k = served.fetch_add(1, Ordering::Relaxed) + 1;
                    let due = c0 + k as f64 * us_per_request * 1e-6;
                    while thread_cpu_now() < due {
                        std::hint::spin_loop();
                    }
                    if s.write_all(&answer[..e.received.max(1)]).await.is_err() {
                        return;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// The kernel's floor: CPU per exchange of one client thread (core 0) keeping `vus`
/// exchanges in flight on as many loopback connections, as the worker's VUs do, each
/// connection replaying `seq` (the flow's exchanges, each request's bytes written and its
/// answer's bytes read back from `peer`) in a loop. The client is a tokio current-thread
/// runtime (the worker's event loop at its least), so a small exchange's wake-ups are
/// shared between connections as the worker's are, and what is left is the cost of
/// moving the bytes, and of waiting for them as the peer paces them.
pub fn floor(seq: &Sequence, vus: usize, secs: f64, peer: Peer) -> Floor {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer_seq = seq.clone();
    let server = std::thread::spawn(move || match peer {
        Peer::Eager => eager_peer(l, peer_seq, vus),
        Peer::Paced { us_per_request } => paced_peer(l, peer_seq, vus, us_per_request),
    });
    let seq = seq.clone();
    let client = std::thread::spawn(move || {
        barrage_worker::pin::pin_current_thread(0);
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
            let (t0, c0, u0) = (
                Instant::now(),
                thread_cpu_now(),
                task_usage("/proc/thread-self"),
            );
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|mut s| {
                    let seq = seq.clone();
                    tokio::spawn(async move {
                        let longest = seq.iter().map(|e| e.sent).max().unwrap_or(0).max(1);
                        let request = vec![b'r'; longest];
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut n = 0u64;
                        for e in seq.iter().cycle() {
                            if t0.elapsed().as_secs_f64() >= secs {
                                break;
                            }
                            s.write_all(&request[..e.sent.max(1)]).await.unwrap();
                            let mut got = 0;
                            while got < e.received.max(1) {
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
            let u = task_usage("/proc/thread-self") - u0;
            let n = n.max(1) as f64;
            Floor {
                us: (thread_cpu_now() - c0) * 1e6 / n,
                sys_us: u.sys * 1e6 / n,
                switches: u.switches / n,
                rate: n / t0.elapsed().as_secs_f64(),
            }
        })
    });
    let f = client.join().unwrap();
    let _ = server.join();
    f
}
