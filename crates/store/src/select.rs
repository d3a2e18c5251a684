//! Queries over the block set: block selection by time, external labels and
//! resolution (thanos `bucketBlockSet.getFor`), limits, and the streams of
//! series merged across blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use strata_model::{Labels, Matcher};
use strata_storage::merge::merge_streams;
use strata_storage::{
    merge_sorted_strings, ChunkMeta, ChunkSeries, ChunkSeriesStream, Error as StorageError, Frame,
    LabelRequest, Queryable, SelectRequest, SourceInfo, WithWarnings,
};
use tracing::warn;

use crate::block::{BucketBlock, Selected};
use crate::indexheader::IndexHeader;
use crate::metrics::Metrics;
use crate::options::SAMPLES_PER_CHUNK_ESTIMATE;
use crate::store::{BucketStore, Group, State};

/// Splits `matchers` against external labels `ext`: `None` when one
/// contradicts them (the block cannot match), else the matchers left for the
/// index (those on external labels are satisfied and dropped).
pub(crate) fn index_matchers(ext: &Labels, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
    let mut out = Vec::with_capacity(matchers.len());
    for m in matchers {
        match ext.get(&m.name) {
            Some(v) if !m.matches(v) => return None,
            Some(_) => {}
            None => out.push(m.clone()),
        }
    }
    Some(out)
}

/// Thanos' `getFor`: the blocks of resolution index `i` (and, for the gaps they
/// leave, of the next lower resolutions) overlapping `[mint, maxt]`.
fn get_for(g: &Group, mint: i64, maxt: i64, i: usize, out: &mut Vec<Arc<BucketBlock>>) {
    let Some(blocks) = g.blocks.get(i) else {
        return;
    };
    let lower = i + 1 < g.resolutions.len();
    let mut start = mint;
    for b in blocks {
        if b.max_time() <= mint {
            continue;
        }
        if b.min_time() > maxt {
            break;
        }
        if lower {
            get_for(g, start, b.min_time() - 1, i + 1, out);
        }
        out.push(b.clone());
        start = b.max_time();
    }
    if lower {
        get_for(g, start, maxt, i + 1, out);
    }
}

/// Counts series and estimated samples of one request against the limits.
struct Limiter<'a> {
    max_series: u64,
    max_samples: u64,
    series: AtomicU64,
    samples: AtomicU64,
    metrics: &'a Metrics,
}

impl Limiter<'_> {
    fn add(&self, series: u64, chunks: u64) -> Result<(), StorageError> {
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

/// Streams a block's selected series, fetching chunks `batch` series at a time.
/// A failure ends the block's stream with a warning naming it.
fn block_stream(
    b: Arc<BucketBlock>,
    series: Vec<Selected>,
    skip_chunks: bool,
    batch: usize,
    metrics: Metrics,
) -> ChunkSeriesStream {
    if skip_chunks {
        return stream::iter(series.into_iter().map(|s| {
            Ok(Frame::Series(ChunkSeries::from_chunks(
                s.labels,
                Vec::new(),
            )))
        }))
        .boxed();
    }
    let st = (b, VecDeque::from(series), false);
    stream::unfold(st, move |(b, mut rest, done)| {
        let metrics = metrics.clone();
        async move {
            if done || rest.is_empty() {
                return None;
            }
            let n = batch.max(1).min(rest.len());
            let part: Vec<Selected> = rest.drain(..n).collect();
            let refs: Vec<u64> = part.iter().flat_map(|s| s.chunks.iter().map(|c| c.chunk_ref)).collect();
            match b.fetch_chunks(&refs).await {
                Ok(chunks) => {
                    let mut it = chunks.into_iter();
                    let frames: Vec<_> = part
                        .into_iter()
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
                            Ok(Frame::Series(ChunkSeries::from_chunks(s.labels, cs)))
                        })
                        .collect();
                    Some((frames, (b, rest, false)))
                }
                Err(e) => {
                    warn!(block = %b.id, error = %e, "reading chunks failed; the block's remaining series are skipped");
                    metrics.warnings.inc();
                    Some((vec![Ok(Frame::Warning(e.to_string()))], (b, rest, true)))
                }
            }
        }
    })
    .flat_map(stream::iter)
    .boxed()
}

impl BucketStore {
    /// Warnings for blocks that could not be loaded and may hold data for the
    /// request.
    fn broken_warnings(st: &State, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<String> {
        st.broken
            .iter()
            .filter(|b| match &b.meta {
                None => true,
                Some(m) => {
                    let ext = Labels::from_pairs(
                        m.thanos.labels.iter().map(|(k, v)| (k.clone(), v.clone())),
                    );
                    m.block.min_time <= maxt
                        && mint < m.block.max_time
                        && index_matchers(&ext, matchers).is_some()
                }
            })
            .map(|b| format!("block {} not queried: {}", b.id, b.error))
            .collect()
    }

    /// Blocks serving a label request: all resolutions, overlapping the range,
    /// external labels not contradicting the matchers.
    fn label_blocks(st: &State, req: &LabelRequest) -> Vec<(Arc<BucketBlock>, Vec<Matcher>)> {
        st.blocks
            .iter()
            .filter(|b| b.overlaps(req.min_time, req.max_time))
            .filter_map(|b| index_matchers(&b.ext, &req.matchers).map(|ms| (b.clone(), ms)))
            .collect()
    }

    async fn label_query(
        &self,
        req: &LabelRequest,
        per_block: impl Fn(&BucketBlock, Option<&IndexHeader>, Option<&[Selected]>) -> Vec<String>
            + Sync,
        from_index: bool,
        name: Option<&str>,
    ) -> Result<WithWarnings<Vec<String>>, StorageError> {
        let _permit = self
            .sem
            .acquire()
            .await
            .map_err(|_| StorageError::Canceled)?;
        let st = self.snapshot();
        let mut warnings = Self::broken_warnings(&st, req.min_time, req.max_time, &req.matchers);
        let blocks = Self::label_blocks(&st, req);
        let results = stream::iter(blocks)
            .map(|(b, ms)| {
                let per_block = &per_block;
                async move {
                    let r: crate::Result<Vec<String>> = async {
                        let ext_only = name.is_some_and(|n| b.ext.get(n).is_some());
                        if ms.is_empty() && (from_index || ext_only) {
                            let h = if ext_only {
                                None
                            } else {
                                Some(b.header().await?)
                            };
                            return Ok(per_block(&b, h.as_deref(), None));
                        }
                        let ms = if ms.is_empty() {
                            vec![
                                Matcher::new(strata_model::MatchType::Regex, "__name__", ".+")
                                    .map_err(|e| crate::Error::Config(e.to_string()))?,
                            ]
                        } else {
                            ms
                        };
                        let (series, _) = b.select_series(&ms, req.min_time, req.max_time).await?;
                        Ok(per_block(&b, None, Some(&series)))
                    }
                    .await;
                    (b.id, r)
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let mut lists = Vec::new();
        for (id, r) in results {
            match r {
                Ok(v) => lists.push(v),
                Err(e) => {
                    warn!(block = %id, error = %e, "label query on block failed");
                    self.metrics.warnings.inc();
                    warnings.push(e.to_string());
                }
            }
        }
        Ok(WithWarnings {
            value: merge_sorted_strings(lists, req.limit),
            warnings,
        })
    }
}

#[async_trait]
impl Queryable for BucketStore {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream, StorageError> {
        let permit = self
            .sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Canceled)?;
        let st = self.snapshot();
        let (mint, maxt) = (req.min_time, req.max_time);
        let mut warnings = Self::broken_warnings(&st, mint, maxt, &req.matchers);
        let mut picked: Vec<(Arc<BucketBlock>, Vec<Matcher>)> = Vec::new();
        for g in &st.groups {
            let Some(ms) = index_matchers(&g.labels, &req.matchers) else {
                continue;
            };
            let Some(i) = g
                .resolutions
                .iter()
                .position(|&r| r <= req.max_resolution_ms.max(0))
            else {
                continue;
            };
            let mut bs = Vec::new();
            get_for(g, mint, maxt, i, &mut bs);
            picked.extend(bs.into_iter().map(|b| (b, ms.clone())));
        }
        self.metrics
            .series_blocks_queried
            .inc_by(picked.len() as u64);
        let results = stream::iter(picked)
            .map(|(b, ms)| async move {
                let r = b.select_series(&ms, mint, maxt).await;
                (b, r)
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let limiter = Limiter {
            max_series: self.opts.limits.max_series,
            max_samples: self.opts.limits.max_samples,
            series: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            metrics: &self.metrics,
        };
        let mut streams = Vec::new();
        for (b, r) in results {
            match r {
                Ok((series, w)) => {
                    let chunks: u64 = series.iter().map(|s| s.chunks.len() as u64).sum();
                    limiter.add(series.len() as u64, chunks)?;
                    warnings.extend(w);
                    streams.push(block_stream(
                        b,
                        series,
                        req.skip_chunks,
                        self.opts.series_batch_size,
                        self.metrics.clone(),
                    ));
                }
                Err(e) => {
                    warn!(block = %b.id, error = %e, "selecting series from block failed; other blocks keep serving");
                    warnings.push(e.to_string());
                }
            }
        }
        self.metrics.warnings.inc_by(warnings.len() as u64);
        let head = stream::iter(warnings.into_iter().map(|w| Ok(Frame::Warning(w))));
        Ok(head
            .chain(merge_streams(streams))
            .map(move |f| {
                let _held = &permit;
                f
            })
            .boxed())
    }

    async fn label_names(
        &self,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>, StorageError> {
        self.label_query(
            req,
            |b, h, series| {
                let mut names: Vec<String> = match series {
                    None => h.map(IndexHeader::label_names).unwrap_or_default(),
                    Some(ss) => ss
                        .iter()
                        .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
                        .collect(),
                };
                names.extend(b.ext.iter().map(|l| l.name.clone()));
                names.sort();
                names.dedup();
                names
            },
            true,
            None,
        )
        .await
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>, StorageError> {
        self.label_query(
            req,
            |b, h, series| {
                if let Some(v) = b.ext.get(name) {
                    return match series {
                        Some([]) => Vec::new(),
                        _ => vec![v.to_string()],
                    };
                }
                let mut vals: Vec<String> = match series {
                    None => h
                        .map(|h| {
                            h.label_values(name)
                                .into_iter()
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    Some(ss) => ss
                        .iter()
                        .filter_map(|s| s.labels.get(name).map(str::to_string))
                        .collect(),
                };
                vals.sort();
                vals.dedup();
                vals
            },
            true,
            Some(name),
        )
        .await
    }

    fn info(&self) -> SourceInfo {
        self.source_info()
    }
}
