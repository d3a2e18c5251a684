//! Thanos' per-operation bucket metrics (thanos-io/objstore `metricBucket`):
//! `thanos_objstore_bucket_operations_total`,
//! `thanos_objstore_bucket_operation_failures_total`,
//! `thanos_objstore_bucket_operation_duration_seconds`,
//! `thanos_objstore_bucket_operation_fetched_bytes_total` and
//! `thanos_objstore_bucket_last_successful_upload_time`, each labelled by
//! `bucket` (and `operation`).

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Operation names, as Thanos spells them.
pub const OPERATIONS: [&str; 7] = [
    "iter",
    "get",
    "get_range",
    "exists",
    "upload",
    "delete",
    "attributes",
];

/// Thanos' duration buckets, seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OpLabels {
    pub bucket: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BucketLabel {
    pub bucket: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The metric families; cheap to clone (shared handles).
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    bucket: String,
    ops: Family<OpLabels, Counter>,
    failures: Family<OpLabels, Counter>,
    fetched_bytes: Family<OpLabels, Counter>,
    duration: Family<OpLabels, Histogram, fn() -> Histogram>,
    last_upload: Family<BucketLabel, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    /// Registers the families and initialises every operation's series at 0,
    /// as Thanos does.
    pub fn new(bucket: &str, registry: &mut Registry) -> Self {
        let m = Self {
            bucket: bucket.to_string(),
            ops: Family::default(),
            failures: Family::default(),
            fetched_bytes: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            last_upload: Family::default(),
        };
        registry.register(
            "thanos_objstore_bucket_operations",
            "Total number of all attempted operations against a bucket.",
            m.ops.clone(),
        );
        registry.register(
            "thanos_objstore_bucket_operation_failures",
            "Total number of operations against a bucket that failed, but were not expected to fail in certain way from caller perspective. Those errors have to be investigated.",
            m.failures.clone(),
        );
        registry.register(
            "thanos_objstore_bucket_operation_fetched_bytes",
            "Total number of bytes fetched from bucket, per operation.",
            m.fetched_bytes.clone(),
        );
        registry.register(
            "thanos_objstore_bucket_operation_duration_seconds",
            "Duration of successful operations against the bucket",
            m.duration.clone(),
        );
        registry.register(
            "thanos_objstore_bucket_last_successful_upload_time",
            "Second timestamp of the last successful upload to the bucket.",
            m.last_upload.clone(),
        );
        for op in OPERATIONS {
            let l = m.labels(op);
            drop(m.ops.get_or_create(&l));
            drop(m.failures.get_or_create(&l));
            drop(m.duration.get_or_create(&l));
            drop(m.fetched_bytes.get_or_create(&l));
        }
        drop(m.last_upload.get_or_create(&BucketLabel {
            bucket: m.bucket.clone(),
        }));
        m
    }

    fn labels(&self, op: &str) -> OpLabels {
        OpLabels {
            bucket: self.bucket.clone(),
            operation: op.to_string(),
        }
    }

    pub fn started(&self, op: &str) {
        self.ops.get_or_create(&self.labels(op)).inc();
    }

    pub fn failed(&self, op: &str) {
        self.failures.get_or_create(&self.labels(op)).inc();
    }

    pub fn fetched(&self, op: &str, bytes: u64) {
        self.fetched_bytes
            .get_or_create(&self.labels(op))
            .inc_by(bytes);
    }

    pub fn succeeded(&self, op: &str, took: Duration) {
        let l = self.labels(op);
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
        if op == "upload" {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_upload
                .get_or_create(&BucketLabel {
                    bucket: self.bucket.clone(),
                })
                .set(now);
        }
    }
}
