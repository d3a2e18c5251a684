//! Index health checks and the safe repair of a block (thanos
//! `pkg/block/index.go`: `GatherIndexHealthStats`, `HealthStats.AnyErr`,
//! `Repair`), used by `strata tools bucket verify`.
//!
//! The check walks every series of the index and counts chunks outside the
//! block's time range, chunks out of order within a series, exact duplicates
//! and labels out of order. The repair writes a new block that keeps every
//! chunk except the ones that can be dropped without losing data: chunks
//! completely outside the block's range (never read), chunks starting exactly
//! at the block's end (Prometheus tsdb issue 347; they are also in the next
//! block) and byte-identical duplicates of the previous chunk. Any other
//! overlap fails the repair: nothing is guessed.

use std::path::Path;
use std::sync::Arc;

use strata_block::meta::source;
use strata_block::Meta;
use strata_storage::ChunkMeta;
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use strata_tsdb::index::IndexReader;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// What [`gather_index_health`] found (Thanos' `HealthStats`, the counters
/// that decide errors).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthStats {
    /// Series in the index.
    pub total_series: u64,
    /// Chunks in the index.
    pub total_chunks: u64,
    /// Series with at least one out-of-order chunk.
    pub out_of_order_series: u64,
    /// Chunks that start before the previous one ends (not exact duplicates).
    pub out_of_order_chunks: u64,
    /// Chunks with the same time range as the previous one.
    pub duplicated_chunks: u64,
    /// Chunks not inside the block's `[minTime, maxTime]`.
    pub outside_chunks: u64,
    /// Of those, chunks entirely outside it.
    pub complete_outside_chunks: u64,
    /// Of those, chunks that start exactly at the block's maxTime (tsdb#347).
    pub issue347_outside_chunks: u64,
    /// Series whose labels are not sorted by name.
    pub out_of_order_labels: u64,
}

impl HealthStats {
    /// Problems only a manual procedure can fix (Thanos' `CriticalErr`).
    pub fn critical_err(&self) -> Option<String> {
        let mut msgs = Vec::new();
        let n = self
            .outside_chunks
            .saturating_sub(self.complete_outside_chunks + self.issue347_outside_chunks);
        if n > 0 {
            msgs.push(format!(
                "found {n} chunks non-completely outside the block time range"
            ));
        }
        if self.complete_outside_chunks > 0 {
            msgs.push(format!(
                "found {} chunks completely outside the block time range",
                self.complete_outside_chunks
            ));
        }
        (!msgs.is_empty()).then(|| msgs.join(", "))
    }

    /// Every problem found, in Thanos' wording (`AnyErr`); `None` when healthy.
    pub fn any_err(&self) -> Option<String> {
        let mut msgs = Vec::new();
        if let Some(c) = self.critical_err() {
            msgs.push(c);
        }
        if self.issue347_outside_chunks > 0 {
            msgs.push(format!(
                "found {} chunks outside the block time range introduced by https://github.com/prometheus/tsdb/issues/347",
                self.issue347_outside_chunks
            ));
        }
        if self.out_of_order_labels > 0 {
            msgs.push(format!(
                "index contains {} postings with out of order labels",
                self.out_of_order_labels
            ));
        }
        if self.out_of_order_chunks > 0 {
            let series = self.out_of_order_series.max(1) as f64;
            msgs.push(format!(
                "{}/{} series have an average of {:.3} out-of-order chunks: {:.3} of these are exact duplicates (in terms of data and time range)",
                self.out_of_order_series,
                self.total_series,
                self.out_of_order_chunks as f64 / series,
                self.duplicated_chunks as f64 / self.out_of_order_chunks as f64
            ));
        }
        (!msgs.is_empty()).then(|| msgs.join(", "))
    }

    /// Whether [`repair_block`] removes every problem counted here.
    pub fn repairable(&self) -> bool {
        self.out_of_order_chunks == 0
            && self.out_of_order_labels == 0
            && self.outside_chunks == self.complete_outside_chunks + self.issue347_outside_chunks
    }
}

/// Walks every series of the index at `index_path` and counts the problems
/// against the block range `[min_time, max_time]`. An index that cannot be
/// decoded (or series out of order, empty label sets, series without chunks)
/// is an error, as in Thanos.
pub fn gather_index_health(index_path: &Path, min_time: i64, max_time: i64) -> Result<HealthStats> {
    let index = IndexReader::open(index_path)?;
    let mut stats = HealthStats::default();
    let mut postings = index.all_postings()?;
    let mut prev: Option<strata_model::Labels> = None;
    while let Some(r) = postings.next() {
        let e = index.series(r)?;
        stats.total_series += 1;
        if e.labels.is_empty() {
            return Err(Error::Config(format!(
                "empty label set detected for series {r}"
            )));
        }
        if let Some(p) = &prev {
            if p >= &e.labels {
                return Err(Error::Config(format!(
                    "series {} out of order; previous {p}",
                    e.labels
                )));
            }
        }
        if !e
            .labels
            .as_slice()
            .windows(2)
            .all(|w| w[0].name < w[1].name)
        {
            stats.out_of_order_labels += 1;
        }
        if e.chunks.is_empty() {
            return Err(Error::Config(format!("empty chunks for series {r}")));
        }
        let mut ooo = 0;
        for (i, c) in e.chunks.iter().enumerate() {
            stats.total_chunks += 1;
            if c.min_time < min_time || c.max_time > max_time {
                stats.outside_chunks += 1;
                if c.min_time > max_time || c.max_time < min_time {
                    stats.complete_outside_chunks += 1;
                } else if c.min_time == max_time {
                    stats.issue347_outside_chunks += 1;
                }
            }
            let Some(p) = i.checked_sub(1).and_then(|j| e.chunks.get(j)) else {
                continue;
            };
            if c.min_time > p.max_time {
                continue;
            }
            if c.min_time == p.min_time && c.max_time == p.max_time {
                stats.duplicated_chunks += 1;
                continue;
            }
            ooo += 1;
        }
        if ooo > 0 {
            stats.out_of_order_series += 1;
            stats.out_of_order_chunks += ooo;
        }
        prev = Some(e.labels);
    }
    Ok(stats)
}

/// Drops what can be dropped safely from one series' chunks (Thanos'
/// `sanitizeChunkSequence` with the three ignore functions): complete
/// outsiders, tsdb#347 outsiders and exact duplicates. Any other overlap is
/// an error.
fn sanitize(mut chunks: Vec<ChunkMeta>, mint: i64, maxt: i64) -> Result<Vec<ChunkMeta>> {
    chunks.sort_by_key(|c| c.min_time);
    let mut out: Vec<ChunkMeta> = Vec::with_capacity(chunks.len());
    for c in chunks {
        if c.min_time > maxt || c.max_time < mint || c.min_time == maxt {
            continue;
        }
        if let Some(last) = out.last() {
            if c.min_time <= last.max_time {
                if c.min_time != last.min_time
                    || c.max_time != last.max_time
                    || c.chunk.data != last.chunk.data
                {
                    return Err(Error::Config(format!(
                        "non-sequential chunks not equal: [{}, {}] and [{}, {}]",
                        last.min_time, last.max_time, c.min_time, c.max_time
                    )));
                }
                continue;
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Writes a repaired copy of `block` (described by `meta`) under `out_parent`
/// (Thanos' `block.Repair`): same labels, range and compaction section, source
/// `bucket.repair`, stats recounted. Downsampled blocks are refused. Returns
/// the new block's meta (also written to its `meta.json`).
pub fn repair_block(block: &Arc<Block>, meta: &Meta, out_parent: &Path) -> Result<Meta> {
    let id = meta.block.ulid;
    if meta.thanos.downsample.resolution > 0 {
        return Err(Error::block(id, "cannot repair downsampled block"));
    }
    let (mint, maxt) = (meta.block.min_time, meta.block.max_time);
    let index = block.index();
    let chunk_reader = block.chunk_reader();
    let mut w = BlockWriter::create(
        out_parent,
        BlockWriterOptions {
            level: meta.block.compaction.level,
            sources: meta.block.compaction.sources.clone(),
            parents: meta.block.compaction.parents.clone(),
            ..Default::default()
        },
    )?;
    let new_id = w.ulid();
    let mut symbols = Vec::with_capacity(index.num_symbols());
    for s in index.symbols() {
        symbols.push(s?);
    }
    w.add_symbols(symbols.iter().copied())?;
    let mut postings = index.all_postings()?;
    let mut dropped = 0usize;
    while let Some(r) = postings.next() {
        let e = index.series(r)?;
        let mut chunks = Vec::with_capacity(e.chunks.len());
        for c in &e.chunks {
            chunks.push(ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk: chunk_reader.chunk(c.chunk_ref)?,
            });
        }
        let n = chunks.len();
        let kept = sanitize(chunks, mint, maxt)
            .map_err(|e2| Error::block(id, format!("series {}: {e2}", e.labels)))?;
        dropped += n - kept.len();
        if kept.is_empty() {
            warn!(block = %id, series = %e.labels, "repair: every chunk of the series was dropped");
        }
        w.add_series(&e.labels, &kept)?;
    }
    let written = w
        .finish(Some((mint, maxt)))?
        .ok_or_else(|| Error::block(id, "repair left no series"))?;
    let mut new_meta = meta.clone();
    new_meta.block.ulid = new_id;
    new_meta.block.stats = written.stats;
    new_meta.thanos.source = source::BUCKET_REPAIR.into();
    new_meta.thanos.files = Vec::new();
    let dir = out_parent.join(new_id.to_string());
    new_meta.thanos.segment_files = strata_block::segment_files(&dir)?;
    new_meta.write_to_dir(&dir)?;
    info!(from = %id, to = %new_id, dropped_chunks = dropped, "repaired block");
    Ok(new_meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_chunkenc::{RawChunk, XorChunk};

    fn chunk(ts: &[i64]) -> ChunkMeta {
        let mut a = XorChunk::new().appender();
        for &t in ts {
            a.append(t, t as f64).unwrap();
        }
        ChunkMeta {
            min_time: ts[0],
            max_time: *ts.last().unwrap(),
            chunk: RawChunk::from_xor(a.finish()),
        }
    }

    #[test]
    fn sanitize_drops_only_safe_chunks() {
        let out = sanitize(
            vec![
                chunk(&[1, 2]),
                chunk(&[1, 2]),
                chunk(&[50, 60]),
                chunk(&[100, 110]),
                chunk(&[200, 210]),
            ],
            0,
            100,
        )
        .unwrap();
        assert_eq!(out.len(), 2, "duplicate and issue-347 chunk dropped");
        assert!(sanitize(vec![chunk(&[1, 5]), chunk(&[3, 7])], 0, 100).is_err());
        let s = HealthStats {
            outside_chunks: 1,
            complete_outside_chunks: 1,
            ..Default::default()
        };
        assert!(s.repairable());
        assert_eq!(
            s.any_err().unwrap(),
            "found 1 chunks completely outside the block time range"
        );
    }
}
