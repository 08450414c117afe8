//! A hostile HTTP target for fault tests: a std-only server on `127.0.0.1:0` that reads
//! each request (head, and a body by `content-length`), counts it, and then misbehaves in
//! one chosen way ([`Mode`]). Tests compare what a client recorded with [`Hostile::requests`],
//! the server's own count.
//!
//! ```no_run
//! use barrage_testkit::hostile::{Hostile, Mode};
//! let target = Hostile::start(Mode::CloseWithoutAnswer);
//! // … point the client at target.url() …
//! assert_eq!(target.requests(), 10);
//! ```
//!
//! One thread per connection. Everything it writes is bounded: the "endless" answers stop
//! after [`MAX_WRITE`] bytes or [`MAX_LIFE`] per connection, a hang after [`MAX_LIFE`]; all
//! of them stop when the client goes away or the [`Hostile`] is dropped (which closes every
//! connection and joins the accept thread).
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most one connection is sent in any mode.
pub const MAX_WRITE: u64 = 4 << 30;
/// The longest a connection is kept (a hang, an endless body).
pub const MAX_LIFE: Duration = Duration::from_secs(120);

/// How the server answers every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `200` with `content-length: len` and `len` bytes of `x` (keep-alive after it).
    HugeBody { len: u64 },
    /// `200`, chunked, chunks of `x` that never end (up to [`MAX_WRITE`]).
    EndlessBody,
    /// `200 text/event-stream`: `data: ` then `len` bytes of `x` without a newline, then
    /// the connection is closed.
    HugeSseLine { len: u64 },
    /// `200`, chunked, then a chunk-size line that is not hex (`zz`).
    BadChunkSize,
    /// Reads the request and closes the connection without a byte of answer.
    CloseWithoutAnswer,
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Bytes that are not HTTP, then a close.
    Garbage,
}

/// A running hostile server; dropping it stops it.
pub struct Hostile {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

/// Shared by the accept thread and the connection threads.
struct State {
    mode: Mode,
    /// Requests read completely (head and body).
    requests: AtomicU64,
    /// Connections accepted.
    connections: AtomicU64,
    stop: AtomicBool,
}

impl Hostile {
    /// Binds `127.0.0.1:0` and serves `mode` until dropped.
    pub fn start(mode: Mode) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            mode,
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Hostile {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received completely so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request; `false` when the client closed (or the server stops) first.
fn read_request(conn: &mut TcpStream, st: &State) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if got.len() > 1 << 20 || !read_some(conn, st, &mut buf, &mut got) {
            return false;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + body_len {
        if !read_some(conn, st, &mut buf, &mut got) {
            return false;
        }
    }
    st.requests.fetch_add(1, Ordering::SeqCst);
    true
}

/// One read into `got`, waking every 100 ms to look at `stop`; `false` at EOF, error or stop.
fn read_some(conn: &mut TcpStream, st: &State, buf: &mut [u8], got: &mut Vec<u8>) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let born = Instant::now();
    loop {
        if st.stop.load(Ordering::SeqCst) || born.elapsed() > MAX_LIFE {
            return false;
        }
        match conn.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                return true;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
}

/// Writes `n` bytes of `x` (in 64 KiB pieces, or `chunked` framing); `false` when the
/// client went away or the server stops.
fn write_filler(conn: &mut TcpStream, st: &State, mut n: u64, chunked: bool) -> bool {
    let piece = vec![b'x'; 64 * 1024];
    let born = Instant::now();
    while n > 0 {
        if st.stop.load(Ordering::SeqCst) || born.elapsed() > MAX_LIFE {
            return false;
        }
        let k = n.min(piece.len() as u64) as usize;
        let ok = if chunked {
            conn.write_all(format!("{k:x}\r\n").as_bytes()).is_ok()
                && conn.write_all(&piece[..k]).is_ok()
                && conn.write_all(b"\r\n").is_ok()
        } else {
            conn.write_all(&piece[..k]).is_ok()
        };
        if !ok {
            return false;
        }
        n -= k as u64;
    }
    true
}

fn serve(mut conn: TcpStream, st: &State) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    while read_request(&mut conn, st) {
        let keep_going = match &st.mode {
            Mode::HugeBody { len } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
                );
                conn.write_all(head.as_bytes()).is_ok() && write_filler(&mut conn, st, *len, false)
            }
            Mode::EndlessBody => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                let _ = conn.write_all(head.as_bytes()).is_ok()
                    && write_filler(&mut conn, st, MAX_WRITE, true);
                false
            }
            Mode::HugeSseLine { len } => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: ";
                let _ = conn.write_all(head.as_bytes()).is_ok()
                    && write_filler(&mut conn, st, *len, false);
                false
            }
            Mode::BadChunkSize => {
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
                );
                false
            }
            Mode::CloseWithoutAnswer => false,
            Mode::Hang => {
                let born = Instant::now();
                while !st.stop.load(Ordering::SeqCst) && born.elapsed() < MAX_LIFE {
                    // Notice the client's close: a read of 0 bytes.
                    let mut b = [0u8; 1024];
                    let mut sink = Vec::new();
                    if !read_some(&mut conn, st, &mut b, &mut sink) {
                        break;
                    }
                }
                false
            }
            Mode::Garbage => {
                let _ = conn.write_all(b"\x00\xff\xfeNOT HTTP AT ALL\r\n\x07\x1b[31m\r\n\r\n");
                false
            }
        };
        if !keep_going {
            break;
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one GET on a fresh connection; returns everything read until close (or
    /// `limit` bytes).
    fn get(h: &Hostile, limit: usize) -> Vec<u8> {
        let mut c = TcpStream::connect(h.addr()).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.len() < limit {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    }

    #[test]
    fn each_mode_answers_as_documented_and_requests_are_counted() {
        let h = Hostile::start(Mode::CloseWithoutAnswer);
        assert!(get(&h, 1).is_empty());
        assert!(get(&h, 1).is_empty());
        assert_eq!((h.requests(), h.connections()), (2, 2));

        let h = Hostile::start(Mode::HugeBody { len: 300_000 });
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 300000\r\n\r\n";
        let got = get(&h, head.len() + 300_000);
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(got.len() - head_end, 300_000);

        let h = Hostile::start(Mode::HugeSseLine { len: 100_000 });
        let got = get(&h, usize::MAX);
        assert!(got.ends_with(b"xxxx") && !got[got.len() - 100_000..].contains(&b'\n'));

        let h = Hostile::start(Mode::EndlessBody);
        assert!(get(&h, 1 << 20).len() >= 1 << 20);

        let h = Hostile::start(Mode::BadChunkSize);
        assert!(get(&h, usize::MAX).ends_with(b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"));

        let h = Hostile::start(Mode::Garbage);
        assert!(get(&h, usize::MAX).starts_with(b"\x00\xff"));
    }

    #[test]
    fn a_hang_answers_nothing_until_the_server_is_dropped() {
        let h = Hostile::start(Mode::Hang);
        let mut c = TcpStream::connect(h.addr()).unwrap();
        c.write_all(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 16];
        assert!(c.read(&mut b).is_err(), "no answer while it hangs");
        assert_eq!(h.requests(), 1);
        drop(h);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read(&mut b).unwrap(), 0, "closed when dropped");
    }
}
