//! The remote read client (Thanos `pkg/store/prometheus.go`, Prometheus
//! `storage/remote/client.go`): a [`Queryable`] over a Prometheus' HTTP API.
//!
//! `select` posts one query to `/api/v1/read` accepting `STREAMED_XOR_CHUNKS`
//! (and `SAMPLES` as a fallback for servers that cannot stream). The framed
//! answer is decoded as it arrives, never buffered whole: consecutive frames
//! with the same labels are one series split by the server and are joined,
//! and chunks pass through unchanged as [`RawChunk`]s. Label names and values
//! come from `/api/v1/labels` and `/api/v1/label/<name>/values`.
//!
//! External labels: Prometheus merges its external labels into every series
//! it returns over remote read. This client reports them in
//! [`Queryable::info`]; by default it removes them from the series, like the
//! TSDB's own [`Queryable`] (series keep the storage's sort order). With
//! [`ReadClientOptions::strip_external_labels`] off (the sidecar, as Thanos'
//! sidecar sends them in StoreAPI series) they stay, and so does Prometheus'
//! order: an external label whose name sorts among the series' own label
//! names can put series out of label order, which is reported once as a
//! warning frame rather than fixed by buffering the whole answer. Matchers
//! on external labels are resolved here, as Thanos' sidecar does: a matcher
//! that the external value fails empties the answer, one it satisfies is
//! dropped before asking.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use prost::Message;
use strata_chunkenc::{Encoding, RawChunk, XorChunk};
use strata_model::{Label, Labels, Matcher};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Error as StorageError, Frame, LabelRequest,
    Queryable, Result as StorageResult, SelectRequest, SeriesData, SourceInfo, WithWarnings,
};

use crate::chunked::{FrameDecoder, DEFAULT_CHUNKED_READ_LIMIT};
use crate::codec::{matchers_to_proto, snappy_decode, snappy_encode, DEFAULT_MAX_BODY_BYTES};
use crate::prompb::{
    self, ChunkedReadResponse, ChunkedSeries, Query, ReadHints, ReadRequest, ReadResponse,
    ResponseType,
};

/// Earliest time Prometheus' HTTP API accepts, ms (`minTime` in `web/api/v1`).
const API_MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// Latest time Prometheus' HTTP API accepts, ms (`maxTime` in `web/api/v1`).
const API_MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// Settings of a [`ReadClient`].
#[derive(Clone, Debug)]
pub struct ReadClientOptions {
    /// Timeout of one label request, and of connecting and receiving the
    /// headers of a read (the streamed body itself is not timed). Default 2m.
    pub timeout: Duration,
    /// Largest streamed frame accepted, bytes (Prometheus' `chunked_read_limit`).
    pub frame_limit: u64,
    /// Largest SAMPLES (non-streamed) answer accepted, bytes.
    pub max_samples_response_bytes: usize,
    /// Remove the external labels (name and value equal) from returned series.
    /// Default true, which matches the TSDB's [`Queryable`]: external labels are
    /// in [`SourceInfo::label_sets`] only.
    pub strip_external_labels: bool,
}

impl Default for ReadClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            frame_limit: DEFAULT_CHUNKED_READ_LIMIT,
            max_samples_response_bytes: DEFAULT_MAX_BODY_BYTES,
            strip_external_labels: true,
        }
    }
}

/// Why a request to the Prometheus failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadClientError {
    /// The request could not be sent or its answer not received.
    #[error("{url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url}: server returned HTTP status {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The start of the answer body.
        body: String,
    },
    /// The answer is not what the API promises.
    #[error("{url}: {msg}")]
    Decode {
        /// The URL.
        url: String,
        /// What is wrong.
        msg: String,
    },
}

impl From<ReadClientError> for StorageError {
    fn from(e: ReadClientError) -> Self {
        match &e {
            ReadClientError::Http { .. } => StorageError::Unavailable(e.to_string()),
            ReadClientError::Status { status, .. } if (400..500).contains(status) => {
                StorageError::BadRequest(e.to_string())
            }
            ReadClientError::Status { .. } => StorageError::Unavailable(e.to_string()),
            ReadClientError::Decode { .. } => StorageError::source(e),
        }
    }
}

/// A [`Queryable`] over a Prometheus' remote read and label APIs.
#[derive(Debug, Clone)]
pub struct ReadClient {
    base: String,
    client: reqwest::Client,
    opts: ReadClientOptions,
    info: Arc<RwLock<SourceInfo>>,
}

impl ReadClient {
    /// A client for the Prometheus at `base_url` (e.g. `http://localhost:9090`).
    /// Its info starts with no external labels and the full time range; the
    /// owner updates it with [`Self::set_external_labels`] and
    /// [`Self::set_min_time`].
    ///
    /// # Errors
    ///
    /// [`ReadClientError::Http`] when the HTTP client cannot be built.
    pub fn new(base_url: &str, opts: ReadClientOptions) -> Result<Self, ReadClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(opts.timeout)
            .user_agent(concat!("Strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ReadClientError::Http {
                url: base.clone(),
                source,
            })?;
        Ok(Self {
            base,
            client,
            opts,
            info: Arc::new(RwLock::new(SourceInfo {
                label_sets: Vec::new(),
                min_time: i64::MIN,
                max_time: i64::MAX,
            })),
        })
    }

    /// The Prometheus base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sets the external labels reported by `info()` and resolved in matchers.
    pub fn set_external_labels(&self, labels: Labels) {
        if let Ok(mut i) = self.info.write() {
            i.label_sets = if labels.is_empty() {
                Vec::new()
            } else {
                vec![labels]
            };
        }
    }

    /// Sets the earliest time served, ms; earlier request bounds are raised to it.
    pub fn set_min_time(&self, min_time_ms: i64) {
        if let Ok(mut i) = self.info.write() {
            i.min_time = min_time_ms;
        }
    }

    fn external_labels(&self) -> Labels {
        self.info
            .read()
            .ok()
            .and_then(|i| i.label_sets.first().cloned())
            .unwrap_or_else(Labels::empty)
    }

    fn min_time(&self) -> i64 {
        self.info.read().map(|i| i.min_time).unwrap_or(i64::MIN)
    }

    /// Resolves matchers on external labels: `None` when the external labels
    /// fail one; otherwise the matchers to send.
    fn split_matchers(&self, ms: &[Matcher]) -> Option<Vec<Matcher>> {
        let ext = self.external_labels();
        let mut out = Vec::with_capacity(ms.len());
        for m in ms {
            match ext.get(&m.name) {
                Some(v) if !m.matches(v) => return None,
                Some(_) => {}
                None => out.push(m.clone()),
            }
        }
        Some(out)
    }

    async fn post_read(&self, req: &ReadRequest) -> Result<reqwest::Response, ReadClientError> {
        let url = format!("{}/api/v1/read", self.base);
        let body = snappy_encode(&req.encode_to_vec());
        let send = self
            .client
            .post(&url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body)
            .send();
        // Only until the headers: a long streamed answer is not cut.
        let resp = tokio::time::timeout(self.opts.timeout, send)
            .await
            .map_err(|_| ReadClientError::Decode {
                url: url.clone(),
                msg: format!("no answer within {:?}", self.opts.timeout),
            })?
            .map_err(|source| ReadClientError::Http {
                url: url.clone(),
                source,
            })?;
        check_status(&url, resp).await
    }

    async fn get_json(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<serde_json::Value, ReadClientError> {
        let url = format!("{}{path}", self.base);
        let http = |source| ReadClientError::Http {
            url: url.clone(),
            source,
        };
        let resp = self
            .client
            .get(&url)
            .query(query)
            .timeout(self.opts.timeout)
            .send()
            .await
            .map_err(http)?;
        let resp = check_status(&url, resp).await?;
        let body = resp.bytes().await.map_err(http)?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ReadClientError::Decode {
                url: url.clone(),
                msg: format!("answer is not JSON: {e}"),
            })?;
        if v.get("status").and_then(|s| s.as_str()) != Some("success") {
            return Err(ReadClientError::Decode {
                url,
                msg: format!("answer is not a success: {v}"),
            });
        }
        Ok(v)
    }

    /// `match[]`, `start` and `end` parameters of a label request.
    fn label_query(&self, req: &LabelRequest, matchers: &[Matcher]) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if !matchers.is_empty() {
            let sel: Vec<String> = matchers.iter().map(ToString::to_string).collect();
            q.push(("match[]".to_string(), format!("{{{}}}", sel.join(","))));
        }
        let start = req.min_time.max(self.min_time());
        if start > API_MIN_TIME_MS {
            q.push((
                "start".to_string(),
                format_seconds(start.min(API_MAX_TIME_MS)),
            ));
        }
        if req.max_time < API_MAX_TIME_MS {
            q.push((
                "end".to_string(),
                format_seconds(req.max_time.max(API_MIN_TIME_MS)),
            ));
        }
        q
    }
}

/// Milliseconds as the decimal seconds Prometheus' API parses.
fn format_seconds(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    format!("{secs}.{frac:03}")
}

async fn check_status(
    url: &str,
    resp: reqwest::Response,
) -> Result<reqwest::Response, ReadClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.trim().chars().take(512).collect();
    Err(ReadClientError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body,
    })
}

fn string_list(v: &serde_json::Value, url: &str) -> Result<Vec<String>, ReadClientError> {
    let arr = v
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or_else(|| ReadClientError::Decode {
            url: url.to_string(),
            msg: "answer has no data array".into(),
        })?;
    let mut out: Vec<String> = arr
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn warnings(v: &serde_json::Value) -> Vec<String> {
    v.get("warnings")
        .and_then(|w| w.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Queryable for ReadClient {
    async fn select(&self, req: &SelectRequest) -> StorageResult<ChunkSeriesStream> {
        let min_time = req.min_time.max(self.min_time());
        if min_time > req.max_time {
            return Ok(futures::stream::empty().boxed());
        }
        let Some(matchers) = self.split_matchers(&req.matchers) else {
            return Ok(futures::stream::empty().boxed());
        };
        if matchers.is_empty() {
            return Err(StorageError::BadRequest(
                "no matchers specified (excluding external labels)".into(),
            ));
        }
        let h = &req.hints;
        let hints = (h != &Default::default()).then(|| ReadHints {
            step_ms: h.step_ms,
            func: h.func.clone().unwrap_or_default(),
            start_ms: h.start_ms,
            end_ms: h.end_ms,
            grouping: h.grouping.clone(),
            by: h.by,
            range_ms: h.range_ms,
        });
        let rr = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: min_time,
                end_timestamp_ms: req.max_time,
                matchers: matchers_to_proto(&matchers),
                hints,
            }],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        let url = format!("{}/api/v1/read", self.base);
        let resp = self.post_read(&rr).await?;
        let ext = if self.opts.strip_external_labels {
            self.external_labels()
        } else {
            Labels::empty()
        };
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let skip = req.skip_chunks;
        if ctype.starts_with("application/x-streamed-protobuf") {
            let st = Streamed {
                url,
                body: resp.bytes_stream().boxed(),
                decoder: FrameDecoder::new(self.opts.frame_limit),
                ready: VecDeque::new(),
                current: None,
                ext,
                skip,
                ended: false,
                failed: false,
                last: None,
                warned: false,
                warning: None,
            };
            return Ok(futures::stream::unfold(st, Streamed::step).boxed());
        }
        // SAMPLES: one snappy message, bounded; re-encoded as XOR chunks.
        let series = samples_answer(&url, resp, self.opts.max_samples_response_bytes).await?;
        let out: Vec<StorageResult<Frame>> = series
            .into_iter()
            .map(|(labels, samples)| {
                let chunks = if skip {
                    Vec::new()
                } else {
                    encode_xor(&samples)
                };
                Ok(Frame::Series(ChunkSeries::from_chunks(
                    strip(labels, &ext),
                    chunks,
                )))
            })
            .collect();
        Ok(futures::stream::iter(out).boxed())
    }

    async fn label_names(&self, req: &LabelRequest) -> StorageResult<WithWarnings<Vec<String>>> {
        let Some(matchers) = self.split_matchers(&req.matchers) else {
            return Ok(WithWarnings::new(Vec::new()));
        };
        let q = self.label_query(req, &matchers);
        let v = self.get_json("/api/v1/labels", &q).await?;
        let mut names = string_list(&v, &format!("{}/api/v1/labels", self.base))?;
        if !self.opts.strip_external_labels {
            let ext = self.external_labels();
            names.extend(ext.iter().map(|l| l.name.clone()));
            names.sort_unstable();
            names.dedup();
        }
        if req.limit > 0 {
            names.truncate(req.limit);
        }
        Ok(WithWarnings {
            value: names,
            warnings: warnings(&v),
        })
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> StorageResult<WithWarnings<Vec<String>>> {
        let Some(matchers) = self.split_matchers(&req.matchers) else {
            return Ok(WithWarnings::new(Vec::new()));
        };
        if !self.opts.strip_external_labels {
            if let Some(v) = self.external_labels().get(name) {
                return Ok(WithWarnings::new(vec![v.to_string()]));
            }
        }
        let path = format!(
            "/api/v1/label/{}/values",
            form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        );
        let q = self.label_query(req, &matchers);
        let v = self.get_json(&path, &q).await?;
        let mut values = string_list(&v, &format!("{}{path}", self.base))?;
        if req.limit > 0 {
            values.truncate(req.limit);
        }
        Ok(WithWarnings {
            value: values,
            warnings: warnings(&v),
        })
    }

    fn info(&self) -> SourceInfo {
        self.info.read().map(|i| i.clone()).unwrap_or_default()
    }
}

/// Removes labels equal (name and value) to an external label.
fn strip(labels: Labels, ext: &Labels) -> Labels {
    if ext.is_empty() || !labels.iter().any(|l| ext.get(&l.name) == Some(&l.value)) {
        return labels;
    }
    let v: Vec<Label> = labels
        .iter()
        .filter(|l| ext.get(&l.name) != Some(&l.value))
        .cloned()
        .collect();
    Labels::from_sorted(v)
}

fn proto_labels(ls: &[prompb::Label]) -> Labels {
    Labels::from_vec(
        ls.iter()
            .map(|l| Label::new(l.name.as_str(), l.value.as_str()))
            .collect(),
    )
}

/// Decoding state of a streamed answer.
struct Streamed {
    url: String,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: FrameDecoder,
    /// Decoded series parts not yet joined.
    ready: VecDeque<ChunkedSeries>,
    /// The series being joined: its wire labels, its labels and its chunks.
    current: Option<(Vec<prompb::Label>, Labels, Vec<ChunkMeta>)>,
    ext: Labels,
    skip: bool,
    ended: bool,
    failed: bool,
    /// The last series returned, to check the order.
    last: Option<Labels>,
    /// Whether the order warning was given.
    warned: bool,
    /// A warning to return next.
    warning: Option<String>,
}

impl Streamed {
    fn decode_err(&self, msg: impl std::fmt::Display) -> StorageError {
        StorageError::source(ReadClientError::Decode {
            url: self.url.clone(),
            msg: msg.to_string(),
        })
    }

    async fn step(mut self) -> Option<(StorageResult<Frame>, Self)> {
        if let Some(w) = self.warning.take() {
            return Some((Ok(Frame::Warning(w)), self));
        }
        if self.failed {
            return None;
        }
        match self.next_series().await {
            Ok(Some(s)) => {
                if let Some(prev) = &self.last {
                    if prev >= &s.labels && !self.warned {
                        self.warned = true;
                        self.warning = Some(format!(
                            "{}: series {:?} came after {:?}: external labels that sort \
                             among the series' own labels break the label order",
                            self.url, s.labels, prev
                        ));
                    }
                }
                self.last = Some(s.labels.clone());
                Some((Ok(Frame::Series(s)), self))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some((Err(e), self))
            }
        }
    }

    /// The next whole series: parts are joined until the labels change.
    async fn next_series(&mut self) -> StorageResult<Option<ChunkSeries>> {
        loop {
            let Some(part) = self.next_part().await? else {
                return Ok(self.current.take().map(|(_, l, c)| self.finish(l, c)));
            };
            let chunks = if self.skip {
                Vec::new()
            } else {
                part.chunks
                    .into_iter()
                    .map(|c| chunk_meta(c).map_err(|m| self.decode_err(m)))
                    .collect::<StorageResult<Vec<_>>>()?
            };
            match &mut self.current {
                Some((wire, _, cur)) if *wire == part.labels => cur.extend(chunks),
                _ => {
                    let labels = proto_labels(&part.labels);
                    let prev = self.current.replace((part.labels, labels, chunks));
                    if let Some((_, l, c)) = prev {
                        return Ok(Some(self.finish(l, c)));
                    }
                }
            }
        }
    }

    fn finish(&self, labels: Labels, chunks: Vec<ChunkMeta>) -> ChunkSeries {
        ChunkSeries {
            labels: strip(labels, &self.ext),
            data: SeriesData::Chunks(chunks),
        }
    }

    /// The next series part of the answer, reading the body as needed.
    async fn next_part(&mut self) -> StorageResult<Option<ChunkedSeries>> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Ok(Some(p));
            }
            let frame = self.decoder.next_frame().map_err(|e| self.decode_err(e))?;
            if let Some(ChunkedReadResponse { chunked_series, .. }) = frame {
                self.ready.extend(chunked_series);
                continue;
            }
            if self.ended {
                self.decoder.finish().map_err(|e| self.decode_err(e))?;
                return Ok(None);
            }
            match self.body.next().await {
                Some(Ok(b)) => self.decoder.push(&b),
                Some(Err(e)) => {
                    return Err(StorageError::Unavailable(format!(
                        "{}: reading the streamed answer: {e}",
                        self.url
                    )))
                }
                None => self.ended = true,
            }
        }
    }
}

/// A wire chunk as a [`ChunkMeta`], its bytes unchanged.
fn chunk_meta(c: prompb::Chunk) -> Result<ChunkMeta, String> {
    let enc = u8::try_from(c.r#type)
        .ok()
        .filter(|t| *t != 0)
        .and_then(|t| Encoding::from_u8(t).ok())
        .filter(|e| *e != Encoding::Aggr)
        .ok_or_else(|| format!("unknown chunk encoding {} in answer", c.r#type))?;
    if c.min_time_ms > c.max_time_ms {
        return Err(format!(
            "chunk with min time {} after max time {}",
            c.min_time_ms, c.max_time_ms
        ));
    }
    Ok(ChunkMeta {
        min_time: c.min_time_ms,
        max_time: c.max_time_ms,
        chunk: RawChunk::new(enc, c.data),
    })
}

type SamplesSeries = Vec<(Labels, Vec<(i64, f64)>)>;

/// Reads a SAMPLES answer (one snappy `ReadResponse`), sorted by labels.
async fn samples_answer(
    url: &str,
    resp: reqwest::Response,
    limit: usize,
) -> Result<SamplesSeries, ReadClientError> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(b) = stream.next().await {
        let b = b.map_err(|source| ReadClientError::Http {
            url: url.to_string(),
            source,
        })?;
        if body.len() + b.len() > limit {
            return Err(ReadClientError::Decode {
                url: url.to_string(),
                msg: format!("SAMPLES answer larger than {limit} bytes"),
            });
        }
        body.extend_from_slice(&b);
    }
    let dec = |msg: String| ReadClientError::Decode {
        url: url.to_string(),
        msg,
    };
    let raw = snappy_decode(&body, limit).map_err(|e| dec(e.to_string()))?;
    let rr = ReadResponse::decode(raw.as_slice()).map_err(|e| dec(e.to_string()))?;
    let mut out: SamplesSeries = rr
        .results
        .into_iter()
        .flat_map(|r| r.timeseries)
        .map(|ts| {
            let s = ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
            (proto_labels(&ts.labels), s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Encodes samples as XOR chunks of at most 120 samples.
fn encode_xor(samples: &[(i64, f64)]) -> Vec<ChunkMeta> {
    let mut out = Vec::new();
    for part in samples.chunks(strata_chunkenc::SAMPLES_PER_CHUNK) {
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        let mut app = XorChunk::new().appender();
        let mut ok = true;
        for (t, v) in part {
            ok &= app.append(*t, *v).is_ok();
        }
        if ok {
            out.push(ChunkMeta {
                min_time: first.0,
                max_time: last.0,
                chunk: RawChunk::from_xor(app.finish()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
