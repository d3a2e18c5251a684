//! A directory of blocks served as one [`Queryable`]; overlapping blocks are merged
//! at query time.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use strata_model::Labels;
use strata_storage::{
    merge::merge_streams, merge_sorted_strings, ChunkSeriesStream, LabelRequest, Queryable,
    SelectRequest, SourceInfo, WithWarnings,
};
use tracing::warn;
use ulid::Ulid;

use crate::block::Block;
use crate::error::{Error, Result};

/// Blocks of a data directory, ordered by min time.
#[derive(Debug)]
pub struct Db {
    dir: PathBuf,
    blocks: RwLock<Arc<Vec<Arc<Block>>>>,
    external_labels: Labels,
}

impl Db {
    /// Opens every block in `dir` (directories named by a ULID with a meta.json;
    /// temporary directories are ignored). Any corrupt block is an error naming it.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = Self {
            dir: dir.to_path_buf(),
            blocks: RwLock::new(Arc::new(Vec::new())),
            external_labels: Labels::empty(),
        };
        db.reload()?;
        Ok(db)
    }

    /// Sets the external labels reported by `info()`.
    pub fn with_external_labels(mut self, l: Labels) -> Self {
        self.external_labels = l;
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Block directories in `dir`, sorted by name.
    pub fn block_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(dir, e))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.parse::<Ulid>().is_err() || name.len() != 26 {
                continue;
            }
            if e.path().join("meta.json").is_file() {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-reads the directory: opens new blocks, drops vanished ones. Queries in
    /// flight keep the blocks they started with.
    pub fn reload(&self) -> Result<()> {
        let current = self.blocks();
        let mut next = Vec::new();
        for d in Self::block_dirs(&self.dir)? {
            if let Some(b) = current.iter().find(|b| b.dir() == d) {
                next.push(b.clone());
                continue;
            }
            next.push(Block::open(&d)?);
        }
        next.sort_by_key(|b| (b.meta().min_time, b.ulid()));
        let mut w = self
            .blocks
            .write()
            .map_err(|_| Error::InvalidWrite("block list lock poisoned".into()))?;
        *w = Arc::new(next);
        Ok(())
    }

    /// The open blocks, ordered by min time.
    pub fn blocks(&self) -> Arc<Vec<Arc<Block>>> {
        match self.blocks.read() {
            Ok(b) => b.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn select_blocks(&self, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let blocks = self.blocks();
        let mut streams = Vec::new();
        for b in blocks
            .iter()
            .filter(|b| b.overlaps(req.min_time, req.max_time))
        {
            streams.push(b.select(req)?);
        }
        Ok(merge_streams(streams))
    }
}

#[async_trait]
impl Queryable for Db {
    async fn select(&self, req: &SelectRequest) -> strata_storage::Result<ChunkSeriesStream> {
        Ok(self.select_blocks(req)?)
    }

    async fn label_names(
        &self,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let mut lists = Vec::new();
        for b in self.blocks().iter() {
            lists.push(b.label_names(req)?);
        }
        Ok(WithWarnings::new(merge_sorted_strings(lists, req.limit)))
    }

    async fn label_values(
        &self,
        name: &str,
        req: &LabelRequest,
    ) -> strata_storage::Result<WithWarnings<Vec<String>>> {
        let mut lists = Vec::new();
        for b in self.blocks().iter() {
            lists.push(b.label_values(name, req)?);
        }
        Ok(WithWarnings::new(merge_sorted_strings(lists, req.limit)))
    }

    fn info(&self) -> SourceInfo {
        let blocks = self.blocks();
        let mut info = SourceInfo {
            label_sets: vec![self.external_labels.clone()],
            ..SourceInfo::default()
        };
        for b in blocks.iter() {
            info.min_time = info.min_time.min(b.meta().min_time);
            info.max_time = info.max_time.max(b.meta().max_time - 1);
        }
        if let Err(e) = fs::metadata(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "data directory unavailable");
        }
        info
    }
}
