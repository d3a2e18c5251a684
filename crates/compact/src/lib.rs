//! The compactor (mirrors thanos `pkg/compact`, `pkg/compact/downsample` and
//! `cmd/thanos/compact.go`): it keeps a bucket of Thanos blocks small and fast
//! to query over its whole life.
//!
//! - [`sync`]: the compactor's filtered view of the bucket (consistency delay,
//!   deletion marks, replica labels, duplicates, relabel sharding).
//! - [`group`]: blocks grouped by resolution and external labels.
//! - [`planner`]: which blocks of a group to compact next (Thanos'
//!   `tsdbBasedPlanner`: 2h → 8h → 2d → 14d).
//! - [`merge`]: streaming merge of blocks, chunks copied where nothing
//!   overlaps, and the vertical merge functions (union, penalty, Strata's).
//! - [`downsample`]: raw → 5m → 1h aggregate chunks, compatible with Thanos'
//!   format and values sample for sample.
//! - [`cleanup`]: retention, deletion of marked blocks, partial uploads.
//! - [`Compactor`]: the passes that tie them together, and the handling of
//!   bad blocks (marked and skipped, or a halt as in Thanos).

pub mod cleanup;
mod compactor;
pub mod downsample;
pub mod error;
pub mod group;
pub mod merge;
pub mod metrics;
pub mod planner;
pub mod sync;

pub use compactor::{
    needs_downsampling, Clock, Compactor, CompactorOptions, Failure, PassReport,
    STRATA_UNUSABLE_REASON,
};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub mod rewrite;
pub mod verify;
