//! The worker-facing gRPC service: the token check (an interceptor, constant-time compare)
//! and `Join`, which hands each stream to its own session task and answers through an
//! `mpsc` channel, so a disconnect on either side is noticed.
use super::session::{self, SessionShared};
use super::Event;
use barrage_core::Secret;
use barrage_proto::pb::{ControllerMessage, WorkerMessage};
use barrage_proto::{Controller, ControllerServer, AUTH_METADATA, MAX_MESSAGE_BYTES};
use std::future::Future;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// What workers must show: `authorization: Bearer <token>`, or nothing when no token is set.
#[derive(Clone)]
pub struct TokenCheck {
    pub token: Option<Secret>,
}

impl TokenCheck {
    /// Accepts or refuses a request by its metadata (constant-time comparison).
    pub fn check(&self, req: &Request<()>) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = req
            .metadata()
            .get(AUTH_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = presented.as_bytes().ct_eq(token.expose().as_bytes()).into();
        if ok {
            Ok(())
        } else {
            tracing::warn!(peer = ?req.remote_addr(), "worker refused: wrong or missing token");
            Err(Status::unauthenticated(
                "wrong or missing worker token: the controller refused this worker; check --token-file on both sides",
            ))
        }
    }
}

struct Service {
    events: mpsc::Sender<Event>,
    shared: Arc<SessionShared>,
}

#[tonic::async_trait]
impl Controller for Service {
    type JoinStream = ReceiverStream<Result<ControllerMessage, Status>>;

    async fn join(
        &self,
        req: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        let peer = req.remote_addr();
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(session::run(
            inbound,
            tx,
            self.events.clone(),
            self.shared.clone(),
            peer,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves `Join` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    check: TokenCheck,
    events: mpsc::Sender<Event>,
    shared: Arc<SessionShared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let svc = ControllerServer::new(Service { events, shared })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let intercepted = InterceptedService::new(svc, move |req: Request<()>| {
        check.check(&req)?;
        Ok(req)
    });
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(intercepted)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check() {
        let check = TokenCheck {
            token: Some(Secret::new("s3cret")),
        };
        let with = |v: Option<&str>| {
            let mut r = Request::new(());
            if let Some(v) = v {
                r.metadata_mut().insert(AUTH_METADATA, v.parse().unwrap());
            }
            r
        };
        let cases: &[(Option<&str>, bool)] = &[
            (Some("Bearer s3cret"), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3crett"), false),
            (Some("s3cret"), false),
            (Some("Bearer "), false),
            (None, false),
        ];
        for (v, ok) in cases {
            let got = check.check(&with(*v));
            assert_eq!(got.is_ok(), *ok, "{v:?}");
            if let Err(s) = got {
                assert_eq!(s.code(), tonic::Code::Unauthenticated);
                assert!(s.message().contains("--token-file"));
            }
        }
        assert!(TokenCheck { token: None }.check(&with(None)).is_ok());
    }
}
