//! Prometheus-compatible TSDB blocks (mirrors `tsdb/`): the index (format v2),
//! chunk segment files, `meta.json`, tombstones, a querier per block, a database of
//! blocks that is a [`strata_storage::Queryable`], block compaction, and backfill
//! from OpenMetrics text.
//!
//! Everything written here is byte-compatible with what Prometheus writes, and
//! everything Prometheus writes reads back here; readers memory-map files, check
//! magic numbers, versions and checksums, and report corruption with file and offset.
//!
//! Key types: [`block::Block`], [`block::BlockWriter`], [`Db`],
//! [`index::IndexReader`], [`chunks::ChunkReader`].

pub mod backfill;
pub mod block;
pub mod chunks;
pub mod compact;
pub mod cut;
mod db;
mod dump;
mod encoding;
pub mod error;
pub mod head;
pub mod index;
pub mod meta;
mod mmap;
pub mod tombstones;
pub mod wal;

pub use db::Db;
pub use dump::dump;
pub use error::{Error, Result};

/// Default block duration (2h), ms.
pub const DEFAULT_BLOCK_DURATION_MS: i64 = 2 * 60 * 60 * 1000;

/// Prometheus' `ExponentialBlockRanges(min, steps, step_size)`.
pub fn exponential_block_ranges(min: i64, steps: usize, step_size: i64) -> Vec<i64> {
    let mut out = Vec::with_capacity(steps);
    let mut cur = min;
    for _ in 0..steps {
        out.push(cur);
        cur = cur.saturating_mul(step_size);
    }
    out
}
