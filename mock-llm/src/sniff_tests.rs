//! The protocol sniff: verdicts on prefixes, the replay of read bytes, and real clients over
//! loopback that send their first bytes one at a time (so the server sees a short first
//! segment that agrees with the preface, the case a plain peek gets wrong).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, Instant, Sleep};

use super::*;
use crate::Config;

#[test]
fn a_diverging_byte_settles_it_at_once_and_only_the_whole_preface_is_http2() {
    assert_eq!(verdict(b""), None);
    assert_eq!(verdict(b"P"), None);
    assert_eq!(verdict(b"PRI * HTTP/2"), None);
    assert_eq!(verdict(&H2_PREFACE[..23]), None);
    assert_eq!(verdict(H2_PREFACE), Some(Protocol::Http2));
    let mut more = H2_PREFACE.to_vec();
    more.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
    assert_eq!(verdict(&more), Some(Protocol::Http2));
    assert_eq!(verdict(b"G"), Some(Protocol::Http1));
    assert_eq!(verdict(b"PO"), Some(Protocol::Http1));
    assert_eq!(verdict(b"POST /v1/chat/completions"), Some(Protocol::Http1));
    // An HTTP/1.1 request of method PRI agrees for 11 bytes.
    assert_eq!(verdict(b"PRI * HTTP/1"), Some(Protocol::Http1));
}

#[tokio::test]
async fn replay_yields_the_read_bytes_first_then_the_stream() {
    let inner: &[u8] = b" world";
    let mut io = Replay::new(b"hello".to_vec(), inner);
    let mut small = [0u8; 3];
    io.read_exact(&mut small).await.unwrap();
    assert_eq!(&small, b"hel");
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"lo world");
}

/// A connected pair over loopback: (client, the server's side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    client.set_nodelay(true).unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Sends `first` one byte at a time to a sniff that has already seen only its first byte
/// (and so has been left waiting), giving it time to read each byte before the next, and
/// returns the sniff's outcome and how many bytes had been sent when it settled.
async fn sniff_in_pieces(first: &[u8]) -> (Sniffed, usize) {
    let (mut client, mut server) = pair().await;
    client.write_all(&first[..1]).await.unwrap();
    let mut one = [0u8; 1];
    assert_eq!(server.peek(&mut one).await.unwrap(), 1);
    let mut sniffing = Box::pin(sniff(&mut server));
    assert!(
        futures_util::poll!(sniffing.as_mut()).is_pending(),
        "one byte that agrees with the preface settled nothing"
    );
    for sent in 1..first.len() {
        client.write_all(&first[sent..=sent]).await.unwrap();
        // The byte is in the socket once written (loopback): the sniff reads it at once.
        if let Ok(sniffed) =
            tokio::time::timeout(Duration::from_millis(100), sniffing.as_mut()).await
        {
            return (sniffed.unwrap(), sent + 1);
        }
    }
    panic!("the sniff did not settle on {first:?}");
}

#[tokio::test]
async fn a_preface_in_pieces_is_read_to_its_end_and_taken_for_http2() {
    match sniff_in_pieces(H2_PREFACE).await {
        (Sniffed::Read(Protocol::Http2, read), 24) => assert_eq!(read, H2_PREFACE),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_request_in_pieces_is_http1_at_its_first_diverging_byte() {
    match sniff_in_pieces(b"POST / HTTP/1.1\r\n").await {
        (Sniffed::Read(Protocol::Http1, read), 2) => assert_eq!(read, b"PO"),
        other => panic!("{other:?}"),
    }
    match sniff_in_pieces(b"PRI * HTTP/1.1\r\n").await {
        (Sniffed::Read(Protocol::Http1, read), 12) => assert_eq!(read, b"PRI * HTTP/1"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_whole_first_segment_is_peeked_and_nothing_consumed() {
    let (mut client, mut server) = pair().await;
    client
        .write_all(b"GET /health HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert!(matches!(
        sniff(&mut server).await.unwrap(),
        Sniffed::Peeked(Protocol::Http1)
    ));
    let mut line = [0u8; 4];
    server.read_exact(&mut line).await.unwrap();
    assert_eq!(&line, b"GET ", "the peek consumed bytes");

    let (client, mut server) = pair().await;
    drop(client);
    assert!(matches!(sniff(&mut server).await.unwrap(), Sniffed::Closed));
}

/// A client socket that writes its first `left` bytes one per write, `gap` apart, as a
/// client on a slow or fragmenting path might.
struct Trickle {
    inner: TcpStream,
    left: usize,
    gap: Duration,
    pause: Pin<Box<Sleep>>,
}

impl Trickle {
    async fn connect(addr: std::net::SocketAddr, left: usize) -> Self {
        let inner = TcpStream::connect(addr).await.unwrap();
        inner.set_nodelay(true).unwrap();
        Self {
            inner,
            left,
            gap: Duration::from_millis(3),
            pause: Box::pin(sleep(Duration::ZERO)),
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.left == 0 || buf.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        std::task::ready!(this.pause.as_mut().poll(cx));
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..1]))?;
        this.left -= n;
        let next = Instant::now() + this.gap;
        this.pause.as_mut().reset(next);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The mock on 127.0.0.1:0 answering "hello there" at once; stopped when the sender drops.
async fn mock() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        delay: Duration::ZERO,
        stream_delay: Duration::ZERO,
        response: "hello there".into(),
        grace: Duration::ZERO,
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::serve(listener, config, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn chat(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap()
}

async fn answer(res: http::Response<hyper::body::Incoming>) -> (http::StatusCode, String) {
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_client_sending_its_preface_byte_by_byte_is_served_over_http2() {
    let (addr, _stop) = mock().await;
    let io = TokioIo::new(Trickle::connect(addr, H2_PREFACE.len()).await);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        send.ready().await.unwrap();
        let res = send
            .send_request(chat(&format!("http://{addr}/v1/chat/completions")))
            .await
            .unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        let (status, body) = answer(res).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("hello there"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_request_sent_byte_by_byte_is_served_over_http1() {
    let (addr, _stop) = mock().await;
    // The whole head and body, one byte per write.
    let io = TokioIo::new(Trickle::connect(addr, 4096).await);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        send.ready().await.unwrap();
        let res = send
            .send_request(chat("/v1/chat/completions"))
            .await
            .unwrap();
        assert_eq!(res.version(), http::Version::HTTP_11);
        let (status, body) = answer(res).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("hello there"), "{body}");
    }

    // A request of method PRI agrees with the preface for 11 bytes: still HTTP/1.1.
    let mut raw = Trickle::connect(addr, 64).await;
    raw.write_all(b"PRI * HTTP/1.1\r\nhost: mock\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut reply))
        .await
        .expect("no answer")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
}
