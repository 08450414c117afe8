//! The dashboard's HTTP server (axum): the page, the SSE stream, `/metrics`, the state as
//! JSON and, once written, the summary. Every handler reads the latest [`LiveState`] from
//! the watch channel; none of them can slow the hub down.
//!
//! | route            | answers                                                         |
//! |------------------|-----------------------------------------------------------------|
//! | `/`              | the page, with the state of the moment embedded                 |
//! | `/events`        | SSE: `event: state` with the state as JSON, at once and on every change; ends after the final state |
//! | `/metrics`       | Prometheus text format ([`super::prometheus`])                 |
//! | `/state`         | the state as JSON                                                |
//! | `/summary.json`  | the run's `summary.json`, once written (404 before)             |
//! | `/charts/{name}` | one live chart as SVG ([`super::charts`])                      |
use super::state::LiveState;
use super::{charts, page, prometheus};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub state: watch::Receiver<Arc<LiveState>>,
    /// Cancelled when the server shuts down: open SSE streams end.
    pub stop: CancellationToken,
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/state", get(state))
        .route("/summary.json", get(summary))
        .route("/charts/{name}", get(chart))
        .with_state(shared)
}

fn now(s: &Shared) -> Arc<LiveState> {
    s.state.borrow().clone()
}

async fn index(State(s): State<Shared>) -> Html<String> {
    Html(page::render(&now(&s)))
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(&now(&s)),
    )
        .into_response()
}

async fn state(State(s): State<Shared>) -> Response {
    axum::Json(LiveState::clone(&now(&s))).into_response()
}

async fn summary(State(s): State<Shared>) -> Response {
    match &now(&s).summary {
        Some(doc) => axum::Json(doc.as_ref().clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the run is not over yet: its summary is written at the end\n",
        )
            .into_response(),
    }
}

async fn chart(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(name) = name.strip_suffix(".svg") else {
        return (StatusCode::NOT_FOUND, "charts are SVG: /charts/NAME.svg\n").into_response();
    };
    match charts::render(name, &now(&s)) {
        Some(Ok(svg)) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Some(Err(e)) => {
            tracing::warn!(chart = name, error = %e, "live chart failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("no chart {name:?} (yet): the page lists those it can draw\n"),
        )
            .into_response(),
    }
}

/// The SSE stream of one client: the state now, then each change, until the final state
/// (sent, then the stream ends) or the server stops.
fn stream(s: Shared) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((s, true, false), |(mut s, first, done)| async move {
        if done {
            return None;
        }
        if !first {
            // a change beats a stop: the final state is published before the server stops
            tokio::select! {
                biased;
                changed = s.state.changed() => changed.ok()?,
                _ = s.stop.cancelled() => return None,
            }
        }
        let state = s.state.borrow_and_update().clone();
        let done = state.end.is_some();
        let event = match Event::default().event("state").json_data(&*state) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard state does not serialize");
                return None;
            }
        };
        Some((Ok(event), (s, false, done)))
    })
}

async fn events(State(s): State<Shared>) -> impl IntoResponse {
    Sse::new(stream(s)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
