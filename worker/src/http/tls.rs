//! The path for every URL the inline HTTP/1.1 client does not take (`https://`,
//! upper-case schemes, userinfo, fragments): one [`reqwest::Client`] (rustls), set up to
//! behave like the inline path (HTTP/1.1 only, keep-alive, `TCP_NODELAY`, no proxy, the
//! same user agent and headers) and measured the same way ([`super`]'s table).
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use super::exchange::{
    encode_request, BodySink, Cancelled, Exchange, Request, TransportError, USER_AGENT,
};

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The reqwest client; idle connections are closed after `pool_idle`.
pub fn build_client(pool_idle: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .http1_only()
        .pool_idle_timeout(pool_idle)
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(USER_AGENT)
        .build()
}

/// Sends `req` through `client`, streams its body into `sink`, measures it ([`super`]);
/// never sent twice by this path (the module's retry rule).
pub(super) async fn execute(
    client: &reqwest::Client,
    timeout: Duration,
    req: &Request<'_>,
    sink: &mut dyn BodySink,
    cancel: &CancellationToken,
) -> Result<Exchange, Cancelled> {
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let start = Instant::now();
    let Ok(url) = Url::parse(req.url) else {
        return Ok(Exchange::failed(TransportError::BadUrl, start, 0, false));
    };
    let sent = request_bytes(req, &url);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut builder = client.request(req.method.clone(), url);
    if let Some(auth) = req.auth {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    if let Some(accept) = req.accept {
        builder = builder.header(ACCEPT, HeaderValue::from_static(accept));
    }
    for (name, value) in req.extra {
        builder = builder.header(*name, (*value).clone());
    }
    if let Some(body) = &req.body {
        // this path is not the load path: one buffer, built per request
        let body = body.pieces().concat();
        builder = builder.header(CONTENT_TYPE, JSON).body(body);
    }
    let answer = tokio::select! {
        biased;
        () = &mut cancelled => return Err(Cancelled),
        () = &mut deadline => return Ok(Exchange::failed(TransportError::Timeout, start, sent, false)),
        r = builder.send() => r,
    };
    let mut response = match answer {
        Ok(r) => r,
        Err(err) => {
            let kind = if err.is_connect() {
                TransportError::Connect
            } else {
                TransportError::Send
            };
            tracing::debug!(url = req.url, error = %err, "request failed");
            let sent = if kind == TransportError::Connect {
                0
            } else {
                sent
            };
            return Ok(Exchange::failed(kind, start, sent, false));
        }
    };
    let waiting = start.elapsed();
    let status = response.status().as_u16();
    let mut received = head_bytes(response.status(), response.headers());
    let error = loop {
        let next = tokio::select! {
            biased;
            () = &mut cancelled => return Err(Cancelled),
            () = &mut deadline => break Some(TransportError::Timeout),
            c = response.chunk() => c,
        };
        match next {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if sink.chunk(&chunk, start.elapsed()).is_err() {
                    break Some(TransportError::BodyLimit);
                }
            }
            Ok(None) => {
                sink.end(start.elapsed());
                break None;
            }
            Err(err) => {
                tracing::debug!(url = req.url, error = %err, "response body failed");
                break Some(TransportError::Body);
            }
        }
    };
    Ok(Exchange {
        status,
        error,
        waiting,
        duration: start.elapsed(),
        sent,
        received,
        retried: false,
    })
}

/// `name: value\r\n`
fn header_len(name: &str, value_len: usize) -> u64 {
    (name.len() + 2 + value_len + 2) as u64
}

/// Request line + headers + body, as the inline path would write them
/// ([`encode_request`]): one definition of the request on the wire for both paths.
fn request_bytes(req: &Request<'_>, url: &Url) -> u64 {
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut wire = Vec::new();
    let whole = encode_request(&mut wire, req, &target, &host);
    let after = match (&req.body, whole) {
        (Some(body), false) => body.len(),
        _ => 0,
    };
    (wire.len() + after) as u64
}

/// Status line + headers.
fn head_bytes(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap) -> u64 {
    let reason = status.canonical_reason().map_or(0, str::len);
    // HTTP/1.1 SP 200 SP reason CRLF
    let mut n = (9 + 3 + 1 + reason + 2) as u64;
    for (name, value) in headers {
        n += header_len(name.as_str(), value.len());
    }
    n + 2
}

#[cfg(test)]
mod tests {
    use super::super::ReqBody;
    use super::*;
    use reqwest::Method;

    #[test]
    fn request_bytes_count_line_headers_and_body() {
        let auth = HeaderValue::from_static("Bearer abc");
        let req = Request {
            method: &Method::POST,
            url: "http://127.0.0.1:9001/threads?x=1",
            body: Some(ReqBody::One(b"{}")),
            auth: Some(&auth),
            accept: None,
            extra: &[],
        };
        let url = Url::parse(req.url).unwrap();
        let mut wire = Vec::new();
        encode_request(&mut wire, &req, "/threads?x=1", "127.0.0.1:9001");
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(
            text.starts_with("POST /threads?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9001\r\n"),
            "{text}"
        );
        assert!(text.ends_with("content-length: 2\r\n\r\n{}"), "{text}");
        assert_eq!(
            wire.len() as u64,
            request_bytes(&req, &url),
            "both paths count alike"
        );
        let want = "POST /threads?x=1 HTTP/1.1\r\n".len()
            + "host: 127.0.0.1:9001\r\n".len()
            + format!("user-agent: {USER_AGENT}\r\n").len()
            + "accept: */*\r\n".len()
            + "authorization: Bearer abc\r\n".len()
            + "content-type: application/json\r\n".len()
            + "content-length: 2\r\n".len()
            + 2
            + 2;
        assert_eq!(request_bytes(&req, &url), want as u64);
        // a five-digit port, no body
        let get = Request {
            method: &Method::GET,
            url: "http://h:65535",
            body: None,
            ..req
        };
        let want = "GET / HTTP/1.1\r\n".len()
            + "host: h:65535\r\n".len()
            + format!("user-agent: {USER_AGENT}\r\n").len()
            + "accept: */*\r\n".len()
            + "authorization: Bearer abc\r\n".len()
            + 2;
        assert_eq!(
            request_bytes(&get, &Url::parse(get.url).unwrap()),
            want as u64
        );
    }
}
