//! Tests of the HTTP/1.1 connection (`h1.rs`): framing, keep-alive, stale connections,
//! malformed answers, and its fuzzers. Kept apart so the connection reads as one room.
use super::*;
use crate::http::exchange::Kept;
use crate::http::INLINE_BODY_MAX;
use tokio::net::TcpListener;

/// Reads one request up to its blank line (no request bodies in these tests); false when
/// the client left first.
async fn read_head(s: &mut tokio::net::TcpStream) -> bool {
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 1024];
        let n = s.read(&mut b).await.unwrap();
        if n == 0 {
            return false;
        }
        got.extend_from_slice(&b[..n]);
    }
    true
}

/// A server that answers each request (read up to the blank line; no request bodies
/// in these tests) with the next canned reply, then closes or waits for more.
async fn serve(replies: Vec<&'static [u8]>, close_after: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        for reply in replies {
            if !read_head(&mut s).await {
                return;
            }
            // In pieces, to exercise partial heads and chunks.
            for piece in reply.chunks(7) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        }
        if !close_after {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    addr
}

/// A connection to a [`serve`] server.
async fn connect(replies: Vec<&'static [u8]>, close_after: bool) -> Conn {
    Conn::open(&serve(replies, close_after).await, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn connections_leave_from_the_source_addresses_in_turn() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let http = crate::http::Http::new(crate::http::build_client().unwrap(), Duration::from_secs(5))
        .with_sources(&["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()]);
    let mut peers = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..4 {
        let (open, accepted) = tokio::join!(Conn::open(&addr, http.sources.next()), l.accept());
        conns.push(open.unwrap());
        peers.push(accepted.unwrap().1.ip().to_string());
    }
    assert_eq!(peers, ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]);
    // a source of the wrong family is an error naming it, not a silent fallback
    let err = Conn::open(&addr, Some("::1".parse().unwrap()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("::1"), "{err}");
}

/// A request of `method` with no body, no auth and no extra headers.
fn bare(method: &reqwest::Method) -> Request<'_> {
    Request {
        method,
        url: "",
        body: None,
        auth: None,
        accept: None,
        extra: &[],
    }
}

/// One exchange of a bodiless `method` request on `conn`.
async fn run(
    conn: &mut Conn,
    method: reqwest::Method,
) -> (Result<bool, Failure>, Progress, Vec<u8>) {
    let req = bare(&method);
    conn.write_request(&req, "/x");
    let mut p = Progress::default();
    let mut body = Vec::new();
    let head_request = method == reqwest::Method::HEAD;
    let r = conn
        .exchange(
            req.body.as_ref(),
            head_request,
            Instant::now(),
            &mut p,
            &mut body,
        )
        .await;
    (r, p, body)
}

/// Reads one request with a `content-length` body, answers 204, and hands back the body.
async fn take_one_body(l: TcpListener) -> Vec<u8> {
    let (mut s, _) = l.accept().await.unwrap();
    let mut got = Vec::new();
    let mut b = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0, "the request ended early: {} bytes", got.len());
        got.extend_from_slice(&b[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&got) {
            let len: usize = req
                .headers
                .iter()
                .find(|h| h.name == "content-length")
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            if got.len() >= head + len {
                assert_eq!(got.len(), head + len, "nothing after the body");
                s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                    .await
                    .unwrap();
                return got.split_off(head);
            }
        }
    }
}

#[tokio::test]
async fn bodies_small_and_large_arrive_whole_and_are_counted() {
    let big_a = vec![b'a'; 300_000];
    let big_b = vec![b'b'; 200_000];
    let cases: [Vec<&[u8]>; 3] = [
        vec![b"{\"small\":1}"],
        vec![
            b"{\"h\":\"",
            &big_a,
            b"\",\"id\":\"x\",\"t\":\"",
            &big_b,
            b"\"}",
        ],
        vec![&big_a],
    ];
    for pieces in cases {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = tokio::spawn(take_one_body(l));
        let mut conn = Conn::open(&addr, None).await.unwrap();
        let body = Some(if pieces.len() == 1 {
            ReqBody::One(pieces[0])
        } else {
            ReqBody::Pieces(&pieces)
        });
        let req = Request {
            method: &reqwest::Method::POST,
            url: "",
            body,
            auth: None,
            accept: None,
            extra: &[],
        };
        conn.write_request(&req, "/runs/wait");
        let whole = pieces.concat();
        let head = conn.wbuf.len()
            - if whole.len() <= INLINE_BODY_MAX {
                whole.len()
            } else {
                0
            };
        assert_eq!(conn.request_len(), (head + whole.len()) as u64);
        let mut p = Progress::default();
        let r = conn
            .exchange(
                req.body.as_ref(),
                false,
                Instant::now(),
                &mut p,
                &mut Vec::new(),
            )
            .await;
        assert!(r.unwrap(), "reusable after a 204");
        assert_eq!(p.status, 204);
        let got = server.await.unwrap();
        assert_eq!(got.len(), whole.len());
        assert!(got == whole, "the body arrived as sent");
    }
}

async fn get(conn: &mut Conn) -> (Result<bool, Failure>, Progress, Vec<u8>) {
    run(conn, reqwest::Method::GET).await
}

/// Waits (up to 5 s) until `still_open` says no; `what` names what should be noticed.
async fn until_unusable(conn: &mut Conn, what: &str) {
    let t0 = Instant::now();
    while conn.still_open() {
        assert!(t0.elapsed() < Duration::from_secs(5), "{what} not noticed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn length_chunked_and_informational_bodies_on_one_connection() {
    let head_len = |s: &[u8]| (s.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4) as u64;
    let a: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    let b: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nx-t: 1\r\n\r\n";
    let c: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let d: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let mut conn = connect(vec![a, b, c, d], true).await;
    let (r, p, body) = get(&mut conn).await;
    assert!(r.unwrap(), "reusable");
    assert_eq!((p.status, body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(p.received, a.len() as u64);
    assert!(conn.still_open());
    let (r, p, body) = get(&mut conn).await;
    assert!(r.unwrap());
    assert_eq!((p.status, body.as_slice()), (200, &b"wikipedia"[..]));
    assert_eq!(
        p.received,
        head_len(b) + 9,
        "chunked framing is not counted"
    );
    let (r, p, body) = get(&mut conn).await;
    assert!(r.unwrap());
    assert_eq!((p.status, body.len()), (204, 0));
    assert_eq!(p.received, c.len() as u64);
    let (r, p, body) = get(&mut conn).await;
    assert!(!r.unwrap(), "connection: close is not reused");
    assert_eq!((p.status, body.as_slice()), (404, &b"{}"[..]));
}

/// Large answers are read with room for what their framing says is left
/// (`READ_ROOM_MAX`): they still arrive whole, the connection stays reusable, and no
/// buffer is left on it after.
#[tokio::test]
async fn large_bodies_arrive_whole_and_leave_no_buffer() {
    let body: Vec<u8> = (0..(1usize << 20) + 13).map(|i| (i % 251) as u8).collect();
    let cut = 600_000;
    let mut length =
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    length.extend_from_slice(&body);
    let mut chunked =
        format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{cut:x}\r\n").into_bytes();
    chunked.extend_from_slice(&body[..cut]);
    chunked.extend_from_slice(format!("\r\n{:x}\r\n", body.len() - cut).as_bytes());
    chunked.extend_from_slice(&body[cut..]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let replies = [length, chunked.clone(), chunked];
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        for reply in replies {
            assert!(read_head(&mut s).await, "the client left early");
            // the answer's end comes in a second write, after a pause
            let (first, rest) = reply.split_at(reply.len() - 20_000);
            s.write_all(first).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.write_all(rest).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut conn = Conn::open(&addr, None).await.unwrap();
    for framing in ["content-length", "chunked", "chunked again"] {
        let (r, p, got) = get(&mut conn).await;
        assert!(r.unwrap(), "{framing}: reusable");
        assert_eq!(p.status, 200);
        assert!(got == body, "{framing}: the body arrived as sent");
        assert_eq!(conn.rbuf.capacity(), 0, "{framing}: no buffer left");
        assert!(conn.still_open());
    }
}

#[tokio::test]
async fn body_until_close_and_a_closed_idle_connection() {
    let a: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nall of it";
    let mut conn = connect(vec![a], true).await;
    let (r, p, body) = get(&mut conn).await;
    assert!(!r.unwrap());
    assert_eq!((p.status, body.as_slice()), (200, &b"all of it"[..]));
    // The server has closed: a second exchange fails the stale way (retry rule).
    let (r, p, _) = get(&mut conn).await;
    assert!(matches!(r, Err(Failure::Stale(_))), "{r:?}");
    assert_eq!(p.waiting, None);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_noticed() {
    let a: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let mut conn = connect(vec![a], true).await;
    assert!(get(&mut conn).await.0.unwrap());
    until_unusable(&mut conn, "close").await;
}

#[tokio::test]
async fn malformed_answers_fail_without_panicking() {
    let cases: [(&[u8], &str); 5] = [
        (b"garbage\r\n\r\n", "send"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", "send"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            "body",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "body",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            "body",
        ),
    ];
    for (reply, want) in cases {
        let mut conn = connect(vec![reply], true).await;
        let (r, _, _) = get(&mut conn).await;
        let got = match r {
            Err(Failure::Send(_)) => "send",
            Err(Failure::Body(_)) => "body",
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(reply)),
        };
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(reply));
    }
}

#[tokio::test]
async fn bytes_after_a_complete_answer_make_the_connection_unusable() {
    let a: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n";
    let mut conn = connect(vec![a], false).await;
    let (r, p, body) = get(&mut conn).await;
    // The stray bytes may come in the same read as the answer or after it: either
    // way the connection must not carry another exchange.
    let reusable = r.unwrap();
    assert_eq!((p.status, body.as_slice()), (200, &b"{}"[..]));
    if reusable {
        until_unusable(&mut conn, "stray bytes").await;
    }
}

#[tokio::test]
async fn head_requests_have_no_body() {
    let a: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 123\r\n\r\n";
    let mut conn = connect(vec![a], false).await;
    let (r, p, body) = run(&mut conn, reqwest::Method::HEAD).await;
    assert!(r.unwrap());
    assert_eq!((p.status, body.len()), (200, 0));
}

/// Fuzz: `BARRAGE_FUZZ_CASES` cases (default 256) per property, over a real loopback
/// connection; the committed corpus (`tests/corpus/h1/*`) is always replayed first.
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;

    fn runner() -> TestRunner {
        TestRunner::new(barrage_testkit::fuzz_config(Some(
            "tests/corpus/proptest-regressions/h1.txt",
        )))
    }

    /// What a GET got: the outcome's kind, the status, the body and the bytes counted.
    type Got = (String, u16, Vec<u8>, u64);

    /// One GET against a server that answers `reply` cut at `cuts` (each piece
    /// written and flushed on its own), then closes.
    async fn get_split(reply: &[u8], cuts: &[usize]) -> Got {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mut pieces = Vec::new();
        let mut from = 0;
        for &c in cuts.iter().chain([&reply.len()]) {
            let c = c.clamp(from, reply.len());
            pieces.push(reply[from..c].to_vec());
            from = c;
        }
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut b = [0u8; 1024];
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
            }
            for p in pieces {
                if s.write_all(&p).await.is_err() {
                    return;
                }
                let _ = s.flush().await;
                tokio::task::yield_now().await;
            }
        });
        let mut conn = Conn::open(&addr, None).await.unwrap();
        let (r, p, body) = get(&mut conn).await;
        server.abort();
        let kind = match r {
            Ok(reusable) => format!("ok {reusable}"),
            Err(Failure::Stale(_)) => "stale".into(),
            Err(Failure::Send(_)) => "send".into(),
            Err(Failure::Body(_)) => "body".into(),
            Err(Failure::TooLarge) => "too large".into(),
        };
        (kind, p.status, body, p.received)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_corpus_never_panics_and_splits_change_nothing() {
        let rt = rt();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/h1");
        for (name, reply) in barrage_testkit::corpus(dir) {
            let whole = rt.block_on(get_split(&reply, &[]));
            let every: Vec<usize> = (1..reply.len()).collect();
            let bytewise = rt.block_on(get_split(&reply, &every));
            assert_eq!(bytewise, whole, "{name}");
        }
    }

    #[test]
    fn any_bytes_never_panic() {
        let rt = rt();
        let strategy = (
            proptest::collection::vec(any::<u8>(), 0..400),
            proptest::collection::vec(any::<usize>(), 0..4),
        );
        runner()
            .run(&strategy, |(reply, cuts)| {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (reply.len() + 1)).collect();
                cuts.sort_unstable();
                // Prefixed with a valid status line half the time, so heads and bodies
                // are reached, not only the status line's refusal.
                let mut with_head = b"HTTP/1.1 200 OK\r\n".to_vec();
                with_head.extend_from_slice(&reply);
                rt.block_on(get_split(&reply, &cuts));
                rt.block_on(get_split(&with_head, &cuts));
                Ok(())
            })
            .unwrap();
    }

    /// A well-formed response: a status, a few headers, a body framed by length or
    /// in chunks of the given sizes.
    fn response() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            prop_oneof![200u16..204, 205u16..304, 305u16..600],
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of(proptest::collection::vec(1usize..50, 1..8)),
        )
            .prop_map(|(status, body, chunks)| {
                let mut r = format!("HTTP/1.1 {status} X\r\nx-a: b\r\n").into_bytes();
                match chunks {
                    None => {
                        r.extend_from_slice(
                            format!("content-length: {}\r\n\r\n", body.len()).as_bytes(),
                        );
                        r.extend_from_slice(&body);
                    }
                    Some(sizes) => {
                        r.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                        let mut rest = &body[..];
                        for s in sizes.iter().cycle() {
                            if rest.is_empty() {
                                break;
                            }
                            let n = (*s).min(rest.len());
                            r.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                            r.extend_from_slice(&rest[..n]);
                            r.extend_from_slice(b"\r\n");
                            rest = &rest[n..];
                        }
                        r.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                (r, body)
            })
    }

    #[test]
    fn a_well_formed_answer_split_anywhere_reads_as_whole() {
        let rt = rt();
        let strategy = (response(), proptest::collection::vec(any::<usize>(), 0..6));
        runner()
            .run(&strategy, |((reply, body), cuts)| {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (reply.len() + 1)).collect();
                cuts.sort_unstable();
                let whole = rt.block_on(get_split(&reply, &[]));
                prop_assert_eq!(&whole.2, &body);
                prop_assert_eq!(&whole.0, "ok true");
                prop_assert_eq!(rt.block_on(get_split(&reply, &cuts)), whole);
                Ok(())
            })
            .unwrap();
    }
}

#[tokio::test]
async fn a_kept_answer_is_read_into_the_kept_buffer_whole_or_cut_at_its_limit() {
    let body: Vec<u8> = (0..(1usize << 20) + 13).map(|i| (i % 251) as u8).collect();
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
    let mut reply = head.into_bytes();
    reply.extend_from_slice(&body);
    let total = reply.len() as u64;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        for _ in 0..3 {
            assert!(read_head(&mut s).await, "the client left early");
            // in three writes with pauses: the body arrives over several reads
            let (first, rest) = reply.split_at(300_000);
            let (second, third) = rest.split_at(rest.len() - 20_000);
            for part in [first, second, third] {
                s.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut conn = Conn::open(&addr, None).await.unwrap();
    // (limit, bytes already kept): whole into an empty and into a used buffer, then cut
    for (limit, before) in [(2 << 20, 0), (2 << 20, 5), (300_000, 0)] {
        conn.write_request(&bare(&reqwest::Method::GET), "/x");
        let mut p = Progress::default();
        let mut buf = vec![7u8; before];
        let mut kept = Kept::new(&mut buf, limit);
        let r = conn
            .exchange(None, false, Instant::now(), &mut p, &mut kept)
            .await;
        let overflow = kept.overflow;
        assert!(r.unwrap(), "{limit}: reusable");
        assert_eq!(p.received, total, "{limit}: all bytes counted");
        assert_eq!(overflow, limit < before + body.len(), "{limit}");
        let want = (limit - before).min(body.len());
        assert_eq!(buf.len(), before + want, "{limit}");
        assert!(
            buf[..before].iter().all(|&b| b == 7),
            "{limit}: kept bytes stay"
        );
        assert!(buf[before..] == body[..want], "{limit}: the body as sent");
        assert!(
            buf.capacity() <= limit.max(before + body.len()) + 1,
            "{limit}: bounded"
        );
        assert_eq!(conn.rbuf.capacity(), 0, "{limit}: no buffer left");
        assert!(conn.still_open());
    }
}
