//! Routes and the handlers that are not about data: probes, lifecycle, `/metrics`,
//! readiness gating and request instrumentation.

mod meta;
mod query;
mod status;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::Result;
use crate::params::Form;
use crate::response::Success;
use crate::Api;

type ApiState = State<Arc<Api>>;

/// Builds the full router.
pub(crate) fn router(api: Arc<Api>) -> Router {
    let v1 = Router::new()
        .route("/query", get(query::instant).post(query::instant))
        .route("/query_range", get(query::range).post(query::range))
        .route(
            "/query_exemplars",
            get(query::exemplars).post(query::exemplars),
        )
        .route(
            "/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route("/series", get(meta::series).post(meta::series))
        .route("/labels", get(meta::label_names).post(meta::label_names))
        .route("/label/{name}/values", get(meta::label_values))
        .route("/metadata", get(status::metadata))
        .route("/targets", get(status::targets))
        .route("/targets/metadata", get(status::targets_metadata))
        .route("/rules", get(status::rules))
        .route("/alerts", get(status::alerts))
        .route("/alertmanagers", get(status::alertmanagers))
        .route("/status/buildinfo", get(status::buildinfo))
        .route("/status/flags", get(status::flags))
        .route("/status/config", get(status::config))
        .route("/status/runtimeinfo", get(status::runtimeinfo))
        .route("/stores", get(meta::stores))
        .route_layer(middleware::from_fn_with_state(api.clone(), require_ready));
    let mut r = Router::new()
        .nest("/api/v1", v1)
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/-/quit", post(quit).put(quit));
    if api.registry.is_some() {
        r = r.route("/metrics", get(metrics));
    }
    r.layer(middleware::from_fn_with_state(api.clone(), instrument))
        .with_state(api)
}

/// Handlers take their parameters as a [`Form`]: the query string, then a form
/// body for POST.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> std::result::Result<Self, Response> {
        let method = req.method().clone();
        let uri = req.uri().clone();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Form::read(&method, uri.query(), &headers, &body))
    }
}

/// Turns a handler result into a response.
pub(crate) fn respond(r: Result<Success>) -> Response {
    match r {
        Ok(s) => s.into_response(),
        Err(e) => e.into_response(),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn require_ready(State(api): ApiState, req: Request, next: Next) -> Response {
    if !api.is_ready() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    next.run(req).await
}

async fn instrument(State(api): ApiState, req: Request, next: Next) -> Response {
    let Some(m) = api.http_metrics.clone() else {
        return next.run(req).await;
    };
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().replace("{name}", ":name"));
    let start = Instant::now();
    let resp = next.run(req).await;
    if let Some(h) = handler {
        m.observe(&h, resp.status().as_u16(), start.elapsed().as_secs_f64());
    }
    resp
}

async fn healthy() -> Response {
    text(StatusCode::OK, "Prometheus Server is Healthy.\n")
}

async fn ready(State(api): ApiState) -> Response {
    if api.is_ready() {
        text(StatusCode::OK, "Prometheus Server is Ready.\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
    }
}

async fn reload(State(api): ApiState) -> Response {
    let Some(l) = api.lifecycle.clone() else {
        return text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.");
    };
    match tokio::task::spawn_blocking(move || l.reload()).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn quit(State(api): ApiState) -> Response {
    let Some(l) = api.lifecycle.clone() else {
        return text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.");
    };
    l.quit();
    text(StatusCode::OK, "Requesting termination... Goodbye!")
}

async fn metrics(State(api): ApiState) -> Response {
    let Some(reg) = api.registry.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response();
    }
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests;
