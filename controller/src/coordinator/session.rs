//! One worker's stream, from `Hello` to its end: version check, `Welcome`, the clock
//! rounds, then every message forwarded to the hub as an [`Event`]. The hub answers
//! through the worker's outbound channel; when the hub drops it, the stream ends.
use super::clock::{self, Round};
use super::heard::Heard;
use super::Event;
use barrage_proto::pb::{
    self, controller_message, worker_message, ControllerMessage, WorkerMessage,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};

/// How long a worker has to say `Hello`, and to answer each ping.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every session needs to know.
#[derive(Debug, Clone)]
pub struct SessionShared {
    pub allow_version_mismatch: bool,
    pub interval_ms: u32,
}

type Out = mpsc::Sender<Result<ControllerMessage, Status>>;

/// Checks a worker's `Hello`: the protocol must match; the version too, unless allowed.
pub fn check_hello(h: &pb::Hello, allow_version_mismatch: bool) -> Result<(), String> {
    if h.protocol != barrage_core::PROTOCOL {
        return Err(format!(
            "protocol mismatch: worker speaks barrage protocol {}, controller {}; run the same barrage release on both sides",
            h.protocol,
            barrage_core::PROTOCOL
        ));
    }
    if h.version != barrage_core::VERSION && !allow_version_mismatch {
        return Err(format!(
            "version mismatch: worker is barrage {}, controller {}; run the same release, or pass --allow-version-mismatch to the controller",
            h.version,
            barrage_core::VERSION
        ));
    }
    Ok(())
}

async fn next(inbound: &mut Streaming<WorkerMessage>) -> Result<worker_message::Msg, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.message()).await {
        Err(_) => Err(format!("no answer within {}s", HANDSHAKE_TIMEOUT.as_secs())),
        Ok(Err(status)) => Err(format!("stream broke: {}", status.message())),
        Ok(Ok(None)) => Err("stream closed".into()),
        Ok(Ok(Some(WorkerMessage { msg: None }))) => Err("empty message".into()),
        Ok(Ok(Some(WorkerMessage { msg: Some(m) }))) => Ok(m),
    }
}

/// A `Reject` message; `retry`: the refusal is about this run only (see the proto).
pub(crate) fn reject(reason: impl Into<String>, retry: bool) -> ControllerMessage {
    ControllerMessage {
        msg: Some(controller_message::Msg::Reject(pb::Reject {
            reason: reason.into(),
            retry,
        })),
    }
}

fn msg(m: controller_message::Msg) -> Result<ControllerMessage, Status> {
    Ok(ControllerMessage { msg: Some(m) })
}

/// Runs one worker's session to its end.
pub(crate) async fn run(
    mut inbound: Streaming<WorkerMessage>,
    out: Out,
    events: mpsc::Sender<Event>,
    shared: Arc<SessionShared>,
    peer: Option<SocketAddr>,
) {
    let hello = match next(&mut inbound).await {
        Ok(worker_message::Msg::Hello(h)) => h,
        Ok(_) => {
            let _ = out
                .send(Err(Status::invalid_argument(
                    "the first message must be Hello",
                )))
                .await;
            return;
        }
        Err(e) => {
            tracing::warn!(?peer, error = %e, "worker left before Hello");
            return;
        }
    };
    if let Err(reason) = check_hello(&hello, shared.allow_version_mismatch) {
        tracing::warn!(?peer, host = %hello.host, %reason, "worker refused");
        let _ = out.send(Ok(reject(reason, false))).await;
        return;
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    let heard = Heard::new();
    let joined = Event::Hello {
        hello: hello.clone(),
        peer,
        out: out.clone(),
        heard: heard.clone(),
        reply: reply_tx,
    };
    if events.send(joined).await.is_err() {
        return;
    }
    let id = match reply_rx.await {
        Ok(Ok(id)) => id,
        // the hub refuses a worker for its run's sake only (started, full, not the one
        // that left): a serving worker may take part in the next run
        Ok(Err(reason)) => {
            tracing::warn!(?peer, host = %hello.host, %reason, "worker refused");
            let _ = out.send(Ok(reject(reason, true))).await;
            return;
        }
        Err(_) => return,
    };
    let welcome = pb::Welcome {
        worker_id: id.clone(),
        interval_ms: shared.interval_ms,
        controller_version: barrage_core::VERSION.into(),
    };
    if out
        .send(msg(controller_message::Msg::Welcome(welcome)))
        .await
        .is_err()
    {
        let _ = events
            .send(Event::Gone {
                id,
                reason: "stream closed after Welcome".into(),
            })
            .await;
        return;
    }
    // a worker that rejoins (soak runs) was measured when it first joined, and is
    // already resending what it kept: its messages go to the hub from the start
    if hello.rejoin.is_some() {
        drop(out);
        forward(inbound, id, events, &heard).await;
        return;
    }
    match measure(&mut inbound, &out).await {
        Ok(o) => {
            drop(out);
            let _ = events
                .send(Event::Measured {
                    id: id.clone(),
                    offset_us: o.offset_us,
                    rtt_us: o.rtt_us,
                })
                .await;
        }
        Err(reason) => {
            let _ = events
                .send(Event::Gone {
                    id,
                    reason: format!("clock measurement failed: {reason}"),
                })
                .await;
            return;
        }
    }
    forward(inbound, id, events, &heard).await;
}

/// Every message of the worker to the hub, until its stream ends; each stamps `heard`
/// as it arrives, and one waiting for room in the hub's queue keeps it heard until the
/// hub takes it. Pongs stop here: they answer the heartbeat, and liveness is the stamp
/// (at a thousand workers they were most of the hub's events).
async fn forward(
    mut inbound: Streaming<WorkerMessage>,
    id: String,
    events: mpsc::Sender<Event>,
    heard: &Heard,
) {
    loop {
        let reason = match inbound.message().await {
            Ok(Some(WorkerMessage { msg: Some(m) })) => {
                heard.mark();
                if matches!(m, worker_message::Msg::Pong(_)) {
                    continue;
                }
                let msg = Event::Message {
                    id: id.clone(),
                    msg: m,
                };
                let sent = match events.try_send(msg) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        // the hub is behind: this worker has spoken, whatever it says next
                        // waits in the socket (see `Heard`)
                        heard.waiting(true);
                        let sent = events.send(msg).await.map_err(drop);
                        heard.waiting(false);
                        sent
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                };
                if sent.is_err() {
                    return;
                }
                continue;
            }
            Ok(Some(WorkerMessage { msg: None })) => {
                heard.mark();
                continue;
            }
            Ok(None) => "stream closed".to_string(),
            Err(status) => format!("stream broke: {}", status.message()),
        };
        let _ = events.send(Event::Gone { id, reason }).await;
        return;
    }
}

/// [`clock::ROUNDS`] ping/pong rounds, one at a time.
async fn measure(
    inbound: &mut Streaming<WorkerMessage>,
    out: &Out,
) -> Result<clock::Offset, String> {
    let mut rounds = Vec::new();
    for seq in 0..clock::ROUNDS {
        let sent_us = clock::now_us();
        let ping = pb::Ping {
            seq,
            controller_time_us: sent_us,
        };
        out.send(msg(controller_message::Msg::Ping(ping)))
            .await
            .map_err(|_| "stream closed".to_string())?;
        loop {
            match next(inbound).await? {
                worker_message::Msg::Pong(p) if p.seq == seq => {
                    rounds.push(Round {
                        sent_us,
                        received_us: clock::now_us(),
                        worker_us: p.worker_time_us,
                    });
                    break;
                }
                worker_message::Msg::Error(e) if e.fatal => {
                    return Err(format!("worker error: {}", e.message))
                }
                _ => continue,
            }
        }
    }
    clock::estimate(&rounds).ok_or_else(|| "no rounds".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_checks() {
        let h = |version: &str, protocol: u32| pb::Hello {
            version: version.into(),
            protocol,
            ..Default::default()
        };
        let v = barrage_core::VERSION;
        let p = barrage_core::PROTOCOL;
        assert!(check_hello(&h(v, p), false).is_ok());
        let e = check_hello(&h("9.9.9", p), false).unwrap_err();
        assert!(e.contains("--allow-version-mismatch"), "{e}");
        assert!(check_hello(&h("9.9.9", p), true).is_ok());
        let e = check_hello(&h(v, p + 1), true).unwrap_err();
        assert!(e.contains("protocol mismatch"), "{e}");
    }
}
