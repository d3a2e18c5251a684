//! The sidecar's HTTP endpoints: `/metrics`, `/-/healthy` and `/-/ready`.

use std::sync::{Arc, OnceLock};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::sidecar::Readiness;

/// `/metrics` (OpenMetrics text of `registry`, empty until it is set),
/// `/-/healthy` (always 200 once serving) and `/-/ready` (200 while `ready`,
/// 503 otherwise). The registry is set once the sidecar has started, so the
/// probes answer while Prometheus is awaited.
pub fn router(registry: Arc<OnceLock<Registry>>, ready: Readiness) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut out = String::new();
                    let empty = Registry::default();
                    let reg = registry.get().unwrap_or(&empty);
                    match prometheus_client::encoding::text::encode(&mut out, reg) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            out,
                        ),
                        Err(e) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            format!("encoding metrics: {e}\n"),
                        ),
                    }
                }
            }),
        )
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route(
            "/-/ready",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.is_ready() {
                        (StatusCode::OK, "OK\n").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "NOT OK\n").into_response()
                    }
                }
            }),
        )
}
