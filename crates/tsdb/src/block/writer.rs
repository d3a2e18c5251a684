//! Writes a block from series fed in label order: chunks go to segment files as
//! they come, series entries to the index, and `meta.json` last; the directory is
//! built under a temporary name and renamed into place.

use std::fs;
use std::path::{Path, PathBuf};

use strata_model::Labels;
use strata_storage::ChunkMeta;
use ulid::Ulid;

use super::TMP_CREATION_SUFFIX;
use crate::chunks::{ChunkWriter, DEFAULT_MAX_SEGMENT_SIZE};
use crate::error::{Error, Result};
use crate::index::{ChunkRef, IndexWriter};
use crate::meta::{BlockDesc, BlockMeta, BlockStats, CompactionMeta};
use crate::tombstones::Tombstones;

/// Options of a [`BlockWriter`].
#[derive(Clone, Debug)]
pub struct BlockWriterOptions {
    /// Maximum chunk segment size.
    pub max_segment_size: u64,
    /// Compaction level to record.
    pub level: i32,
    /// Source blocks (empty: the block itself).
    pub sources: Vec<Ulid>,
    /// Direct parents.
    pub parents: Vec<BlockDesc>,
    /// The ULID to use (default: a new one).
    pub ulid: Option<Ulid>,
}

impl Default for BlockWriterOptions {
    fn default() -> Self {
        Self {
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            level: 1,
            sources: Vec::new(),
            parents: Vec::new(),
            ulid: None,
        }
    }
}

/// Streams series into a new block directory.
pub struct BlockWriter {
    parent: PathBuf,
    tmp: PathBuf,
    ulid: Ulid,
    opts: BlockWriterOptions,
    chunks: ChunkWriter,
    index: IndexWriter,
    stats: BlockStats,
    min_time: i64,
    max_time: i64,
    refs: Vec<ChunkRef>,
}

impl BlockWriter {
    /// Starts a block under `parent` (a data directory).
    pub fn create(parent: &Path, opts: BlockWriterOptions) -> Result<Self> {
        let ulid = match opts.ulid {
            Some(u) => u,
            None => Ulid::new(),
        };
        let tmp = parent.join(format!("{ulid}{TMP_CREATION_SUFFIX}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let chunks = ChunkWriter::create(&tmp.join("chunks"), opts.max_segment_size)?;
        let index = IndexWriter::create(&tmp.join("index"))?;
        Ok(Self {
            parent: parent.to_path_buf(),
            tmp,
            ulid,
            opts,
            chunks,
            index,
            stats: BlockStats::default(),
            min_time: i64::MAX,
            max_time: i64::MIN,
            refs: Vec::new(),
        })
    }

    /// The new block's ULID.
    pub fn ulid(&self) -> Ulid {
        self.ulid
    }

    /// Writes the symbol table: every label name and value to come, sorted, unique.
    pub fn add_symbols<'a>(&mut self, symbols: impl IntoIterator<Item = &'a str>) -> Result<()> {
        self.index.add_symbols(symbols)
    }

    /// Adds a series (in label order) with its chunks (in time order). Series without
    /// chunks are skipped.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.refs.clear();
        for c in chunks {
            let r = self.chunks.write(&c.chunk)?;
            let n = c
                .chunk
                .num_samples()
                .map_err(|e| Error::InvalidWrite(format!("series {labels}: {e}")))?
                as u64;
            self.stats.num_samples += n;
            self.stats.num_float_samples += n;
            self.stats.num_chunks += 1;
            self.min_time = self.min_time.min(c.min_time);
            self.max_time = self.max_time.max(c.max_time);
            self.refs.push(ChunkRef {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk_ref: r,
            });
        }
        let refs = std::mem::take(&mut self.refs);
        self.index.add_series(labels, &refs)?;
        self.refs = refs;
        self.stats.num_series += 1;
        Ok(())
    }

    /// Samples written so far.
    pub fn num_samples(&self) -> u64 {
        self.stats.num_samples
    }

    /// Finishes the block. Its time range is `[min, max+1)` of the samples, or the
    /// given range when `range` is set. Returns `None` (and removes the temporary
    /// directory) when no series were added, like Prometheus which writes no empty
    /// blocks.
    pub fn finish(self, range: Option<(i64, i64)>) -> Result<Option<BlockMeta>> {
        if self.stats.num_series == 0 {
            drop(self.index);
            drop(self.chunks);
            fs::remove_dir_all(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?;
            return Ok(None);
        }
        self.chunks.finish()?;
        self.index.finish()?;
        Tombstones::default().write(&self.tmp)?;
        let (min_time, max_time) = range.unwrap_or((self.min_time, self.max_time + 1));
        let sources = if self.opts.sources.is_empty() {
            vec![self.ulid]
        } else {
            let mut s = self.opts.sources.clone();
            s.sort();
            s.dedup();
            s
        };
        let meta = BlockMeta {
            ulid: self.ulid,
            min_time,
            max_time,
            stats: self.stats,
            compaction: CompactionMeta {
                level: self.opts.level,
                sources,
                parents: self.opts.parents.clone(),
                ..Default::default()
            },
            version: 1,
            thanos: None,
        };
        meta.write(&self.tmp)?;
        sync_dir(&self.tmp)?;
        let dst = self.parent.join(self.ulid.to_string());
        fs::rename(&self.tmp, &dst).map_err(|e| Error::io(&dst, e))?;
        sync_dir(&self.parent)?;
        Ok(Some(meta))
    }
}

fn sync_dir(p: &Path) -> Result<()> {
    let f = fs::File::open(p).map_err(|e| Error::io(p, e))?;
    f.sync_all().map_err(|e| Error::io(p, e))
}
