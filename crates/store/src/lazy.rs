//! A block's matching series, read lazily in batches (thanos
//! `blockSeriesClient` with `--debug.series-batch-size`, streamed like its
//! `lazyRespSet`).
//!
//! A select expands each block's postings once (4 bytes per matching series),
//! then reads series entries and chunks `batch` postings at a time. A task per
//! block produces that block's series into a small bounded channel and loads
//! its next batch while the consumer drains the channel, so a request holds
//! about one batch per block (plus [`PREFETCH_FRAMES`] series) instead of every
//! block's series at once; the k-way merge over the blocks' streams keeps the
//! output sorted by labels.
//!
//! Series entries are stored sorted by their labels, so postings order is label
//! order. External labels can change that order in two ways, handled here:
//! - a series whose labels are a proper prefix of the next one's (`{a="1"}`
//!   then `{a="1",b="2"}`) sorts after some of its extensions once an external
//!   label sorting after the extra names is added. Extensions of a series
//!   follow it contiguously, so such a run is held back and sorted as a whole.
//! - an external label that series also carry overrides their values, which can
//!   reorder anything: such a block is read whole and sorted (as before).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::StreamExt;
use strata_model::{Label, Labels, Matcher};
use strata_storage::{ChunkMeta, ChunkSeries, ChunkSeriesStream, Error as StorageError, Frame};
use tokio::sync::{mpsc, Semaphore};
use tracing::warn;

use crate::block::{BucketBlock, Selected};
use crate::indexheader::IndexHeader;
use crate::metrics::Metrics;
use crate::options::SAMPLES_PER_CHUNK_ESTIMATE;

/// Series a block's task may have produced ahead of the merge (Thanos'
/// `lazyRetrievalMaxBufferedResponses` is 20).
pub(crate) const PREFETCH_FRAMES: usize = 32;
/// Most series whose chunks are read together: a batch of postings larger
/// than this has its series' chunks read in parts as the merge advances, so
/// the default batch (10000) holds chunks of at most this many series.
pub(crate) const CHUNK_BATCH: usize = 1000;

/// Counts series and estimated samples of one request against the limits,
/// batch by batch.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub max_series: u64,
    pub max_samples: u64,
    pub series: AtomicU64,
    pub samples: AtomicU64,
    pub metrics: Metrics,
}

impl Limiter {
    /// Adds `series` series with `chunks` chunks; fails past a limit.
    pub(crate) fn add(&self, series: u64, chunks: u64) -> Result<(), StorageError> {
        let s = self.series.fetch_add(series, Ordering::Relaxed) + series;
        if self.max_series > 0 && s > self.max_series {
            self.metrics.dropped("series");
            return Err(StorageError::Limit(format!(
                "exceeded series limit: the query selects more than {} series (--store.limits.request-series={})",
                self.max_series, self.max_series
            )));
        }
        let n = chunks.saturating_mul(SAMPLES_PER_CHUNK_ESTIMATE);
        let t = self.samples.fetch_add(n, Ordering::Relaxed) + n;
        if self.max_samples > 0 && t > self.max_samples {
            self.metrics.dropped("samples");
            return Err(StorageError::Limit(format!(
                "exceeded samples limit: the query touches more than {} samples, estimated as {SAMPLES_PER_CHUNK_ESTIMATE} per chunk (--store.limits.request-samples={})",
                self.max_samples, self.max_samples
            )));
        }
        Ok(())
    }
}

/// How a block's postings order relates to the order of its output labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// No external labels: postings order is label order.
    Index,
    /// External labels not among the series' label names: only runs of
    /// series extending a series can reorder.
    Runs,
    /// An external label name is also a series label name: sort the whole block.
    Full,
}

/// What one step of a block's stream produced.
#[derive(Debug)]
pub(crate) enum Step {
    /// The next series, sorted, after all earlier ones.
    Series(Vec<ChunkSeries>),
    /// A problem with the block; the stream ends after it.
    Warning(String),
    /// No more series.
    End,
}

/// What the request asks of every block.
#[derive(Clone, Debug)]
pub(crate) struct Query {
    pub mint: i64,
    pub maxt: i64,
    pub skip_chunks: bool,
    /// Postings read per batch (at least 1).
    pub batch: usize,
    pub limiter: Arc<Limiter>,
    /// Batch loads in flight across the request's blocks.
    pub loads: Arc<Semaphore>,
}

/// One block's matching series, read `batch` postings at a time.
#[derive(Debug)]
pub(crate) struct BlockSeries {
    block: Arc<BucketBlock>,
    header: Arc<IndexHeader>,
    q: Query,
    /// Matching series refs, in index (label) order.
    refs: Vec<u32>,
    /// The next ref to read.
    next: usize,
    order: Order,
    /// Series held back: a run whose order is not settled yet (or, with
    /// [`Order::Full`], everything).
    pending: Vec<Selected>,
    /// Stored labels of the first series of the pending run.
    root: Option<Labels>,
    /// Series decoded and in order, whose chunks are not read yet.
    ready: std::collections::VecDeque<Selected>,
    /// Labels of the last series produced, to check the order.
    last: Option<Labels>,
    /// Chunks outside meta.json's time range, reported at the end.
    outside: usize,
    unsorted_warned: bool,
    finished: bool,
}

/// Whether `a` (stored labels) is a proper prefix of `b`.
fn is_proper_prefix(a: &[Label], b: &[Label]) -> bool {
    a.len() < b.len() && b.get(..a.len()).is_some_and(|p| p == a)
}

impl BlockSeries {
    /// Loads the block's index-header and expands the postings of `matchers`
    /// (external-label matchers already removed). Nothing else is read yet.
    pub(crate) async fn open(
        block: Arc<BucketBlock>,
        matchers: &[Matcher],
        q: Query,
    ) -> crate::Result<Self> {
        let header = block.header().await?;
        let refs = block.postings_for(&header, matchers).await?;
        let order = if block.ext.is_empty() {
            Order::Index
        } else if block
            .ext
            .iter()
            .any(|l| !header.entries_of(&l.name).is_empty())
        {
            Order::Full
        } else {
            Order::Runs
        };
        Ok(Self {
            block,
            header,
            q,
            refs,
            next: 0,
            order,
            pending: Vec::new(),
            ready: Default::default(),
            root: None,
            last: None,
            outside: 0,
            unsorted_warned: false,
            finished: false,
        })
    }

    /// Decodes series until some are ready to go out (or the refs run out),
    /// counting each decoded batch against the limits.
    async fn next_selected(&mut self) -> Result<Vec<Selected>, Loaded> {
        let batch = self.q.batch.max(1);
        loop {
            if self.next >= self.refs.len() {
                let mut rest = std::mem::take(&mut self.pending);
                rest.sort_by(|a, b| a.labels.cmp(&b.labels));
                self.root = None;
                return Ok(rest);
            }
            let end = self.next.saturating_add(batch).min(self.refs.len());
            let part = self.refs.get(self.next..end).unwrap_or_default().to_vec();
            self.next = end;
            let entries = {
                let _load = self.q.loads.acquire().await;
                self.block
                    .fetch_series(&self.header, &part)
                    .await
                    .map_err(Loaded::Block)?
            };
            let mut ready = Vec::new();
            let (mut series, mut chunks_total) = (0u64, 0u64);
            for (&r, b) in part.iter().zip(entries) {
                let range = (self.q.mint, self.q.maxt);
                let (stored, chunks) = self
                    .block
                    .decode_entry(&self.header, r, &b, range, &mut self.outside)
                    .map_err(Loaded::Block)?;
                if chunks.is_empty() {
                    continue;
                }
                series += 1;
                chunks_total += chunks.len() as u64;
                if self.order == Order::Runs {
                    let extends = self
                        .root
                        .as_ref()
                        .is_some_and(|root| is_proper_prefix(root.as_slice(), stored.as_slice()));
                    if !extends {
                        let mut run = std::mem::take(&mut self.pending);
                        run.sort_by(|a, b| a.labels.cmp(&b.labels));
                        ready.append(&mut run);
                        self.root = Some(stored.clone());
                    }
                }
                let s = Selected {
                    labels: self.block.with_ext(stored),
                    chunks,
                };
                match self.order {
                    Order::Index => ready.push(s),
                    Order::Runs | Order::Full => self.pending.push(s),
                }
            }
            self.q
                .limiter
                .add(series, chunks_total)
                .map_err(Loaded::Limit)?;
            if !ready.is_empty() {
                return Ok(ready);
            }
        }
    }

    /// The next series of the block. Block errors end the stream with a
    /// warning; only limits fail the request.
    pub(crate) async fn step(&mut self) -> Result<Step, StorageError> {
        if self.finished {
            return Ok(Step::End);
        }
        match self.load().await {
            Ok(Some(v)) => Ok(Step::Series(v)),
            Ok(None) => {
                self.finished = true;
                if self.outside > 0 {
                    return Ok(Step::Warning(self.block.outside_warning(self.outside)));
                }
                Ok(Step::End)
            }
            Err(Loaded::Limit(e)) => {
                self.finished = true;
                Err(e)
            }
            Err(Loaded::Block(e)) => {
                self.finished = true;
                warn!(block = %self.block.id, error = %e, "reading series failed; the block's remaining series are skipped");
                Ok(Step::Warning(e.to_string()))
            }
        }
    }

    async fn load(&mut self) -> Result<Option<Vec<ChunkSeries>>, Loaded> {
        if self.ready.is_empty() {
            let mut sel = self.next_selected().await?;
            if sel.is_empty() {
                return Ok(None);
            }
            if !sel.windows(2).all(|w| w[0].labels <= w[1].labels) {
                sel.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            if let (Some(last), Some(first)) = (&self.last, sel.first()) {
                if first.labels < *last && !self.unsorted_warned {
                    self.unsorted_warned = true;
                    warn!(block = %self.block.id, "series of the block's index are not sorted by labels; merged results may repeat label sets");
                }
            }
            self.last = sel.last().map(|s| s.labels.clone());
            self.ready = sel.into();
        }
        let n = if self.q.skip_chunks {
            self.ready.len()
        } else {
            CHUNK_BATCH.min(self.ready.len())
        };
        let sel: Vec<Selected> = self.ready.drain(..n).collect();
        if self.q.skip_chunks {
            return Ok(Some(
                sel.into_iter()
                    .map(|s| ChunkSeries::from_chunks(s.labels, Vec::new()))
                    .collect(),
            ));
        }
        let refs: Vec<u64> = sel
            .iter()
            .flat_map(|s| s.chunks.iter().map(|c| c.chunk_ref))
            .collect();
        let raw = {
            let _load = self.q.loads.acquire().await;
            self.block
                .fetch_chunks(&refs)
                .await
                .map_err(Loaded::Block)?
        };
        let mut it = raw.into_iter();
        Ok(Some(
            sel.into_iter()
                .map(|s| {
                    let cs = s
                        .chunks
                        .iter()
                        .zip(it.by_ref())
                        .map(|(c, chunk)| ChunkMeta {
                            min_time: c.min_time,
                            max_time: c.max_time,
                            chunk,
                        })
                        .collect();
                    ChunkSeries::from_chunks(s.labels, cs)
                })
                .collect(),
        ))
    }

    /// Streams the block's series: `first` (already loaded by the caller),
    /// then the rest, produced by a task that stays at most
    /// [`PREFETCH_FRAMES`] series ahead of the consumer and stops when the
    /// stream is dropped.
    pub(crate) fn stream(mut self, first: Step) -> ChunkSeriesStream {
        let (tx, rx) = mpsc::channel(PREFETCH_FRAMES);
        let metrics = self.q.limiter.metrics.clone();
        tokio::spawn(async move {
            let mut step = Ok(first);
            loop {
                match step {
                    Ok(Step::Series(v)) => {
                        for s in v {
                            if tx.send(Ok(Frame::Series(s))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(Step::Warning(w)) => {
                        metrics.warnings.inc();
                        if tx.send(Ok(Frame::Warning(w))).await.is_err() {
                            return;
                        }
                    }
                    Ok(Step::End) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                step = self.step().await;
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) })
            .boxed()
    }
}

/// Why loading a batch failed.
enum Loaded {
    Limit(StorageError),
    Block(crate::Error),
}
