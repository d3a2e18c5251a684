//! An in-memory LRU index cache bounded in bytes (thanos
//! `pkg/store/cache/inmemory.go`), with Thanos' item gauges.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{CacheKey, IndexCache};

#[derive(Debug, Default)]
struct State {
    /// Key → (value, recency tick).
    items: HashMap<CacheKey, (Bytes, u64)>,
    /// Recency tick → key, oldest first.
    order: BTreeMap<u64, CacheKey>,
    tick: u64,
    size: u64,
}

/// An LRU of postings and series entries holding at most `max_size` bytes
/// (values, keys and per-entry overhead); items above `max_item_size` are not
/// stored.
#[derive(Debug)]
pub struct InMemoryIndexCache {
    max_size: u64,
    max_item_size: u64,
    state: Mutex<State>,
    items: Gauge,
    size_bytes: Gauge,
    evicted: Counter,
    added: Counter,
}

/// Memory an entry costs beyond its key and value bytes: its slots in the
/// hash map and the recency tree, and the value's allocation and shared
/// header. Counting it keeps the cache's resident size near `max_size` even
/// for small items (series entries of ~60 bytes).
const ENTRY_OVERHEAD: usize = 240;

fn entry_size(k: &CacheKey, v: &Bytes) -> u64 {
    (k.size() + v.len() + ENTRY_OVERHEAD) as u64
}

impl InMemoryIndexCache {
    /// A cache of `max_size` bytes; registers `thanos_store_index_cache_items`,
    /// `..._total_size_bytes`, `..._items_added_total` and `..._items_evicted_total`.
    pub fn new(max_size: u64, max_item_size: u64, registry: &mut Registry) -> Self {
        let c = Self {
            max_size,
            max_item_size,
            state: Mutex::new(State::default()),
            items: Gauge::default(),
            size_bytes: Gauge::default(),
            evicted: Counter::default(),
            added: Counter::default(),
        };
        registry.register(
            "thanos_store_index_cache_items",
            "Current number of items in the index cache.",
            c.items.clone(),
        );
        registry.register(
            "thanos_store_index_cache_total_size_bytes",
            "Current byte size of items in the index cache.",
            c.size_bytes.clone(),
        );
        registry.register(
            "thanos_store_index_cache_items_added",
            "Total number of items that were added to the index cache.",
            c.added.clone(),
        );
        registry.register(
            "thanos_store_index_cache_items_evicted",
            "Total number of items that were evicted from the index cache.",
            c.evicted.clone(),
        );
        c
    }

    /// Bytes currently held.
    pub fn size(&self) -> u64 {
        self.state.lock().map(|s| s.size).unwrap_or(0)
    }

    /// Items currently held.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.items.len()).unwrap_or(0)
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, k: &CacheKey) -> Option<Bytes> {
        let mut st = self.state.lock().ok()?;
        let st = &mut *st;
        st.tick += 1;
        let tick = st.tick;
        let (v, t) = st.items.get_mut(k)?;
        let old = std::mem::replace(t, tick);
        let v = v.clone();
        if let Some(key) = st.order.remove(&old) {
            st.order.insert(tick, key);
        }
        Some(v)
    }
}

#[async_trait]
impl IndexCache for InMemoryIndexCache {
    async fn fetch_multi(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    fn store(&self, key: CacheKey, value: Bytes) {
        let sz = entry_size(&key, &value);
        if sz > self.max_item_size || sz > self.max_size {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let st = &mut *st;
        if st.items.contains_key(&key) {
            return;
        }
        while st.size + sz > self.max_size {
            let Some((_, old)) = st.order.pop_first() else {
                break;
            };
            if let Some((v, _)) = st.items.remove(&old) {
                st.size -= entry_size(&old, &v);
                self.evicted.inc();
            }
        }
        st.tick += 1;
        let tick = st.tick;
        st.order.insert(tick, key.clone());
        st.items.insert(key, (value, tick));
        st.size += sz;
        self.added.inc();
        self.items.set(st.items.len() as i64);
        self.size_bytes.set(st.size as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn key(i: u32) -> CacheKey {
        CacheKey::Series {
            block: Ulid::nil(),
            series_ref: i,
        }
    }

    #[tokio::test]
    async fn evicts_least_recently_used_within_bytes() {
        let mut reg = Registry::default();
        let one = entry_size(&key(0), &Bytes::from(vec![0u8; 100]));
        let c = InMemoryIndexCache::new(one * 3, one * 3, &mut reg);
        for i in 0..3 {
            c.store(key(i), Bytes::from(vec![i as u8; 100]));
        }
        assert_eq!(c.len(), 3);
        // Touch 0, so 1 is the oldest.
        assert!(c.fetch_multi(&[key(0)]).await[0].is_some());
        c.store(key(3), Bytes::from(vec![3u8; 100]));
        let got = c.fetch_multi(&[key(0), key(1), key(2), key(3)]).await;
        assert_eq!(
            got.iter().map(Option::is_some).collect::<Vec<_>>(),
            vec![true, false, true, true]
        );
        assert!(c.size() <= one * 3);
        // Too large for an item: not stored.
        c.store(key(9), Bytes::from(vec![0u8; 1000]));
        assert!(c.fetch_multi(&[key(9)]).await[0].is_none());
    }
}
