//! The kernel's floor for the mock LLM benchmark: the least CPU any HTTP/1.1 server can
//! spend per request on this machine over loopback TCP, measured by `bench/mock-llm/run.sh`
//! side by side with barrage-mock-llm and the Bun anchor.
//!
//! It answers every request on a connection with the same bytes (a file holding a whole
//! HTTP response, captured from barrage-mock-llm), with no parsing beyond finding the end
//! of the request (`httparse` for the head, then `content-length`), no JSON, no allocation
//! per request: one `epoll_wait` (shared), one `recv` and one `send` per request, as a
//! real server does at best without pipelining. A body is counted off as it arrives, never
//! copied or kept (a large one takes a `recv` per 256 KiB), so with large request bodies
//! (`bench/mock-llm/scale.sh`, part 2) the figure is the kernel's cost of receiving those
//! bytes. Whatever a real server spends above this figure is its own user-space work;
//! whatever this figure is, no server can go below it here.
//!
//! `tcp_floor PORT RESPONSE_FILE` (binds 127.0.0.1:PORT; runs until killed).
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};

const LISTENER: Token = Token(0);

struct Conn {
    stream: TcpStream,
    /// A request head not yet complete (empty between requests).
    input: Vec<u8>,
    /// Body bytes of the current request still to arrive; its answer is due when they have.
    body_left: usize,
    /// Bytes of responses not yet written (a full socket buffer).
    output: Vec<u8>,
}

/// The head of the request at the start of `buf`, once complete: its length as
/// `httparse` finds it, and its `content-length`.
fn request_head(buf: &[u8]) -> Option<(usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let body = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    Some((head, body))
}

/// Takes in bytes received on `c`: counts off bodies, parses heads, queues an answer per
/// complete request.
fn feed(c: &mut Conn, data: &[u8], response: &[u8]) {
    if c.input.is_empty() {
        return feed_fresh(c, data, response);
    }
    // A head split over reads (rare): parsed once whole, from its own buffer.
    let mut pending = std::mem::take(&mut c.input);
    pending.extend_from_slice(data);
    feed_fresh(c, &pending, response);
}

/// `feed` with no partial head pending: heads are parsed where they lie.
fn feed_fresh(c: &mut Conn, mut data: &[u8], response: &[u8]) {
    loop {
        if c.body_left > 0 {
            let k = c.body_left.min(data.len());
            c.body_left -= k;
            data = &data[k..];
            if c.body_left > 0 {
                return;
            }
            c.output.extend_from_slice(response);
        }
        if data.is_empty() {
            return;
        }
        match request_head(data) {
            None => {
                c.input.extend_from_slice(data);
                return;
            }
            Some((head, 0)) => {
                c.output.extend_from_slice(response);
                data = &data[head..];
            }
            Some((head, body)) => {
                c.body_left = body;
                data = &data[head..];
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: tcp_floor PORT RESPONSE_FILE");
        std::process::exit(2);
    };
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::other("PORT: a number"))?;
    let response = std::fs::read(file)?;
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next = 1usize;
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let token = Token(next);
                            next += 1;
                            poll.registry().register(
                                &mut stream,
                                token,
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns.insert(
                                token,
                                Conn {
                                    stream,
                                    input: Vec::with_capacity(4096),
                                    body_left: 0,
                                    output: Vec::new(),
                                },
                            );
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let token = ev.token();
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            let mut closed = false;
            if ev.is_readable() {
                // Read until a short read (like tokio: a short read means drained, so no
                // extra EAGAIN `recv` per request; a later arrival raises a new edge).
                loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => {
                            feed(c, &chunk[..n], &response);
                            if n < chunk.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            if !closed && !c.output.is_empty() {
                match c.stream.write(&c.output) {
                    Ok(n) => {
                        c.output.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => closed = true,
                }
            }
            if closed {
                if let Some(mut c) = conns.remove(&token) {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }
}
