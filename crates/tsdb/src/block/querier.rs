//! Selecting series from a block: postings for the matchers, then series entries
//! and chunks streamed lazily, with tombstones applied.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use strata_chunkenc::{Encoding, RawChunk, SampleIterator, XorChunk, XorIterator};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, SelectRequest,
};

use super::Block;
use crate::error::{Error, Result};
use crate::index::postings;
use crate::tombstones::Interval;

impl Block {
    /// Streams the series matching `req`: sorted by labels, chunks overlapping the
    /// request's time range (whole chunks; consumers trim samples). The stream keeps
    /// the block alive.
    pub fn select(self: &Arc<Self>, req: &SelectRequest) -> Result<ChunkSeriesStream> {
        if !self.overlaps(req.min_time, req.max_time) {
            return Ok(stream::empty().boxed());
        }
        let refs = postings::collect(self.index.postings_for_matchers(&req.matchers)?);
        let it = SeriesIter {
            block: self.clone(),
            refs,
            i: 0,
            mint: req.min_time,
            maxt: req.max_time,
            skip_chunks: req.skip_chunks,
        };
        Ok(stream::iter(it).boxed())
    }

    /// Reads series `r` restricted to `[mint, maxt]`; `None` if no chunk overlaps.
    pub fn read_series(
        &self,
        r: u32,
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<Option<ChunkSeries>> {
        let e = self.index.series(r)?;
        let tomb = self.tombstones.get(r);
        let mut out = Vec::with_capacity(e.chunks.len());
        for c in &e.chunks {
            if c.max_time < mint || c.min_time > maxt {
                continue;
            }
            if tomb
                .iter()
                .any(|iv| iv.min_time <= c.min_time && c.max_time <= iv.max_time)
            {
                continue;
            }
            if skip_chunks {
                out.push(ChunkMeta {
                    min_time: c.min_time,
                    max_time: c.max_time,
                    chunk: RawChunk::new(Encoding::Xor, Vec::new()),
                });
                continue;
            }
            let chunk = self.chunks.chunk(c.chunk_ref)?;
            let meta = ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk,
            };
            if tomb
                .iter()
                .any(|iv| iv.min_time <= c.max_time && c.min_time <= iv.max_time)
            {
                if let Some(m) = self.apply_tombstones(&meta, tomb, c.chunk_ref)? {
                    out.push(m);
                }
            } else {
                out.push(meta);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        if skip_chunks {
            out.clear();
        }
        Ok(Some(ChunkSeries::from_chunks(e.labels, out)))
    }

    fn apply_tombstones(
        &self,
        c: &ChunkMeta,
        tomb: &[Interval],
        chunk_ref: u64,
    ) -> Result<Option<ChunkMeta>> {
        if c.chunk.encoding != Encoding::Xor {
            return Ok(Some(c.clone()));
        }
        let err = |e| Error::Chunk {
            path: self.dir().join("chunks"),
            chunk_ref,
            source: e,
        };
        let mut it = XorIterator::new(&c.chunk.data);
        let mut a = XorChunk::new().appender();
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        while let Some((t, v)) = it.next().map_err(err)? {
            if tomb.iter().any(|iv| iv.contains(t)) {
                continue;
            }
            a.append(t, v).map_err(err)?;
            mint = mint.min(t);
            maxt = maxt.max(t);
        }
        if a.num_samples() == 0 {
            return Ok(None);
        }
        Ok(Some(ChunkMeta {
            min_time: mint,
            max_time: maxt,
            chunk: RawChunk::from_xor(a.finish()),
        }))
    }

    /// Label names of series matching `req` (all names when it has no matchers).
    pub fn label_names(&self, req: &LabelRequest) -> Result<Vec<String>> {
        if !self.overlaps(req.min_time, req.max_time) {
            return Ok(Vec::new());
        }
        if req.matchers.is_empty() {
            return Ok(self.index.label_names());
        }
        let mut names = BTreeSet::new();
        let mut p = self.index.postings_for_matchers(&req.matchers)?;
        while let Some(r) = p.next() {
            let e = self.index.series(r)?;
            for l in &e.labels {
                if !names.contains(l.name.as_str()) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of `name` among series matching `req`.
    pub fn label_values(&self, name: &str, req: &LabelRequest) -> Result<Vec<String>> {
        if !self.overlaps(req.min_time, req.max_time) {
            return Ok(Vec::new());
        }
        if req.matchers.is_empty() {
            return Ok(self
                .index
                .label_values(name)?
                .into_iter()
                .map(str::to_string)
                .collect());
        }
        let mut vals = BTreeSet::new();
        let mut p = self.index.postings_for_matchers(&req.matchers)?;
        while let Some(r) = p.next() {
            let e = self.index.series(r)?;
            if let Some(v) = e.labels.get(name) {
                if !vals.contains(v) {
                    vals.insert(v.to_string());
                }
            }
        }
        Ok(vals.into_iter().collect())
    }
}

struct SeriesIter {
    block: Arc<Block>,
    refs: Vec<u32>,
    i: usize,
    mint: i64,
    maxt: i64,
    skip_chunks: bool,
}

impl Iterator for SeriesIter {
    type Item = strata_storage::Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(&r) = self.refs.get(self.i) {
            self.i += 1;
            match self
                .block
                .read_series(r, self.mint, self.maxt, self.skip_chunks)
            {
                Ok(Some(s)) => return Some(Ok(Frame::Series(s))),
                Ok(None) => continue,
                Err(e) => {
                    self.i = self.refs.len();
                    return Some(Err(e.into()));
                }
            }
        }
        None
    }
}
