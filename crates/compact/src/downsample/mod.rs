//! Downsampling, compatible with Thanos' `pkg/compact/downsample` down to the
//! bytes: raw blocks become 5m blocks and 5m blocks become 1h blocks of
//! aggregate chunks (count, sum, min, max, counter). A Thanos store gateway
//! reads the blocks written here and Strata reads Thanos'.
//!
//! [`downsample_series`] turns one series' chunks into aggregate chunks;
//! [`downsample_block`] streams a whole block through it, one series at a
//! time, into a new block with the source's time range and compaction section.

mod aggregate;

use std::path::Path;
use std::sync::Arc;

use strata_block::meta::source;
use strata_block::Meta;
use strata_chunkenc::{AggrChunk, Encoding, XorIterator};
use strata_model::{Labels, Sample};
use strata_storage::ChunkMeta;
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use tracing::{info, warn};
use ulid::Ulid;

pub use aggregate::{current_window, downsample_aggr, downsample_raw, target_chunk_count};

use crate::error::{Error, Result};

/// Raw data.
pub const RES_RAW: i64 = 0;
/// 5 minutes, ms.
pub const RES_5M: i64 = 5 * 60 * 1000;
/// 1 hour, ms.
pub const RES_1H: i64 = 60 * 60 * 1000;
/// A raw block is downsampled to 5m once it spans this much (40h), ms.
pub const RES_5M_DOWNSAMPLE_RANGE: i64 = 40 * 60 * 60 * 1000;
/// A 5m block is downsampled to 1h once it spans this much (10 days), ms.
pub const RES_1H_DOWNSAMPLE_RANGE: i64 = 10 * 24 * 60 * 60 * 1000;

/// Thanos' name of a resolution (`0s`, `5m0s`, `1h0m0s`), used in metric labels.
pub fn resolution_string(res: i64) -> String {
    match res {
        0 => "0s".into(),
        RES_5M => "5m0s".into(),
        RES_1H => "1h0m0s".into(),
        ms => format!("{}ms", ms),
    }
}

fn describe_chunks(chunks: &[ChunkMeta]) -> String {
    let parts: Vec<String> = chunks
        .iter()
        .map(|c| format!("[{}, {}]", c.min_time, c.max_time))
        .collect();
    parts.join(" ")
}

/// Downsamples one series' chunks (in time order, non-overlapping) from
/// `in_res` to `out_res`. Raw chunks must be XOR; in a downsampled block,
/// stray XOR chunks are first turned into 5m aggregates and empty ones are
/// skipped, as Thanos does. `ulid` and `labels` only name the series in errors.
pub fn downsample_series(
    ulid: Ulid,
    labels: &Labels,
    chunks: &[ChunkMeta],
    in_res: i64,
    out_res: i64,
    buf: &mut Vec<Sample>,
) -> Result<Vec<ChunkMeta>> {
    if chunks.windows(2).any(|w| w[0].max_time >= w[1].min_time) {
        return Err(Error::OverlappingChunks {
            ulid: ulid.to_string(),
            series: labels.to_string(),
            chunks: describe_chunks(chunks),
        });
    }
    buf.clear();
    if in_res == RES_RAW {
        for c in chunks {
            match c.chunk.encoding {
                Encoding::Xor => {
                    aggregate::expand_xor(&mut XorIterator::new(&c.chunk.data), buf)?;
                }
                e => {
                    return Err(Error::block(
                        ulid,
                        format!("series {labels}: cannot downsample {e} chunks of a raw block"),
                    ))
                }
            }
        }
        return downsample_raw(buf, out_res);
    }

    // Fix-ups first: aggregate chunks stay, stray XOR chunks become 5m aggregates.
    let mut fixed: Vec<ChunkMeta> = Vec::with_capacity(chunks.len());
    for c in chunks {
        match c.chunk.encoding {
            Encoding::Aggr => fixed.push(c.clone()),
            Encoding::Xor => {
                if strata_chunkenc::xor_num_samples(&c.chunk.data) == 0 {
                    warn!(block = %ulid, series = %labels, "expected a downsampled aggregate chunk, found an empty XOR chunk; skipping it");
                    continue;
                }
                buf.clear();
                aggregate::expand_xor(&mut XorIterator::new(&c.chunk.data), buf)?;
                fixed.extend(downsample_raw(buf, RES_5M)?);
            }
            e => {
                return Err(Error::block(
                    ulid,
                    format!("series {labels}: cannot downsample {e} chunks"),
                ))
            }
        }
    }
    let (Some(first), Some(last)) = (fixed.first(), fixed.last()) else {
        return Ok(Vec::new());
    };
    let (mint, maxt) = (first.min_time, last.max_time);
    let aggrs: Vec<AggrChunk<'_>> = fixed
        .iter()
        .map(|c| AggrChunk::new(&c.chunk.data))
        .collect();
    downsample_aggr(&aggrs, buf, mint, maxt, in_res, out_res)
}

/// Downsamples `block` (described by `meta`) to `resolution` into a new block
/// directory under `dir`, one series at a time. The new block keeps the
/// source's time range, compaction section and external labels; its resolution
/// is `resolution` and its source `compactor`. Returns the new block's meta
/// (also written to its `meta.json`).
pub fn downsample_block(
    block: &Arc<Block>,
    meta: &Meta,
    dir: &Path,
    resolution: i64,
) -> Result<Meta> {
    let in_res = meta.thanos.downsample.resolution;
    let id = meta.block.ulid;
    if in_res >= resolution {
        return Err(Error::block(
            id,
            format!("target resolution {resolution} not lower than existing one {in_res}"),
        ));
    }
    let index = block.index();
    let chunk_reader = block.chunk_reader();
    let mut w = BlockWriter::create(dir, BlockWriterOptions::default())?;
    let new_id = w.ulid();
    let mut symbols = Vec::with_capacity(index.num_symbols());
    for s in index.symbols() {
        symbols.push(s?);
    }
    w.add_symbols(symbols.iter().copied())?;
    let mut postings = index.all_postings()?;
    let mut buf = Vec::new();
    let mut chunks = Vec::new();
    let mut n = 0u64;
    while let Some(r) = postings.next() {
        let entry = index.series(r)?;
        chunks.clear();
        for c in &entry.chunks {
            chunks.push(ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk: chunk_reader.chunk(c.chunk_ref)?,
            });
        }
        let out = downsample_series(id, &entry.labels, &chunks, in_res, resolution, &mut buf)?;
        if out.is_empty() {
            warn!(block = %id, series = %entry.labels, "empty chunks happened, skip series");
            continue;
        }
        w.add_series(&entry.labels, &out)?;
        n += 1;
        if n.is_multiple_of(100_000) {
            info!(block = %id, series = n, "downsampling progress");
        }
    }
    let written = w.finish(Some((meta.block.min_time, meta.block.max_time)))?;
    let Some(written) = written else {
        return Err(Error::block(id, "downsampling produced no series"));
    };
    let mut new_meta = meta.clone();
    new_meta.block.ulid = new_id;
    new_meta.block.version = 1;
    new_meta.block.stats.num_series = written.stats.num_series;
    new_meta.block.stats.num_chunks = written.stats.num_chunks;
    new_meta.block.stats.num_samples = written.stats.num_samples;
    new_meta.thanos.downsample.resolution = resolution;
    new_meta.thanos.source = source::COMPACTOR.into();
    let new_dir = dir.join(new_id.to_string());
    new_meta.thanos.segment_files = strata_block::segment_files(&new_dir)?;
    new_meta.thanos.files = Vec::new();
    new_meta.write_to_dir(&new_dir)?;
    info!(from = %id, to = %new_id, resolution, series = n, "downsampled block");
    Ok(new_meta)
}
