//! Rewriting one block with series deleted or relabelled (thanos
//! `pkg/compactv2`: `WithDeletionModifier`, `WithRelabelModifier` and the
//! change log), used by `strata tools bucket rewrite`.
//!
//! Relabelling is applied first, then deletions, on the relabelled labels, as
//! Thanos chains the modifiers. A deletion request whose matchers all match
//! (a matcher on a missing label never matches) deletes the whole series, or
//! only the samples inside its intervals. Series that relabelling merges into
//! one label set have their chunks merged (overlaps re-encoded, the first
//! sample of a timestamp wins). Tombstones of the source block are applied.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use strata_chunkenc::{Encoding, RawChunk, SampleIterator, XorChunk, XorIterator};
use strata_model::relabel::{relabel, RelabelConfig};
use strata_model::{Labels, Matcher};
use strata_storage::ChunkMeta;
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use strata_tsdb::meta::BlockMeta;
use strata_tsdb::tombstones::Interval;
use tracing::info;

use crate::error::{Error, Result};

/// One entry of `--rewrite.to-delete-config` (Thanos' `DeletionRequest`).
#[derive(Clone, Debug, Default)]
pub struct DeletionRequest {
    /// Every matcher must match the series.
    pub matchers: Vec<Matcher>,
    /// Closed ranges of samples to delete; empty: the whole series.
    pub intervals: Vec<Interval>,
}

/// One line of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Samples of a series removed: the whole series' span, or the requested
    /// intervals.
    Deleted {
        /// The series (after relabelling).
        labels: Labels,
        /// What was removed.
        intervals: Vec<Interval>,
    },
    /// A series renamed by relabelling.
    Relabelled {
        /// Before.
        old: Labels,
        /// After.
        new: Labels,
    },
}

impl fmt::Display for Change {
    /// Thanos' change log lines: `Deleted {a="b"} [{1 2}]` and
    /// `Relabelled {a="b"} {a="c"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Deleted { labels, intervals } => {
                let ivs: Vec<String> = intervals
                    .iter()
                    .map(|i| format!("{{{} {}}}", i.min_time, i.max_time))
                    .collect();
                write!(f, "Deleted {labels} [{}]", ivs.join(" "))
            }
            Change::Relabelled { old, new } => write!(f, "Relabelled {old} {new}"),
        }
    }
}

/// What [`rewrite_block`] did.
#[derive(Clone, Debug, Default)]
pub struct RewriteOutcome {
    /// The change log.
    pub changes: Vec<Change>,
    /// The new block's meta; `None` in a dry run or when no series is left.
    pub meta: Option<BlockMeta>,
    /// Series written (or that would be written in a dry run).
    pub series: u64,
}

/// How to rewrite.
#[derive(Clone, Debug, Default)]
pub struct RewriteOptions {
    /// Deletion requests.
    pub deletions: Vec<DeletionRequest>,
    /// Relabel configs applied to every series' labels.
    pub relabel: Vec<RelabelConfig>,
    /// Only compute the change log; write nothing.
    pub dry_run: bool,
}

fn request_matches(req: &DeletionRequest, l: &Labels) -> bool {
    req.matchers.iter().all(|m| {
        l.get(&m.name)
            .is_some_and(|v| !v.is_empty() && m.matches(v))
    })
}

/// Removes the samples of `c` inside `ivs`; `None` when nothing is left.
fn delete_samples(c: ChunkMeta, ivs: &[Interval]) -> Result<Option<ChunkMeta>> {
    if !ivs
        .iter()
        .any(|iv| iv.min_time <= c.max_time && c.min_time <= iv.max_time)
    {
        return Ok(Some(c));
    }
    if ivs
        .iter()
        .any(|iv| iv.min_time <= c.min_time && c.max_time <= iv.max_time)
    {
        return Ok(None);
    }
    if c.chunk.encoding != Encoding::Xor {
        return Err(Error::Config(format!(
            "cannot delete part of a {} chunk [{}, {}]: only whole chunks of downsampled blocks can be deleted",
            c.chunk.encoding.name(),
            c.min_time,
            c.max_time
        )));
    }
    let mut it = XorIterator::new(&c.chunk.data);
    let mut a = XorChunk::new().appender();
    let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
    while let Some((t, v)) = it.next()? {
        if ivs.iter().any(|iv| iv.contains(t)) {
            continue;
        }
        a.append(t, v)?;
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

/// A series to write: its new labels, the source refs and intervals to delete.
struct Planned {
    labels: Labels,
    refs: Vec<(u32, Vec<Interval>)>,
}

/// Rewrites `block` into a new block under `out_parent` (unless
/// `opts.dry_run`), keeping its time range and compaction level; the caller
/// fills in the Thanos section. `progress` is called with the number of
/// source series processed every 10 000 series.
pub fn rewrite_block(
    block: &Block,
    out_parent: &Path,
    opts: &RewriteOptions,
    mut progress: impl FnMut(u64),
) -> Result<RewriteOutcome> {
    let index = block.index();
    let span = |r: u32| -> Result<Option<Interval>> {
        let e = index.series(r)?;
        Ok(match (e.chunks.first(), e.chunks.last()) {
            (Some(a), Some(b)) => Some(Interval {
                min_time: a.min_time,
                max_time: b.max_time,
            }),
            _ => None,
        })
    };
    let mut out = RewriteOutcome::default();
    let mut planned: Vec<Planned> = Vec::new();
    let mut postings = index.all_postings()?;
    let mut n = 0u64;
    while let Some(r) = postings.next() {
        n += 1;
        if n.is_multiple_of(10_000) {
            progress(n);
        }
        let old = index.series(r)?.labels;
        let new = if opts.relabel.is_empty() {
            Some(old.clone())
        } else {
            relabel(&old, &opts.relabel).filter(|l| !l.is_empty())
        };
        let Some(new) = new else {
            out.changes.push(Change::Deleted {
                labels: old,
                intervals: span(r)?.into_iter().collect(),
            });
            continue;
        };
        let mut ivs: Vec<Interval> = Vec::new();
        let mut whole = false;
        for req in opts.deletions.iter().filter(|d| request_matches(d, &new)) {
            if req.intervals.is_empty() {
                whole = true;
                break;
            }
            ivs.extend(req.intervals.iter().copied());
        }
        if whole {
            out.changes.push(Change::Deleted {
                labels: new,
                intervals: span(r)?.into_iter().collect(),
            });
            continue;
        }
        if new != old {
            out.changes.push(Change::Relabelled {
                old,
                new: new.clone(),
            });
        }
        if !ivs.is_empty() {
            out.changes.push(Change::Deleted {
                labels: new.clone(),
                intervals: ivs.clone(),
            });
        }
        planned.push(Planned {
            labels: new,
            refs: vec![(r, ivs)],
        });
    }
    planned.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut merged: Vec<Planned> = Vec::with_capacity(planned.len());
    for p in planned {
        match merged.last_mut() {
            Some(last) if last.labels == p.labels => last.refs.extend(p.refs),
            _ => merged.push(p),
        }
    }
    if opts.dry_run {
        out.series = merged.len() as u64;
        return Ok(out);
    }
    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    for p in &merged {
        for l in p.labels.iter() {
            symbols.insert(&l.name);
            symbols.insert(&l.value);
        }
    }
    let meta = block.meta();
    let mut w = BlockWriter::create(
        out_parent,
        BlockWriterOptions {
            level: meta.compaction.level,
            sources: meta.compaction.sources.clone(),
            parents: meta.compaction.parents.clone(),
            ..Default::default()
        },
    )?;
    w.add_symbols(symbols.iter().copied())?;
    for p in &merged {
        let mut chunks = Vec::new();
        for (r, ivs) in &p.refs {
            let Some(s) = block.read_series(*r, i64::MIN, i64::MAX, false)? else {
                continue;
            };
            for c in s.chunks() {
                if let Some(c) = delete_samples(c.clone(), ivs)? {
                    chunks.push(c);
                }
            }
        }
        let chunks = if p.refs.len() > 1 {
            strata_storage::merge::merge_chunks(chunks)?
        } else {
            chunks
        };
        if chunks.is_empty() {
            continue;
        }
        w.add_series(&p.labels, &chunks)?;
        out.series += 1;
    }
    out.meta = w.finish(Some((meta.min_time, meta.max_time)))?;
    info!(block = %meta.ulid, series = out.series, changes = out.changes.len(), "rewrote block");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ts: &[i64]) -> ChunkMeta {
        let mut a = XorChunk::new().appender();
        for &t in ts {
            a.append(t, 1.0).unwrap();
        }
        ChunkMeta {
            min_time: ts[0],
            max_time: *ts.last().unwrap(),
            chunk: RawChunk::from_xor(a.finish()),
        }
    }

    #[test]
    fn deletes_samples_inside_intervals() {
        let iv = |a, b| Interval {
            min_time: a,
            max_time: b,
        };
        let c = delete_samples(chunk(&[1, 2, 3, 4]), &[iv(2, 3)])
            .unwrap()
            .unwrap();
        assert_eq!((c.min_time, c.max_time), (1, 4));
        assert_eq!(c.chunk.num_samples().unwrap(), 2);
        assert!(delete_samples(chunk(&[1, 2]), &[iv(0, 5)])
            .unwrap()
            .is_none());
        let same = delete_samples(chunk(&[1, 2]), &[iv(5, 6)])
            .unwrap()
            .unwrap();
        assert_eq!(same.chunk.num_samples().unwrap(), 2);
        let l = Labels::from_pairs([("__name__", "x"), ("a", "b")]);
        let req = DeletionRequest {
            matchers: vec![Matcher::equal("__name__", "x"), Matcher::equal("c", "")],
            intervals: vec![],
        };
        assert!(
            !request_matches(&req, &l),
            "a matcher on a missing label never matches"
        );
        assert_eq!(
            Change::Deleted {
                labels: l,
                intervals: vec![iv(1, 2)]
            }
            .to_string(),
            r#"Deleted {__name__="x", a="b"} [{1 2}]"#
        );
    }
}
