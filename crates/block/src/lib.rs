//! Thanos blocks in object storage (mirrors thanos `pkg/block`,
//! `pkg/block/metadata` and `pkg/shipper`).
//!
//! It owns what turns a Prometheus block directory into a Thanos block in a
//! bucket and back: [`Meta`] (Prometheus' `meta.json` plus the `thanos` section
//! with external labels, resolution, source and file list), the marker files
//! ([`markers`]), [`upload_block`] (chunks, then index, then `meta.json` last,
//! so a block without `meta.json` is always an unfinished upload),
//! [`download_block`], [`list_blocks`], [`delete_block`], and the [`Shipper`]
//! that uploads every new block of a TSDB directory exactly once across
//! restarts, keeping Thanos' `thanos.shipper.json` state file.

pub mod error;
pub mod markers;
pub mod meta;
mod shipper;
mod transfer;

pub use error::{Error, Result};
pub use meta::{File, Meta, ThanosMeta};
pub use shipper::{Shipper, ShipperOptions, ShipperState, DEFAULT_META_FILE_NAME};
pub use transfer::{
    delete_block, download_block, download_meta, gather_files, list_blocks, segment_files,
    upload_block, BlockList,
};
