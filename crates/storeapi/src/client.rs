//! A StoreAPI client that is itself a [`Queryable`] (mirrors Thanos
//! `pkg/query/querier.go` + `pkg/store/proxy.go`'s per-endpoint client).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use strata_model::Labels;
use strata_proto::methods;
use strata_proto::thanos::{
    self as pb,
    info::{self as infopb, info_client::InfoClient},
    series_response,
    store_client::StoreClient,
};
use strata_storage::{
    ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, SelectRequest, SeriesData,
    SourceInfo, WithWarnings,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::convert;
use crate::error::{Error, Result};

/// How a [`Client`] connects and what it accepts.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time allowed to establish the TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Deadline of each call until its response starts (`None`: no deadline). A
    /// Series stream that has started is not cut by it.
    pub request_timeout: Option<Duration>,
    /// Largest response frame accepted, bytes (Thanos peers send large frames;
    /// the Thanos querier accepts up to `i32::MAX`).
    pub max_decoding_message_bytes: usize,
    /// HTTP/2 receive window per stream, bytes: how far a server may stream ahead.
    pub stream_window_bytes: u32,
    /// Series per frame asked of the server (`SeriesRequest.response_batch_size`;
    /// 0 or 1: one series per frame). Servers that do not know batching ignore it.
    pub response_batch_size: i64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            max_decoding_message_bytes: i32::MAX as usize,
            stream_window_bytes: 4 << 20,
            response_batch_size: 64,
        }
    }
}

/// What the endpoint announced in its last Info answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// External label sets and time range.
    pub source: SourceInfo,
    /// `ComponentType` (e.g. `sidecar`), or the legacy store type in lower case.
    pub component_type: String,
    /// Whether the endpoint serves the StoreAPI (the `store` field was present).
    pub serves_store_api: bool,
}

impl Default for EndpointInfo {
    fn default() -> Self {
        Self {
            source: SourceInfo::default(),
            component_type: String::new(),
            serves_store_api: true,
        }
    }
}

/// A StoreAPI endpoint as a [`Queryable`]. Cheap to clone (clones share the
/// connection and the last known info).
#[derive(Clone)]
pub struct Client {
    addr: Arc<str>,
    store: StoreClient<Channel>,
    info_client: InfoClient<Channel>,
    info: Arc<RwLock<EndpointInfo>>,
    batch: i64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

fn endpoint(addr: &str, opts: &ClientOptions) -> Result<Endpoint> {
    let bad = |msg: String| Error::Address {
        addr: addr.to_string(),
        msg,
    };
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let ep = Endpoint::from_shared(uri).map_err(|e| bad(e.to_string()))?;
    if ep.uri().port_u16().is_none() {
        return Err(bad("expected host:port".to_string()));
    }
    if ep.uri().scheme_str() != Some("http") {
        return Err(bad("only plain http is supported".to_string()));
    }
    let mut ep = ep
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(opts.stream_window_bytes)
        .initial_connection_window_size(opts.stream_window_bytes.saturating_mul(4));
    if let Some(t) = opts.request_timeout {
        ep = ep.timeout(t);
    }
    Ok(ep)
}

impl Client {
    /// Connects to `addr` (`host:port`, plain HTTP/2) with default options and reads
    /// its Info.
    pub async fn connect(addr: &str) -> Result<Client> {
        Self::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects to `addr` with `opts` and reads its Info; fails when the endpoint
    /// cannot be reached or does not answer Info.
    pub async fn connect_with(addr: &str, opts: ClientOptions) -> Result<Client> {
        let channel = endpoint(addr, &opts)?
            .connect()
            .await
            .map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let c = Self::from_channel(addr, channel, &opts);
        c.refresh_info().await?;
        Ok(c)
    }

    /// A client that connects on first use; its info stays empty until
    /// [`Client::refresh_info`] succeeds. For endpoints that may be down at startup.
    pub fn lazy(addr: &str, opts: ClientOptions) -> Result<Client> {
        let channel = endpoint(addr, &opts)?.connect_lazy();
        Ok(Self::from_channel(addr, channel, &opts))
    }

    fn from_channel(addr: &str, channel: Channel, opts: &ClientOptions) -> Client {
        Client {
            addr: addr.into(),
            store: StoreClient::new(channel.clone())
                .max_decoding_message_size(opts.max_decoding_message_bytes),
            info_client: InfoClient::new(channel)
                .max_decoding_message_size(opts.max_decoding_message_bytes),
            info: Arc::new(RwLock::new(EndpointInfo::default())),
            batch: opts.response_batch_size,
        }
    }

    /// The endpoint address as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The last Info answer.
    pub fn endpoint_info(&self) -> EndpointInfo {
        self.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the endpoint for its Info (`thanos.info.Info`, falling back to the legacy
    /// `thanos.Store/Info` of Thanos before v0.37), remembers and returns it.
    pub async fn refresh_info(&self) -> Result<EndpointInfo> {
        let got = match self.info_client.clone().info(infopb::InfoRequest {}).await {
            Ok(r) => info_from_pb(r.into_inner()),
            Err(s) if s.code() == Code::Unimplemented => self.legacy_info().await?,
            Err(s) => return Err(Error::rpc(methods::INFO, &self.addr, &s)),
        };
        *self.info.write().unwrap_or_else(|e| e.into_inner()) = got.clone();
        Ok(got)
    }

    async fn legacy_info(&self) -> Result<EndpointInfo> {
        let r = self
            .store
            .clone()
            .info(pb::InfoRequest {})
            .await
            .map_err(|s| Error::rpc(methods::STORE_INFO, &self.addr, &s))?
            .into_inner();
        let mut label_sets: Vec<Labels> = r
            .label_sets
            .into_iter()
            .map(|s| convert::labels_from_pb(s.labels))
            .collect();
        if label_sets.is_empty() && !r.labels.is_empty() {
            label_sets.push(convert::labels_from_pb(r.labels));
        }
        let component_type = pb::StoreType::try_from(r.store_type)
            .map(|t| t.as_str_name().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(EndpointInfo {
            source: SourceInfo {
                label_sets,
                min_time: r.min_time,
                max_time: r.max_time,
            },
            component_type,
            serves_store_api: true,
        })
    }

    fn rpc_err(&self, method: &'static str, s: Status) -> strata_storage::Error {
        Error::rpc(method, &self.addr, &s).into()
    }
}

fn info_from_pb(r: infopb::InfoResponse) -> EndpointInfo {
    let label_sets = r
        .label_sets
        .into_iter()
        .map(|s| convert::labels_from_pb(s.labels))
        .collect();
    let (min_time, max_time) = r
        .store
        .as_ref()
        .map_or((i64::MAX, i64::MIN), |s| (s.min_time, s.max_time));
    EndpointInfo {
        source: SourceInfo {
            label_sets,
            min_time,
            max_time,
        },
        component_type: r.component_type,
        serves_store_api: r.store.is_some(),
    }
}

fn partial_strategy(partial: bool) -> i32 {
    if partial {
        pb::PartialResponseStrategy::Warn as i32
    } else {
        pb::PartialResponseStrategy::Abort as i32
    }
}

#[async_trait]
impl Queryable for Client {
    async fn select(&self, req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        let r = pb::SeriesRequest {
            min_time: req.min_time,
            max_time: req.max_time,
            matchers: convert::matchers_to_pb(&req.matchers),
            max_resolution_window: req.max_resolution_ms,
            partial_response_disabled: !req.partial_response,
            partial_response_strategy: partial_strategy(req.partial_response),
            skip_chunks: req.skip_chunks,
            query_hints: convert::hints_to_pb(&req.hints),
            response_batch_size: self.batch,
            ..Default::default()
        };
        let stream = self
            .store
            .clone()
            .series(r)
            .await
            .map_err(|s| self.rpc_err(methods::SERIES, s))?
            .into_inner();
        Ok(Box::pin(Frames {
            inner: stream,
            addr: self.addr.clone(),
            pending: None,
            queued: VecDeque::new(),
            done: false,
            failed: None,
        }))
    }

    async fn label_names(
        &self,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let r = pb::LabelNamesRequest {
            start: req.min_time,
            end: req.max_time,
            matchers: convert::matchers_to_pb(&req.matchers),
            limit: i64::try_from(req.limit).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let got = self
            .store
            .clone()
            .label_names(r)
            .await
            .map_err(|s| self.rpc_err(methods::LABEL_NAMES, s))?
            .into_inner();
        Ok(WithWarnings {
            value: got.names,
            warnings: got.warnings,
        })
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let r = pb::LabelValuesRequest {
            label: name.to_string(),
            start: req.min_time,
            end: req.max_time,
            matchers: convert::matchers_to_pb(&req.matchers),
            limit: i64::try_from(req.limit).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let got = self
            .store
            .clone()
            .label_values(r)
            .await
            .map_err(|s| self.rpc_err(methods::LABEL_VALUES, s))?
            .into_inner();
        Ok(WithWarnings {
            value: got.values,
            warnings: got.warnings,
        })
    }

    /// The external labels and time range from the last Info answer.
    fn info(&self) -> SourceInfo {
        self.endpoint_info().source
    }
}

/// The Series response as [`Frame`]s. A series split over consecutive frames is
/// joined back into one (holding at most that one series); warnings pass at once.
/// An error ends the stream after the series received before it.
struct Frames {
    inner: Streaming<pb::SeriesResponse>,
    addr: Arc<str>,
    pending: Option<ChunkSeries>,
    queued: VecDeque<Frame>,
    done: bool,
    /// An error to yield after the series received before it.
    failed: Option<strata_storage::Error>,
}

impl Frames {
    fn push_series(&mut self, s: pb::Series) -> Result<(), String> {
        let labels = convert::labels_from_pb(s.labels);
        let mut chunks = Vec::with_capacity(s.chunks.len());
        for c in s.chunks {
            chunks.push(convert::chunk_from_pb(c)?);
        }
        if let Some(p) = &mut self.pending {
            if p.labels == labels {
                if let SeriesData::Chunks(have) = &mut p.data {
                    have.extend(chunks);
                }
                return Ok(());
            }
        }
        if let Some(p) = self.pending.take() {
            self.queued.push_back(Frame::Series(finish(p)));
        }
        self.pending = Some(ChunkSeries::from_chunks(labels, chunks));
        Ok(())
    }

    fn protocol_err(&self, msg: String) -> strata_storage::Error {
        Error::Protocol {
            what: "Series frame",
            addr: self.addr.to_string(),
            msg,
        }
        .into()
    }
}

/// Chunks in time order, as the storage contract promises (the StoreAPI leaves
/// their order free).
fn finish(mut s: ChunkSeries) -> ChunkSeries {
    if let SeriesData::Chunks(c) = &mut s.data {
        if !c.windows(2).all(|w| w[0].min_time <= w[1].min_time) {
            c.sort_by_key(|m| m.min_time);
        }
    }
    s
}

impl Stream for Frames {
    type Item = strata_storage::Result<Frame>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(f) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(f)));
            }
            if this.done {
                if let Some(s) = this.pending.take() {
                    return Poll::Ready(Some(Ok(Frame::Series(finish(s)))));
                }
                return Poll::Ready(this.failed.take().map(Err));
            }
            let msg = match this.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    continue;
                }
                Poll::Ready(Some(Err(s))) => {
                    this.done = true;
                    this.failed = Some(Error::rpc(methods::SERIES, &this.addr, &s).into());
                    continue;
                }
                Poll::Ready(Some(Ok(m))) => m,
            };
            let res = match msg.result {
                Some(series_response::Result::Series(s)) => this.push_series(s),
                Some(series_response::Result::Batch(b)) => {
                    b.series.into_iter().try_for_each(|s| this.push_series(s))
                }
                Some(series_response::Result::Warning(w)) => {
                    this.queued.push_back(Frame::Warning(w));
                    Ok(())
                }
                Some(series_response::Result::Hints(_)) | None => Ok(()),
            };
            if let Err(m) = res {
                this.done = true;
                this.failed = Some(this.protocol_err(m));
            }
        }
    }
}
