//! Cutting a series' samples into chunks the way Prometheus' head does, so that
//! blocks we write have the same chunk boundaries and size as Prometheus' own.

use strata_chunkenc::{
    RawChunk, XorAppender, XorChunk, MAX_BYTES_PER_XOR_CHUNK, SAMPLES_PER_CHUNK,
};
use strata_storage::ChunkMeta;

use crate::error::{Error, Result};

/// End of the `chunk_range`-aligned window holding `t` (Go integer division).
pub fn range_for_timestamp(t: i64, chunk_range: i64) -> i64 {
    (t / chunk_range) * chunk_range + chunk_range
}

/// Re-predicts a chunk's end so the remaining samples of the window spread evenly.
fn compute_chunk_end_time(start: i64, cur: i64, max: i64) -> i64 {
    let n = (max - start) as f64 / ((cur - start + 1) as f64 * 4.0);
    if n <= 1.0 {
        return max;
    }
    (start as f64 + (max - start) as f64 / n.floor()) as i64
}

/// Builds chunks from samples in time order (Prometheus head cutting rules: a new
/// chunk at the end of each `chunk_range` window, after 240 samples, past 1005
/// bytes, and at an end time re-predicted once a chunk holds 30 samples).
#[derive(Debug)]
pub struct ChunkCutter {
    chunk_range: i64,
    cur: Option<(XorAppender, i64, i64)>,
    next_at: i64,
    done: Vec<ChunkMeta>,
}

impl ChunkCutter {
    /// A cutter for windows of `chunk_range` ms (the block duration).
    pub fn new(chunk_range: i64) -> Self {
        Self {
            chunk_range: chunk_range.max(1),
            cur: None,
            next_at: i64::MIN,
            done: Vec::new(),
        }
    }

    fn cut(&mut self, t: i64) {
        self.flush();
        self.cur = Some((XorChunk::new().appender(), t, t));
        self.next_at = range_for_timestamp(t, self.chunk_range);
    }

    fn flush(&mut self) {
        if let Some((a, mint, maxt)) = self.cur.take() {
            if a.num_samples() > 0 {
                self.done.push(ChunkMeta {
                    min_time: mint,
                    max_time: maxt,
                    chunk: RawChunk::from_xor(a.finish()),
                });
            }
        }
    }

    /// Appends a sample; samples at or before the last one are rejected.
    pub fn append(&mut self, t: i64, v: f64) -> Result<()> {
        match &self.cur {
            None => self.cut(t),
            Some((a, mint, maxt)) => {
                if t <= *maxt {
                    return Err(Error::InvalidWrite(format!(
                        "sample at {t} is not after the previous one at {maxt}"
                    )));
                }
                let n = a.num_samples();
                if n == SAMPLES_PER_CHUNK / 4 {
                    self.next_at = compute_chunk_end_time(*mint, *maxt, self.next_at);
                }
                if t >= self.next_at
                    || n >= 2 * SAMPLES_PER_CHUNK
                    || a.size() > MAX_BYTES_PER_XOR_CHUNK
                {
                    self.cut(t);
                }
            }
        }
        if let Some((a, _, maxt)) = &mut self.cur {
            a.append(t, v)
                .map_err(|e| Error::InvalidWrite(e.to_string()))?;
            *maxt = t;
        }
        Ok(())
    }

    /// The finished chunks.
    pub fn finish(mut self) -> Vec<ChunkMeta> {
        self.flush();
        self.done
    }

    /// Closed chunks so far.
    pub fn closed(&self) -> &[ChunkMeta] {
        &self.done
    }

    /// A copy of the open chunk, if it has samples.
    pub fn open_chunk(&self) -> Option<ChunkMeta> {
        let (a, mint, maxt) = self.cur.as_ref()?;
        if a.num_samples() == 0 {
            return None;
        }
        Some(ChunkMeta {
            min_time: *mint,
            max_time: *maxt,
            chunk: RawChunk::new(strata_chunkenc::Encoding::Xor, a.chunk().bytes().to_vec()),
        })
    }

    /// Time range of the open chunk, if it has samples.
    pub fn open_range(&self) -> Option<(i64, i64)> {
        let (a, mint, maxt) = self.cur.as_ref()?;
        (a.num_samples() > 0).then_some((*mint, *maxt))
    }

    /// Closed chunks and the open one.
    pub fn all_chunks(&self) -> Vec<ChunkMeta> {
        let mut v = self.done.clone();
        v.extend(self.open_chunk());
        v
    }

    /// Drops closed chunks that end before `t`; also the open chunk when it does.
    /// Returns whether anything is left.
    pub fn truncate_before(&mut self, t: i64) -> bool {
        self.done.retain(|c| c.max_time >= t);
        if self.cur.as_ref().is_some_and(|c| c.2 < t) {
            self.cur = None;
        }
        !self.done.is_empty() || self.cur.is_some()
    }

    /// Timestamp of the last sample appended, if any.
    pub fn last_time(&self) -> Option<i64> {
        match &self.cur {
            Some((_, _, maxt)) => Some(*maxt),
            None => self.done.last().map(|c| c.max_time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_window_and_spreads_evenly() {
        let mut c = ChunkCutter::new(7_200_000);
        // 2h of 15s samples: 480 samples → Prometheus makes 4 chunks of 120.
        for i in 0..480 {
            c.append(i * 15_000, 1.0).unwrap();
        }
        let ch = c.finish();
        let counts: Vec<usize> = ch.iter().map(|m| m.chunk.num_samples().unwrap()).collect();
        assert_eq!(counts, vec![120, 120, 120, 120]);
        // A window boundary always cuts.
        let mut c = ChunkCutter::new(1000);
        for t in [10, 999, 1000, 1500] {
            c.append(t, 0.0).unwrap();
        }
        assert_eq!(c.finish().len(), 2);
    }
}
