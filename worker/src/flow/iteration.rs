//! One iteration of the flow: runs its steps in order, checks and records them, then its
//! cleanup steps.
mod cleanup;
mod series;

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use barrage_core::metrics::builtin;
use barrage_core::MetricKind;
use futures_util::future::join_all;
use reqwest::header::HeaderValue;
use serde_json::Value;

use super::auth::AuthFailure;
use super::check::{Answer, SseSummary};
use super::http_series::micros;
use super::retry::{backoff, Retryable};
use super::sse_sink::SseSink;
use super::step::{Body, Capture, GroupMode, Node, ResponseKind, Step, StepTags};
use super::template::{render_pieces, Vars, ITER, VU};
use super::AgentFlow;
use crate::http::sse::SseParser;
use crate::http::{Cancelled, Exchange, Kept, ReqBody, Request, TransportError};
use crate::sample::{CachedSeries, IterationCtx, IterationOutcome, Record, Sample};
use series::SeriesCache;

/// Buffers of one iteration, reused across iterations through the flow's pool.
pub(crate) struct IterState {
    vars: Vars,
    url: String,
    body: Vec<u8>,
    answer: Vec<u8>,
    sse: SseParser,
    summary: SseSummary,
    series: SeriesCache,
    /// The step whose request is in flight and when it started: recorded as interrupted
    /// when a hard stop drops it.
    in_flight: Option<(usize, Instant)>,
    /// Every attempt so far passed and met its objectives (`flow_goodput`).
    good: bool,
}

/// How a step ended.
struct StepEnd {
    passed: bool,
    /// Why it failed (the first failed check, or the transport/status problem).
    reason: Option<String>,
}

/// Of a body that is not read, the start kept for a failure's reason.
const IGNORED_BODY_KEPT: usize = 512;

impl AgentFlow {
    fn take_state(&self) -> IterState {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.unwrap_or_else(|| IterState {
            vars: self.table.values(),
            url: String::with_capacity(self.base.len() + 96),
            body: Vec::new(),
            answer: Vec::new(), // grown by an answer kept (SSE events go to the parser)
            sse: SseParser::with_limit(self.body_limit),
            summary: SseSummary::default(),
            series: SeriesCache::default(),
            in_flight: None,
            good: true,
        })
    }

    fn put_state(&self, mut st: IterState) {
        // The pool holds one state per VU at most, each keeping at most `body_limit` of
        // answer (the memory bound); giving it back after every large answer would only
        // churn the allocator, which then holds several times as much.
        st.answer.clear();
        st.answer.shrink_to(self.body_limit);
        st.sse.reset();
        st.good = true;
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(st);
    }

    pub(super) async fn run_iteration(&self, ctx: IterationCtx<'_>) -> IterationOutcome {
        if ctx.cancel.is_cancelled() {
            return IterationOutcome::Interrupted;
        }
        let mut st = self.take_state();
        st.series.prepare(&self.steps, ctx.recorder);
        // One waiter on the token per iteration: a hard stop drops the iteration where it
        // is, an HTTP exchange or an SSE read in flight included (`crate::http`).
        let outcome = tokio::select! {
            biased;
            o = self.iterate(&ctx, &mut st) => o,
            () = ctx.cancel.cancelled() => Err(Cancelled),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(Cancelled) => {
                // The request the stop cut is a failed sample (`error=interrupted`), so a
                // target that never answers does not look like one with no traffic.
                if let Some((index, start)) = st.in_flight.take() {
                    let step = &self.steps[index];
                    let ex = Exchange::failed(TransportError::Interrupted, start, 0, false);
                    st.series.steps[index].http.record(
                        ctx.recorder,
                        &step.operation,
                        &step.method,
                        &ex,
                        true,
                    );
                }
                self.put_state(st);
                return IterationOutcome::Interrupted;
            }
        };
        let took = ctx.intended_start.elapsed();
        if self.agent {
            st.series.flow_duration.record(
                ctx.recorder,
                builtin::AGENT_FLOW_DURATION,
                MetricKind::Trend,
                &[],
                micros(took),
            );
            let ok = outcome == IterationOutcome::Success;
            st.series.flow_success.record(
                ctx.recorder,
                builtin::AGENT_FLOW_SUCCESS_RATE,
                MetricKind::Rate,
                &[],
                if ok { 1.0 } else { 0.0 },
            );
        }
        let good = outcome == IterationOutcome::Success && st.good && self.slo.flow_met(took);
        st.series.flow_goodput.record(
            ctx.recorder,
            builtin::FLOW_GOODPUT,
            MetricKind::Rate,
            &[],
            if good { 1.0 } else { 0.0 },
        );
        self.put_state(st);
        if let IterationOutcome::Failed { step, reason } = &outcome {
            tracing::debug!(
                vu = ctx.vu,
                iteration = ctx.iteration,
                step,
                reason,
                "iteration failed"
            );
        }
        outcome
    }

    async fn iterate(
        &self,
        ctx: &IterationCtx<'_>,
        st: &mut IterState,
    ) -> Result<IterationOutcome, Cancelled> {
        st.vars.clear();
        let mut digits = itoa::Buffer::new();
        st.vars.slot_mut(VU).push_str(digits.format(ctx.vu));
        st.vars
            .slot_mut(ITER)
            .push_str(digits.format(ctx.iteration));
        let auth = match self
            .auth
            .header(ctx.vu, &self.http, ctx.cancel, ctx.recorder)
            .await
        {
            Ok(h) => h,
            Err(AuthFailure::Cancelled) => return Err(Cancelled),
            Err(AuthFailure::Failed(reason)) => {
                return Ok(IterationOutcome::Failed {
                    step: "auth".into(),
                    reason,
                })
            }
        };
        let mut failure: Option<(String, String)> = None;
        for wave in &self.schedule.waves {
            failure = match wave.as_slice() {
                [node] => self.run_node(node, st, ctx, auth.as_ref()).await?,
                nodes => self.run_wave(nodes, st, ctx, auth.as_ref()).await?,
            };
            if failure.is_some() {
                break;
            }
        }
        let flow_cleanup = 0..self.steps.len();
        let cleanup_failure = self
            .run_cleanup(flow_cleanup, false, st, ctx, auth.as_ref())
            .await?;
        failure = failure.or(cleanup_failure);
        Ok(match failure {
            None => IterationOutcome::Success,
            Some((step, reason)) => IterationOutcome::Failed { step, reason },
        })
    }

    /// Runs the main steps of `range` in order on `st` (cleanup steps are skipped); the
    /// first failure (step, reason).
    async fn run_steps(
        &self,
        range: Range<usize>,
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<(String, String)>, Cancelled> {
        for i in range {
            let step = &self.steps[i];
            if step.cleanup {
                continue;
            }
            let end = self.run_step(i, step, st, ctx, auth).await?;
            if !end.passed {
                return Ok(Some((
                    step.operation.clone(),
                    end.reason.unwrap_or_default(),
                )));
            }
            if !step.think_time.is_zero() {
                tokio::time::sleep(step.think_time).await;
            }
        }
        Ok(None)
    }

    /// A fresh state for a copy of the iteration (a fan-out copy, a step of a wide wave),
    /// holding `from`'s variables.
    fn branch(&self, from: &IterState, recorder: &dyn Record) -> IterState {
        let mut b = self.take_state();
        b.vars.copy_from(&from.vars);
        b.series.prepare(&self.steps, recorder);
        b
    }

    /// A node of a wave: a step, a repeated group (in order, on `st`) or a fan-out group
    /// (its copies at once, each on its own state; their captures stay there).
    async fn run_node(
        &self,
        node: &Node,
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<(String, String)>, Cancelled> {
        let Some(group) = &node.group else {
            return self.run_steps(node.steps.clone(), st, ctx, auth).await;
        };
        let mut digits = itoa::Buffer::new();
        match group.mode {
            GroupMode::Repeat(n) => {
                for k in 0..n {
                    st.vars.set(group.slot, digits.format(k));
                    if let Some(f) = self
                        .run_group_body(node.steps.clone(), st, ctx, auth)
                        .await?
                    {
                        return Ok(Some(f));
                    }
                }
                Ok(None)
            }
            GroupMode::FanOut(n) => {
                let mut copies: Vec<IterState> = (0..n)
                    .map(|k| {
                        let mut b = self.branch(st, ctx.recorder);
                        b.vars.set(group.slot, itoa::Buffer::new().format(k));
                        b
                    })
                    .collect();
                let start = Instant::now();
                let results = join_all(copies.iter_mut().map(|b| {
                    let range = node.steps.clone();
                    async move {
                        let t0 = Instant::now();
                        let r = self.run_group_body(range, b, ctx, auth).await;
                        (r, t0.elapsed())
                    }
                }))
                .await;
                let wall = start.elapsed();
                for b in copies {
                    st.good &= b.good;
                    self.put_state(b);
                }
                let busy: Duration = results.iter().map(|(_, d)| *d).sum();
                let tags: &[(&str, &str)] = &[("group", &group.name)];
                ctx.recorder.record(Sample {
                    metric: builtin::FANOUT_WALL,
                    kind: MetricKind::Trend,
                    tags,
                    value: micros(wall),
                });
                if !wall.is_zero() {
                    ctx.recorder.record(Sample {
                        metric: builtin::PARALLEL_EFFICIENCY,
                        kind: MetricKind::Trend,
                        tags,
                        value: busy.as_secs_f64() / wall.as_secs_f64(),
                    });
                }
                let mut failure = None;
                for (r, _) in results {
                    if let Some(f) = r? {
                        failure.get_or_insert(f);
                    }
                }
                Ok(failure)
            }
        }
    }

    /// A wave of several nodes, at once, each on a copy of the variables; what they
    /// capture is merged back into `st` (in node order) for the waves after.
    async fn run_wave(
        &self,
        nodes: &[Node],
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<(String, String)>, Cancelled> {
        let mut copies: Vec<IterState> = nodes
            .iter()
            .map(|_| self.branch(st, ctx.recorder))
            .collect();
        let results = join_all(
            nodes
                .iter()
                .zip(copies.iter_mut())
                .map(|(node, b)| self.run_node(node, b, ctx, auth)),
        )
        .await;
        for (node, b) in nodes.iter().zip(&copies) {
            for i in node.steps.clone() {
                for (slot, _) in &self.steps[i].captures {
                    if let Some(v) = b.vars.get(*slot) {
                        st.vars.set(*slot, v);
                    }
                }
            }
        }
        for b in copies {
            st.good &= b.good;
            self.put_state(b);
        }
        let mut failure = None;
        for r in results {
            if let Some(f) = r? {
                failure.get_or_insert(f);
            }
        }
        Ok(failure)
    }

    /// One step: sent, then sent again while its retry policy says so (every attempt
    /// recorded, each retry counted in `step_retries`).
    async fn run_step(
        &self,
        index: usize,
        step: &Step,
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<StepEnd, Cancelled> {
        let Some(policy) = &step.retry else {
            return Ok(self.attempt(index, step, st, ctx, auth).await?.0);
        };
        let op_tag: &[(&str, &str)] = &[("operation", &step.operation)];
        let mut attempt = 1;
        loop {
            let (end, retryable) = self.attempt(index, step, st, ctx, auth).await?;
            let again = !end.passed
                && attempt < policy.attempts
                && match retryable {
                    Retryable::Status(code) => policy.on_status.contains(&code),
                    Retryable::Transport => policy.on_error,
                    Retryable::RunError => policy.on_run_error,
                    Retryable::No => false,
                };
            if !again {
                ctx.recorder.record(Sample {
                    metric: builtin::STEP_ATTEMPTS,
                    kind: MetricKind::Trend,
                    tags: op_tag,
                    value: f64::from(attempt),
                });
                return Ok(end);
            }
            ctx.recorder.record(Sample {
                metric: builtin::STEP_RETRIES,
                kind: MetricKind::Counter,
                tags: op_tag,
                value: 1.0,
            });
            tokio::time::sleep(backoff(policy, attempt)).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        index: usize,
        step: &Step,
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<(StepEnd, Retryable), Cancelled> {
        // A cancelled token stops the step in `Http::execute`, before anything is sent.
        st.url.clear();
        st.url.push_str(&self.base);
        step.path.render_path(&st.vars, &mut st.url);
        // Bodies are sent from where they are: a fixed one from the step, a templated
        // one from the iteration's buffer, a large one's fixed text from the step.
        let pieces: Vec<&[u8]>;
        let body = match &step.body {
            Body::None => None,
            Body::Fixed(b) => Some(ReqBody::One(b)),
            Body::Template(t) => {
                st.body.clear();
                t.render_json(&st.vars, &mut st.body);
                Some(ReqBody::One(&st.body))
            }
            Body::Pieces(p) => {
                pieces = render_pieces(p, &st.vars, &mut st.body);
                Some(ReqBody::Pieces(&pieces))
            }
        };
        let req = Request {
            method: &step.method,
            url: &st.url,
            body,
            auth,
            accept: (step.response == ResponseKind::Sse).then_some("text/event-stream"),
            extra: &[],
        };
        st.answer.clear();
        st.summary.clear();
        st.in_flight = Some((index, Instant::now()));
        let sent_unix_us = step
            .llm_calls
            .as_ref()
            .map(|_| super::overhead::unix_us_now());
        let mut overflow = false;
        let ex = if step.response == ResponseKind::Sse {
            st.sse.reset();
            let mut sink = SseSink {
                parser: &mut st.sse,
                summary: &mut st.summary,
            };
            self.http.execute(&req, &mut sink, ctx.cancel).await?
        } else if step.response == ResponseKind::Ignore {
            // drained, not kept: only its start, for a failure's reason
            let mut head = Kept::new(&mut st.answer, IGNORED_BODY_KEPT);
            self.http.execute(&req, &mut head, ctx.cancel).await?
        } else {
            let mut kept = Kept::new(&mut st.answer, self.body_limit);
            let ex = self.http.execute(&req, &mut kept, ctx.cancel).await?;
            overflow = kept.overflow;
            ex
        };
        st.in_flight = None;

        // Read the answer as the step expects.
        let mut bad_body: Option<String> = None;
        let json: Option<Value> = if overflow && step.needs_json {
            bad_body = Some(format!(
                "the answer is longer than flow.response_body_limit ({} bytes), so its checks cannot read it; raise the limit",
                self.body_limit
            ));
            None
        } else if step.needs_json && ex.is_2xx() {
            let text = &st.answer[..];
            if text.iter().all(u8::is_ascii_whitespace) {
                Some(Value::Null)
            } else {
                match super::prune::parse(text, &step.json_need) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        bad_body = Some(format!("the answer is not JSON ({e})"));
                        None
                    }
                }
            }
        } else {
            None
        };
        let is_sse = step.response == ResponseKind::Sse;
        if is_sse && ex.is_2xx() && st.summary.events == 0 {
            bad_body = Some("the stream carried no SSE event".into());
        }

        // Checks.
        let answer = Answer {
            exchange: &ex,
            json: json.as_ref(),
            sse: is_sse.then_some(&st.summary),
            vars: &st.vars,
        };
        // An answer cut at the limit explains every check that follows.
        let mut reason: Option<String> = if overflow { bad_body.clone() } else { None };
        let mut request_failed = bad_body.is_some();
        let mut run_error = false;
        let series = &mut st.series.steps[index];
        for (c, slot) in step.checks.iter().zip(&mut series.checks) {
            let result = c.eval(&answer);
            slot.record(
                ctx.recorder,
                builtin::CHECKS,
                MetricKind::Rate,
                &[("check", &c.name)],
                if result.is_ok() { 1.0 } else { 0.0 },
            );
            if let Err(why) = result {
                run_error |= c.check.marks_request_failed();
                request_failed |= c.check.marks_request_failed();
                if reason.is_none() {
                    reason = Some(format!("check \"{}\" failed: {why}", c.name));
                }
            }
        }
        if !ex.is_2xx() && reason.is_none() {
            reason = Some(failure_reason(&ex, &st.answer));
        }
        if let Some(b) = bad_body {
            reason.get_or_insert(b);
        }

        // Samples.
        series.http.record(
            ctx.recorder,
            &step.operation,
            &step.method,
            &ex,
            request_failed,
        );
        let op_tag: &[(&str, &str)] = &[("operation", &step.operation)];
        match &step.tags {
            StepTags::None => series.trend.record(
                ctx.recorder,
                &step.trend,
                MetricKind::Trend,
                op_tag,
                micros(ex.duration),
            ),
            StepTags::Fixed(extra) => {
                let mut tags: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 1);
                tags.push(("operation", &step.operation));
                tags.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                series.trend.record(
                    ctx.recorder,
                    &step.trend,
                    MetricKind::Trend,
                    &tags,
                    micros(ex.duration),
                );
            }
            StepTags::Templated(extra) => {
                let values: Vec<String> = extra
                    .iter()
                    .map(|(_, t)| {
                        let mut v = String::new();
                        t.render_raw(&st.vars, &mut v);
                        v
                    })
                    .collect();
                let mut tags: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 1);
                tags.push(("operation", &step.operation));
                tags.extend(
                    extra
                        .iter()
                        .zip(&values)
                        .map(|((k, _), v)| (k.as_str(), v.as_str())),
                );
                ctx.recorder.record(Sample {
                    metric: &step.trend,
                    kind: MetricKind::Trend,
                    tags: &tags,
                    value: micros(ex.duration),
                });
            }
        }
        if is_sse && ex.status != 0 {
            if let Some(first) = st.summary.first_event {
                series.first_event.record(
                    ctx.recorder,
                    builtin::STREAM_FIRST_EVENT,
                    MetricKind::Trend,
                    op_tag,
                    micros(first),
                );
            }
            series.events.record(
                ctx.recorder,
                builtin::STREAM_EVENTS,
                MetricKind::Trend,
                op_tag,
                st.summary.events as f64,
            );
            if let Some(t) = st.summary.first_token {
                series.first_token.record(
                    ctx.recorder,
                    builtin::STREAM_FIRST_TOKEN,
                    MetricKind::Trend,
                    op_tag,
                    micros(t),
                );
            }
            for (i, gap) in &st.summary.gaps {
                let event = st.summary.names[usize::from(*i)].as_str();
                // resolved once per step and event name, then recorded by id
                let at = match series.gaps.iter().position(|(n, _)| n == event) {
                    Some(at) => at,
                    None => {
                        series
                            .gaps
                            .push((event.to_owned(), CachedSeries::default()));
                        series.gaps.len() - 1
                    }
                };
                series.gaps[at].1.record(
                    ctx.recorder,
                    builtin::STREAM_EVENT_GAP,
                    MetricKind::Trend,
                    &[("operation", &step.operation), ("event", event)],
                    micros(*gap),
                );
            }
            if let Some(b) = st.summary.buffered() {
                series.buffered.record(
                    ctx.recorder,
                    builtin::STREAM_BUFFERED,
                    MetricKind::Rate,
                    op_tag,
                    if b { 1.0 } else { 0.0 },
                );
            }
        }

        // Captures, when the step passed.
        if reason.is_none() {
            for (slot, cap) in &step.captures {
                match cap {
                    Capture::Created { .. } => st.vars.set(*slot, "1"),
                    Capture::Json { pointer, var } => {
                        match json
                            .as_ref()
                            .and_then(|j| super::prune::pointer(j, pointer))
                        {
                            Some(Value::String(s)) if !s.is_empty() => st.vars.set(*slot, s),
                            Some(Value::Number(n)) => {
                                let _ = write!(st.vars.slot_mut(*slot), "{n}");
                            }
                            _ => {
                                reason = Some(format!(
                                    "cannot capture {var}: no {pointer} in the answer"
                                ));
                                break;
                            }
                        }
                    }
                }
            }
        }
        st.good &= reason.is_none() && self.slo.request_met(index, &ex, &st.summary);
        if let (None, Some(sent)) = (&reason, sent_unix_us) {
            self.record_overhead(step, &st.vars, sent, ex.duration, ctx)
                .await?;
        }
        let retryable = if reason.is_none() {
            Retryable::No
        } else if ex.error.is_some() {
            Retryable::Transport
        } else if !ex.is_2xx() {
            Retryable::Status(ex.status)
        } else if run_error {
            Retryable::RunError
        } else {
            Retryable::No
        };
        Ok((
            StepEnd {
                passed: reason.is_none(),
                reason,
            },
            retryable,
        ))
    }
}

/// Why a request failed: transport error, or the status and the start of the body.
fn failure_reason(ex: &Exchange, body: &[u8]) -> String {
    if let Some(e) = ex.error {
        if ex.status != 0 {
            return format!("{} (after HTTP {})", e.as_str(), ex.status);
        }
        return e.as_str().to_owned();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!("HTTP {}: {}", ex.status, text.trim())
}
