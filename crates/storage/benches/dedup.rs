//! Replica deduplication throughput: two replicas of a counter scraped every 15 s
//! with jitter and an outage. `cargo bench -p strata-storage --bench dedup`.
//! Throughput is in input samples (both replicas) per second.

#![allow(missing_docs)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::stream::{self, StreamExt};
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::{Labels, Sample};
use strata_storage::dedup::{merge_replicas, penalty_merge};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Dedup, Frame, LabelRequest, Queryable, Result,
    SelectRequest, SourceInfo, WithWarnings,
};

fn replica(n: usize, offset: i64, seed: u64, down: std::ops::Range<usize>) -> Vec<Sample> {
    let mut x = seed;
    let mut v = 0.0;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v += ((x >> 40) % 100) as f64;
        if down.contains(&i) {
            continue;
        }
        let t = 1_700_000_000_000 + offset + i as i64 * 15_000 + ((x >> 58) as i64) - 32;
        out.push(Sample::new(t, v));
    }
    out
}

fn chunks(s: &[Sample]) -> Vec<ChunkMeta> {
    s.chunks(120)
        .map(|part| {
            let mut a = XorChunk::new().appender();
            for x in part {
                a.append(x.t, x.v).unwrap();
            }
            ChunkMeta {
                min_time: part[0].t,
                max_time: part[part.len() - 1].t,
                chunk: RawChunk::from_xor(a.finish()),
            }
        })
        .collect()
}

#[derive(Debug)]
struct Fixed(Vec<Frame>);

#[async_trait]
impl Queryable for Fixed {
    async fn select(&self, _req: &SelectRequest) -> Result<ChunkSeriesStream> {
        Ok(stream::iter(self.0.clone().into_iter().map(Ok)).boxed())
    }
    async fn label_names(&self, _req: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::new(Vec::new()))
    }
    async fn label_values(
        &self,
        _name: &str,
        _req: &LabelRequest,
    ) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::new(Vec::new()))
    }
    fn info(&self) -> SourceInfo {
        SourceInfo::default()
    }
}

fn bench(c: &mut Criterion) {
    let n = 10_000;
    let a = replica(n, 0, 1, 3000..3200);
    let b = replica(n, 7_000, 2, 6000..6100);
    let reps = vec![a.clone(), b.clone()];
    let input = (a.len() + b.len()) as u64;

    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(input));
    g.bench_function("merge_replicas", |bch| bch.iter(|| merge_replicas(&reps)));
    g.bench_function("penalty_merge", |bch| {
        bch.iter(|| penalty_merge(&reps, true))
    });

    // The full path: 100 series x 2 replicas of 1000 samples as XOR chunks.
    let mut frames = Vec::new();
    for i in 0..100 {
        for (r, off) in [("a", 0), ("b", 7_000)] {
            let l = Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("instance", format!("i{i:03}")),
                ("replica", r.to_string()),
            ]);
            let s = replica(1000, off, i, 300..320);
            frames.push(Frame::Series(ChunkSeries::from_chunks(l, chunks(&s))));
        }
    }
    let total: u64 = frames
        .iter()
        .map(|f| match f {
            Frame::Series(s) => s.collect_samples().unwrap().len() as u64,
            Frame::Warning(_) => 0,
        })
        .sum();
    let d = Dedup::new(Arc::new(Fixed(frames)), vec!["replica".into()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.throughput(Throughput::Elements(total));
    g.bench_function("select_100x2_series", |bch| {
        bch.iter(|| {
            rt.block_on(async {
                let mut s = d
                    .select(&SelectRequest::new(0, i64::MAX, vec![]))
                    .await
                    .unwrap();
                let mut n = 0;
                while let Some(f) = s.next().await {
                    if let Frame::Series(x) = f.unwrap() {
                        n += x.collect_samples().unwrap().len();
                    }
                }
                n
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
