//! The store gateway (mirrors thanos `pkg/store/bucket.go`,
//! `pkg/block/indexheader` and `pkg/store/cache`): serves every block of a
//! bucket through [`strata_storage::Queryable`] without downloading blocks.
//!
//! [`BucketStore::sync`] lists the bucket, reads each block's `meta.json` and
//! deletion mark, and keeps the blocks that pass the filters (complete uploads,
//! not marked for deletion, inside `--min-time`/`--max-time`, kept by the
//! `--selector.relabel-config` rules over external labels and `__block_id`).
//! For each new block it builds an index-header (Thanos' binary format, see
//! `indexheader`) from three ranged reads of the block's `index` and writes it
//! to `<data-dir>/<ULID>/index-header`; the header is loaded into memory on the
//! first query and dropped again after an idle timeout.
//!
//! A query picks blocks by time range, by external labels (matchers on them
//! prune blocks and are then dropped) and by resolution (Thanos' `getFor`: the
//! highest resolution at most `max_resolution_ms`, gaps filled from lower ones),
//! resolves postings from the index-header, and reads postings lists, series
//! entries and chunks with ranged GETs, coalescing ranges closer than 512 KiB.
//! Series entries and chunks are read lazily, a batch of postings at a time
//! (`--debug.series-batch-size`), so a request holds about one batch per
//! block rather than every block's series (see `lazy`).
//! Postings and series entries go through an [`IndexCache`] (in-memory LRU or
//! memcached). Series carry the block's external labels and stream sorted,
//! merged across blocks; chunks are passed through as stored (raw XOR or
//! downsampled aggregate chunks).
//!
//! Bad data never fails a whole query: a block whose meta.json, index or
//! chunks are missing, truncated or corrupt is logged and turned into a
//! [`strata_storage::Frame::Warning`] naming the block, and the other blocks
//! keep serving. Limits (series, samples estimated as chunks × 120) fail the
//! request with [`strata_storage::Error::Limit`] naming the flag.
//!
//! Key types: [`BucketStore`], [`StoreOptions`], [`Limits`],
//! [`IndexCacheConfig`], [`IndexCache`].

mod block;
pub mod cache;
mod decode;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod indexheader;
mod lazy;
mod metrics;
mod options;
mod ranges;
mod select;
mod store;

pub use cache::{IndexCache, IndexCacheConfig};
pub use error::{Error, Result};
pub use options::{
    Limits, StoreOptions, DEFAULT_MAX_GAP_BYTES, DEFAULT_SERIES_BATCH_SIZE,
    SAMPLES_PER_CHUNK_ESTIMATE,
};
pub use store::{BucketStore, StoreStats, SyncReport};
