//! An open block: meta, memory-mapped index and chunks, tombstones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ulid::Ulid;

use crate::chunks::ChunkReader;
use crate::error::Result;
use crate::index::IndexReader;
use crate::meta::BlockMeta;
use crate::tombstones::Tombstones;

/// A readable block. Shared as `Arc<Block>`: queries hold a reference, so a block
/// removed from the database (or deleted from disk) stays readable until they end.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    pub(crate) index: IndexReader,
    pub(crate) chunks: ChunkReader,
    pub(crate) tombstones: Tombstones,
}

impl Block {
    /// Opens the block in `dir`, validating meta.json, the index header, TOC,
    /// symbol and postings tables, chunk segment headers and tombstones.
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        let meta = BlockMeta::read(dir)?;
        let index = IndexReader::open(&dir.join("index"))?;
        let chunks = ChunkReader::open(&dir.join("chunks"))?;
        let tombstones = Tombstones::read(&dir.join("tombstones"))?;
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            tombstones,
        }))
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The block's metadata.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's ULID.
    pub fn ulid(&self) -> Ulid {
        self.meta.ulid
    }

    /// The index reader.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// The chunk reader.
    pub fn chunk_reader(&self) -> &ChunkReader {
        &self.chunks
    }

    /// The tombstones.
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Whether the block's `[minTime, maxTime)` overlaps the inclusive `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        mint < self.meta.max_time && maxt >= self.meta.min_time
    }

    /// Bytes on disk of index, chunks and meta (tombstones included when present).
    pub fn size(&self) -> u64 {
        let meta = std::fs::metadata(self.dir.join("meta.json"))
            .map(|m| m.len())
            .unwrap_or(0);
        let tomb = std::fs::metadata(self.dir.join("tombstones"))
            .map(|m| m.len())
            .unwrap_or(0);
        self.index.size() + self.chunks.size() + meta + tomb
    }
}
