//! Series as streamed through the contract: labels plus chunks or plain samples.

use std::sync::Arc;

use strata_chunkenc::{
    AggrChunk, AggrType, AverageIterator, CounterResetsIterator, Encoding, RawChunk,
    SampleIterator, XorIterator,
};
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

/// Which aggregate of downsampled (Thanos aggregate) chunks a reader wants,
/// chosen from the PromQL function around the selector as Thanos'
/// `aggrsFromFunc` does. Raw XOR chunks of the same series are read as they
/// are whatever the view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AggrView {
    /// Samples per window (`count_over_time`).
    Count,
    /// Sum per window (`sum_over_time`).
    Sum,
    /// Minimum per window (`min_over_time`).
    Min,
    /// Maximum per window (`max_over_time`).
    Max,
    /// The reset-adjusted counter, monotonic across chunks (`rate`,
    /// `increase`, `irate`, `resets`).
    Counter,
    /// sum / count per window: everything else.
    #[default]
    Avg,
}

impl AggrView {
    /// The view a function reads (`None`: a plain selector), as Thanos picks it.
    pub fn for_func(func: Option<&str>) -> Self {
        let Some(f) = func else { return Self::Avg };
        if f == "min" || f.starts_with("min_") {
            Self::Min
        } else if f == "max" || f.starts_with("max_") {
            Self::Max
        } else if f == "count" || f.starts_with("count_") {
            Self::Count
        } else if f.starts_with("sum_") {
            Self::Sum
        } else if matches!(
            f,
            "increase" | "rate" | "irate" | "resets" | "xincrease" | "xrate"
        ) {
            Self::Counter
        } else {
            Self::Avg
        }
    }

    fn sub(self) -> AggrType {
        match self {
            Self::Count | Self::Avg => AggrType::Count,
            Self::Sum => AggrType::Sum,
            Self::Min => AggrType::Min,
            Self::Max => AggrType::Max,
            Self::Counter => AggrType::Counter,
        }
    }
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
    /// Downsampled aggregate chunks are read as averages ([`AggrView::Avg`]);
    /// histogram chunks are refused with an error when reached.
    pub fn samples(&self) -> SampleIter<'_> {
        self.samples_for(AggrView::Avg)
    }

    /// The same, reading aggregate chunks through `view`.
    pub fn samples_for(&self, view: AggrView) -> SampleIter<'_> {
        SampleIter {
            data: &self.data,
            idx: 0,
            cur: None,
            last_t: i64::MIN,
            view,
        }
    }

    /// Decodes every sample (convenience for tests and small series).
    pub fn collect_samples(&self) -> Result<Vec<Sample>> {
        self.collect_samples_for(AggrView::Avg)
    }

    /// Decodes every sample, reading aggregate chunks through `view`.
    pub fn collect_samples_for(&self, view: AggrView) -> Result<Vec<Sample>> {
        let mut it = self.samples_for(view);
        let mut out = Vec::new();
        while let Some(s) = it.next_sample()? {
            out.push(s);
        }
        Ok(out)
    }
}

/// The decoder of the current chunk (or, for counters, of all chunks).
enum Cur<'a> {
    Xor(XorIterator<'a>),
    Avg(AverageIterator<'a>),
    Counter(CounterResetsIterator<'a>),
}

impl Cur<'_> {
    fn next(&mut self) -> strata_chunkenc::Result<Option<(i64, f64)>> {
        match self {
            Cur::Xor(it) => it.next(),
            Cur::Avg(it) => it.next(),
            Cur::Counter(it) => it.next(),
        }
    }
}

/// Iterator over a series' samples. Samples at or before the previous timestamp are
/// skipped, so touching chunks never yield duplicates.
pub struct SampleIter<'a> {
    data: &'a SeriesData,
    idx: usize,
    cur: Option<Cur<'a>>,
    last_t: i64,
    view: AggrView,
}

fn missing(t: AggrType) -> crate::Error {
    strata_chunkenc::Error::Corrupt(match t {
        AggrType::Count => "aggregate chunk without count",
        AggrType::Sum => "aggregate chunk without sum",
        AggrType::Min => "aggregate chunk without min",
        AggrType::Max => "aggregate chunk without max",
        AggrType::Counter => "aggregate chunk without counter",
    })
    .into()
}

impl<'a> SampleIter<'a> {
    /// The iterator of one chunk under the view (not for counters).
    fn open(&self, c: &'a ChunkMeta) -> Result<Cur<'a>> {
        match c.chunk.encoding {
            Encoding::Xor => Ok(Cur::Xor(XorIterator::new(&c.chunk.data))),
            Encoding::Aggr => {
                let a = AggrChunk::new(&c.chunk.data);
                if self.view == AggrView::Avg {
                    let count = a
                        .iter(AggrType::Count)?
                        .ok_or_else(|| missing(AggrType::Count))?;
                    let sum = a
                        .iter(AggrType::Sum)?
                        .ok_or_else(|| missing(AggrType::Sum))?;
                    return Ok(Cur::Avg(AverageIterator::new(count, sum)));
                }
                let t = self.view.sub();
                Ok(Cur::Xor(a.iter(t)?.ok_or_else(|| missing(t))?))
            }
            e => Err(strata_chunkenc::Error::Unsupported(e).into()),
        }
    }

    /// One counter iterator over every chunk (raw chunks as they are).
    fn open_counter(chunks: &'a [ChunkMeta]) -> Result<Cur<'a>> {
        let mut its = Vec::with_capacity(chunks.len());
        for c in chunks {
            match c.chunk.encoding {
                Encoding::Xor => its.push(XorIterator::new(&c.chunk.data)),
                Encoding::Aggr => {
                    let a = AggrChunk::new(&c.chunk.data);
                    its.push(
                        a.iter(AggrType::Counter)?
                            .ok_or_else(|| missing(AggrType::Counter))?,
                    );
                }
                e => return Err(strata_chunkenc::Error::Unsupported(e).into()),
            }
        }
        Ok(Cur::Counter(CounterResetsIterator::new(its)))
    }

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
                if self.view == AggrView::Counter
                    && self.idx == 0
                    && chunks.iter().any(|c| c.chunk.encoding == Encoding::Aggr)
                {
                    self.idx = chunks.len();
                    self.cur = Some(Self::open_counter(chunks)?);
                    continue;
                }
                let Some(c) = chunks.get(self.idx) else {
                    return Ok(None);
                };
                self.idx += 1;
                self.cur = Some(self.open(c)?);
            },
        }
    }
}
