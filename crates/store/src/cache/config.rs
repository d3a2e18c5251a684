//! Thanos' `--index-cache.config` YAML (`pkg/store/cache/factory.go`):
//!
//! ```yaml
//! type: IN-MEMORY          # or MEMCACHED
//! config: {max_size: 250MB, max_item_size: 125MB}
//! enabled_items: []        # Postings, Series, ExpandedPostings; empty = all
//! ```

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde::Deserialize;

use super::{InMemoryIndexCache, IndexCache, Instrumented, MemcachedIndexCache};
use crate::error::{Error, Result};

/// Default in-memory cache size (Thanos `--index-cache-size=250MB`).
pub const DEFAULT_MAX_SIZE: u64 = 250 << 20;
/// Default largest in-memory item (125 MiB).
pub const DEFAULT_MAX_ITEM_SIZE: u64 = 125 << 20;

/// Memcached client settings (Thanos `cacheutil.MemcachedClientConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcachedConfig {
    /// `host:port` addresses (a `dns+` prefix is accepted and stripped).
    pub addresses: Vec<String>,
    /// Per-operation timeout (500ms).
    pub timeout: Duration,
    /// Idle connections kept per server (100).
    pub max_idle_connections: usize,
    /// Concurrent asynchronous sets (20).
    pub max_async_concurrency: usize,
    /// Pending asynchronous sets before new ones are dropped (10000).
    pub max_async_buffer_size: usize,
    /// Concurrent multi-get batches (100).
    pub max_get_multi_concurrency: usize,
    /// Keys per multi-get batch (0: unlimited).
    pub max_get_multi_batch_size: usize,
    /// Largest item stored (1 MiB).
    pub max_item_size: u64,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            timeout: Duration::from_millis(500),
            max_idle_connections: 100,
            max_async_concurrency: 20,
            max_async_buffer_size: 10_000,
            max_get_multi_concurrency: 100,
            max_get_multi_batch_size: 0,
            max_item_size: 1 << 20,
        }
    }
}

/// The backend of an index cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheBackend {
    /// An LRU in memory.
    InMemory {
        /// Total bytes held.
        max_size: u64,
        /// Largest item stored.
        max_item_size: u64,
    },
    /// Memcached.
    Memcached(MemcachedConfig),
}

/// A parsed `--index-cache.config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexCacheConfig {
    /// Where items go.
    pub backend: CacheBackend,
    /// Item types cached (`Postings`, `Series`); empty means all.
    pub enabled_items: Vec<String>,
}

impl Default for IndexCacheConfig {
    fn default() -> Self {
        Self::in_memory(DEFAULT_MAX_SIZE)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: Option<serde_yaml::Value>,
    #[serde(default)]
    enabled_items: Vec<String>,
    #[serde(default)]
    ttl: Option<serde_yaml::Value>,
}

fn size(v: &serde_yaml::Value, key: &str) -> Result<u64> {
    strata_config::parse_size(v)
        .map_err(|e| Error::Config(format!("index cache config: {key}: {e}")))
}

fn duration(v: &serde_yaml::Value, key: &str) -> Result<Duration> {
    let s = v.as_str().ok_or_else(|| {
        Error::Config(format!(
            "index cache config: {key}: {v:?} is not a duration"
        ))
    })?;
    strata_objstore::parse_duration(s)
        .map_err(|e| Error::Config(format!("index cache config: {key}: {e}")))
}

fn count(v: &serde_yaml::Value, key: &str) -> Result<usize> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| Error::Config(format!("index cache config: {key}: {v:?} is not a number")))
}

impl IndexCacheConfig {
    /// An in-memory cache of `max_size` bytes (Thanos `--index-cache-size`).
    pub fn in_memory(max_size: u64) -> Self {
        Self {
            backend: CacheBackend::InMemory {
                max_size,
                max_item_size: DEFAULT_MAX_ITEM_SIZE.min(max_size),
            },
            enabled_items: Vec::new(),
        }
    }

    /// Parses the YAML. Unknown keys, unknown types and unknown item types are
    /// errors naming the key.
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        let raw: Raw = serde_yaml::from_str(yaml)
            .map_err(|e| Error::Config(format!("index cache config: {e}")))?;
        for i in &raw.enabled_items {
            if !["Postings", "Series", "ExpandedPostings", "Chunks"].contains(&i.as_str()) {
                return Err(Error::Config(format!(
                    "index cache config: enabled_items: unsupported item type {i:?}"
                )));
            }
        }
        let _ = raw.ttl;
        let map = match raw.config {
            None | Some(serde_yaml::Value::Null) => serde_yaml::Mapping::new(),
            Some(serde_yaml::Value::Mapping(m)) => m,
            Some(v) => {
                return Err(Error::Config(format!(
                    "index cache config: config: {v:?} is not a mapping"
                )))
            }
        };
        let mut entries: Vec<(String, serde_yaml::Value)> = Vec::new();
        for (k, v) in map {
            let k = k
                .as_str()
                .ok_or_else(|| {
                    Error::Config(format!("index cache config: key {k:?} is not a string"))
                })?
                .to_string();
            entries.push((k, v));
        }
        let backend = match raw.kind.to_ascii_uppercase().as_str() {
            "IN-MEMORY" | "INMEMORY" => {
                let mut max_size = DEFAULT_MAX_SIZE;
                let mut max_item_size = DEFAULT_MAX_ITEM_SIZE;
                for (k, v) in &entries {
                    match k.as_str() {
                        "max_size" => max_size = size(v, k)?,
                        "max_item_size" => max_item_size = size(v, k)?,
                        _ => {
                            return Err(Error::Config(format!(
                                "index cache config: IN-MEMORY: unknown key {k:?}"
                            )))
                        }
                    }
                }
                if max_item_size > max_size {
                    return Err(Error::Config(format!(
                        "index cache config: max item size ({max_item_size}) cannot be bigger than overall cache size ({max_size})"
                    )));
                }
                CacheBackend::InMemory {
                    max_size,
                    max_item_size,
                }
            }
            "MEMCACHED" => {
                let mut c = MemcachedConfig::default();
                for (k, v) in &entries {
                    match k.as_str() {
                        "addresses" => {
                            let seq = v.as_sequence().ok_or_else(|| {
                                Error::Config("index cache config: addresses: not a list".into())
                            })?;
                            c.addresses = seq
                                .iter()
                                .map(|a| {
                                    a.as_str().map(str::to_string).ok_or_else(|| {
                                        Error::Config(format!(
                                            "index cache config: addresses: {a:?} is not a string"
                                        ))
                                    })
                                })
                                .collect::<Result<_>>()?;
                        }
                        "timeout" => c.timeout = duration(v, k)?,
                        "max_idle_connections" => c.max_idle_connections = count(v, k)?,
                        "max_async_concurrency" => c.max_async_concurrency = count(v, k)?,
                        "max_async_buffer_size" => c.max_async_buffer_size = count(v, k)?,
                        "max_get_multi_concurrency" => c.max_get_multi_concurrency = count(v, k)?,
                        "max_get_multi_batch_size" => c.max_get_multi_batch_size = count(v, k)?,
                        "max_item_size" => c.max_item_size = size(v, k)?,
                        // Accepted for compatibility; not used by this client.
                        "dns_provider_update_interval"
                        | "auto_discovery"
                        | "set_async_circuit_breaker_config" => {}
                        _ => {
                            return Err(Error::Config(format!(
                                "index cache config: MEMCACHED: unknown key {k:?}"
                            )))
                        }
                    }
                }
                if c.addresses.is_empty() {
                    return Err(Error::Config(
                        "index cache config: MEMCACHED: no addresses configured".into(),
                    ));
                }
                for a in &c.addresses {
                    if a.starts_with("dnssrv") {
                        return Err(Error::Config(format!(
                            "index cache config: MEMCACHED: address {a:?}: SRV discovery is not supported"
                        )));
                    }
                }
                CacheBackend::Memcached(c)
            }
            other => {
                return Err(Error::Config(format!(
                    "index cache config: unsupported type {other:?} (IN-MEMORY or MEMCACHED)"
                )))
            }
        };
        Ok(Self {
            backend,
            enabled_items: raw.enabled_items,
        })
    }

    /// Builds the cache, instrumented, registering its metrics in `registry`.
    pub fn build(&self, registry: &mut Registry) -> Result<Arc<Instrumented>> {
        let inner: Arc<dyn IndexCache> = match &self.backend {
            CacheBackend::InMemory {
                max_size,
                max_item_size,
            } => Arc::new(InMemoryIndexCache::new(*max_size, *max_item_size, registry)),
            CacheBackend::Memcached(c) => Arc::new(MemcachedIndexCache::new(c.clone())),
        };
        Ok(Arc::new(Instrumented::new(
            inner,
            self.enabled_items.clone(),
            registry,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thanos_yaml() {
        let c = IndexCacheConfig::from_yaml(
            "type: IN-MEMORY\nconfig:\n  max_size: 1GB\n  max_item_size: 1MB\n",
        )
        .unwrap();
        assert_eq!(
            c.backend,
            CacheBackend::InMemory {
                max_size: 1 << 30,
                max_item_size: 1 << 20
            }
        );
        let c = IndexCacheConfig::from_yaml(
            "type: MEMCACHED\nconfig:\n  addresses: [\"127.0.0.1:11211\"]\n  timeout: 1s\n  max_item_size: 2MiB\nenabled_items: [Postings]\n",
        )
        .unwrap();
        let CacheBackend::Memcached(m) = &c.backend else {
            panic!("not memcached")
        };
        assert_eq!(m.timeout, Duration::from_secs(1));
        assert_eq!(m.max_item_size, 2 << 20);
        assert_eq!(m.max_idle_connections, 100);
        assert_eq!(c.enabled_items, vec!["Postings"]);
    }

    #[test]
    fn rejects_bad_yaml() {
        for (y, want) in [
            ("type: REDISX\n", "unsupported type"),
            (
                "type: IN-MEMORY\nconfig: {max_sise: 1}\n",
                "unknown key \"max_sise\"",
            ),
            ("type: MEMCACHED\nconfig: {}\n", "no addresses"),
            (
                "type: IN-MEMORY\nconfig: {max_size: 1KB, max_item_size: 2KB}\n",
                "cannot be bigger",
            ),
            (
                "type: IN-MEMORY\nenabled_items: [Metadata]\n",
                "unsupported item type",
            ),
        ] {
            let e = IndexCacheConfig::from_yaml(y).unwrap_err().to_string();
            assert!(e.contains(want), "{y}: {e}");
        }
    }
}
