//! Series as streamed through the contract: labels plus chunks or plain samples.

use std::sync::Arc;

use strata_chunkenc::{Encoding, RawChunk, SampleIterator, XorIterator};
use strata_model::{Labels, Sample};

use crate::Result;

/// A chunk with its time range (inclusive first and last sample timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample timestamp, ms.
    pub min_time: i64,
    /// Last sample timestamp, ms.
    pub max_time: i64,
    /// The encoded chunk, as stored.
    pub chunk: RawChunk,
}

/// A series' data.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesData {
    /// Chunks in time order (raw XOR or downsampled aggregate chunks). Chunks of one
    /// source do not overlap; merged sources may overlap and are re-encoded when so.
    Chunks(Vec<ChunkMeta>),
    /// Decoded samples in time order (e.g. deduplication output).
    Samples(Arc<[Sample]>),
}

/// One series: its labels and its data.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkSeries {
    /// The label set.
    pub labels: Labels,
    /// The data (empty chunks when the request asked to skip them).
    pub data: SeriesData,
}

impl ChunkSeries {
    /// A series of chunks.
    pub fn from_chunks(labels: Labels, chunks: Vec<ChunkMeta>) -> Self {
        Self {
            labels,
            data: SeriesData::Chunks(chunks),
        }
    }

    /// The chunks, if the data is chunked.
    pub fn chunks(&self) -> &[ChunkMeta] {
        match &self.data {
            SeriesData::Chunks(c) => c,
            SeriesData::Samples(_) => &[],
        }
    }

    /// Iterates over the float samples in time order, decoding chunks lazily.
    /// Aggregate and histogram chunks are refused with an error when reached.
    pub fn samples(&self) -> SampleIter<'_> {
        SampleIter {
            data: &self.data,
            idx: 0,
            cur: None,
            last_t: i64::MIN,
        }
    }

    /// Decodes every sample (convenience for tests and small series).
    pub fn collect_samples(&self) -> Result<Vec<Sample>> {
        let mut it = self.samples();
        let mut out = Vec::new();
        while let Some(s) = it.next_sample()? {
            out.push(s);
        }
        Ok(out)
    }
}

/// Iterator over a series' samples. Samples at or before the previous timestamp are
/// skipped, so touching chunks never yield duplicates.
pub struct SampleIter<'a> {
    data: &'a SeriesData,
    idx: usize,
    cur: Option<XorIterator<'a>>,
    last_t: i64,
}

impl SampleIter<'_> {
    /// The next sample, `Ok(None)` at the end.
    pub fn next_sample(&mut self) -> Result<Option<Sample>> {
        match self.data {
            SeriesData::Samples(s) => {
                let r = s.get(self.idx).copied();
                self.idx += 1;
                Ok(r)
            }
            SeriesData::Chunks(chunks) => loop {
                if let Some(it) = &mut self.cur {
                    if let Some((t, v)) = it.next()? {
                        if t <= self.last_t {
                            continue;
                        }
                        self.last_t = t;
                        return Ok(Some(Sample { t, v }));
                    }
                    self.cur = None;
                }
                let Some(c) = chunks.get(self.idx) else {
                    return Ok(None);
                };
                self.idx += 1;
                if c.chunk.encoding != Encoding::Xor {
                    return Err(strata_chunkenc::Error::Unsupported(c.chunk.encoding).into());
                }
                self.cur = Some(XorIterator::new(&c.chunk.data));
            },
        }
    }
}
