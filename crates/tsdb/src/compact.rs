//! Merging blocks into one (the merge step of Prometheus' `LeveledCompactor`):
//! overlapping blocks are merged vertically (identical samples deduplicated),
//! chunks re-cut at about 120 samples where inputs overlap, tombstones applied.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use strata_storage::{merge::merge_streams, Frame, SelectRequest};
use tracing::info;

use crate::block::{Block, BlockWriter, BlockWriterOptions};
use crate::error::{Error, Result};
use crate::meta::{BlockDesc, BlockMeta};

/// Merges `blocks` into one new block under `dest`; returns its meta, or `None` if
/// the result has no samples (all deleted). Memory is bounded by one series at a
/// time plus the symbol set.
pub async fn compact_blocks(dest: &Path, blocks: &[Arc<Block>]) -> Result<Option<BlockMeta>> {
    if blocks.is_empty() {
        return Err(Error::InvalidWrite(
            "compaction needs at least one block".into(),
        ));
    }
    let mut symbols: BTreeSet<String> = BTreeSet::new();
    for b in blocks {
        for s in b.index().symbols() {
            symbols.insert(s?.to_string());
        }
    }
    let mint = blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let maxt = blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let level = blocks
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(0)
        + 1;
    let mut sources: Vec<_> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.sources.iter().copied())
        .collect();
    sources.sort();
    sources.dedup();
    let parents = blocks
        .iter()
        .map(|b| BlockDesc {
            ulid: b.ulid(),
            min_time: b.meta().min_time,
            max_time: b.meta().max_time,
        })
        .collect();
    let mut w = BlockWriter::create(
        dest,
        BlockWriterOptions {
            level,
            sources,
            parents,
            ..Default::default()
        },
    )?;
    w.add_symbols(symbols.iter().map(String::as_str))?;

    let req = SelectRequest::new(mint, maxt - 1, vec![]);
    let mut streams = Vec::new();
    for b in blocks {
        streams.push(b.select(&req)?);
    }
    let mut merged = merge_streams(streams);
    let mut n = 0u64;
    while let Some(f) = merged.next().await {
        match f.map_err(|e| Error::Input(format!("reading input blocks: {e}")))? {
            Frame::Series(s) => {
                w.add_series(&s.labels, s.chunks())?;
                n += 1;
                if n.is_multiple_of(100_000) {
                    info!(series = n, "compaction progress");
                }
            }
            Frame::Warning(_) => {}
        }
    }
    let meta = w.finish(Some((mint, maxt)))?;
    if let Some(m) = &meta {
        info!(block = %m.ulid, series = m.stats.num_series, samples = m.stats.num_samples, "compacted blocks");
    }
    Ok(meta)
}

/// The block ranges of a leveled compactor: `min · 3ⁿ` up to `max` (Prometheus'
/// `ExponentialBlockRanges(min, 10, 3)` cut at `--storage.tsdb.max-block-duration`).
pub fn block_ranges(min_ms: i64, max_ms: i64) -> Vec<i64> {
    crate::exponential_block_ranges(min_ms, 10, 3)
        .into_iter()
        .filter(|r| *r <= max_ms.max(min_ms))
        .collect()
}

/// Picks blocks to compact next, like Prometheus' `LeveledCompactor.Plan`: first any
/// overlapping blocks (vertical compaction); otherwise, leaving out the newest block,
/// the first group of blocks that fills an aligned range of the next level (or lies
/// before the newest block). `blocks` in any order; the result is sorted by min time
/// and empty when there is nothing to do.
pub fn plan(blocks: &[Arc<Block>], ranges: &[i64]) -> Vec<Arc<Block>> {
    let mut ds: Vec<Arc<Block>> = blocks.to_vec();
    ds.sort_by_key(|b| b.meta().min_time);
    let overlapping = select_overlapping(&ds);
    if !overlapping.is_empty() {
        return overlapping;
    }
    if ds.is_empty() {
        return Vec::new();
    }
    ds.pop();
    select_dirs(&ds, ranges)
}

fn select_overlapping(ds: &[Arc<Block>]) -> Vec<Arc<Block>> {
    let mut out: Vec<Arc<Block>> = Vec::new();
    let Some(first) = ds.first() else {
        return out;
    };
    let mut global_max = first.meta().max_time;
    for (i, d) in ds.iter().enumerate().skip(1) {
        if d.meta().min_time < global_max {
            if out.is_empty() {
                out.push(ds[i - 1].clone());
            }
            out.push(d.clone());
        } else if !out.is_empty() {
            break;
        }
        global_max = global_max.max(d.meta().max_time);
    }
    out
}

fn select_dirs(ds: &[Arc<Block>], ranges: &[i64]) -> Vec<Arc<Block>> {
    if ranges.len() < 2 || ds.is_empty() {
        return Vec::new();
    }
    let high_time = ds[ds.len() - 1].meta().min_time;
    for &iv in &ranges[1..] {
        for p in split_by_range(ds, iv) {
            if p.iter().any(|b| b.meta().compaction.failed) {
                continue;
            }
            let mint = p[0].meta().min_time;
            let maxt = p[p.len() - 1].meta().max_time;
            if (maxt - mint == iv || maxt <= high_time) && p.len() > 1 {
                return p;
            }
        }
    }
    Vec::new()
}

fn split_by_range(ds: &[Arc<Block>], tr: i64) -> Vec<Vec<Arc<Block>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ds.len() {
        let m = ds[i].meta();
        let t0 = if m.min_time >= 0 {
            tr * (m.min_time / tr)
        } else {
            tr * ((m.min_time - tr + 1) / tr)
        };
        if m.max_time > t0 + tr {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < ds.len() && ds[i].meta().max_time <= t0 + tr {
            group.push(ds[i].clone());
            i += 1;
        }
        if !group.is_empty() {
            out.push(group);
        }
    }
    out
}
