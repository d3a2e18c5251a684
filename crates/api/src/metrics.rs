//! HTTP request metrics with Prometheus' names (`web/web.go`):
//! `prometheus_http_requests_total{code,handler}` and
//! `prometheus_http_request_duration_seconds{handler}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeHandler {
    code: String,
    handler: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandlerLabel {
    handler: String,
}

/// Prometheus' request duration buckets, seconds.
const BUCKETS: [f64; 9] = [0.1, 0.2, 0.4, 1.0, 3.0, 8.0, 20.0, 60.0, 120.0];

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Per-handler request counts and latencies.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<CodeHandler, Counter>,
    duration: Family<HandlerLabel, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let requests = Family::<CodeHandler, Counter>::default();
        let duration = Family::<HandlerLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram,
        );
        registry.register(
            "prometheus_http_requests",
            "Counter of HTTP requests.",
            requests.clone(),
        );
        registry.register(
            "prometheus_http_request_duration_seconds",
            "Histogram of latencies for HTTP requests.",
            duration.clone(),
        );
        Self { requests, duration }
    }

    /// Records one request to `handler` (the route, e.g. `/api/v1/query`).
    pub fn observe(&self, handler: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&CodeHandler {
                code: code.to_string(),
                handler: handler.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&HandlerLabel {
                handler: handler.to_owned(),
            })
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_prometheus_names() {
        let mut r = Registry::default();
        let m = HttpMetrics::new(&mut r);
        m.observe("/api/v1/query", 200, 0.05);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains(r#"prometheus_http_requests_total{code="200",handler="/api/v1/query"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"prometheus_http_request_duration_seconds_bucket{le="0.1",handler="/api/v1/query"} 1"#
            ),
            "{out}"
        );
    }
}
