//! The StoreAPI server over any [`Queryable`] (mirrors Thanos `pkg/store` servers:
//! `tsdb.go`, `bucket.go` and `proxy.go` all implement `storepb.StoreServer`).

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use strata_model::Matcher;
use strata_proto::thanos::{
    self as pb,
    info::{self as infopb, info_server::InfoServer},
    series_response,
    store_server::StoreServer,
};
use strata_storage::{
    ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, SelectRequest, SeriesData,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::{status_of, Error, Result};

/// Largest request a server decodes (requests are small; this bounds abuse).
const MAX_REQUEST_BYTES: usize = 64 << 20;

/// Most series per `SeriesBatch` frame, whatever the client asks for.
const MAX_BATCH: usize = 256;

/// Which Thanos component a server presents itself as (`thanos.info` `ComponentType`;
/// `/api/v1/stores` of a querier groups endpoints by it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ComponentType {
    /// `sidecar`: next to a Prometheus.
    Sidecar,
    /// `store`: the bucket gateway.
    #[default]
    Store,
    /// `query`: a querier serving the StoreAPI over its own endpoints.
    Query,
    /// `receive`: remote-write receiver.
    Receive,
    /// `rule`: the ruler.
    Rule,
    /// `debug`: tools serving a StoreAPI for inspection.
    Debug,
}

impl ComponentType {
    /// The component name as Thanos writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentType::Sidecar => "sidecar",
            ComponentType::Store => "store",
            ComponentType::Query => "query",
            ComponentType::Receive => "receive",
            ComponentType::Rule => "rule",
            ComponentType::Debug => "debug",
        }
    }

    fn store_type(self) -> pb::StoreType {
        match self {
            ComponentType::Sidecar => pb::StoreType::Sidecar,
            ComponentType::Store => pb::StoreType::Store,
            ComponentType::Query => pb::StoreType::Query,
            ComponentType::Receive => pb::StoreType::Receive,
            ComponentType::Rule => pb::StoreType::Rule,
            ComponentType::Debug => pb::StoreType::Debug,
        }
    }
}

/// How a StoreAPI server presents itself and what it refuses.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The component type announced by the Info rpc.
    pub component: ComponentType,
    /// Most series one Series call may return before failing with
    /// `ResourceExhausted` (0: no limit; Thanos `--store.limits.request-series`).
    pub max_series_per_request: usize,
    /// Most samples (as announced by chunk headers) one Series call may return
    /// before failing with `ResourceExhausted` (0: no limit; Thanos
    /// `--store.limits.request-samples`).
    pub max_samples_per_request: usize,
    /// Frames encoded ahead of the client per Series call. The server never holds
    /// more than this many frames (each one series, or one batch of at most 256
    /// when the client asks for batches) beyond what HTTP/2 flow control lets
    /// through.
    pub series_buffer: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new(ComponentType::default())
    }
}

impl ServerOptions {
    /// Options for `component` without limits.
    pub fn new(component: ComponentType) -> Self {
        Self {
            component,
            max_series_per_request: 0,
            max_samples_per_request: 0,
            series_buffer: 16,
        }
    }
}

#[derive(Debug)]
struct Shared {
    source: Arc<dyn Queryable>,
    opts: ServerOptions,
}

/// The `thanos.Store` service.
#[derive(Debug, Clone)]
struct StoreService(Arc<Shared>);

/// The `thanos.info.Info` service.
#[derive(Debug, Clone)]
struct InfoService(Arc<Shared>);

/// The StoreAPI (`thanos.Store`) and Info (`thanos.info.Info`) services over `source`,
/// to mount next to a component's own services (`Routes::add_service`) or serve with
/// `tonic::transport::Server::builder().add_routes(..)`.
pub fn services(source: Arc<dyn Queryable>, opts: ServerOptions) -> Routes {
    let shared = Arc::new(Shared { source, opts });
    Routes::new(
        StoreServer::new(StoreService(shared.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(InfoServer::new(InfoService(shared)).max_decoding_message_size(MAX_REQUEST_BYTES))
}

/// Serves [`services`] on `listener` (plain HTTP/2) until `shutdown` completes, then
/// stops accepting and drains the open calls.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn Queryable>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_routes(services(source, opts))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(Error::Serve)
}

/// Maps a wire time range; `None` when it selects nothing (min > max), so absurd
/// ranges cost nothing.
fn range(min: i64, max: i64) -> Option<(i64, i64)> {
    (min <= max).then_some((min, max))
}

/// A label call's range: old clients send neither bound (both 0), meaning all time.
fn label_range(start: i64, end: i64) -> Option<(i64, i64)> {
    if start == 0 && end == 0 {
        return Some((i64::MIN, i64::MAX));
    }
    range(start, end)
}

fn partial_response(disabled: bool, strategy: i32) -> bool {
    !disabled && strategy == pb::PartialResponseStrategy::Warn as i32
}

fn label_request(
    (min_time, max_time): (i64, i64),
    matchers: Vec<Matcher>,
    limit: i64,
) -> LabelRequest {
    LabelRequest {
        min_time,
        max_time,
        matchers,
        limit: usize::try_from(limit).unwrap_or(0),
    }
}

fn empty_stream() -> ReceiverStream<Result<pb::SeriesResponse, Status>> {
    let (_, rx) = mpsc::channel(1);
    ReceiverStream::new(rx)
}

#[tonic::async_trait]
impl pb::store_server::Store for StoreService {
    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let info = self.0.source.info();
        let label_sets: Vec<pb::LabelSet> = info
            .label_sets
            .iter()
            .map(|l| pb::LabelSet {
                labels: convert::labels_to_pb(l),
            })
            .collect();
        Ok(Response::new(pb::InfoResponse {
            labels: label_sets
                .first()
                .map(|s| s.labels.clone())
                .unwrap_or_default(),
            min_time: info.min_time,
            max_time: info.max_time,
            store_type: self.0.opts.component.store_type() as i32,
            label_sets,
        }))
    }

    type SeriesStream = ReceiverStream<Result<pb::SeriesResponse, Status>>;

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let r = request.into_inner();
        let matchers = convert::matchers_from_pb(&r.matchers)?;
        let Some((min_time, max_time)) = range(r.min_time, r.max_time) else {
            return Ok(Response::new(empty_stream()));
        };
        let req = SelectRequest {
            min_time,
            max_time,
            matchers,
            hints: convert::hints_from_pb(&r),
            skip_chunks: r.skip_chunks,
            max_resolution_ms: r.max_resolution_window.max(0),
            partial_response: partial_response(
                r.partial_response_disabled,
                r.partial_response_strategy,
            ),
        };
        let stream = self
            .0
            .source
            .select(&req)
            .await
            .map_err(|e| status_of(&e))?;
        let (tx, rx) = mpsc::channel(self.0.opts.series_buffer.max(1));
        let limits = Limits {
            max_series: self.0.opts.max_series_per_request,
            max_samples: self.0.opts.max_samples_per_request,
            request_limit: usize::try_from(r.limit).unwrap_or(0),
            skip_chunks: r.skip_chunks,
        };
        // Batches only when asked (older peers do not know `SeriesBatch`).
        let batch_size = usize::try_from(r.response_batch_size)
            .unwrap_or(0)
            .min(MAX_BATCH);
        tokio::spawn(pump(stream, tx, limits, batch_size));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let r = request.into_inner();
        let matchers = convert::matchers_from_pb(&r.matchers)?;
        let Some(rng) = label_range(r.start, r.end) else {
            return Ok(Response::new(pb::LabelNamesResponse::default()));
        };
        let got = self
            .0
            .source
            .label_names(&label_request(rng, matchers, r.limit))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::LabelNamesResponse {
            names: got.value,
            warnings: got.warnings,
            hints: None,
        }))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let r = request.into_inner();
        if r.label.is_empty() {
            return Err(Status::invalid_argument("label values: empty label name"));
        }
        let matchers = convert::matchers_from_pb(&r.matchers)?;
        let Some(rng) = label_range(r.start, r.end) else {
            return Ok(Response::new(pb::LabelValuesResponse::default()));
        };
        let got = self
            .0
            .source
            .label_values(&r.label, &label_request(rng, matchers, r.limit))
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::LabelValuesResponse {
            values: got.value,
            warnings: got.warnings,
            hints: None,
        }))
    }
}

#[tonic::async_trait]
impl infopb::info_server::Info for InfoService {
    async fn info(
        &self,
        _request: Request<infopb::InfoRequest>,
    ) -> Result<Response<infopb::InfoResponse>, Status> {
        let info = self.0.source.info();
        let sets: Vec<pb::ZLabelSet> = info
            .label_sets
            .iter()
            .map(|l| pb::ZLabelSet {
                labels: convert::labels_to_pb(l),
            })
            .collect();
        let tsdb_infos = sets
            .iter()
            .map(|s| infopb::TsdbInfo {
                labels: Some(s.clone()),
                min_time: info.min_time,
                max_time: info.max_time,
            })
            .collect();
        Ok(Response::new(infopb::InfoResponse {
            label_sets: sets,
            component_type: self.0.opts.component.as_str().to_string(),
            store: Some(infopb::StoreInfo {
                min_time: info.min_time,
                max_time: info.max_time,
                supports_sharding: false,
                supports_without_replica_labels: false,
                tsdb_infos,
                supports_projections: false,
            }),
            ..Default::default()
        }))
    }
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    max_series: usize,
    max_samples: usize,
    request_limit: usize,
    skip_chunks: bool,
}

type Tx = mpsc::Sender<Result<pb::SeriesResponse, Status>>;

/// Sends one frame; false when the client is gone.
async fn send(tx: &Tx, r: Result<series_response::Result, Status>) -> bool {
    tx.send(r.map(|r| pb::SeriesResponse { result: Some(r) }))
        .await
        .is_ok()
}

/// Sends the batched series, if any; false when the client is gone.
async fn flush(tx: &Tx, batch: &mut Vec<pb::Series>) -> bool {
    if batch.is_empty() {
        return true;
    }
    let series = std::mem::take(batch);
    send(
        tx,
        Ok(series_response::Result::Batch(pb::SeriesBatch { series })),
    )
    .await
}

/// Moves frames from the source to the bounded channel. Stops when the client goes
/// away (the receiver is dropped), after an error, or at the request's series limit.
/// With `batch_size > 1` (the client asked for `SeriesResponse.batch`), series that
/// the source has ready are grouped, up to `batch_size`; a batch is never held back
/// waiting for the source.
async fn pump(mut stream: ChunkSeriesStream, tx: Tx, limits: Limits, batch_size: usize) {
    let (mut series, mut samples) = (0usize, 0usize);
    let mut batch: Vec<pb::Series> = Vec::new();
    loop {
        let item = if batch.is_empty() {
            tokio::select! {
                biased;
                _ = tx.closed() => return,
                item = stream.next() => item,
            }
        } else {
            match stream.next().now_or_never() {
                Some(item) => item,
                None => {
                    if !flush(&tx, &mut batch).await {
                        return;
                    }
                    continue;
                }
            }
        };
        let frame = match item {
            None => {
                flush(&tx, &mut batch).await;
                return;
            }
            Some(Err(e)) => Err(status_of(&e)),
            Some(Ok(Frame::Warning(w))) => Ok(series_response::Result::Warning(w)),
            Some(Ok(Frame::Series(s))) => {
                series += 1;
                if limits.request_limit > 0 && series > limits.request_limit {
                    flush(&tx, &mut batch).await;
                    return;
                }
                let one = if limits.max_series > 0 && series > limits.max_series {
                    Err(Status::resource_exhausted(format!(
                        "exceeded series limit: limit {} violated (got {series})",
                        limits.max_series
                    )))
                } else {
                    series_frame(&s, limits, &mut samples)
                };
                match one {
                    Ok(one) if batch_size > 1 => {
                        batch.push(one);
                        if batch.len() >= batch_size && !flush(&tx, &mut batch).await {
                            return;
                        }
                        continue;
                    }
                    Ok(one) => Ok(series_response::Result::Series(one)),
                    Err(e) => Err(e),
                }
            }
        };
        let failed = frame.is_err();
        if !flush(&tx, &mut batch).await || !send(&tx, frame).await || failed {
            return;
        }
    }
}

fn series_frame(
    s: &ChunkSeries,
    limits: Limits,
    samples: &mut usize,
) -> Result<pb::Series, Status> {
    let chunks = if limits.skip_chunks {
        Vec::new()
    } else {
        match &s.data {
            SeriesData::Chunks(c) => {
                *samples += c
                    .iter()
                    .map(|c| c.chunk.num_samples().unwrap_or(0))
                    .sum::<usize>();
                c.iter()
                    .map(convert::chunk_to_pb)
                    .collect::<Result<Vec<_>, _>>()?
            }
            SeriesData::Samples(v) => {
                *samples += v.len();
                convert::samples_to_pb(v)?
            }
        }
    };
    if limits.max_samples > 0 && *samples > limits.max_samples {
        return Err(Status::resource_exhausted(format!(
            "exceeded samples limit: limit {} violated (got {samples})",
            limits.max_samples
        )));
    }
    Ok(pb::Series {
        labels: convert::labels_to_pb(&s.labels),
        chunks,
    })
}
