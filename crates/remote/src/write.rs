//! The remote write 1.0 receiver (Prometheus `storage/remote/write_handler.go`):
//! `POST /api/v1/write` with a snappy-compressed `prometheus.WriteRequest`.
//!
//! Status codes tell the sender whether to retry: 204 when everything was written;
//! 400 for input that must not be retried (bad snappy or protobuf, invalid labels,
//! native histograms, out-of-order / out-of-bounds / duplicate samples); 413 for
//! an oversized body; 415 for an unaccepted Content-Type (remote write 2.0
//! included) or Content-Encoding; 500 when the storage failed, so the sender
//! retries. The body is the error text.
//!
//! Unlike Prometheus, which rolls the whole request back at the first rejected
//! sample, the storage here validates at commit: the valid samples of a request
//! are written and the rejected ones are reported with 400. The sender drops the
//! request either way, so less data is lost.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message;
use strata_storage::{AppendError, Appendable};
use tracing::{debug, warn};

use crate::codec::{
    describe_labels, labels_from_proto, read_body, snappy_decode, LabelLimits,
    DEFAULT_MAX_BODY_BYTES,
};
use crate::error::{Error, Result};
use crate::prompb::WriteRequest;

/// The remote write 1.0 message name in `Content-Type: ...;proto=`.
pub const PROTO_MSG_V1: &str = "prometheus.WriteRequest";
/// The remote write 2.0 message name, not accepted yet (answered with 415).
pub const PROTO_MSG_V2: &str = "io.prometheus.write.v2.Request";

/// Limits of the receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Largest compressed body accepted, bytes (413 above it). Default 32 MiB.
    pub max_compressed_bytes: usize,
    /// Largest decoded message accepted, bytes (400 above it). Default 32 MiB.
    pub max_decoded_bytes: usize,
    /// Label sanity limits.
    pub label_limits: LabelLimits,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_compressed_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decoded_bytes: DEFAULT_MAX_BODY_BYTES,
            label_limits: LabelLimits::default(),
        }
    }
}

/// Decodes a remote write body (snappy block format, then protobuf) with the
/// default 32 MiB decoded-size limit. Never panics, whatever the bytes.
///
/// # Errors
///
/// [`Error::Snappy`], [`Error::DecodedTooLarge`] or [`Error::Protobuf`].
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest> {
    decode_write_request_with_limit(body, DEFAULT_MAX_BODY_BYTES)
}

/// [`decode_write_request`] with a decoded-size limit in bytes.
///
/// # Errors
///
/// As [`decode_write_request`].
pub fn decode_write_request_with_limit(body: &[u8], max_decoded: usize) -> Result<WriteRequest> {
    let raw = snappy_decode(body, max_decoded)?;
    Ok(WriteRequest::decode(raw.as_slice())?)
}

/// What applying one request did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Series in the request.
    pub series: u64,
    /// Float samples in the request.
    pub samples: u64,
    /// Samples stored.
    pub appended: u64,
    /// Series created in the storage.
    pub new_series: u64,
    /// Samples rejected as out of order.
    pub out_of_order: u64,
    /// Samples rejected as out of bounds.
    pub out_of_bounds: u64,
    /// Samples rejected as duplicates with another value.
    pub duplicates: u64,
    /// Series skipped for invalid labels.
    pub invalid_series: u64,
    /// Samples (floats and histograms) of those series.
    pub invalid_samples: u64,
    /// The first invalid series and the reason.
    pub first_invalid: Option<(String, String)>,
    /// Native histogram samples rejected.
    pub histograms: u64,
    /// The first series carrying histograms.
    pub first_histogram: Option<String>,
    /// Exemplars received (not stored: the storage has no exemplars).
    pub exemplars: u64,
}

impl WriteStats {
    /// The 400 to answer, when anything was rejected: rejected samples first, then
    /// invalid labels, then native histograms.
    pub fn error(&self) -> Option<Error> {
        let rejected = self.out_of_order + self.out_of_bounds + self.duplicates;
        if rejected > 0 {
            let kind = if self.out_of_order > 0 {
                AppendError::OutOfOrder
            } else if self.out_of_bounds > 0 {
                AppendError::OutOfBounds
            } else {
                AppendError::DuplicateTimestamp
            };
            return Some(Error::Rejected {
                kind,
                rejected,
                total: self.samples,
                out_of_order: self.out_of_order,
                out_of_bounds: self.out_of_bounds,
                duplicates: self.duplicates,
            });
        }
        if let Some((series, reason)) = &self.first_invalid {
            return Some(Error::InvalidLabels {
                series: series.clone(),
                reason: reason.clone(),
                count: usize::try_from(self.invalid_series).unwrap_or(usize::MAX),
            });
        }
        if let Some(series) = &self.first_histogram {
            return Some(Error::NativeHistograms {
                series: series.clone(),
                count: usize::try_from(self.histograms).unwrap_or(usize::MAX),
            });
        }
        None
    }
}

/// Appends every valid float sample of `req` in one appender and commits it.
/// Series with invalid labels and native histograms are skipped and counted;
/// see [`WriteStats::error`] for the 400 they cause. This blocks on storage I/O.
///
/// # Errors
///
/// [`Error::Storage`] when the storage fails (the appender is rolled back).
pub fn apply_write_request(
    appendable: &dyn Appendable,
    req: WriteRequest,
    limits: &LabelLimits,
) -> Result<WriteStats> {
    let mut st = WriteStats::default();
    let mut app = appendable.appender();
    for mut ts in req.timeseries {
        st.series += 1;
        st.samples += ts.samples.len() as u64;
        st.exemplars += ts.exemplars.len() as u64;
        let labels = match labels_from_proto(&mut ts.labels, limits) {
            Ok(l) => l,
            Err(reason) => {
                st.invalid_series += 1;
                st.invalid_samples += (ts.samples.len() + ts.histograms.len()) as u64;
                st.samples -= ts.samples.len() as u64;
                if st.first_invalid.is_none() {
                    st.first_invalid = Some((describe_labels(&ts.labels), reason));
                }
                continue;
            }
        };
        if !ts.histograms.is_empty() {
            st.histograms += ts.histograms.len() as u64;
            if st.first_histogram.is_none() {
                st.first_histogram = Some(labels.to_string());
            }
        }
        for s in &ts.samples {
            match app.append(&labels, s.timestamp, s.value) {
                Ok(()) => {}
                Err(AppendError::OutOfBounds) => st.out_of_bounds += 1,
                Err(AppendError::OutOfOrder) => st.out_of_order += 1,
                Err(AppendError::DuplicateTimestamp) => st.duplicates += 1,
                Err(AppendError::InvalidLabels(reason)) => {
                    st.invalid_samples += 1;
                    st.samples -= 1;
                    if st.first_invalid.is_none() {
                        st.first_invalid = Some((labels.to_string(), reason));
                    }
                }
                Err(AppendError::Storage(e)) => {
                    app.rollback();
                    return Err(Error::Storage(e));
                }
            }
        }
    }
    let report = app.commit().map_err(|e| Error::Storage(e.to_string()))?;
    st.appended = report.appended;
    st.new_series = report.new_series;
    st.out_of_order += report.out_of_order;
    st.out_of_bounds += report.out_of_bounds;
    st.duplicates += report.duplicates;
    Ok(st)
}

/// Checks Content-Type and Content-Encoding as Prometheus does: a missing header
/// means remote write 1.0 with snappy; `proto=` selects the message.
///
/// # Errors
///
/// [`Error::UnsupportedMediaType`] (415).
pub fn check_write_headers(headers: &HeaderMap) -> Result<()> {
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("<non-ASCII>").trim())
        .unwrap_or("");
    if !ct.is_empty() {
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(Error::UnsupportedMediaType(format!(
                "expected application/x-protobuf as the first (media) part, got {ct} content-type"
            )));
        }
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                return Err(Error::UnsupportedMediaType(format!(
                    "expected parameters to be key-values, got {p} in {ct} content-type"
                )));
            };
            if k.trim() != "proto" {
                continue;
            }
            match v.trim().trim_matches('"') {
                PROTO_MSG_V1 => {}
                PROTO_MSG_V2 => {
                    return Err(Error::UnsupportedMediaType(format!(
                        "{PROTO_MSG_V2} protobuf message is not accepted by this server; accepted [{PROTO_MSG_V1}]"
                    )))
                }
                other => {
                    return Err(Error::UnsupportedMediaType(format!(
                        "got {ct} content type; unknown remote write protobuf message {other}, supported: {PROTO_MSG_V1}, {PROTO_MSG_V2}"
                    )))
                }
            }
        }
    }
    if let Some(enc) = headers.get("content-encoding") {
        let enc = enc.to_str().unwrap_or("<non-ASCII>").trim();
        if !enc.is_empty() && !enc.eq_ignore_ascii_case("snappy") {
            return Err(Error::UnsupportedMediaType(format!(
                "{enc} encoding (compression) is not accepted by this server; only snappy is acceptable"
            )));
        }
    }
    Ok(())
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// Labels of the rejected samples counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The receiver's metrics.
#[derive(Clone, Debug)]
struct WriteMetrics {
    requests: Family<CodeLabel, Counter>,
    appended: Counter,
    rejected: Family<ReasonLabel, Counter>,
    invalid_labels: Counter,
}

impl WriteMetrics {
    fn new(reg: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            appended: Counter::default(),
            rejected: Family::default(),
            invalid_labels: Counter::default(),
        };
        reg.register(
            "strata_remote_write_requests",
            "Remote write requests received, by HTTP status code.",
            m.requests.clone(),
        );
        reg.register(
            "strata_remote_write_samples_appended",
            "Remote write samples stored.",
            m.appended.clone(),
        );
        reg.register(
            "strata_remote_write_samples_rejected",
            "Remote write samples rejected, by reason.",
            m.rejected.clone(),
        );
        reg.register(
            "prometheus_api_remote_write_invalid_labels_samples",
            "The total number of received remote write samples and histogram samples which were rejected due to invalid labels.",
            m.invalid_labels.clone(),
        );
        m
    }

    fn record(&self, st: &WriteStats) {
        self.appended.inc_by(st.appended);
        self.invalid_labels.inc_by(st.invalid_samples);
        for (reason, n) in [
            ("out_of_order", st.out_of_order),
            ("out_of_bounds", st.out_of_bounds),
            ("duplicate", st.duplicates),
            ("invalid_labels", st.invalid_samples),
            ("native_histogram", st.histograms),
        ] {
            if n > 0 {
                self.rejected
                    .get_or_create(&ReasonLabel { reason })
                    .inc_by(n);
            }
        }
    }
}

struct WriteState {
    appendable: Arc<dyn Appendable>,
    opts: WriteOptions,
    metrics: WriteMetrics,
}

/// The receiver: `POST /api/v1/write` writing into `appendable`, with its
/// metrics registered in `registry` (`strata_remote_write_requests_total{code}`,
/// `strata_remote_write_samples_appended_total`,
/// `strata_remote_write_samples_rejected_total{reason}`,
/// `prometheus_api_remote_write_invalid_labels_samples_total`). Other methods get 405.
pub fn write_router(
    appendable: Arc<dyn Appendable>,
    opts: WriteOptions,
    registry: &mut Registry,
) -> Router {
    let state = Arc::new(WriteState {
        appendable,
        opts,
        metrics: WriteMetrics::new(registry),
    });
    Router::new()
        .route("/api/v1/write", post(handle_write))
        .with_state(state)
}

async fn handle_write(
    State(state): State<Arc<WriteState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let resp = match write(&state, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            if e.status().is_server_error() {
                warn!(err = %e, "error appending remote write");
            } else {
                debug!(err = %e, "rejected remote write request");
            }
            e.into_response()
        }
    };
    state
        .metrics
        .requests
        .get_or_create(&CodeLabel {
            code: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}

async fn write(state: &Arc<WriteState>, headers: &HeaderMap, body: Body) -> Result<()> {
    check_write_headers(headers)?;
    let body = read_body(body, state.opts.max_compressed_bytes).await?;
    let st = Arc::clone(state);
    let work = move || {
        let req = decode_write_request_with_limit(&body, st.opts.max_decoded_bytes)?;
        apply_write_request(st.appendable.as_ref(), req, &st.opts.label_limits)
    };
    // On the multi-threaded runtime, decode and append on the worker thread itself
    // (other tasks move away meanwhile): the few worker threads keep reusing their
    // allocator heaps, where a growing pool of blocking threads each kept pages of
    // request garbage resident (about a third of the server's memory under load).
    let stats = if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(work)?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(format!("write task failed: {e}")))??
    };
    state.metrics.record(&stats);
    match stats.error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
