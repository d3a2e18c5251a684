//! Planning: which blocks of one compaction group to compact next (thanos
//! `pkg/compact/planner.go`).
//!
//! Everything here is pure and synchronous: the planner reads `meta.json`s and
//! returns what to do. Thanos' planners write no-compact marks into the bucket
//! as they go; here they return them as [`NoCompactDecision`]s for the caller
//! to write (before compacting) and to remember as excluded afterwards.
//!
//! - [`plan`] is `tsdbBasedPlanner`: Prometheus' `LeveledCompactor.Plan` without a
//!   file system, plus no-compact marks.
//! - [`plan_with_index_limit`] is `largeTotalIndexSizeFilter`
//!   (`--compact.block-max-index-size`) around [`plan`].
//! - [`plan_for_vertical_compaction`] is `verticalCompactionDownsampleFilter`
//!   around [`plan_with_index_limit`], the planner Thanos uses when vertical
//!   compaction is enabled.
//!
//! Ranges are Thanos' compaction levels, as the planner receives them: see
//! [`ranges_for_max_level`].

use std::collections::HashSet;

use strata_block::markers::{reason, NoCompactMark};
use strata_block::meta::INDEX_FILENAME;
use strata_block::Meta;
use ulid::Ulid;

use crate::error::{Error, Result};

const HOUR_MS: i64 = 60 * 60 * 1000;

/// Thanos' compaction levels in ms (`compactions` in `cmd/thanos/compact.go`):
/// level 0 = 1h, 1 = 2h, 2 = 8h, 3 = 2d, 4 = 14d.
///
/// This whole list is what Thanos' planner receives by default. Its first
/// entry is never a compaction target: [`plan`] groups blocks into the ranges
/// `ranges[1..]` (2h, 8h, 2d, 14d), and the tombstone rule uses
/// `ranges[len / 2]` (8h) as its minimum block length.
pub const DEFAULT_RANGES: [i64; 5] = [
    HOUR_MS,
    2 * HOUR_MS,
    8 * HOUR_MS,
    2 * 24 * HOUR_MS,
    14 * 24 * HOUR_MS,
];

/// Default of the hidden flag `--debug.max-compaction-level`: the last level of
/// [`DEFAULT_RANGES`] (4).
pub const DEFAULT_MAX_COMPACTION_LEVEL: usize = DEFAULT_RANGES.len() - 1;

/// Default of the hidden flag `--compact.block-max-index-size`: `64GB`, which
/// kingpin reads as base-2 bytes (64 GiB).
pub const DEFAULT_MAX_INDEX_BYTES: u64 = 64 << 30;

/// Details Thanos writes into a no-compact mark of the index size limit.
fn index_size_details(max_index_bytes: u64) -> String {
    format!(
        "largeTotalIndexSizeFilter: Total compacted block's index size could exceed: \
         {max_index_bytes} with this block. See https://github.com/thanos-io/thanos/issues/1424"
    )
}

/// Details Thanos writes into a no-compact mark of a downsampled block that
/// vertical compaction would need.
const DOWNSAMPLE_VERTICAL_DETAILS: &str = "verticalCompactionDownsampleFilter: Downsampled block, \
     see https://github.com/thanos-io/thanos/issues/6775";

/// The ranges the planner receives for `--debug.max-compaction-level`
/// (`compactionSet.levels` in `cmd/thanos/compact.go`): the first
/// `max_level + 1` entries of [`DEFAULT_RANGES`], in ms.
///
/// Level 4 (the default) gives all five, `[1h, 2h, 8h, 2d, 14d]`; level 1
/// gives `[1h, 2h]` (blocks grow to 2h at most); level 0 gives `[1h]`, with
/// which only overlapping blocks and the tombstone rule compact anything.
///
/// # Errors
///
/// [`Error::Config`] when `max_level` is past the last level (Thanos' message).
pub fn ranges_for_max_level(max_level: usize) -> Result<Vec<i64>> {
    DEFAULT_RANGES
        .get(..=max_level)
        .map(<[i64]>::to_vec)
        .ok_or_else(|| {
            Error::Config(format!(
                "level is bigger then default set of {}",
                DEFAULT_RANGES.len()
            ))
        })
}

/// Blocks to compact together next (`tsdbBasedPlanner.plan`); empty when there
/// is nothing to do.
///
/// `metas` are the blocks of one group, in any order (they are sorted by min
/// time first, stably); `ranges` are the compaction levels in ms, ascending
/// and positive (see [`ranges_for_max_level`]); `no_compact` holds the blocks
/// with a no-compact mark, which are never returned.
///
/// In order, the first rule that yields blocks wins:
/// 1. Overlapping blocks (for vertical compaction): among the unmarked blocks,
///    the newest included, the first run whose time ranges overlap.
/// 2. Leaving out the newest block (the most recent upload, kept as a window
///    for maintenance), for each range of `ranges[1..]`: the first aligned
///    range `[k·r, (k+1)·r)` holding 2 or more blocks, none with a failed
///    compaction, that either spans the full range or ends before the newest
///    block starts. Marked blocks are cut out of it without bridging gaps:
///    the first run of 2 or more unmarked neighbours is returned.
/// 3. Leaving out the newest block, and walking back from the newest while
///    blocks are at least `ranges[len / 2]` long: the first block with
///    `num_tombstones / (num_series + 1) > 0.05`, alone, to be rewritten.
///
/// The result is sorted by min time, in input order among equal min times.
pub fn plan(metas: &[Meta], ranges: &[i64], no_compact: &HashSet<Ulid>) -> Vec<Meta> {
    let sorted = by_min_time(metas);
    plan_sorted(&sorted, ranges, no_compact)
        .into_iter()
        .cloned()
        .collect()
}

/// The index size recorded in `meta.json` (`thanos.files`, entry `index`), or
/// `None` when it is absent or not positive; for that block the index-size
/// planners ask the bucket instead, as Thanos does.
///
/// When `index` is listed more than once, the last entry counts.
pub fn index_size_from_meta(meta: &Meta) -> Option<u64> {
    meta.thanos
        .files
        .iter()
        .rev()
        .find(|f| f.rel_path == INDEX_FILENAME)
        .and_then(|f| u64::try_from(f.size_bytes).ok())
        .filter(|&s| s > 0)
}

/// A block that must get a `no-compact-mark.json` before the plan it came with
/// is carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoCompactDecision {
    /// The block.
    pub id: Ulid,
    /// One of [`reason`]: [`reason::INDEX_SIZE_EXCEEDING`] or
    /// [`reason::DOWNSAMPLE_VERTICAL_COMPACTION`].
    pub reason: &'static str,
    /// Thanos' details text for the mark.
    pub details: String,
}

impl NoCompactDecision {
    /// The marker to write, stamped now.
    pub fn to_mark(&self) -> NoCompactMark {
        NoCompactMark::new(self.id, self.reason, self.details.clone())
    }
}

/// What a planner with side effects decided: the marks to write first, then
/// the blocks to compact.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanOutcome {
    /// Blocks to mark no-compact, each once, in the order decided. Write them
    /// all (Thanos skips a block whose mark already exists) before compacting,
    /// and exclude them from later plans. Never contains a block of
    /// [`Self::compact`].
    pub mark_no_compact: Vec<NoCompactDecision>,
    /// Blocks to compact together, sorted by min time; empty = nothing to do.
    pub compact: Vec<Meta>,
}

impl PlanOutcome {
    /// Nothing to mark and nothing to compact.
    pub fn is_empty(&self) -> bool {
        self.mark_no_compact.is_empty() && self.compact.is_empty()
    }
}

/// [`plan`], keeping the summed index size of the planned blocks below 85% of
/// `max_index_bytes` (Thanos' `largeTotalIndexSizeFilter`; 15% is headroom for
/// index bloat).
///
/// Summing the planned blocks' index sizes in plan order, as soon as the sum
/// reaches the threshold the biggest index seen so far (the first of equals)
/// is marked no-compact ([`reason::INDEX_SIZE_EXCEEDING`]) and the group is
/// planned again without it, until a plan fits. A single block whose index
/// alone reaches the threshold is marked too. The estimate is rough: it
/// assumes the indexes share nothing.
///
/// A block's index size comes from [`index_size_from_meta`]; when that is
/// `None`, from `bucket_index_size`, which should return the size of the
/// object `<ulid>/index` in the bucket (Thanos' `bkt.Attributes`). It is called
/// only for planned blocks.
///
/// # Errors
///
/// The first error of `bucket_index_size`; no outcome then (Thanos keeps the
/// marks it had already written: write the ones you need again next time).
pub fn plan_with_index_limit<E>(
    metas: &[Meta],
    ranges: &[i64],
    no_compact: &HashSet<Ulid>,
    max_index_bytes: u64,
    mut bucket_index_size: impl FnMut(&Meta) -> Result<u64, E>,
) -> Result<PlanOutcome, E> {
    let sorted = by_min_time(metas);
    let mut excluded = no_compact.clone();
    let mut marks = Vec::new();
    let planned = index_limited(
        &sorted,
        ranges,
        &mut excluded,
        max_index_bytes,
        &mut bucket_index_size,
        &mut marks,
    )?;
    Ok(PlanOutcome {
        mark_no_compact: marks,
        compact: planned.into_iter().cloned().collect(),
    })
}

/// [`plan_with_index_limit`], then, while the plan has overlapping blocks
/// (vertical compaction), marks its downsampled blocks no-compact
/// ([`reason::DOWNSAMPLE_VERTICAL_COMPACTION`]) and plans again (Thanos'
/// `verticalCompactionDownsampleFilter`, used with
/// `--compact.enable-vertical-compaction` or deduplication labels): Thanos
/// cannot merge overlapping downsampled blocks.
///
/// As in Thanos, each round plans with `no_compact` plus the blocks marked for
/// downsampling so far, but not those the index filter marked in earlier
/// rounds (Thanos' marks reach its exclusion list only at the next sync).
/// Such a block is listed once in [`PlanOutcome::mark_no_compact`], and not at
/// all when the final plan compacts it after all (Thanos would have written
/// a mark that the compaction then deletes with the block).
///
/// # Errors
///
/// As [`plan_with_index_limit`].
pub fn plan_for_vertical_compaction<E>(
    metas: &[Meta],
    ranges: &[i64],
    no_compact: &HashSet<Ulid>,
    max_index_bytes: u64,
    mut bucket_index_size: impl FnMut(&Meta) -> Result<u64, E>,
) -> Result<PlanOutcome, E> {
    let sorted = by_min_time(metas);
    let mut downsampled_marked: HashSet<Ulid> = HashSet::new();
    let mut marks = Vec::new();
    loop {
        let mut excluded = no_compact.clone();
        excluded.extend(downsampled_marked.iter().copied());
        let planned = index_limited(
            &sorted,
            ranges,
            &mut excluded,
            max_index_bytes,
            &mut bucket_index_size,
            &mut marks,
        )?;
        if select_overlapping(&planned).is_empty() {
            return Ok(outcome(marks, planned));
        }
        let mut marked = false;
        for m in planned
            .iter()
            .filter(|m| m.thanos.downsample.resolution != 0)
        {
            push_decision(
                &mut marks,
                NoCompactDecision {
                    id: m.block.ulid,
                    reason: reason::DOWNSAMPLE_VERTICAL_COMPACTION,
                    details: DOWNSAMPLE_VERTICAL_DETAILS.to_string(),
                },
            );
            // The plan never holds an excluded block, so this set grows each
            // round that marks something, and the loop ends.
            marked |= downsampled_marked.insert(m.block.ulid);
        }
        if !marked {
            return Ok(outcome(marks, planned));
        }
    }
}

/// Builds an outcome; the planned blocks never include a marked one, except a
/// block the index filter marked in an earlier round of the vertical filter
/// and planned again later (it is already marked: drop the decision).
fn outcome(mut marks: Vec<NoCompactDecision>, planned: Vec<&Meta>) -> PlanOutcome {
    marks.retain(|d| !planned.iter().any(|m| m.block.ulid == d.id));
    PlanOutcome {
        mark_no_compact: marks,
        compact: planned.into_iter().cloned().collect(),
    }
}

/// Appends `d` unless its block is already listed (a mark is written once).
fn push_decision(marks: &mut Vec<NoCompactDecision>, d: NoCompactDecision) {
    if !marks.iter().any(|m| m.id == d.id) {
        marks.push(d);
    }
}

/// `largeTotalIndexSizeFilter.plan` over sorted metas: adds what it marks to
/// `excluded` and `marks`.
fn index_limited<'a, E>(
    sorted: &[&'a Meta],
    ranges: &[i64],
    excluded: &mut HashSet<Ulid>,
    max_index_bytes: u64,
    bucket_index_size: &mut impl FnMut(&Meta) -> Result<u64, E>,
    marks: &mut Vec<NoCompactDecision>,
) -> Result<Vec<&'a Meta>, E> {
    // Go: int64(float64(limit) * 0.85).
    let threshold = (max_index_bytes as f64 * 0.85) as u64;
    'plan: loop {
        let planned = plan_sorted(sorted, ranges, excluded);
        let mut total: u64 = 0;
        // (position in the plan, index size) of the biggest index so far.
        let mut biggest: Option<(usize, u64)> = None;
        for (i, m) in planned.iter().enumerate() {
            let size = match index_size_from_meta(m) {
                Some(s) => s,
                None => bucket_index_size(m)?,
            };
            if !matches!(biggest, Some((_, b)) if b >= size) {
                biggest = Some((i, size));
            }
            total = total.saturating_add(size);
            if total >= threshold {
                let at = biggest.map_or(i, |(at, _)| at);
                let id = planned.get(at).map_or(m.block.ulid, |b| b.block.ulid);
                push_decision(
                    marks,
                    NoCompactDecision {
                        id,
                        reason: reason::INDEX_SIZE_EXCEEDING,
                        details: index_size_details(max_index_bytes),
                    },
                );
                // A planned block is never excluded, so this set grows each
                // round, and the loop ends.
                let new = excluded.insert(id);
                debug_assert!(new, "planned block {id} was excluded");
                continue 'plan;
            }
        }
        return Ok(planned);
    }
}

/// References to `metas`, stably sorted by min time.
fn by_min_time(metas: &[Meta]) -> Vec<&Meta> {
    let mut sorted: Vec<&Meta> = metas.iter().collect();
    sorted.sort_by_key(|m| m.block.min_time);
    sorted
}

/// `tsdbBasedPlanner.plan`: `metas` sorted by min time.
fn plan_sorted<'a>(
    metas: &[&'a Meta],
    ranges: &[i64],
    no_compact: &HashSet<Ulid>,
) -> Vec<&'a Meta> {
    let Some((newest, older)) = metas.split_last() else {
        return Vec::new();
    };
    let mut not_excluded: Vec<&Meta> = metas
        .iter()
        .copied()
        .filter(|m| !no_compact.contains(&m.block.ulid))
        .collect();

    let overlapping = select_overlapping(&not_excluded);
    if !overlapping.is_empty() {
        return overlapping;
    }

    // No overlapping blocks: compact the usual way, without the newest block
    // (the one just uploaded), which leaves a window of a full block size for
    // maintenance.
    if !no_compact.contains(&newest.block.ulid) {
        not_excluded.pop();
    }
    // The range selection sees the marked blocks too, so that excluding a
    // block neither bridges a gap nor changes the ranges picked.
    let selected = select_metas(ranges, no_compact, older);
    if !selected.is_empty() {
        return selected;
    }

    // Rewrite a big enough block with more than 5% tombstones.
    let Some(&min_len) = ranges.get(ranges.len() / 2) else {
        return Vec::new();
    };
    for m in not_excluded.iter().rev() {
        if m.block.max_time.wrapping_sub(m.block.min_time) < min_len {
            break;
        }
        let stats = &m.block.stats;
        if stats.num_tombstones as f64 / (stats.num_series as f64 + 1.0) > 0.05 {
            return vec![*m];
        }
    }
    Vec::new()
}

/// `selectMetas`: the first range of `ranges[1..]` worth compacting (see
/// [`plan`], rule 2); `metas` sorted by min time, newest block left out.
fn select_metas<'a>(
    ranges: &[i64],
    no_compact: &HashSet<Ulid>,
    metas: &[&'a Meta],
) -> Vec<&'a Meta> {
    let (Some(higher), Some(last)) = (ranges.get(1..), metas.last()) else {
        return Vec::new();
    };
    let high_time = last.block.min_time;
    // Go would divide by zero on a range of 0; such a range holds nothing.
    for &iv in higher.iter().filter(|&&iv| iv > 0) {
        for p in split_by_range(metas, iv) {
            // Do not select a range that has a block whose compaction failed.
            if p.iter().any(|m| m.block.compaction.failed) {
                continue;
            }
            let (Some(first), Some(last)) = (p.first(), p.last()) else {
                continue;
            };
            if p.len() < 2 {
                continue;
            }
            let (mint, maxt) = (first.block.min_time, last.block.max_time);
            // Pick the range if it spans the full range (maybe with gaps) or
            // ends before the newest block starts: otherwise a block of the
            // same size could still fit in after the next upload.
            if maxt.wrapping_sub(mint) != iv && maxt > high_time {
                continue;
            }
            // Cut out marked blocks without bridging the gaps they leave.
            let mut run_start = 0;
            for (i, m) in p.iter().enumerate() {
                if !no_compact.contains(&m.block.ulid) {
                    continue;
                }
                if let Some(run) = p.get(run_start..i).filter(|r| r.len() > 1) {
                    return run.to_vec();
                }
                run_start = i + 1;
            }
            if let Some(run) = p.get(run_start..).filter(|r| r.len() > 1) {
                return run.to_vec();
            }
        }
    }
    Vec::new()
}

/// `selectOverlappingMetas`: the first run of blocks whose time ranges overlap,
/// in input order (sorted by min time); empty when none overlap.
fn select_overlapping<'a>(metas: &[&'a Meta]) -> Vec<&'a Meta> {
    let mut out: Vec<&Meta> = Vec::new();
    let Some(first) = metas.first() else {
        return out;
    };
    let mut global_maxt = first.block.max_time;
    for pair in metas.windows(2) {
        let [prev, m] = pair else { continue };
        if m.block.min_time < global_maxt {
            if out.is_empty() {
                // The first overlap: the block before belongs to it too.
                out.push(*prev);
            }
            out.push(*m);
        } else if !out.is_empty() {
            break;
        }
        global_maxt = global_maxt.max(m.block.max_time);
    }
    out
}

/// `splitByRange`: groups `metas` (sorted by min time) by the aligned range of
/// length `tr` (> 0) that holds them whole, the ranges starting at 0. Blocks
/// that fit no single range are skipped.
///
/// E.g. blocks `[0-10, 10-20, 50-60, 90-100]` with `tr = 30` give
/// `[0-10, 10-20], [50-60], [90-100]`.
fn split_by_range<'m, 'a>(metas: &'m [&'a Meta], tr: i64) -> Vec<&'m [&'a Meta]> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(m) = metas.get(i) {
        // Start of the aligned range of length tr that holds the block's start
        // (Go's integer arithmetic, wrapping).
        let mint = m.block.min_time;
        let t0 = if mint >= 0 {
            tr.wrapping_mul(mint / tr)
        } else {
            tr.wrapping_mul(mint.wrapping_sub(tr).wrapping_add(1) / tr)
        };
        let end = t0.wrapping_add(tr);
        // Skip a block that does not fit in the range: misaligned, or a
        // multiple of it.
        if m.block.max_time > end {
            i += 1;
            continue;
        }
        let start = i;
        while metas.get(i).is_some_and(|m| m.block.max_time <= end) {
            i += 1;
        }
        if let Some(group) = metas.get(start..i) {
            out.push(group);
        }
    }
    out
}

#[cfg(test)]
mod tests;
