//! Merging local blocks into one (Prometheus' `LeveledCompactor.Compact` with
//! Thanos' vertical merge functions), one series at a time.
//!
//! Each input block is read in label order; series with equal labels are
//! merged. Chunks that overlap nothing are copied as they are, without
//! decoding; overlapping chunks are merged by the [`MergeFunc`] and re-cut at
//! 120 samples. Memory holds the symbol table and one series' chunks of every
//! input, never a whole block.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use strata_block::Meta;
use strata_chunkenc::{Encoding, RawChunk, XorChunk, SAMPLES_PER_CHUNK};
use strata_model::{Labels, Sample};
use strata_storage::dedup::{merge_replicas, penalty_merge};
use strata_storage::merge::merge_chunks;
use strata_storage::{ChunkMeta, ChunkSeries};
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use strata_tsdb::meta::{BlockDesc, BlockMeta};
use tokio_util::sync::CancellationToken;
use tracing::info;
use ulid::Ulid;

use crate::error::{Error, Result};

/// How series of overlapping blocks (vertical compaction) are merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MergeFunc {
    /// `--deduplication.func=""` (Thanos' default, Prometheus'
    /// `CompactingChunkSeriesMerger`): the union of the samples; where two
    /// replicas scraped, the series becomes denser; samples with identical
    /// timestamps collapse to one.
    #[default]
    Union,
    /// `--deduplication.func=penalty`: Thanos' penalty algorithm, which keeps
    /// one replica and switches only across gaps.
    Penalty,
    /// `--deduplication.func=strata` (Strata's own): the querier's default
    /// counter-exact replica merge (`strata_storage::dedup::merge_replicas`),
    /// so an offline-deduplicated block answers what the querier would have
    /// answered online.
    Strata,
}

impl MergeFunc {
    /// Parses the flag value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" => Ok(Self::Union),
            "penalty" => Ok(Self::Penalty),
            "strata" => Ok(Self::Strata),
            other => Err(Error::Config(format!(
                "unsupported deduplication func, got {other} (want \"\", \"penalty\" or \"strata\")"
            ))),
        }
    }
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Series written.
    pub series: u64,
    /// Samples written.
    pub samples: u64,
    /// Chunks copied without decoding.
    pub chunks_copied: u64,
    /// Chunks written after re-encoding overlapping data.
    pub chunks_reencoded: u64,
    /// Bytes of chunk data read from the inputs.
    pub chunk_bytes_read: u64,
}

/// One input block: its (Thanos) meta and the opened block.
#[derive(Clone, Debug)]
pub struct Input {
    /// The meta as the bucket has it.
    pub meta: Meta,
    /// The block, opened from its local copy.
    pub block: Arc<Block>,
}

/// Reads one block's series in label order, checking what Thanos' index health
/// check checks: labels in order and chunks inside the block's time range.
struct SeriesCursor<'a> {
    input: &'a Input,
    refs: Vec<u32>,
    next: usize,
    last: Option<Labels>,
}

impl<'a> SeriesCursor<'a> {
    fn new(input: &'a Input) -> Result<Self> {
        let refs = strata_tsdb::index::postings::collect(input.block.index().all_postings()?);
        Ok(Self {
            input,
            refs,
            next: 0,
            last: None,
        })
    }

    fn ulid(&self) -> Ulid {
        self.input.meta.block.ulid
    }

    fn advance(&mut self) -> Result<Option<ChunkSeries>> {
        let (mint, maxt) = (
            self.input.meta.block.min_time,
            self.input.meta.block.max_time,
        );
        while let Some(&r) = self.refs.get(self.next) {
            self.next += 1;
            let s = self
                .input
                .block
                .read_series(r, i64::MIN, i64::MAX, false)
                .map_err(|e| Error::block(self.ulid(), format!("reading series {r}: {e}")))?;
            let Some(s) = s else { continue };
            if let Some(prev) = &self.last {
                if prev.compare(&s.labels) != std::cmp::Ordering::Less {
                    return Err(Error::block(
                        self.ulid(),
                        format!(
                            "index: series {} is not after {prev}: labels out of order",
                            s.labels
                        ),
                    ));
                }
            }
            let mut last_max = i64::MIN;
            for c in s.chunks() {
                if c.min_time < mint || c.max_time >= maxt {
                    return Err(Error::block(
                        self.ulid(),
                        format!(
                            "series {}: found chunk with minTime: {} maxTime: {} outside of the block's range [{mint}, {maxt}) in meta.json",
                            s.labels, c.min_time, c.max_time
                        ),
                    ));
                }
                if c.min_time > c.max_time || c.min_time <= last_max {
                    return Err(Error::block(
                        self.ulid(),
                        format!(
                            "series {}: out-of-order or overlapping chunk [{}, {}]",
                            s.labels, c.min_time, c.max_time
                        ),
                    ));
                }
                last_max = c.max_time;
            }
            self.last = Some(s.labels.clone());
            return Ok(Some(s));
        }
        Ok(None)
    }
}

fn encode_samples(samples: &[Sample]) -> Result<Vec<ChunkMeta>> {
    let mut out = Vec::with_capacity(samples.len() / SAMPLES_PER_CHUNK + 1);
    for part in samples.chunks(SAMPLES_PER_CHUNK) {
        let mut a = XorChunk::new().appender();
        for s in part {
            a.append(s.t, s.v)?;
        }
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        out.push(ChunkMeta {
            min_time: first.t,
            max_time: last.t,
            chunk: RawChunk::from_xor(a.finish()),
        });
    }
    Ok(out)
}

/// Merges the chunk lists of one series from several blocks.
fn merge_parts(
    labels: &Labels,
    parts: Vec<(Ulid, Vec<ChunkMeta>)>,
    func: MergeFunc,
    stats: &mut MergeStats,
) -> Result<Vec<ChunkMeta>> {
    let mut all: Vec<ChunkMeta> = Vec::new();
    for (_, c) in &parts {
        all.extend(c.iter().cloned());
    }
    all.sort_by_key(|c| (c.min_time, c.max_time));
    let overlapping = all.windows(2).any(|w| w[1].min_time <= w[0].max_time);
    if !overlapping {
        stats.chunks_copied += all.len() as u64;
        return Ok(all);
    }
    if all.iter().any(|c| c.chunk.encoding != Encoding::Xor) {
        let ids: Vec<String> = parts.iter().map(|(id, _)| id.to_string()).collect();
        return Err(Error::Block {
            ulid: ids.join(","),
            msg: format!(
                "series {labels}: overlapping chunks that are not XOR (downsampled or histogram) cannot be merged"
            ),
        });
    }
    let out = match func {
        MergeFunc::Union => merge_chunks(all)?,
        MergeFunc::Penalty | MergeFunc::Strata => {
            let mut replicas: Vec<Vec<Sample>> = Vec::with_capacity(parts.len());
            for (_, chunks) in &parts {
                let s = ChunkSeries::from_chunks(labels.clone(), chunks.clone());
                replicas.push(s.collect_samples()?);
            }
            let merged = match func {
                MergeFunc::Penalty => penalty_merge(&replicas, false),
                _ => merge_replicas(&replicas),
            };
            encode_samples(&merged)?
        }
    };
    stats.chunks_reencoded += out.len() as u64;
    Ok(out)
}

/// Compacts `inputs` (one group, any order) into a new block under `dir`.
/// Returns `None` when every series was deleted (no block is written).
/// Errors name the input block that is unusable.
pub fn compact_blocks(
    dir: &Path,
    inputs: &[Input],
    func: MergeFunc,
    cancel: &CancellationToken,
) -> Result<Option<(BlockMeta, MergeStats)>> {
    let Some(first) = inputs.first() else {
        return Err(Error::Config("compaction needs at least one block".into()));
    };
    let mint = inputs
        .iter()
        .map(|i| i.meta.block.min_time)
        .min()
        .unwrap_or(first.meta.block.min_time);
    let maxt = inputs
        .iter()
        .map(|i| i.meta.block.max_time)
        .max()
        .unwrap_or(first.meta.block.max_time);
    let level = inputs
        .iter()
        .map(|i| i.meta.block.compaction.level)
        .max()
        .unwrap_or(1)
        + 1;
    let mut sources: Vec<Ulid> = inputs
        .iter()
        .flat_map(|i| i.meta.block.compaction.sources.iter().copied())
        .collect();
    sources.sort();
    sources.dedup();
    let mut sorted: Vec<&Input> = inputs.iter().collect();
    sorted.sort_by_key(|i| (i.meta.block.min_time, i.meta.block.ulid));
    let parents = sorted
        .iter()
        .map(|i| BlockDesc {
            ulid: i.meta.block.ulid,
            min_time: i.meta.block.min_time,
            max_time: i.meta.block.max_time,
        })
        .collect();

    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    for i in &sorted {
        for s in i.block.index().symbols() {
            let s =
                s.map_err(|e| Error::block(i.meta.block.ulid, format!("index symbols: {e}")))?;
            symbols.insert(s);
        }
    }
    let mut w = BlockWriter::create(
        dir,
        BlockWriterOptions {
            level,
            sources,
            parents,
            ..Default::default()
        },
    )?;
    w.add_symbols(symbols.iter().copied())?;
    drop(symbols);

    let mut cursors: Vec<SeriesCursor<'_>> = sorted
        .iter()
        .map(|i| SeriesCursor::new(i))
        .collect::<Result<_>>()?;
    let mut heads: Vec<Option<ChunkSeries>> = Vec::with_capacity(cursors.len());
    for c in &mut cursors {
        heads.push(c.advance()?);
    }
    let mut stats = MergeStats::default();
    loop {
        // The smallest label set among the heads.
        let mut min: Option<&Labels> = None;
        for s in heads.iter().flatten() {
            if min.is_none_or(|m| s.labels.compare(m) == std::cmp::Ordering::Less) {
                min = Some(&s.labels);
            }
        }
        let Some(min) = min.cloned() else { break };
        let mut parts: Vec<(Ulid, Vec<ChunkMeta>)> = Vec::new();
        for (i, h) in heads.iter_mut().enumerate() {
            if h.as_ref().is_some_and(|s| s.labels == min) {
                if let Some(s) = h.take() {
                    let chunks = s.chunks().to_vec();
                    stats.chunk_bytes_read += chunks
                        .iter()
                        .map(|c| c.chunk.data.len() as u64)
                        .sum::<u64>();
                    parts.push((cursors[i].ulid(), chunks));
                }
                *h = cursors[i].advance()?;
            }
        }
        let chunks = if parts.len() == 1 {
            let (_, c) = parts.pop().unwrap_or_default();
            stats.chunks_copied += c.len() as u64;
            c
        } else {
            merge_parts(&min, parts, func, &mut stats)?
        };
        w.add_series(&min, &chunks)?;
        stats.series += 1;
        if stats.series.is_multiple_of(1024) && cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if stats.series.is_multiple_of(100_000) {
            info!(series = stats.series, "compaction progress");
        }
    }
    stats.samples = w.num_samples();
    let meta = w.finish(Some((mint, maxt)))?;
    Ok(meta.map(|m| (m, stats)))
}
