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
