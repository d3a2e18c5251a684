//! Series streaming rate over the StoreAPI (client and server in one process, on
//! loopback) next to reading the same source directly through `Queryable`.
//!
//! Data: 10k series × 720 samples (15 s apart, 3 h), as real XOR chunks of 120
//! samples held in memory, so the figures measure the StoreAPI path, not a disk.
//! `stream` consumes frames and counts samples from chunk headers; `decode` also
//! decodes every sample.
//!
//! Run: `cargo bench -p strata-storeapi --bench series`.

#![allow(missing_docs)]

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::{stream, StreamExt};
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::{Labels, MatchType, Matcher};
use strata_storage::{
    ChunkMeta, ChunkSeries, ChunkSeriesStream, Frame, LabelRequest, Queryable, Result,
    SelectRequest, SourceInfo, WithWarnings,
};
use strata_storeapi::{Client, ServerOptions};

const SERIES: usize = 10_000;
const SAMPLES: usize = 720;

/// Pre-encoded series; `select` hands out shared chunk bytes.
#[derive(Debug)]
struct Fixed(Arc<Vec<ChunkSeries>>);

#[async_trait]
impl Queryable for Fixed {
    async fn select(&self, _req: &SelectRequest) -> Result<ChunkSeriesStream> {
        let all = self.0.clone();
        Ok(Box::pin(
            stream::iter(0..all.len()).map(move |i| Ok(Frame::Series(all[i].clone()))),
        ))
    }
    async fn label_names(&self, _: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::default())
    }
    async fn label_values(&self, _: &str, _: &LabelRequest) -> Result<WithWarnings<Vec<String>>> {
        Ok(WithWarnings::default())
    }
    fn info(&self) -> SourceInfo {
        SourceInfo::default()
    }
}

fn data() -> Vec<ChunkSeries> {
    let mut out = Vec::with_capacity(SERIES);
    for s in 0..SERIES {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("instance", format!("host-{:04}:9100", s / 10)),
            ("job", "node".to_string()),
            ("handler", format!("/api/v{}", s % 10)),
        ]);
        let mut chunks = Vec::new();
        let mut v = 0.0f64;
        for c in 0..SAMPLES / 120 {
            let mut app = XorChunk::new().appender();
            let (mut min, mut max) = (0, 0);
            for k in 0..120 {
                let i = (c * 120 + k) as i64;
                let t = i * 15_000 + (i * 7 + s as i64) % 13;
                v += ((i * 31 + s as i64) % 17) as f64;
                app.append(t, v).expect("append");
                if k == 0 {
                    min = t;
                }
                max = t;
            }
            chunks.push(ChunkMeta {
                min_time: min,
                max_time: max,
                chunk: RawChunk::from_xor(app.finish()),
            });
        }
        out.push(ChunkSeries::from_chunks(labels, chunks));
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

async fn read(q: &dyn Queryable, decode: bool) -> usize {
    let req = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![Matcher::new(MatchType::Equal, "__name__", "http_requests_total").expect("matcher")],
    );
    let mut s = q.select(&req).await.expect("select");
    let mut n = 0;
    while let Some(f) = s.next().await {
        let Frame::Series(s) = f.expect("frame") else {
            continue;
        };
        if decode {
            let mut it = s.samples();
            while it.next_sample().expect("decode").is_some() {
                n += 1;
            }
        } else {
            n += s
                .chunks()
                .iter()
                .map(|c| c.chunk.num_samples().expect("header"))
                .sum::<usize>();
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let local: Arc<dyn Queryable> = Arc::new(Fixed(Arc::new(data())));
    let (remote, _stop) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(strata_storeapi::serve(
            l,
            local.clone(),
            ServerOptions::default(),
            async {
                let _ = rx.await;
            },
        ));
        let c: Arc<dyn Queryable> = Arc::new(Client::connect(&addr).await.expect("connect"));
        (c, tx)
    });
    let total = (SERIES * SAMPLES) as u64;
    for decode in [false, true] {
        let mut g = c.benchmark_group(if decode {
            "series_decode"
        } else {
            "series_stream"
        });
        g.throughput(Throughput::Elements(total));
        g.sample_size(10);
        for (name, q) in [("local", &local), ("grpc_loopback", &remote)] {
            g.bench_function(name, |b| {
                b.iter(|| {
                    let n = rt.block_on(read(q.as_ref(), decode));
                    assert_eq!(n as u64, total);
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
