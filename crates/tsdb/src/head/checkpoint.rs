//! WAL truncation through checkpoints (mirrors `tsdb/wlog/checkpoint.go`): the
//! segments before the current one are folded into `checkpoint.N` holding the
//! live series and the samples at or after the truncation time, then deleted.

use std::fs;

use super::Head;
use crate::error::{Error, Result};
use crate::wal::{
    decode, encode_samples, encode_series, segments, Record, RefSeries, SegmentReader, WalWriter,
};

/// Folds every WAL segment before the current one into a new checkpoint keeping
/// only series still in the head and samples `>= mint`, then removes the folded
/// segments and older checkpoints.
pub(super) fn truncate_wal(head: &Head, mint: i64) -> Result<()> {
    let mut wal_guard = head.lock_wal();
    let Some(w) = wal_guard.as_mut() else {
        return Ok(());
    };
    let dir = head.inner.dir.join("wal");
    // Start a new segment so that everything before it can be folded.
    w.next_segment()?;
    let current = w.segment();
    let segs: Vec<_> = segments(&dir)?
        .into_iter()
        .filter(|(n, _)| *n < current)
        .collect();
    let Some(&(last, _)) = segs.last() else {
        return Ok(());
    };
    let live: std::collections::HashSet<u64> = head.read_index().series.keys().copied().collect();

    let tmp = dir.join(format!("checkpoint.{last:08}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    let mut cw = WalWriter::open(
        &tmp,
        head.inner.opts.wal_segment_size,
        head.inner.opts.wal_compression,
    )?;
    // Inputs: the previous checkpoint, then the segments being folded.
    let mut inputs = Vec::new();
    if let Some((_, cp)) = previous_checkpoint(&dir)? {
        for (_, p) in segments(&cp)? {
            inputs.push(p);
        }
    }
    for (_, p) in &segs {
        inputs.push(p.clone());
    }
    for p in &inputs {
        let mut r = SegmentReader::open(p, true)?;
        while let Some(rec) = r.next_record()? {
            match decode(&rec).map_err(|m| Error::corrupt(p, 0, m))? {
                Record::Series(ss) => {
                    let keep: Vec<RefSeries> = ss
                        .into_iter()
                        .filter(|s| live.contains(&s.series_ref))
                        .collect();
                    if !keep.is_empty() {
                        cw.log(&encode_series(&keep))?;
                    }
                }
                Record::Samples(smps) => {
                    let keep: Vec<_> = smps
                        .into_iter()
                        .filter(|s| s.t >= mint && live.contains(&s.series_ref))
                        .collect();
                    if !keep.is_empty() {
                        cw.log(&encode_samples(&keep))?;
                    }
                }
                _ => {}
            }
        }
    }
    cw.close()?;
    let final_dir = dir.join(format!("checkpoint.{last:08}"));
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    for (_, p) in &segs {
        fs::remove_file(p).map_err(|e| Error::io(p, e))?;
    }
    // Remove older checkpoints.
    for e in fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("checkpoint.")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if n < last {
                fs::remove_dir_all(e.path()).map_err(|er| Error::io(e.path(), er))?;
            }
        }
    }
    Ok(())
}

fn previous_checkpoint(dir: &std::path::Path) -> Result<Option<(u64, std::path::PathBuf)>> {
    let mut best = None;
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp") {
            continue;
        }
        if let Some(n) = name
            .strip_prefix("checkpoint.")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, e.path()));
            }
        }
    }
    Ok(best)
}
