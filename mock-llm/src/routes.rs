//! Request handling: routing and one handler per endpoint.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` (also `/chat/completions`) | `chat.completion` JSON or a `chat.completion.chunk` SSE stream |
//! | `GET /v1/models` (also `/models`) | a one-model list |
//! | `GET /health` | `{"status":"ok"}` |
//! | `GET /stats` | counters as JSON |
//! | `GET /metrics` | counters in Prometheus text format |
//! | a known path, another method | 405 with `allow` |
//! | anything else | 404 |
//!
//! A chat request goes through: size check (413) → parse (400) → injected error (rate) →
//! tool call or text (rate) → bodies written → wait until the first byte is due → answer.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use rand::Rng;
use tokio::time::{Duration, Instant};

use crate::body::ResponseBody;
use crate::completion::{unix_now, Frames, Ids, Meta, Template, ToolCall};
use crate::config::Config;
use crate::error::ApiError;
use crate::request::ChatRequest;
use crate::stats::{InFlight, Kind, Stats};
use crate::stream::SseBody;
use crate::tool::arguments_for;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const PROMETHEUS: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// Everything a request handler needs, built once per server.
#[derive(Debug)]
pub struct App {
    /// The validated settings.
    pub config: Config,
    /// Preserialized answer pieces.
    template: Template,
    /// Completion and tool-call ids.
    ids: Ids,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The `/v1/models` body, fixed for the server's life.
    models_body: Bytes,
}

/// A known path.
#[derive(Debug, Clone, Copy)]
enum Route {
    Chat,
    Models,
    Health,
    Stats,
    Metrics,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        match path {
            "/v1/chat/completions" | "/chat/completions" => Some(Route::Chat),
            "/v1/models" | "/models" => Some(Route::Models),
            "/health" => Some(Route::Health),
            "/stats" => Some(Route::Stats),
            "/metrics" => Some(Route::Metrics),
            _ => None,
        }
    }

    fn method(self) -> Method {
        match self {
            Route::Chat => Method::POST,
            _ => Method::GET,
        }
    }

    /// The `allow` header of a 405.
    fn allow(self) -> &'static str {
        match self {
            Route::Chat => "POST",
            _ => "GET",
        }
    }
}

/// A chat answer, fully written, waiting for its first-byte time.
enum Answer {
    Json(Bytes),
    Stream { frames: Frames, cut: Option<usize> },
}

impl App {
    /// Serializes what can be serialized once.
    pub fn new(config: Config) -> Self {
        let template = Template::new(&config.response, &config.model);
        let models = serde_json::json!({
            "object": "list",
            "data": [{"id": config.model, "object": "model", "created": unix_now(), "owned_by": "barrage-mock-llm"}],
        });
        let models_body = Bytes::from(serde_json::to_vec(&models).unwrap_or_default());
        App {
            config,
            template,
            ids: Ids::default(),
            stats: Arc::new(Stats::default()),
            models_body,
        }
    }

    /// Answers one request. Never fails: every problem becomes an error answer.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        let start = Instant::now();
        let in_flight = self.stats.enter();
        let Some(route) = Route::of(req.uri().path()) else {
            self.stats.count(Kind::Other);
            self.stats.rejected();
            return error_response(
                ApiError::not_found(req.method(), req.uri().path()),
                in_flight,
            );
        };
        if req.method() != route.method() {
            self.stats.count(Kind::Other);
            self.stats.rejected();
            let allow = route.allow();
            let mut res = error_response(
                ApiError::method_not_allowed(req.method(), req.uri().path(), allow),
                in_flight,
            );
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            return res;
        }
        match route {
            Route::Chat => self.chat(req, start, in_flight).await,
            Route::Models => {
                self.stats.count(Kind::Models);
                json_response(StatusCode::OK, self.models_body.clone(), in_flight)
            }
            Route::Health => {
                self.stats.count(Kind::Health);
                json_response(
                    StatusCode::OK,
                    Bytes::from_static(br#"{"status":"ok"}"#),
                    in_flight,
                )
            }
            Route::Stats => {
                self.stats.count(Kind::Stats);
                let mut doc = self.stats.to_json(&self.config.model);
                doc["delay_ms"] = (self.config.delay.as_millis() as u64).into();
                doc["stream_delay_ms"] = (self.config.stream_delay.as_millis() as u64).into();
                json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&doc).unwrap_or_default(),
                    in_flight,
                )
            }
            Route::Metrics => {
                self.stats.count(Kind::Metrics);
                let mut res =
                    Response::new(ResponseBody::full(self.stats.to_prometheus(), in_flight));
                res.headers_mut().insert(CONTENT_TYPE, PROMETHEUS);
                res
            }
        }
    }

    async fn chat(
        &self,
        req: Request<Incoming>,
        start: Instant,
        in_flight: InFlight,
    ) -> Response<ResponseBody> {
        let limit = self.config.max_body_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return self.refuse(ApiError::too_large(limit), in_flight);
        }
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return self.refuse(ApiError::too_large(limit), in_flight);
            }
            Err(e) => {
                let msg = format!("could not read the request body: {e}");
                return self.refuse(ApiError::invalid_request(msg, None), in_flight);
            }
        };
        let (streaming, answer) = match self.answer(&body) {
            Ok(answer) => answer,
            Err(err) => return error_response(err, in_flight),
        };
        drop(body);

        let mut first_byte = start + self.config.delay;
        if !self.config.jitter.is_zero() {
            let max = u64::try_from(self.config.jitter.as_micros()).unwrap_or(u64::MAX);
            first_byte += Duration::from_micros(rand::rng().random_range(0..=max));
        }
        if first_byte > start {
            tokio::time::sleep_until(first_byte).await;
        }
        match answer {
            Answer::Json(bytes) => json_response(StatusCode::OK, bytes, in_flight),
            Answer::Stream { frames, cut } => {
                debug_assert!(streaming);
                let body = SseBody::new(frames, first_byte, self.config.stream_delay, cut);
                let mut res = Response::new(ResponseBody::sse(body, in_flight));
                res.headers_mut().insert(CONTENT_TYPE, EVENT_STREAM);
                res.headers_mut().insert(CACHE_CONTROL, NO_CACHE);
                res
            }
        }
    }

    /// Parses the body and writes the answer; `Err` is the error answer to send instead.
    /// Counts the request, its tokens and any injected fault.
    fn answer(&self, body: &[u8]) -> Result<(bool, Answer), ApiError> {
        let req = match ChatRequest::parse(body) {
            Ok(req) => req,
            Err(invalid) => {
                self.stats.count(Kind::Chat);
                self.stats.rejected();
                return Err(ApiError::invalid_request(invalid.message, invalid.param));
            }
        };
        let streaming = req.streaming();
        self.stats.count(if streaming {
            Kind::ChatStream
        } else {
            Kind::Chat
        });
        let config = &self.config;
        if chance(config.error_rate) {
            self.stats.error_injected();
            return Err(ApiError::injected(config.error_status, &config.model));
        }
        let tool = match req.callable_tool() {
            Some(f) if chance(config.tool_call_rate) => Some(ToolCall {
                id: self.ids.next(),
                name: f.name.clone(),
                arguments: arguments_for(f.parameters.as_ref()),
            }),
            _ => None,
        };
        let meta = Meta {
            id: self.ids.next(),
            created: unix_now(),
            model: req.model.as_deref().filter(|m| !m.is_empty()),
            prompt_tokens: req.prompt_tokens(),
        };
        let completion_tokens = tool
            .as_ref()
            .map_or(self.template.text_tokens(), ToolCall::tokens);
        self.stats.tokens(meta.prompt_tokens, completion_tokens);
        if tool.is_some() {
            self.stats.tool_call();
        }
        if !streaming {
            return Ok((
                false,
                Answer::Json(self.template.completion(&meta, tool.as_ref())),
            ));
        }
        let frames = self
            .template
            .stream(&meta, tool.as_ref(), req.include_usage());
        let cut = (frames.ends.len() >= 2 && chance(config.disconnect_rate)).then(|| {
            self.stats.disconnect_injected();
            rand::rng().random_range(1..frames.ends.len())
        });
        Ok((true, Answer::Stream { frames, cut }))
    }

    /// A 4xx refusal of a chat request, counted as such.
    fn refuse(&self, err: ApiError, in_flight: InFlight) -> Response<ResponseBody> {
        self.stats.count(Kind::Chat);
        self.stats.rejected();
        error_response(err, in_flight)
    }
}

/// `true` with probability `p`; no random draw when `p` is 0 (or not a number) or 1.
fn chance(p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rand::rng().random::<f64>() < p)
}

fn json_response(
    status: StatusCode,
    body: impl Into<Bytes>,
    in_flight: InFlight,
) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(body, in_flight));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, JSON);
    res
}

fn error_response(err: ApiError, in_flight: InFlight) -> Response<ResponseBody> {
    json_response(err.status, err.body(), in_flight)
}
