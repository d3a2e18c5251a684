//! Index caches (thanos `pkg/store/cache`): postings lists, series entries and
//! chunk records of blocks, keyed by block ULID, kept in memory ([`InMemoryIndexCache`], an
//! LRU bounded in bytes) or in memcached ([`MemcachedIndexCache`]), configured
//! by Thanos' `--index-cache.config` YAML ([`IndexCacheConfig`]).
//!
//! Every cache is wrapped by [`Instrumented`], which counts
//! `thanos_store_index_cache_requests_total{item_type}` and
//! `thanos_store_index_cache_hits_total{item_type}` and skips item types not in
//! `enabled_items`.

mod config;
mod lru;
mod memcached;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use ulid::Ulid;

pub use config::{CacheBackend, IndexCacheConfig, MemcachedConfig};
pub use lru::InMemoryIndexCache;
pub use memcached::{MemcachedClient, MemcachedIndexCache};

/// Thanos' item type names.
pub const ITEM_POSTINGS: &str = "Postings";
/// Thanos' item type names.
pub const ITEM_SERIES: &str = "Series";
/// Chunk records (Thanos caches them in its caching bucket; here they share the
/// index cache, so the default in-memory LRU holds postings, series and chunks).
pub const ITEM_CHUNKS: &str = "Chunks";

/// What a cache entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// The postings list (raw refs, big-endian u32) of `name="value"` in a block.
    Postings {
        /// The block.
        block: Ulid,
        /// Label name.
        name: String,
        /// Label value.
        value: String,
    },
    /// A series entry (as stored in the index) of a block.
    Series {
        /// The block.
        block: Ulid,
        /// Series ref (offset / 16).
        series_ref: u32,
    },
    /// A chunk record (length, encoding, data, CRC) of a block.
    Chunk {
        /// The block.
        block: Ulid,
        /// Chunk ref (segment << 32 | offset).
        chunk_ref: u64,
    },
}

impl CacheKey {
    /// Thanos' `item_type` label value.
    pub fn item_type(&self) -> &'static str {
        match self {
            CacheKey::Postings { .. } => ITEM_POSTINGS,
            CacheKey::Series { .. } => ITEM_SERIES,
            CacheKey::Chunk { .. } => ITEM_CHUNKS,
        }
    }

    /// Bytes the key takes in memory (for size accounting).
    pub fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                CacheKey::Postings { name, value, .. } => name.len() + value.len(),
                CacheKey::Series { .. } | CacheKey::Chunk { .. } => 0,
            }
    }

    /// A memcached key (at most 250 bytes, no spaces): `P:<ulid>:<md5 of
    /// name and value>` or `S:<ulid>:<ref>`, like Thanos' `P:`/`S:` keys.
    pub fn external_key(&self) -> String {
        match self {
            CacheKey::Postings { block, name, value } => {
                let mut h = Md5::new();
                h.update(name.as_bytes());
                h.update([0xff]);
                h.update(value.as_bytes());
                let d = h.finalize();
                let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
                format!("P:{block}:{hex}")
            }
            CacheKey::Series { block, series_ref } => format!("S:{block}:{series_ref}"),
            CacheKey::Chunk { block, chunk_ref } => format!("C:{block}:{chunk_ref}"),
        }
    }
}

/// An index cache. Lookups never fail: an unreachable backend is a miss.
#[async_trait]
pub trait IndexCache: Debug + Send + Sync + 'static {
    /// The cached values of `keys`, in order (`None` for a miss).
    async fn fetch_multi(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>>;
    /// Stores a value; may be asynchronous and may drop it (too large, backend busy).
    fn store(&self, key: CacheKey, value: Bytes);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabel {
    item_type: String,
}

/// Counts requests and hits per item type and filters disabled item types.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn IndexCache>,
    enabled: Vec<String>,
    requests: Family<ItemLabel, Counter>,
    hits: Family<ItemLabel, Counter>,
}

impl Instrumented {
    /// Wraps `inner`; `enabled_items` empty means all. Registers the metrics.
    pub fn new(
        inner: Arc<dyn IndexCache>,
        enabled_items: Vec<String>,
        registry: &mut Registry,
    ) -> Self {
        let requests = Family::<ItemLabel, Counter>::default();
        let hits = Family::<ItemLabel, Counter>::default();
        registry.register(
            "thanos_store_index_cache_requests",
            "Total number of items requests to the cache.",
            requests.clone(),
        );
        registry.register(
            "thanos_store_index_cache_hits",
            "Total number of items requests to the cache that were a hit.",
            hits.clone(),
        );
        for t in [ITEM_POSTINGS, ITEM_SERIES, ITEM_CHUNKS] {
            let l = ItemLabel {
                item_type: t.to_string(),
            };
            drop(requests.get_or_create(&l));
            drop(hits.get_or_create(&l));
        }
        Self {
            inner,
            enabled: enabled_items,
            requests,
            hits,
        }
    }

    fn enabled(&self, t: &str) -> bool {
        self.enabled.is_empty() || self.enabled.iter().any(|e| e == t)
    }

    /// Requests and hits so far for `item_type`.
    pub fn counts(&self, item_type: &str) -> (u64, u64) {
        let l = ItemLabel {
            item_type: item_type.to_string(),
        };
        (
            self.requests.get_or_create(&l).get(),
            self.hits.get_or_create(&l).get(),
        )
    }
}

#[async_trait]
impl IndexCache for Instrumented {
    async fn fetch_multi(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        let mut want = Vec::new();
        let mut idx = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if self.enabled(k.item_type()) {
                want.push(k.clone());
                idx.push(i);
            }
        }
        let mut out = vec![None; keys.len()];
        if want.is_empty() {
            return out;
        }
        let got = self.inner.fetch_multi(&want).await;
        for ((k, i), v) in want.iter().zip(idx).zip(got) {
            let l = ItemLabel {
                item_type: k.item_type().to_string(),
            };
            self.requests.get_or_create(&l).inc();
            if v.is_some() {
                self.hits.get_or_create(&l).inc();
            }
            out[i] = v;
        }
        out
    }

    fn store(&self, key: CacheKey, value: Bytes) {
        if self.enabled(key.item_type()) {
            self.inner.store(key, value);
        }
    }
}

/// A cache that holds nothing.
#[derive(Debug, Default)]
pub struct NoopCache;

#[async_trait]
impl IndexCache for NoopCache {
    async fn fetch_multi(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        vec![None; keys.len()]
    }
    fn store(&self, _key: CacheKey, _value: Bytes) {}
}
