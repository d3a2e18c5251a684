//! Options of a [`crate::BucketStore`], defaulting to Thanos' flag defaults.

use std::path::PathBuf;
use std::time::Duration;

use strata_model::relabel::RelabelConfig;

use crate::cache::IndexCacheConfig;

/// Thanos' gap below which two ranges are read as one (512 KiB).
pub const DEFAULT_MAX_GAP_BYTES: u64 = 512 * 1024;
/// Postings expanded per batch by default (`--debug.series-batch-size`).
/// Thanos defaults to 10000; Strata to 1000, measured with `strata tools
/// bench store --hours 192` (96 blocks × 10k series): the widest queries then
/// peak at 701 MiB and 1.6 GiB where 10000 gave 802 MiB and 2.5 GiB (and
/// Prometheus 768 MiB and 3.0 GiB), with no loss of latency.
pub const DEFAULT_SERIES_BATCH_SIZE: usize = 1_000;
/// Samples assumed per chunk when enforcing the samples limit (as Thanos).
pub const SAMPLES_PER_CHUNK_ESTIMATE: u64 = 120;

/// Per-request limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most series one request may return (`--store.limits.request-series`, 0: none).
    pub max_series: u64,
    /// Most samples one request may touch, estimated as chunks × 120
    /// (`--store.limits.request-samples`, 0: none).
    pub max_samples: u64,
    /// Requests served at once; more wait (`--store.grpc.series-max-concurrency`).
    pub max_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_series: 0,
            max_samples: 0,
            max_concurrency: 20,
        }
    }
}

/// Options of a [`crate::BucketStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Where index-headers live (`--data-dir`), as `<data_dir>/<ULID>/index-header`.
    pub data_dir: PathBuf,
    /// Only blocks ending after this are served, ms (`--min-time`).
    pub min_time: i64,
    /// Only blocks starting before this are served, ms (`--max-time`).
    pub max_time: i64,
    /// Keep/drop rules over each block's external labels plus `__block_id`
    /// (`--selector.relabel-config`).
    pub relabel: Vec<RelabelConfig>,
    /// The index cache (`--index-cache.config`, default 250 MiB in memory).
    pub index_cache: IndexCacheConfig,
    /// Request limits.
    pub limits: Limits,
    /// Blocks whose index-header is built at once (`--block-sync-concurrency`).
    pub block_sync_concurrency: usize,
    /// meta.json fetched at once (`--block-meta-fetch-concurrency`).
    pub meta_fetch_concurrency: usize,
    /// Blocks marked for deletion longer ago than this are no longer served
    /// (`--ignore-deletion-marks-delay`, 24h; zero hides marked blocks at once).
    pub ignore_deletion_marks_delay: Duration,
    /// Loaded index-headers unused this long are dropped at the next sync
    /// (`--store.index-header-lazy-reader-idle-timeout`, 5m; zero: never).
    pub index_header_idle_timeout: Duration,
    /// Ranges closer than this are read with one GET.
    pub max_gap_bytes: u64,
    /// Postings of a block expanded per batch when selecting series: series
    /// entries and chunks are read a batch at a time, so a request holds about
    /// one batch per block (`--debug.series-batch-size`, Thanos' 10000).
    pub series_batch_size: usize,
}

impl StoreOptions {
    /// Defaults with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            min_time: i64::MIN,
            max_time: i64::MAX,
            relabel: Vec::new(),
            index_cache: IndexCacheConfig::default(),
            limits: Limits::default(),
            block_sync_concurrency: 20,
            meta_fetch_concurrency: 32,
            ignore_deletion_marks_delay: Duration::from_secs(24 * 3600),
            index_header_idle_timeout: Duration::from_secs(300),
            max_gap_bytes: DEFAULT_MAX_GAP_BYTES,
            series_batch_size: DEFAULT_SERIES_BATCH_SIZE,
        }
    }
}
