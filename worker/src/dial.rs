//! Dialling the controller: the gRPC channel (TLS with `--tls-ca`, the join token in the
//! metadata), the `Join` stream opened with a `Hello`, retried until a deadline. Why its own
//! file: the first join, a soak's rejoin and a serving worker's wait for the next run all
//! dial, each with its own deadline, and only the caller knows what giving up means.
use crate::cli::JoinArgs;
use crate::exit_code;
use barrage_proto::pb::{self, worker_message::Msg as Out};
use barrage_proto::{ControllerClient, MAX_MESSAGE_BYTES};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Outgoing messages queued at most (snapshots beyond it are dropped with a warning).
pub(crate) const OUT_QUEUE: usize = 256;

pub(crate) type Connection = (
    mpsc::Sender<pb::WorkerMessage>,
    tonic::Streaming<pb::ControllerMessage>,
);

/// Why [`connect_until`] gave up.
pub(crate) enum DialError {
    /// Exit with this code (a bad address, CA or token; refused by the controller).
    Fatal(u8),
    /// Nobody answered by the deadline; the last failure.
    Unreachable { attempts: u32, failure: String },
}

/// Dials the controller and opens the stream with `hello`, retrying until `deadline` (the
/// first join: `--connect-timeout`; a rejoin: its grace; a serving worker: its idle time).
pub(crate) async fn connect_until(
    args: &JoinArgs,
    hello: pb::WorkerMessage,
    deadline: Instant,
) -> Result<Connection, DialError> {
    let mut endpoint = Endpoint::from_shared(args.controller.clone()).map_err(|e| {
        barrage_core::errln!("barrage-worker: --controller {}: {e}", args.controller);
        DialError::Fatal(exit_code::CONFIG)
    })?;
    endpoint = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Some(pem) = &args.tls_ca {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| {
                barrage_core::errln!("barrage-worker: --tls-ca: {e}");
                DialError::Fatal(exit_code::CONFIG)
            })?;
    }
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let failure = match endpoint.connect().await {
            Ok(channel) => {
                let mut client = ControllerClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
                let (tx, rx) = mpsc::channel(OUT_QUEUE);
                // Hello is queued before the call: a controller may read it before answering
                let _ = tx.send(hello.clone()).await;
                let mut request = tonic::Request::new(ReceiverStream::new(rx));
                if let Some(token) = &args.token {
                    let value = format!("Bearer {}", token.expose()).parse().map_err(|_| {
                        barrage_core::errln!(
                            "barrage-worker: --token-file: the token is not a valid header value"
                        );
                        DialError::Fatal(exit_code::CONFIG)
                    })?;
                    request
                        .metadata_mut()
                        .insert(barrage_proto::AUTH_METADATA, value);
                }
                match client.join(request).await {
                    Ok(response) => return Ok((tx, response.into_inner())),
                    Err(status)
                        if status.code() == tonic::Code::Unauthenticated
                            || status.code() == tonic::Code::PermissionDenied =>
                    {
                        barrage_core::errln!(
                            "barrage-worker: rejected by the controller: {}",
                            status.message()
                        );
                        return Err(DialError::Fatal(exit_code::REJECTED));
                    }
                    Err(status) => format!("join: {status}"),
                }
            }
            Err(e) => format!("connect: {}", error_chain(&e)),
        };
        if Instant::now() >= deadline {
            return Err(DialError::Unreachable {
                attempts: attempt,
                failure,
            });
        }
        tracing::debug!(attempt, %failure, "controller not reachable yet; retrying");
        tokio::time::sleep(Duration::from_millis(250).min(deadline - Instant::now())).await;
    }
}

pub(crate) fn hello(args: &JoinArgs) -> pb::WorkerMessage {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    pb::WorkerMessage {
        msg: Some(Out::Hello(pb::Hello {
            version: barrage_core::VERSION.into(),
            protocol: barrage_core::PROTOCOL,
            host,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            core: args.core.map_or(-1, |c| c as i32),
            pid: std::process::id(),
            name: args.name.clone(),
            rejoin: None,
        })),
    }
}

/// An error with its sources (`transport error: … invalid peer certificate: UnknownIssuer`),
/// so a TLS or DNS problem is named instead of a bare "transport error".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
