//! The store gateway's metrics, under Thanos' `thanos_bucket_store_*` names
//! where Thanos has them, plus `strata_store_bucket_fetched_bytes_total` for
//! the bytes read from the bucket per data type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Data types of fetched bytes and items.
pub(crate) const POSTINGS: &str = "postings";
pub(crate) const SERIES: &str = "series";
pub(crate) const CHUNKS: &str = "chunks";
pub(crate) const INDEX_HEADER: &str = "index_header";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DataType {
    pub data_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub reason: String,
}

/// Metric handles; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub blocks_loaded: Gauge,
    pub block_loads: Counter,
    pub block_load_failures: Counter,
    pub block_drops: Counter,
    pub lazy_loads: Counter,
    pub lazy_unloads: Counter,
    pub series_blocks_queried: Counter,
    pub fetched_bytes: Family<DataType, Counter>,
    pub fetched_items: Family<DataType, Counter>,
    pub queries_dropped: Family<Reason, Counter>,
    pub series_refetches: Counter,
    pub chunk_refetches: Counter,
    pub warnings: Counter,
    total_fetched: Arc<AtomicU64>,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let m = Self {
            blocks_loaded: Gauge::default(),
            block_loads: Counter::default(),
            block_load_failures: Counter::default(),
            block_drops: Counter::default(),
            lazy_loads: Counter::default(),
            lazy_unloads: Counter::default(),
            series_blocks_queried: Counter::default(),
            fetched_bytes: Family::default(),
            fetched_items: Family::default(),
            queries_dropped: Family::default(),
            series_refetches: Counter::default(),
            chunk_refetches: Counter::default(),
            warnings: Counter::default(),
            total_fetched: Arc::new(AtomicU64::new(0)),
        };
        let r = registry;
        r.register(
            "thanos_bucket_store_blocks_loaded",
            "Number of currently loaded blocks.",
            m.blocks_loaded.clone(),
        );
        r.register(
            "thanos_bucket_store_block_loads",
            "Total number of remote block loading attempts.",
            m.block_loads.clone(),
        );
        r.register(
            "thanos_bucket_store_block_load_failures",
            "Total number of failed remote block loading attempts.",
            m.block_load_failures.clone(),
        );
        r.register(
            "thanos_bucket_store_block_drops",
            "Total number of local blocks that were dropped.",
            m.block_drops.clone(),
        );
        r.register(
            "thanos_bucket_store_indexheader_lazy_load",
            "Total number of index-header lazy load operations.",
            m.lazy_loads.clone(),
        );
        r.register(
            "thanos_bucket_store_indexheader_lazy_unload",
            "Total number of index-header lazy unload operations.",
            m.lazy_unloads.clone(),
        );
        r.register(
            "thanos_bucket_store_series_blocks_queried",
            "Number of blocks queried by series requests.",
            m.series_blocks_queried.clone(),
        );
        r.register(
            "strata_store_bucket_fetched_bytes",
            "Bytes read from the bucket, by data type.",
            m.fetched_bytes.clone(),
        );
        r.register(
            "thanos_bucket_store_series_data_fetched",
            "Number of items of a data type fetched from the bucket.",
            m.fetched_items.clone(),
        );
        r.register(
            "thanos_bucket_store_queries_dropped",
            "Number of queries that were dropped due to a limit, by reason.",
            m.queries_dropped.clone(),
        );
        r.register("thanos_bucket_store_series_refetches", "Total number of cases where the series entry was larger than the fetched range and had to be refetched.", m.series_refetches.clone());
        r.register("thanos_bucket_store_chunk_refetches", "Total number of cases where a chunk was larger than the fetched range and had to be refetched.", m.chunk_refetches.clone());
        r.register(
            "strata_store_warnings",
            "Warnings returned to queries (unreadable blocks, bad data).",
            m.warnings.clone(),
        );
        for t in [POSTINGS, SERIES, CHUNKS, INDEX_HEADER] {
            let l = DataType {
                data_type: t.to_string(),
            };
            drop(m.fetched_bytes.get_or_create(&l));
            drop(m.fetched_items.get_or_create(&l));
        }
        m
    }

    pub(crate) fn fetched(&self, data_type: &str, bytes: u64, items: u64) {
        let l = DataType {
            data_type: data_type.to_string(),
        };
        self.fetched_bytes.get_or_create(&l).inc_by(bytes);
        self.fetched_items.get_or_create(&l).inc_by(items);
        self.total_fetched.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, reason: &str) {
        self.queries_dropped
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub(crate) fn total_fetched(&self) -> u64 {
        self.total_fetched.load(Ordering::Relaxed)
    }
}
