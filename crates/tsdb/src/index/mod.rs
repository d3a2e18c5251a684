//! The block index, format v2 (mirrors `tsdb/index`): symbol table, series entries,
//! postings lists, postings offset table and TOC.

pub mod postings;
mod reader;
mod writer;

pub use postings::{Postings, PostingsList};
pub use reader::{IndexReader, SeriesEntry};
pub use writer::IndexWriter;

/// Magic number at the start of an index file.
pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
/// The index format version Strata writes.
pub const FORMAT_V2: u8 = 2;
/// Size of the table of contents at the end of the file.
pub const TOC_LEN: usize = 6 * 8 + 4;

/// A chunk's metadata as stored in a series entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// First sample timestamp, ms.
    pub min_time: i64,
    /// Last sample timestamp, ms.
    pub max_time: i64,
    /// Segment index (0-based) << 32 | offset in the segment.
    pub chunk_ref: u64,
}

/// The index's table of contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Toc {
    /// Offset of the symbol table.
    pub symbols: u64,
    /// Offset of the first series.
    pub series: u64,
    /// End of the series section (legacy label indices would start here).
    pub label_indices: u64,
    /// Legacy label offset table (equal to `postings_offset_table`).
    pub label_indices_table: u64,
    /// Start of the postings section (before alignment padding).
    pub postings: u64,
    /// Offset of the postings offset table.
    pub postings_offset_table: u64,
}
