//! Request handling: routing and one handler per endpoint.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` (also `/chat/completions`) | `chat.completion` JSON or a `chat.completion.chunk` SSE stream |
//! | `GET /v1/models` (also `/models`) | a one-model list |
//! | `GET /health` | `{"status":"ok"}` |
//! | `GET /stats` | counters as JSON |
//! | `GET /stats/calls` | the per-call log ([`crate::calls`]) |
//! | `GET /metrics` | counters in Prometheus text format |
//! | `GET`/`POST /admin/config` | the run-time settings; change them ([`crate::live`]) |
//! | a known path, another method | 405 with `allow` |
//! | anything else | 404 |
//!
//! A chat request goes through: size check (413) → parse (400) → injected error (rate) →
//! tool call or text (rate) → bodies written → (model mode: a generation slot, or 429 when
//! the queue is full) → wait until the first byte is due → answer. The settings that
//! `/admin/config` may change are copied once, on arrival.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use rand::Rng;
use tokio::time::{Duration, Instant};

use crate::body::{Guards, Recorder, ResponseBody};
use crate::calls::{clean_key, micros, prompt_key, CallLog, Query};
use crate::completion::{unix_now, Frames, Ids, Meta, Template, ToolCall};
use crate::config::{Config, Mode};
use crate::error::ApiError;
use crate::intake::Bodies;
use crate::live::{Live, Tunables};
use crate::model::{retry_after_s, Generations};
use crate::request::ChatRequest;
use crate::stats::{Kind, Stats};
use crate::stream::SseBody;
use crate::tool::arguments_for;

/// Largest `/admin/config` body.
const MAX_ADMIN_BODY: usize = 64 * 1024;
/// The header whose value keys a call in the call log.
const KEY_HEADER: &str = "x-barrage-key";

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
    /// The settings `/admin/config` may change.
    live: Live,
    /// Model mode's slots and queue; `None` in fixed mode.
    generations: Option<Generations>,
    /// The per-call log.
    calls: Arc<CallLog>,
    /// Reads request bodies; keeps large bodies' buffers for the next ones.
    bodies: Bodies,
}

/// A known path.
#[derive(Debug, Clone, Copy)]
enum Route {
    Chat,
    Models,
    Health,
    Stats,
    Calls,
    Metrics,
    Admin,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        match path {
            "/v1/chat/completions" | "/chat/completions" => Some(Route::Chat),
            "/v1/models" | "/models" => Some(Route::Models),
            "/health" => Some(Route::Health),
            "/stats" => Some(Route::Stats),
            "/stats/calls" => Some(Route::Calls),
            "/metrics" => Some(Route::Metrics),
            "/admin/config" => Some(Route::Admin),
            _ => None,
        }
    }

    fn allows(self, method: &Method) -> bool {
        match self {
            Route::Chat => method == Method::POST,
            Route::Admin => method == Method::GET || method == Method::POST,
            _ => method == Method::GET,
        }
    }

    /// The `allow` header of a 405.
    fn allow(self) -> &'static str {
        match self {
            Route::Chat => "POST",
            Route::Admin => "GET, POST",
            _ => "GET",
        }
    }
}

/// A chat answer, fully written, waiting for its first-byte time.
enum Answer {
    Json(Bytes),
    Stream { frames: Frames, cut: Option<usize> },
}

/// A chat answer and what the timing needs to know of it.
struct Prepared {
    answer: Answer,
    /// Prompt tokens (model mode's TTFT grows with them).
    prompt_tokens: u64,
    /// Completion tokens (a non-streamed model-mode answer takes their generation time).
    completion_tokens: u64,
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
        let generations =
            (config.mode == Mode::Model).then(|| Generations::new(&config.model_settings));
        App {
            live: Live::new(&config),
            calls: Arc::new(CallLog::new(config.call_log_size)),
            generations,
            config,
            template,
            ids: Ids::default(),
            stats: Arc::new(Stats::default()),
            models_body,
            bodies: Bodies::default(),
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
                Guards::new(in_flight),
            );
        };
        if !route.allows(req.method()) {
            self.stats.count(Kind::Other);
            self.stats.rejected();
            let allow = route.allow();
            let mut res = error_response(
                ApiError::method_not_allowed(req.method(), req.uri().path(), allow),
                Guards::new(in_flight),
            );
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            return res;
        }
        let guards = Guards::new(in_flight);
        match route {
            Route::Chat => self.chat(req, start, guards).await,
            Route::Models => {
                self.stats.count(Kind::Models);
                json_response(StatusCode::OK, self.models_body.clone(), guards)
            }
            Route::Health => {
                self.stats.count(Kind::Health);
                json_response(
                    StatusCode::OK,
                    Bytes::from_static(br#"{"status":"ok"}"#),
                    guards,
                )
            }
            Route::Stats => {
                self.stats.count(Kind::Stats);
                json_response(StatusCode::OK, to_vec(&self.stats_doc()), guards)
            }
            Route::Calls => {
                self.stats.count(Kind::Stats);
                match Query::parse(req.uri().query()) {
                    Ok(q) => json_response(StatusCode::OK, to_vec(&self.calls.to_json(&q)), guards),
                    Err(msg) => {
                        self.stats.rejected();
                        error_response(ApiError::invalid_request(msg, None), guards)
                    }
                }
            }
            Route::Metrics => {
                self.stats.count(Kind::Metrics);
                let mut text = self.stats.to_prometheus();
                if let Some(g) = &self.generations {
                    g.write_prometheus(&mut text);
                }
                let mut res = Response::new(ResponseBody::full(text, guards));
                res.headers_mut().insert(CONTENT_TYPE, PROMETHEUS);
                res
            }
            Route::Admin => {
                self.stats.count(Kind::Admin);
                self.admin(req, guards).await
            }
        }
    }

    /// The `/stats` document: the counters, the current settings, the model-mode queue.
    fn stats_doc(&self) -> serde_json::Value {
        let mut doc = self.stats.to_json(&self.config.model);
        let live = self.live.get();
        doc["mode"] = self.config.mode.name().into();
        doc["delay_ms"] = (live.delay.as_millis() as u64).into();
        doc["stream_delay_ms"] = (live.stream_delay.as_millis() as u64).into();
        doc["settings"] = live.to_json();
        doc["settings_changes"] = self.live.changes().into();
        doc["generations"] = self
            .generations
            .as_ref()
            .map_or(serde_json::Value::Null, Generations::to_json);
        let (recorded, kept, capacity) = self.calls.counts();
        doc["call_log"] =
            serde_json::json!({"recorded": recorded, "kept": kept, "capacity": capacity});
        doc
    }

    /// `GET /admin/config`: the current settings; `POST`: change them (all or nothing).
    async fn admin(&self, req: Request<Incoming>, guards: Guards) -> Response<ResponseBody> {
        if req.method() == Method::GET {
            return json_response(StatusCode::OK, to_vec(&self.live.get().to_json()), guards);
        }
        let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                self.stats.rejected();
                let msg = format!(
                    "could not read the /admin/config body (at most {MAX_ADMIN_BODY} bytes): {e}"
                );
                return error_response(ApiError::invalid_request(msg, None), guards);
            }
        };
        match self.live.change(&body) {
            Ok(now) => {
                tracing::info!(settings = %now.to_json(), "settings changed through /admin/config");
                json_response(StatusCode::OK, to_vec(&now.to_json()), guards)
            }
            Err(problems) => {
                self.stats.rejected();
                let mut msg = String::from("invalid /admin/config change, nothing was changed:");
                for p in &problems {
                    msg.push_str(&format!("\n  {p}"));
                }
                error_response(ApiError::invalid_request(msg, None), guards)
            }
        }
    }

    async fn chat(
        &self,
        req: Request<Incoming>,
        start: Instant,
        mut guards: Guards,
    ) -> Response<ResponseBody> {
        let live = self.live.get();
        let header_key = req
            .headers()
            .get(KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(clean_key);
        let has_header_key = header_key.is_some();
        guards.call = Some(Recorder::new(Arc::clone(&self.calls), start, header_key));
        let limit = self.config.max_body_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return self.refuse(ApiError::too_large(limit), guards);
        }
        let hint = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
        let body = match self
            .bodies
            .read(Limited::new(req.into_body(), limit), hint)
            .await
        {
            Ok(body) => body,
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return self.refuse(ApiError::too_large(limit), guards);
            }
            Err(e) => {
                let msg = format!("could not read the request body: {e}");
                return self.refuse(ApiError::invalid_request(msg, None), guards);
            }
        };
        if let Some(r) = &mut guards.call {
            r.call.prompt_bytes = body.len() as u64;
        }
        let prepared = match self.answer(&body, &live, &mut guards, has_header_key) {
            Ok(prepared) => prepared,
            Err(err) => return self.fail(err, guards),
        };
        self.bodies.give_back(body);

        // Fixed mode: the delays. Model mode: a slot first, then TTFT by prompt length.
        let (mut first_byte, interval) = match &self.generations {
            None => (start + live.delay, live.stream_delay),
            Some(generations) => match generations.admit().await {
                Ok(slot) => {
                    if let Some(r) = &mut guards.call {
                        r.call.queue_us = micros(slot.waited);
                    }
                    guards.slot = Some(slot);
                    let interval = live.token_interval();
                    let mut first = Instant::now() + live.ttft_for(prepared.prompt_tokens);
                    if matches!(prepared.answer, Answer::Json(_)) {
                        // The whole answer is sent when its last token is generated.
                        first += interval.saturating_mul(
                            u32::try_from(prepared.completion_tokens).unwrap_or(u32::MAX),
                        );
                    }
                    (first, interval)
                }
                Err(_full) => return self.queue_full(guards),
            },
        };
        if !live.jitter.is_zero() {
            let max = u64::try_from(live.jitter.as_micros()).unwrap_or(u64::MAX);
            first_byte += Duration::from_micros(rand::rng().random_range(0..=max));
        }
        if let Some(r) = &mut guards.call {
            r.call.first_byte_us = micros(first_byte.saturating_duration_since(start));
        }
        if first_byte > Instant::now() {
            tokio::time::sleep_until(first_byte).await;
        }
        match prepared.answer {
            Answer::Json(bytes) => json_response(StatusCode::OK, bytes, guards),
            Answer::Stream { frames, cut } => {
                let body = SseBody::new(frames, first_byte, interval, cut);
                let mut res = Response::new(ResponseBody::sse(body, guards));
                res.headers_mut().insert(CONTENT_TYPE, EVENT_STREAM);
                res.headers_mut().insert(CACHE_CONTROL, NO_CACHE);
                res
            }
        }
    }

    /// Parses the body and writes the answer; `Err` is the error answer to send instead.
    /// Counts the request, its tokens and any injected fault, and fills in the call record.
    fn answer(
        &self,
        body: &[u8],
        live: &Tunables,
        guards: &mut Guards,
        has_header_key: bool,
    ) -> Result<Prepared, ApiError> {
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
        if let Some(r) = &mut guards.call {
            r.call.stream = streaming;
            r.call.messages = req.message_count();
            r.call.prompt_tokens = req.prompt_tokens();
            if !has_header_key {
                r.call.key = req
                    .user
                    .as_deref()
                    .and_then(clean_key)
                    .or_else(|| prompt_key(body));
            }
        }
        if chance(live.error_rate) {
            self.stats.error_injected();
            return Err(ApiError::injected(live.error_status, &self.config.model));
        }
        let tool = match req.callable_tool() {
            Some(f) if chance(live.tool_call_rate) => Some(ToolCall {
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
        if let Some(r) = &mut guards.call {
            r.call.completion_tokens = completion_tokens;
        }
        let prompt_tokens = meta.prompt_tokens;
        if !streaming {
            return Ok(Prepared {
                answer: Answer::Json(self.template.completion(&meta, tool.as_ref())),
                prompt_tokens,
                completion_tokens,
            });
        }
        let frames = self
            .template
            .stream(&meta, tool.as_ref(), req.include_usage());
        let cut = (frames.count() >= 2 && chance(live.disconnect_rate)).then(|| {
            self.stats.disconnect_injected();
            rand::rng().random_range(1..frames.count())
        });
        Ok(Prepared {
            answer: Answer::Stream { frames, cut },
            prompt_tokens,
            completion_tokens,
        })
    }

    /// A 4xx refusal of a chat request before it was parsed, counted as such.
    fn refuse(&self, err: ApiError, guards: Guards) -> Response<ResponseBody> {
        self.stats.count(Kind::Chat);
        self.stats.rejected();
        self.fail(err, guards)
    }

    /// A chat call answered with an error status (counted, recorded).
    fn fail(&self, err: ApiError, mut guards: Guards) -> Response<ResponseBody> {
        self.stats.chat_error();
        if let Some(r) = &mut guards.call {
            r.call.status = err.status.as_u16();
            r.call.completion_tokens = 0;
        }
        error_response(err, guards)
    }

    /// Model mode: 429 with `retry-after`, the queue being full.
    fn queue_full(&self, guards: Guards) -> Response<ResponseBody> {
        let settings = &self.config.model_settings;
        let mut res = self.fail(ApiError::queue_full(settings, &self.config.model), guards);
        let secs = retry_after_s(settings, self.template.text_tokens());
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        res
    }
}

/// `true` with probability `p`; no random draw when `p` is 0 (or not a number) or 1.
fn chance(p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rand::rng().random::<f64>() < p)
}

fn json_response(
    status: StatusCode,
    body: impl Into<Bytes>,
    guards: Guards,
) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(body, guards));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, JSON);
    res
}

fn error_response(err: ApiError, guards: Guards) -> Response<ResponseBody> {
    json_response(err.status, err.body(), guards)
}

fn to_vec(doc: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap_or_default()
}
