//! Queries over the block set: block selection by time, external labels and
//! resolution (thanos `bucketBlockSet.getFor`), limits, and the streams of
//! series merged across blocks.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use strata_model::{Labels, Matcher};
use strata_storage::merge::merge_streams;
use strata_storage::{
    merge_sorted_strings, ChunkSeriesStream, Error as StorageError, Frame, LabelRequest, Queryable,
    SelectRequest, SourceInfo, WithWarnings,
};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::block::{BucketBlock, Selected};
use crate::indexheader::IndexHeader;
use crate::lazy::{BlockSeries, Limiter, Query};
use crate::store::{BucketStore, Group, State};

/// Blocks read at once by one request (opening them, then loading batches).
const BLOCK_CONCURRENCY: usize = 8;

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
    // An empty gap (overlapping blocks of one resolution) needs no lower
    // resolution; without this a long lower-resolution block spanning it would
    // be read into the range the higher resolution covers (Thanos returns nil).
    if mint > maxt {
        return;
    }
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
        let q = Query {
            mint,
            maxt,
            skip_chunks: req.skip_chunks,
            batch: self.opts.series_batch_size.max(1),
            limiter: Arc::new(Limiter {
                max_series: self.opts.limits.max_series,
                max_samples: self.opts.limits.max_samples,
                series: AtomicU64::new(0),
                samples: AtomicU64::new(0),
                metrics: self.metrics.clone(),
            }),
            loads: Arc::new(Semaphore::new(BLOCK_CONCURRENCY)),
        };
        // Each block's postings and first batch are read here, so that limits
        // hit early fail the request itself; later batches are read as the
        // merge consumes the blocks' streams.
        let opened = stream::iter(picked)
            .map(|(b, ms)| {
                let q = q.clone();
                async move {
                    let r = match BlockSeries::open(b.clone(), &ms, q).await {
                        Ok(mut bs) => match bs.step().await {
                            Ok(first) => Ok(Ok((bs, first))),
                            Err(e) => Err(e),
                        },
                        Err(e) => Ok(Err(e)),
                    };
                    (b, r)
                }
            })
            .buffer_unordered(BLOCK_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut streams = Vec::with_capacity(opened.len());
        for (b, r) in opened {
            match r? {
                Ok((bs, first)) => streams.push(bs.stream(first)),
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
