//! Remote write receive throughput (samples/s) for a request shaped like
//! Prometheus' batches: 2000 series × 1 sample, ~8 labels each.
//!
//! - `decode`: snappy + protobuf only;
//! - `decode_convert`: plus label validation and appends into a counting appender;
//! - `decode_into_head`: plus a commit into a real head with its WAL.
//!
//! `cargo bench -p strata-remote --bench write`.

#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use strata_model::Labels;
use strata_remote::prompb::{Label, Sample, TimeSeries, WriteRequest};
use strata_remote::{apply_write_request, decode_write_request, snappy_encode, LabelLimits};
use strata_storage::{AppendError, Appendable, Appender, CommitReport};

const SERIES: usize = 2000;

fn request(t: i64) -> Vec<u8> {
    let mut req = WriteRequest::default();
    for i in 0..SERIES {
        let pairs = [
            ("__name__", format!("http_requests_total_{}", i % 50)),
            ("code", ["200", "404", "500"][i % 3].to_owned()),
            ("env", "production".to_owned()),
            ("handler", format!("/api/v1/endpoint/{}", i % 40)),
            ("instance", format!("10.0.{}.{}:9090", i % 7, i % 251)),
            ("job", "kubernetes-pods".to_owned()),
            ("method", ["GET", "POST"][i % 2].to_owned()),
            ("pod", format!("frontend-{i:05}")),
        ];
        req.timeseries.push(TimeSeries {
            labels: pairs
                .into_iter()
                .map(|(n, v)| Label {
                    name: n.to_owned(),
                    value: v,
                })
                .collect(),
            samples: vec![Sample {
                value: i as f64 * 1.5,
                timestamp: t,
            }],
            ..TimeSeries::default()
        });
    }
    snappy_encode(&req.encode_to_vec())
}

/// Counts appends and commits nothing.
#[derive(Default)]
struct Counting(Arc<AtomicU64>);

struct CountingAppender(Arc<AtomicU64>, u64);

impl Appendable for Counting {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(CountingAppender(Arc::clone(&self.0), 0))
    }
}

impl Appender for CountingAppender {
    fn append(&mut self, labels: &Labels, _t: i64, _v: f64) -> Result<(), AppendError> {
        self.1 += labels.len() as u64;
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError> {
        self.0.fetch_add(self.1, Ordering::Relaxed);
        Ok(CommitReport::default())
    }
    fn rollback(self: Box<Self>) {}
}

fn bench(c: &mut Criterion) {
    let body = request(1_700_000_000_000);
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("decode", |b| {
        b.iter(|| decode_write_request(&body).map(|r| r.timeseries.len()))
    });
    let sink = Counting::default();
    let limits = LabelLimits::default();
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            let req = decode_write_request(&body).expect("valid request");
            apply_write_request(&sink, req, &limits).expect("appends")
        })
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let head = strata_tsdb::head::Head::open(dir.path(), Default::default()).expect("head");
    let mut t = 1_700_000_000_000;
    g.bench_function("decode_into_head", |b| {
        b.iter_batched(
            || {
                t += 1000;
                request(t)
            },
            |body| {
                let req = decode_write_request(&body).expect("valid request");
                let st = apply_write_request(&head, req, &limits).expect("appends");
                assert_eq!(st.appended, SERIES as u64);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
