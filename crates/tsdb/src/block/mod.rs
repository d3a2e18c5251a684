//! Blocks: a directory with `meta.json`, `index`, `chunks/` and `tombstones`.

mod querier;
mod reader;
mod writer;

pub use reader::Block;
pub use writer::{BlockWriter, BlockWriterOptions};

/// Suffix of a block directory being written.
pub const TMP_CREATION_SUFFIX: &str = ".tmp-for-creation";
/// Suffix of a block directory being deleted.
pub const TMP_DELETION_SUFFIX: &str = ".tmp-for-deletion";
