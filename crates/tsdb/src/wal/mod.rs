//! The write-ahead log, in Prometheus' segment and record format (mirrors
//! `tsdb/wlog` and `tsdb/record`): 8-digit segment files of 32 KiB pages holding
//! CRC-checked record fragments, optionally snappy-compressed; checkpoints in
//! `checkpoint.NNNNNNNN/`.
//!
//! This module writes WALs that Prometheus reads and reads WALs (and checkpoints)
//! written by Prometheus or Strata; [`crate::head::Head::open`] rebuilds the in-memory head
//! from them.

mod reader;
mod record;
mod writer;

pub use reader::{segments, SegmentReader, WalReader};
pub use record::{
    decode, encode_samples, encode_series, encode_tombstones, Record, RefSample, RefSeries,
    RefTombstone,
};
pub use writer::{WalWriter, DEFAULT_SEGMENT_SIZE};

/// Page size of WAL segments.
pub const PAGE_SIZE: usize = 32 * 1024;
/// Size of a record fragment header (type, length, CRC).
pub const RECORD_HEADER_SIZE: usize = 7;
