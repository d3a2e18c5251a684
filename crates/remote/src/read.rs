//! The remote read server (Prometheus `storage/remote/read_handler.go`):
//! `POST /api/v1/read` with a snappy-compressed `prometheus.ReadRequest`,
//! answered with the first response type of `accepted_response_types` that is
//! supported (an empty list means SAMPLES):
//!
//! - **SAMPLES**: one snappy-compressed `ReadResponse`, samples trimmed to each
//!   query's range, at most `sample_limit` samples per query (400 past it);
//! - **STREAMED_XOR_CHUNKS**: frames of one `ChunkedReadResponse` each (see
//!   [`crate::chunked`]), holding whole chunks as stored, cut at about
//!   `max_bytes_in_frame`.
//!
//! External labels are merged into every series (the series' own labels win),
//! and equality matchers on an external label with its value are rewritten to
//! `name=""`, as Prometheus does. At most `concurrent_limit` reads run at once;
//! the others wait. An error after the first streamed frame aborts the response
//! body, so the client sees a broken stream rather than a silently short answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message;
use strata_chunkenc::{Encoding, RawChunk, XorChunk};
use strata_model::{Labels, Matcher};
use strata_storage::{
    ChunkMeta, ChunkSeries, Frame, Queryable, SelectHints, SelectRequest, SeriesData,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::chunked::{frame, STREAMED_CONTENT_TYPE};
use crate::codec::{
    matchers_from_proto, merge_labels, read_body, snappy_decode, snappy_encode,
    DEFAULT_MAX_BODY_BYTES,
};
use crate::error::{Error, Result};
use crate::prompb::{
    self, ChunkedReadResponse, ChunkedSeries, Query, QueryResult, ReadRequest, ReadResponse,
    ResponseType, TimeSeries,
};

/// Settings of the remote read endpoint; defaults are Prometheus' flag defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// `--storage.remote.read-sample-limit`: samples per query in a SAMPLES
    /// response (0: no limit; streamed responses ignore it). Default 5e7.
    pub sample_limit: usize,
    /// `--storage.remote.read-concurrent-limit`: concurrent reads (0: no limit).
    /// Default 10.
    pub concurrent_limit: usize,
    /// `--storage.remote.read-max-bytes-in-frame`: approximate frame size of
    /// streamed responses, bytes (a frame may exceed it by one chunk). Default 1048576.
    pub max_bytes_in_frame: usize,
    /// External labels merged into every returned series.
    pub external_labels: Labels,
    /// Largest request body, compressed and decoded, bytes (400 above). Default 32 MiB.
    pub max_request_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            sample_limit: 50_000_000,
            concurrent_limit: 10,
            max_bytes_in_frame: 1_048_576,
            external_labels: Labels::empty(),
            max_request_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Decodes a remote read body (snappy block format, then protobuf).
///
/// # Errors
///
/// [`Error::Snappy`], [`Error::DecodedTooLarge`] or [`Error::Protobuf`].
pub fn decode_read_request(body: &[u8], max_decoded: usize) -> Result<ReadRequest> {
    let raw = snappy_decode(body, max_decoded)?;
    Ok(ReadRequest::decode(raw.as_slice())?)
}

/// The first accepted response type this server supports; SAMPLES for an empty
/// list (Prometheus `NegotiateResponseType`).
///
/// # Errors
///
/// [`Error::UnsupportedResponseTypes`] when none is supported.
pub fn negotiate_response_type(accepted: &[i32]) -> Result<ResponseType> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    accepted
        .iter()
        .find_map(|t| ResponseType::try_from(*t).ok())
        .ok_or_else(|| Error::UnsupportedResponseTypes {
            requested: accepted.to_vec(),
        })
}

struct ReadState {
    queryable: Arc<dyn Queryable>,
    opts: ReadOptions,
    gate: Option<Arc<Semaphore>>,
    queries: Gauge,
}

/// Keeps `prometheus_api_remote_read_queries` up while a read runs.
struct InFlight {
    gauge: Gauge,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The remote read endpoint: `POST /api/v1/read` over `queryable`, with
/// `prometheus_api_remote_read_queries` (reads running or waiting) registered in
/// `registry`. Other methods get 405.
pub fn read_router(
    queryable: Arc<dyn Queryable>,
    opts: ReadOptions,
    registry: &mut Registry,
) -> Router {
    let queries = Gauge::default();
    registry.register(
        "prometheus_api_remote_read_queries",
        "The current number of remote read queries being executed or waiting.",
        queries.clone(),
    );
    let gate = (opts.concurrent_limit > 0).then(|| Arc::new(Semaphore::new(opts.concurrent_limit)));
    let state = Arc::new(ReadState {
        queryable,
        opts,
        gate,
        queries,
    });
    Router::new()
        .route("/api/v1/read", post(handle_read))
        .with_state(state)
}

async fn handle_read(State(state): State<Arc<ReadState>>, body: Body) -> Response {
    match read(state, body).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                warn!(err = %e, "remote read failed");
            }
            e.into_response()
        }
    }
}

async fn read(state: Arc<ReadState>, body: Body) -> Result<Response> {
    state.queries.inc();
    let mut in_flight = InFlight {
        gauge: state.queries.clone(),
        _permit: None,
    };
    if let Some(gate) = &state.gate {
        let permit = Arc::clone(gate)
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(format!("remote read gate: {e}")))?;
        in_flight._permit = Some(permit);
    }
    let limit = state.opts.max_request_bytes;
    let body = read_body(body, limit).await.map_err(|e| match e {
        Error::BodyTooLarge { limit } => Error::Body(format!(
            "request body of more than {limit} bytes is too large"
        )),
        e => e,
    })?;
    let req = decode_read_request(&body, limit)?;
    match negotiate_response_type(&req.accepted_response_types)? {
        ResponseType::Samples => samples_response(&state, &req).await,
        ResponseType::StreamedXorChunks => streamed_response(state, req, in_flight).await,
    }
}

/// The storage request for a query: its range, matchers and hints.
fn select_request(q: &Query, matchers: Vec<Matcher>) -> SelectRequest {
    let mut sel = SelectRequest::new(q.start_timestamp_ms, q.end_timestamp_ms, matchers);
    if let Some(h) = &q.hints {
        sel.hints = SelectHints {
            start_ms: h.start_ms,
            end_ms: h.end_ms,
            step_ms: h.step_ms,
            func: (!h.func.is_empty()).then(|| h.func.clone()),
            range_ms: h.range_ms,
            grouping: h.grouping.clone(),
            by: h.by,
        };
    }
    sel
}

async fn samples_response(state: &ReadState, req: &ReadRequest) -> Result<Response> {
    let ext = &state.opts.external_labels;
    let limit = state.opts.sample_limit;
    let mut resp = ReadResponse {
        results: Vec::with_capacity(req.queries.len()),
    };
    for (index, q) in req.queries.iter().enumerate() {
        let qerr = |source| Error::Query { index, source };
        let sel = select_request(q, matchers_from_proto(&q.matchers, ext)?);
        let mut stream = state.queryable.select(&sel).await.map_err(qerr)?;
        let mut result = QueryResult::default();
        let mut n = 0usize;
        while let Some(f) = stream.next().await {
            let s = match f.map_err(qerr)? {
                Frame::Series(s) => s,
                Frame::Warning(w) => {
                    warn!(warning = %w, "warnings on remote read query");
                    continue;
                }
            };
            let mut samples = Vec::new();
            let mut it = s.samples();
            while let Some(smp) = it.next_sample().map_err(qerr)? {
                if smp.t < q.start_timestamp_ms {
                    continue;
                }
                if smp.t > q.end_timestamp_ms {
                    break;
                }
                n += 1;
                if limit > 0 && n > limit {
                    return Err(Error::SampleLimit(limit));
                }
                samples.push(prompb::Sample {
                    value: smp.v,
                    timestamp: smp.t,
                });
            }
            if !samples.is_empty() {
                result.timeseries.push(TimeSeries {
                    labels: merge_labels(&s.labels, ext),
                    samples,
                    ..TimeSeries::default()
                });
            }
        }
        resp.results.push(result);
    }
    let body = snappy_encode(&resp.encode_to_vec());
    Ok((
        [
            (CONTENT_TYPE, "application/x-protobuf"),
            (CONTENT_ENCODING, "snappy"),
        ],
        body,
    )
        .into_response())
}

async fn streamed_response(
    state: Arc<ReadState>,
    req: ReadRequest,
    in_flight: InFlight,
) -> Result<Response> {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes>>(4);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        if let Err(e) = stream_queries(&state, &req, &tx).await {
            warn!(err = %e, "streamed remote read failed");
            let _ = tx.send(Err(e)).await;
        }
    });
    // The first item decides the status: an error before any frame is a proper
    // error response.
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(e),
        Some(Ok(b)) => Some(b),
        None => None,
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = futures::stream::iter(first.map(Ok)).chain(rest);
    Ok((
        [(CONTENT_TYPE, STREAMED_CONTENT_TYPE)],
        Body::from_stream(body),
    )
        .into_response())
}

/// Produces the frames of every query in order; stops quietly when the client is gone.
async fn stream_queries(
    state: &ReadState,
    req: &ReadRequest,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let ext = &state.opts.external_labels;
    for (index, q) in req.queries.iter().enumerate() {
        let qerr = |source| Error::Query { index, source };
        let sel = select_request(q, matchers_from_proto(&q.matchers, ext)?);
        let mut stream = state.queryable.select(&sel).await.map_err(qerr)?;
        while let Some(f) = stream.next().await {
            let s = match f.map_err(qerr)? {
                Frame::Series(s) => s,
                Frame::Warning(w) => {
                    warn!(warning = %w, "warnings on chunked remote read query");
                    continue;
                }
            };
            let frames = series_frames(
                &s,
                ext,
                index as i64,
                q.start_timestamp_ms,
                q.end_timestamp_ms,
                state.opts.max_bytes_in_frame,
            )?;
            for fr in frames {
                if tx.send(Ok(fr)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The remote read number of a chunk encoding.
fn proto_encoding(e: Encoding) -> Result<prompb::ChunkEncoding> {
    Ok(match e {
        Encoding::Xor => prompb::ChunkEncoding::Xor,
        Encoding::Histogram => prompb::ChunkEncoding::Histogram,
        Encoding::FloatHistogram => prompb::ChunkEncoding::FloatHistogram,
        Encoding::Xor2 => prompb::ChunkEncoding::Xor2,
        Encoding::HistogramSt => prompb::ChunkEncoding::HistogramSt,
        Encoding::FloatHistogramSt => prompb::ChunkEncoding::FloatHistogramSt,
        Encoding::Aggr => return Err(Error::ChunkEncoding(e.name())),
    })
}

/// Re-encodes decoded samples (e.g. deduplicated data) as XOR chunks of 120 samples.
fn encode_samples(samples: &[strata_model::Sample]) -> Result<Vec<ChunkMeta>> {
    let mut out = Vec::new();
    for part in samples.chunks(strata_chunkenc::SAMPLES_PER_CHUNK) {
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        let mut app = XorChunk::new().appender();
        for s in part {
            app.append(s.t, s.v)
                .map_err(|e| Error::Internal(format!("encoding samples: {e}")))?;
        }
        out.push(ChunkMeta {
            min_time: first.t,
            max_time: last.t,
            chunk: RawChunk::from_xor(app.finish()),
        });
    }
    Ok(out)
}

/// The frames of one series: whole chunks overlapping `[mint, maxt]`, cut when
/// the frame's bytes pass `max_bytes` (Prometheus `StreamChunkedReadResponses`).
pub(crate) fn series_frames(
    s: &ChunkSeries,
    ext: &Labels,
    query_index: i64,
    mint: i64,
    maxt: i64,
    max_bytes: usize,
) -> Result<Vec<Bytes>> {
    let encoded;
    let metas: &[ChunkMeta] = match &s.data {
        SeriesData::Chunks(c) => c,
        SeriesData::Samples(smp) => {
            encoded = encode_samples(smp)?;
            &encoded
        }
    };
    let labels = merge_labels(&s.labels, ext);
    let label_bytes: usize = labels.iter().map(Message::encoded_len).sum();
    let max_data = i64::try_from(max_bytes)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(label_bytes).unwrap_or(i64::MAX));
    let in_range: Vec<&ChunkMeta> = metas
        .iter()
        .filter(|c| c.max_time >= mint && c.min_time <= maxt)
        .collect();
    let mut frames = Vec::new();
    let mut chunks = Vec::new();
    let mut left = max_data;
    for (k, c) in in_range.iter().enumerate() {
        let chunk = prompb::Chunk {
            min_time_ms: c.min_time,
            max_time_ms: c.max_time,
            r#type: proto_encoding(c.chunk.encoding)? as i32,
            data: c.chunk.data.clone(),
        };
        left = left.saturating_sub(i64::try_from(chunk.encoded_len()).unwrap_or(i64::MAX));
        chunks.push(chunk);
        if left > 0 && k + 1 < in_range.len() {
            continue;
        }
        frames.push(frame(&ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: labels.clone(),
                chunks: std::mem::take(&mut chunks),
            }],
            query_index,
        }));
        left = max_data;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunked::decode_frames;

    fn series(n_chunks: usize) -> ChunkSeries {
        let mut metas = Vec::new();
        for c in 0..n_chunks {
            let base = c as i64 * 1000;
            let smp: Vec<strata_model::Sample> = (0..120)
                .map(|i| strata_model::Sample::new(base + i, i as f64))
                .collect();
            metas.extend(encode_samples(&smp).unwrap());
        }
        ChunkSeries::from_chunks(Labels::from_pairs([("__name__", "m"), ("a", "1")]), metas)
    }

    #[test]
    fn frames_are_cut_by_size_and_carry_external_labels() {
        let s = series(10);
        let ext = Labels::from_pairs([("a", "ext"), ("region", "eu")]);
        let one = series_frames(&s, &ext, 3, i64::MIN, i64::MAX, 1 << 20).unwrap();
        assert_eq!(one.len(), 1);
        let small = series_frames(&s, &ext, 3, i64::MIN, i64::MAX, 1).unwrap();
        assert_eq!(small.len(), 10);
        let all: Vec<u8> = small.iter().flat_map(|b| b.to_vec()).collect();
        let frames = decode_frames(&all, 1 << 20).unwrap();
        for f in &frames {
            assert_eq!(f.query_index, 3);
            let l: Vec<(&str, &str)> = f.chunked_series[0]
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect();
            assert_eq!(l, [("__name__", "m"), ("a", "1"), ("region", "eu")]);
        }
        // Only chunks overlapping the range.
        let some = series_frames(&s, &ext, 0, 2500, 4000, 1 << 20).unwrap();
        let f = decode_frames(&some[0], 1 << 20).unwrap();
        let mins: Vec<i64> = f[0].chunked_series[0]
            .chunks
            .iter()
            .map(|c| c.min_time_ms)
            .collect();
        assert_eq!(mins, [3000, 4000]);
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate_response_type(&[]).unwrap(), ResponseType::Samples);
        assert_eq!(
            negotiate_response_type(&[1, 0]).unwrap(),
            ResponseType::StreamedXorChunks
        );
        assert_eq!(
            negotiate_response_type(&[7, 0]).unwrap(),
            ResponseType::Samples
        );
        assert!(matches!(
            negotiate_response_type(&[7]),
            Err(Error::UnsupportedResponseTypes { .. })
        ));
    }
}
