//! Merging sorted series streams (Prometheus `storage/merge.go`).
//!
//! Series with equal labels from several streams become one; their chunks are
//! concatenated when they do not overlap and re-encoded (deduplicating equal
//! timestamps) where they do.

use std::cmp::Ordering;

use futures::stream::{self, StreamExt};
use strata_chunkenc::{Encoding, RawChunk, SampleIterator, XorChunk, XorIterator};

use crate::{ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, Result, SeriesData};

/// Target samples per re-encoded chunk.
const SAMPLES_PER_CHUNK: usize = strata_chunkenc::SAMPLES_PER_CHUNK;

/// Merges streams that are each sorted by labels into one sorted stream. Warnings
/// pass through as they are met; an error ends the merged stream.
pub fn merge_streams(mut streams: Vec<ChunkSeriesStream>) -> ChunkSeriesStream {
    if streams.len() == 1 {
        if let Some(s) = streams.pop() {
            return s;
        }
    }
    struct State {
        /// Fused, so polling an ended stream again is safe.
        streams: Vec<futures::stream::Fuse<ChunkSeriesStream>>,
        heads: Vec<Option<ChunkSeries>>,
        done: bool,
    }
    let n = streams.len();
    let st = State {
        streams: streams.into_iter().map(StreamExt::fuse).collect(),
        heads: vec![None; n],
        done: false,
    };
    stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        // Fill empty heads, forwarding warnings immediately.
        for i in 0..st.streams.len() {
            if st.heads[i].is_some() || st.streams[i].is_done() {
                continue;
            }
            match st.streams[i].next().await {
                Some(Ok(Frame::Series(s))) => st.heads[i] = Some(s),
                Some(Ok(Frame::Warning(w))) => return Some((Ok(Frame::Warning(w)), st)),
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => st.heads[i] = None,
            }
        }
        let min = st
            .heads
            .iter()
            .flatten()
            .map(|s| &s.labels)
            .min_by(|a, b| a.compare(b))
            .cloned()?;
        let mut group = Vec::new();
        for h in st.heads.iter_mut() {
            if h.as_ref()
                .is_some_and(|s| s.labels.compare(&min) == Ordering::Equal)
            {
                if let Some(s) = h.take() {
                    group.push(s);
                }
            }
        }
        let merged = merge_series(group);
        Some((merged.map(Frame::Series), st))
    })
    .boxed()
}

/// Merges several series with the same labels into one.
pub fn merge_series(mut group: Vec<ChunkSeries>) -> Result<ChunkSeries> {
    if group.len() == 1 {
        if let Some(s) = group.pop() {
            return Ok(s);
        }
    }
    let labels = group.first().map(|s| s.labels.clone()).unwrap_or_default();
    let mut chunks: Vec<ChunkMeta> = Vec::new();
    let mut samples_only = false;
    for s in &group {
        match &s.data {
            SeriesData::Chunks(c) => chunks.extend(c.iter().cloned()),
            SeriesData::Samples(_) => samples_only = true,
        }
    }
    if samples_only {
        // Rare (dedup output merged again): decode everything.
        let mut all = Vec::new();
        for s in &group {
            all.extend(s.collect_samples()?);
        }
        all.sort_by_key(|s| s.t);
        all.dedup_by_key(|s| s.t);
        return Ok(ChunkSeries {
            labels,
            data: SeriesData::Samples(all.into()),
        });
    }
    Ok(ChunkSeries::from_chunks(labels, merge_chunks(chunks)?))
}

/// Sorts chunks by time and re-encodes overlapping runs into non-overlapping chunks
/// (about 120 samples each); the first of several samples with one timestamp wins.
pub fn merge_chunks(mut chunks: Vec<ChunkMeta>) -> Result<Vec<ChunkMeta>> {
    chunks.sort_by_key(|c| (c.min_time, c.max_time));
    let mut out: Vec<ChunkMeta> = Vec::with_capacity(chunks.len());
    let mut i = 0;
    while i < chunks.len() {
        // Extend the run while the next chunk overlaps the run's time range.
        let mut j = i + 1;
        let mut run_max = chunks[i].max_time;
        while j < chunks.len() && chunks[j].min_time <= run_max {
            run_max = run_max.max(chunks[j].max_time);
            j += 1;
        }
        if j == i + 1
            || chunks[i..j]
                .iter()
                .any(|c| c.chunk.encoding != Encoding::Xor)
        {
            // Not overlapping, or not re-encodable: keep as is.
            out.extend(chunks[i..j].iter().cloned());
        } else {
            out.extend(reencode(&chunks[i..j])?);
        }
        i = j;
    }
    Ok(out)
}

fn reencode(run: &[ChunkMeta]) -> Result<Vec<ChunkMeta>> {
    let mut samples: Vec<(i64, f64)> = Vec::new();
    for c in run {
        let mut it = XorIterator::new(&c.chunk.data);
        while let Some(s) = it.next()? {
            samples.push(s);
        }
    }
    samples.sort_by_key(|s| s.0);
    samples.dedup_by_key(|s| s.0);
    let mut out = Vec::new();
    for part in samples.chunks(SAMPLES_PER_CHUNK) {
        let mut a = XorChunk::new().appender();
        for (t, v) in part {
            a.append(*t, *v)?;
        }
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            continue;
        };
        out.push(ChunkMeta {
            min_time: first.0,
            max_time: last.0,
            chunk: RawChunk::from_xor(a.finish()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use strata_model::{labels, Labels};

    fn chunk(samples: &[(i64, f64)]) -> ChunkMeta {
        let mut a = XorChunk::new().appender();
        for (t, v) in samples {
            a.append(*t, *v).unwrap();
        }
        ChunkMeta {
            min_time: samples[0].0,
            max_time: samples[samples.len() - 1].0,
            chunk: RawChunk::from_xor(a.finish()),
        }
    }

    fn series(l: Labels, c: Vec<ChunkMeta>) -> Frame {
        Frame::Series(ChunkSeries::from_chunks(l, c))
    }

    #[tokio::test]
    async fn merges_sorted_streams_and_overlaps() {
        let a = labels! {"a" => "1"};
        let b = labels! {"a" => "2"};
        let c = labels! {"a" => "3"};
        let s1: ChunkSeriesStream = stream::iter(vec![
            Ok(series(a.clone(), vec![chunk(&[(1, 1.0), (3, 3.0)])])),
            Ok(series(c.clone(), vec![chunk(&[(1, 1.0)])])),
        ])
        .boxed();
        let s2: ChunkSeriesStream = stream::iter(vec![
            Ok(series(
                a.clone(),
                vec![chunk(&[(2, 2.0), (3, 9.0), (4, 4.0)])],
            )),
            Ok(Frame::Warning("w".into())),
            Ok(series(b.clone(), vec![chunk(&[(5, 5.0)])])),
        ])
        .boxed();
        let out: Vec<_> = merge_streams(vec![s1, s2]).collect().await;
        let mut got = Vec::new();
        let mut warnings = 0;
        for f in out {
            match f.unwrap() {
                Frame::Series(s) => got.push((s.labels.clone(), s.collect_samples().unwrap())),
                Frame::Warning(_) => warnings += 1,
            }
        }
        assert_eq!(warnings, 1);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, a);
        let ts: Vec<_> = got[0].1.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(ts, vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]);
        assert_eq!(got[1].0, b);
        assert_eq!(got[2].0, c);
    }
}
