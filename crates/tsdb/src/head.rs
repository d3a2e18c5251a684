//! The in-memory head: series and their recent samples, rebuilt from the WAL
//! (mirrors `tsdb/head`). Today it is read-only (WAL replay for `tools tsdb dump`
//! and for taking over a Prometheus data directory); appending comes with the
//! collector.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use strata_model::{matches_all, Labels};
use strata_storage::{
    ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, SelectRequest, SourceInfo,
    WithWarnings,
};
use tracing::warn;

use crate::cut::ChunkCutter;
use crate::error::{Error, Result};
use crate::wal::{decode, Record, WalReader};
use crate::DEFAULT_BLOCK_DURATION_MS;

/// One head series: labels and chunks.
#[derive(Debug, Clone)]
struct HeadSeries {
    labels: Labels,
    samples: Vec<(i64, f64)>,
}

/// An immutable snapshot of the head, queryable like a block.
#[derive(Debug, Default)]
pub struct Head {
    /// Series sorted by labels, with their chunks.
    series: Vec<Arc<ChunkSeries>>,
    min_time: i64,
    max_time: i64,
    warnings: Vec<String>,
}

impl Head {
    /// Replays `<data_dir>/wal` (newest checkpoint, then later segments). Samples for
    /// unknown series refs, out-of-order samples and undecodable record types are
    /// skipped with a warning, like Prometheus' replay; corrupt segments are errors.
    pub fn replay(data_dir: &Path) -> Result<Self> {
        let wal = data_dir.join("wal");
        let mut r = WalReader::open(&wal)?;
        let mut by_ref: HashMap<u64, usize> = HashMap::new();
        let mut series: Vec<HeadSeries> = Vec::new();
        let mut tombstones: Vec<(u64, i64, i64)> = Vec::new();
        let (mut unknown, mut ooo, mut unsupported) = (0u64, 0u64, 0u64);
        while let Some(rec) = r.next_record()? {
            match decode(&rec).map_err(|m| Error::corrupt(&wal, 0, m))? {
                Record::Series(ss) => {
                    for s in ss {
                        by_ref.entry(s.series_ref).or_insert_with(|| {
                            series.push(HeadSeries {
                                labels: s.labels,
                                samples: Vec::new(),
                            });
                            series.len() - 1
                        });
                    }
                }
                Record::Samples(smps) => {
                    for s in smps {
                        let Some(&i) = by_ref.get(&s.series_ref) else {
                            unknown += 1;
                            continue;
                        };
                        let hs = &mut series[i];
                        if hs.samples.last().is_some_and(|l| l.0 >= s.t) {
                            ooo += 1;
                            continue;
                        }
                        hs.samples.push((s.t, s.v));
                    }
                }
                Record::Tombstones(ts) => {
                    for t in ts {
                        tombstones.push((t.series_ref, t.min_time, t.max_time));
                    }
                }
                Record::Skipped(_) => {}
                Record::Unsupported(_) => unsupported += 1,
            }
        }
        for (r, mint, maxt) in tombstones {
            if let Some(&i) = by_ref.get(&r) {
                series[i].samples.retain(|s| s.0 < mint || s.0 > maxt);
            }
        }
        let mut warnings = Vec::new();
        if unknown > 0 {
            warnings.push(format!(
                "WAL replay: {unknown} samples for unknown series skipped"
            ));
        }
        if ooo > 0 {
            warnings.push(format!("WAL replay: {ooo} out-of-order samples skipped"));
        }
        if unsupported > 0 {
            warnings.push(format!(
                "WAL replay: {unsupported} records of unsupported types (native histograms) skipped"
            ));
        }
        for w in &warnings {
            warn!(wal = %wal.display(), "{w}");
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            if s.samples.is_empty() {
                continue;
            }
            let mut c = ChunkCutter::new(DEFAULT_BLOCK_DURATION_MS);
            for (t, v) in &s.samples {
                c.append(*t, *v)?;
            }
            min_time = min_time.min(s.samples[0].0);
            max_time = max_time.max(s.samples[s.samples.len() - 1].0);
            out.push(Arc::new(ChunkSeries::from_chunks(s.labels, c.finish())));
        }
        Ok(Self {
            series: out,
            min_time,
            max_time,
            warnings,
        })
    }

    /// Number of series with samples.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Warnings from replay.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn matching<'a>(
        &'a self,
        mint: i64,
        maxt: i64,
        ms: &'a [strata_model::Matcher],
    ) -> impl Iterator<Item = &'a Arc<ChunkSeries>> + 'a {
        self.series.iter().filter(move |s| {
            matches_all(ms, |n| s.labels.get(n))
                && s.chunks()
                    .iter()
                    .any(|c| c.max_time >= mint && c.min_time <= maxt)
        })
    }
}

#[async_trait]
impl Queryable for Head {
    async fn select(&self, req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        let out: Vec<strata_storage::Result<Frame>> = self
            .matching(req.min_time, req.max_time, &req.matchers)
            .map(|s| {
                let mut s = (**s).clone();
                if req.skip_chunks {
                    s.data = strata_storage::SeriesData::Chunks(Vec::new());
                }
                Ok(Frame::Series(s))
            })
            .collect();
        Ok(stream::iter(out).boxed())
    }

    async fn label_names(
        &self,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let lists = self
            .matching(req.min_time, req.max_time, &req.matchers)
            .map(|s| s.labels.iter().map(|l| l.name.clone()).collect())
            .collect();
        Ok(WithWarnings::new(strata_storage::merge_sorted_strings(
            lists, req.limit,
        )))
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let vals = self
            .matching(req.min_time, req.max_time, &req.matchers)
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        Ok(WithWarnings::new(strata_storage::merge_sorted_strings(
            vec![vals],
            req.limit,
        )))
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            label_sets: Vec::new(),
            min_time: self.min_time,
            max_time: self.max_time,
        }
    }
}
