//! The one contract that joins every Strata data source to every consumer
//! (mirrors Prometheus `storage/interface.go` and Thanos' `storepb` StoreAPI shape).
//!
//! A source (the TSDB, a StoreAPI client, the bucket store, a fan-out, a dedup layer)
//! implements [`Queryable`]; a consumer (PromQL, the HTTP API, the StoreAPI server)
//! reads through it. Series stream one at a time, sorted by labels, as chunks that
//! are cheap to ship; [`ChunkSeries::samples`] decodes them. Streams carry warnings
//! alongside series so that partial responses survive composition. Sources compose
//! by wrapping: [`merge::merge_streams`] merges sorted streams, [`Dedup`] removes
//! replica labels and merges the replicas of HA pairs.

mod append;
pub mod dedup;
mod error;
mod fanout;
pub mod merge;
mod series;

use std::fmt::Debug;

use async_trait::async_trait;
use futures::stream::BoxStream;
use strata_model::{Labels, Matcher};

pub use append::{AppendError, Appendable, Appender, CommitReport};
pub use dedup::Dedup;
pub use error::{Error, Result};
pub use fanout::Fanout;
pub use series::{AggrView, ChunkMeta, ChunkSeries, SampleIter, SeriesData};

/// A stream of [`Frame`]s: series sorted by labels, interleaved with warnings.
pub type ChunkSeriesStream = BoxStream<'static, Result<Frame>>;

/// One item of a select stream.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A series; series arrive sorted by labels, each label set once.
    Series(ChunkSeries),
    /// A non-fatal problem (e.g. one source of a fan-out failed); the data is partial.
    Warning(String),
}

/// What to select: mirrors `storepb.SeriesRequest`.
#[derive(Clone, Debug)]
pub struct SelectRequest {
    /// Inclusive lower bound, ms.
    pub min_time: i64,
    /// Inclusive upper bound, ms.
    pub max_time: i64,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// What the caller will do with the data.
    pub hints: SelectHints,
    /// Return labels only (no chunks).
    pub skip_chunks: bool,
    /// Highest downsampling resolution acceptable, ms (0 = raw only).
    pub max_resolution_ms: i64,
    /// Whether failed sources become warnings rather than errors.
    pub partial_response: bool,
}

impl SelectRequest {
    /// A request for all samples in `[min_time, max_time]` of series matching `matchers`.
    pub fn new(min_time: i64, max_time: i64, matchers: Vec<Matcher>) -> Self {
        Self {
            min_time,
            max_time,
            matchers,
            hints: SelectHints::default(),
            skip_chunks: false,
            max_resolution_ms: 0,
            partial_response: false,
        }
    }
}

/// Query hints (Prometheus `storage.SelectHints`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// Query start, ms.
    pub start_ms: i64,
    /// Query end, ms.
    pub end_ms: i64,
    /// Evaluation step, ms (0 for instant queries).
    pub step_ms: i64,
    /// The surrounding function, e.g. `rate`.
    pub func: Option<String>,
    /// Range of the range selector, ms.
    pub range_ms: i64,
    /// Grouping labels of the surrounding aggregation.
    pub grouping: Vec<String>,
    /// Whether `grouping` is `by` (true) or `without` (false).
    pub by: bool,
}

/// A label names/values request.
#[derive(Clone, Debug, Default)]
pub struct LabelRequest {
    /// Inclusive lower bound, ms.
    pub min_time: i64,
    /// Inclusive upper bound, ms.
    pub max_time: i64,
    /// Restrict to series matching all of these (empty: all series).
    pub matchers: Vec<Matcher>,
    /// Maximum number of results (0: no limit).
    pub limit: usize,
}

/// A value with the warnings gathered while computing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WithWarnings<T> {
    /// The value.
    pub value: T,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
}

impl<T> WithWarnings<T> {
    /// A value without warnings.
    pub fn new(value: T) -> Self {
        Self {
            value,
            warnings: Vec::new(),
        }
    }
}

/// What a source holds, so a fan-out can prune it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// External label sets of the data (one per tenant or block group).
    pub label_sets: Vec<Labels>,
    /// Earliest sample time, ms (inclusive).
    pub min_time: i64,
    /// Latest sample time, ms (inclusive).
    pub max_time: i64,
}

impl Default for SourceInfo {
    fn default() -> Self {
        Self {
            label_sets: Vec::new(),
            min_time: i64::MAX,
            max_time: i64::MIN,
        }
    }
}

/// Anything that answers series and label queries.
#[async_trait]
pub trait Queryable: Debug + Send + Sync + 'static {
    /// Matching series, sorted by labels, streamed one series after another. The
    /// stream keeps what it reads alive (e.g. a block deleted meanwhile) until dropped.
    async fn select(&self, req: &SelectRequest) -> Result<ChunkSeriesStream>;

    /// Label names of matching series, sorted and unique.
    async fn label_names(&self, req: &LabelRequest) -> Result<WithWarnings<Vec<String>>>;

    /// Values of label `name` of matching series, sorted and unique.
    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>>;

    /// External labels and time range.
    fn info(&self) -> SourceInfo;
}

/// Sorted-and-deduplicated union of sorted string lists.
pub fn merge_sorted_strings(lists: Vec<Vec<String>>, limit: usize) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    if limit > 0 {
        all.truncate(limit);
    }
    all
}
