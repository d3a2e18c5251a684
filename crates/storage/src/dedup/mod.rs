//! Replica deduplication (Thanos `pkg/dedup`, the querier's `--query.replica-label`).
//!
//! [`Dedup`] wraps a [`Queryable`] whose series come from several replicas (HA
//! Prometheus pairs) that differ only in replica labels. It removes those labels,
//! groups the series that become equal, and merges each group of several into one
//! series of samples with [`merge_replicas`]; a group of one passes through with its
//! chunks untouched.
//!
//! Memory: the select stream buffers, as encoded chunks, the series that share one
//! first label (usually one metric name; see `regroup.rs` for why that is the
//! tightest bound), and decodes one group at a time: O(samples of the group) for the
//! decoded replicas and the output. Time: O(n · r) per group of r replicas and n
//! samples, plus O(log g) per series for the g buffered groups.

mod penalty;
mod regroup;
mod replicas;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use strata_chunkenc::Encoding;
use strata_model::Labels;

pub use penalty::{penalty_merge, penalty_merge_pair};
pub use replicas::merge_replicas;

use crate::merge::merge_series;
use crate::{
    AggrView, ChunkSeries, ChunkSeriesStream, LabelRequest, Queryable, Result, SelectRequest,
    SeriesData, SourceInfo, WithWarnings,
};

/// How groups of replicas are merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// [`merge_replicas`]: gap filling by scrape interval, stale-aware, and counter
    /// switches without fake resets or double counting.
    #[default]
    Strata,
    /// Thanos' penalty algorithm ([`penalty_merge`]), with its counter adjustment
    /// when the select hints name `rate`, `increase`, `irate` or `resets`.
    Penalty,
}

/// A [`Queryable`] that deduplicates series differing only in replica labels.
#[derive(Debug, Clone)]
pub struct Dedup {
    inner: Arc<dyn Queryable>,
    replica_labels: Arc<[String]>,
    algorithm: Algorithm,
}

impl Dedup {
    /// Deduplicates `inner` by the label names `replica_labels` (e.g.
    /// `["prometheus_replica"]`), with [`Algorithm::Strata`].
    pub fn new(inner: Arc<dyn Queryable>, replica_labels: Vec<String>) -> Self {
        Self {
            inner,
            replica_labels: replica_labels.into(),
            algorithm: Algorithm::default(),
        }
    }

    /// The same with another merge algorithm.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The replica label names.
    pub fn replica_labels(&self) -> &[String] {
        &self.replica_labels
    }

    fn is_replica(&self, name: &str) -> bool {
        self.replica_labels.iter().any(|r| r == name)
    }
}

/// Whether Thanos treats the surrounding function as reading a counter.
fn is_counter_func(func: Option<&str>) -> bool {
    matches!(func, Some("rate" | "increase" | "irate" | "resets"))
}

/// Merges one group of replicas (their data in inner stream order).
fn merge_group(
    labels: Labels,
    mut data: Vec<SeriesData>,
    skip_chunks: bool,
    algorithm: Algorithm,
    counter: bool,
    view: AggrView,
) -> Result<ChunkSeries> {
    if data.len() == 1 {
        if let Some(d) = data.pop() {
            return Ok(ChunkSeries { labels, data: d });
        }
    }
    if skip_chunks {
        return Ok(ChunkSeries::from_chunks(labels, Vec::new()));
    }
    let decodable = data.iter().all(|d| match d {
        SeriesData::Chunks(c) => c
            .iter()
            .all(|m| matches!(m.chunk.encoding, Encoding::Xor | Encoding::Aggr)),
        SeriesData::Samples(_) => true,
    });
    if !decodable {
        // Histograms: no sample-level dedup; merge as overlapping chunks.
        let group = data
            .into_iter()
            .map(|d| ChunkSeries {
                labels: labels.clone(),
                data: d,
            })
            .collect();
        return merge_series(group);
    }
    let mut replicas = Vec::with_capacity(data.len());
    for d in data {
        let s = ChunkSeries {
            labels: Labels::empty(),
            data: d,
        };
        // Downsampled replicas are read through the aggregate the function
        // needs, then deduplicated like raw samples (as Thanos' querier does).
        replicas.push(s.collect_samples_for(view)?);
    }
    let merged = match algorithm {
        Algorithm::Strata => merge_replicas(&replicas),
        Algorithm::Penalty => penalty_merge(&replicas, counter),
    };
    Ok(ChunkSeries {
        labels,
        data: SeriesData::Samples(merged.into()),
    })
}

#[async_trait]
impl Queryable for Dedup {
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let inner = self.inner.select(req).await?;
        if self.replica_labels.is_empty() {
            return Ok(inner);
        }
        let skip = req.skip_chunks;
        let algorithm = self.algorithm;
        let counter = is_counter_func(req.hints.func.as_deref());
        let view = AggrView::for_func(req.hints.func.as_deref());
        Ok(regroup::regroup(
            inner,
            self.replica_labels.clone(),
            move |labels, data| merge_group(labels, data, skip, algorithm, counter, view),
        ))
    }

    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        let mut r = self.inner.label_names(req).await?;
        r.value.retain(|n| !self.is_replica(n));
        Ok(r)
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        if self.is_replica(name) {
            return Ok(WithWarnings::new(Vec::new()));
        }
        self.inner.label_values(name, req).await
    }

    fn info(&self) -> SourceInfo {
        let mut info = self.inner.info();
        let mut sets: Vec<Labels> = Vec::with_capacity(info.label_sets.len());
        for l in &info.label_sets {
            let s = regroup::strip(l, &self.replica_labels);
            if !sets.contains(&s) {
                sets.push(s);
            }
        }
        info.label_sets = sets;
        info
    }
}
