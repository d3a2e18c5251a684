//! Downsamples arbitrary chunks: the input is split into up to four chunks,
//! each read as XOR (raw path) or as a Thanos aggregate chunk (5m → 1h path),
//! and every aggregate view is read back. Errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_chunkenc::{Encoding, RawChunk};
use strata_compact::downsample::{downsample_series, RES_1H, RES_5M, RES_RAW};
use strata_model::{labels, Sample};
use strata_storage::{AggrView, ChunkMeta, ChunkSeries};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let aggr = head & 1 == 1;
    let parts: Vec<&[u8]> = rest.splitn(4, |b| *b == 0xAA).collect();
    let chunks: Vec<ChunkMeta> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| ChunkMeta {
            min_time: i as i64 * 1000,
            max_time: i as i64 * 1000 + 999,
            chunk: RawChunk::new(if aggr { Encoding::Aggr } else { Encoding::Xor }, p.to_vec()),
        })
        .collect();
    let l = labels! {"__name__" => "f"};
    let mut buf: Vec<Sample> = Vec::new();
    let (from, to) = if aggr { (RES_5M, RES_1H) } else { (RES_RAW, RES_5M) };
    if let Ok(out) = downsample_series(ulid::Ulid::nil(), &l, &chunks, from, to, &mut buf) {
        assert!(out.iter().all(|c| c.min_time <= c.max_time));
    }
    let s = ChunkSeries::from_chunks(l, chunks);
    for v in [AggrView::Count, AggrView::Sum, AggrView::Min, AggrView::Max, AggrView::Counter, AggrView::Avg] {
        let mut it = s.samples_for(v);
        for _ in 0..200_000 {
            match it.next_sample() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
});
