//! A small memcached client (text protocol over tokio TCP: `get` with many
//! keys, `set`) and the index cache on top of it (thanos
//! `pkg/store/cache/memcached.go`). Keys are spread over the servers with jump
//! consistent hashing, as Thanos does, so keep the address order stable.
//! Failures are logged and turn into misses; sets are asynchronous and dropped
//! when `max_async_concurrency` sets are already in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::{CacheKey, IndexCache, MemcachedConfig};
use crate::error::{Error, Result};

type Conn = BufReader<TcpStream>;

#[derive(Debug)]
struct Server {
    addr: String,
    idle: Mutex<Vec<Conn>>,
}

/// A memcached client over one or more servers.
#[derive(Debug)]
pub struct MemcachedClient {
    cfg: MemcachedConfig,
    servers: Vec<Arc<Server>>,
    sets: Arc<Semaphore>,
    gets: Arc<Semaphore>,
}

/// Jump consistent hash (Lamping & Veach), as Thanos' `jumpHash`.
fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl MemcachedClient {
    /// A client for `cfg.addresses` (connections are opened on demand).
    pub fn new(cfg: MemcachedConfig) -> Self {
        let servers = cfg
            .addresses
            .iter()
            .map(|a| {
                Arc::new(Server {
                    addr: a.strip_prefix("dns+").unwrap_or(a).to_string(),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .collect();
        Self {
            sets: Arc::new(Semaphore::new(cfg.max_async_concurrency.max(1))),
            gets: Arc::new(Semaphore::new(cfg.max_get_multi_concurrency.max(1))),
            cfg,
            servers,
        }
    }

    fn server_for(&self, key: &str) -> Option<&Arc<Server>> {
        if self.servers.is_empty() {
            return None;
        }
        self.servers.get(jump_hash(fnv64(key), self.servers.len()))
    }

    async fn conn(&self, s: &Server) -> Result<Conn> {
        if let Some(c) = s.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        let c = tokio::time::timeout(self.cfg.timeout, TcpStream::connect(&s.addr))
            .await
            .map_err(|_| Error::Memcached {
                addr: s.addr.clone(),
                msg: "connect timed out".into(),
            })?
            .map_err(|e| Error::Memcached {
                addr: s.addr.clone(),
                msg: format!("connect: {e}"),
            })?;
        let _ = c.set_nodelay(true);
        Ok(BufReader::new(c))
    }

    fn put_back(&self, s: &Server, c: Conn) {
        if let Ok(mut v) = s.idle.lock() {
            if v.len() < self.cfg.max_idle_connections {
                v.push(c);
            }
        }
    }

    async fn with_conn<T, F>(&self, s: &Server, f: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> futures::future::BoxFuture<'c, std::io::Result<T>>,
    {
        let mut c = self.conn(s).await?;
        match tokio::time::timeout(self.cfg.timeout, f(&mut c)).await {
            Ok(Ok(v)) => {
                self.put_back(s, c);
                Ok(v)
            }
            Ok(Err(e)) => Err(Error::Memcached {
                addr: s.addr.clone(),
                msg: e.to_string(),
            }),
            Err(_) => Err(Error::Memcached {
                addr: s.addr.clone(),
                msg: format!("operation timed out after {:?}", self.cfg.timeout),
            }),
        }
    }

    /// Values of the keys found.
    pub async fn get_multi(&self, keys: &[String]) -> Result<HashMap<String, Bytes>> {
        let mut per: HashMap<usize, Vec<String>> = HashMap::new();
        for k in keys {
            let i = jump_hash(fnv64(k), self.servers.len().max(1));
            per.entry(i).or_default().push(k.clone());
        }
        let batch = if self.cfg.max_get_multi_batch_size == 0 {
            usize::MAX
        } else {
            self.cfg.max_get_multi_batch_size
        };
        let mut jobs = Vec::new();
        for (i, ks) in per {
            let Some(s) = self.servers.get(i) else {
                continue;
            };
            for chunk in ks.chunks(batch.min(ks.len().max(1))) {
                let chunk = chunk.to_vec();
                jobs.push(async move {
                    let _permit = self.gets.acquire().await;
                    self.get_batch(s, chunk).await
                });
            }
        }
        let mut out = HashMap::new();
        for r in join_all(jobs).await {
            out.extend(r?);
        }
        Ok(out)
    }

    async fn get_batch(&self, s: &Server, keys: Vec<String>) -> Result<HashMap<String, Bytes>> {
        self.with_conn(s, move |c| {
            Box::pin(async move {
                let mut cmd = String::from("get");
                for k in &keys {
                    cmd.push(' ');
                    cmd.push_str(k);
                }
                cmd.push_str("\r\n");
                c.get_mut().write_all(cmd.as_bytes()).await?;
                let mut out = HashMap::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if c.read_line(&mut line).await? == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "connection closed during get",
                        ));
                    }
                    let l = line.trim_end();
                    if l == "END" {
                        return Ok(out);
                    }
                    let parts: Vec<&str> = l.split(' ').collect();
                    let bad = || {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("unexpected reply {l:?}"),
                        )
                    };
                    if parts.len() < 4 || parts[0] != "VALUE" {
                        return Err(bad());
                    }
                    let n: usize = parts[3].parse().map_err(|_| bad())?;
                    let key = parts[1].to_string();
                    let mut buf = vec![0u8; n + 2];
                    c.read_exact(&mut buf).await?;
                    buf.truncate(n);
                    out.insert(key, Bytes::from(buf));
                }
            })
        })
        .await
    }

    /// Stores `value` under `key` (no expiry), waiting for the reply.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let Some(s) = self.server_for(key) else {
            return Ok(());
        };
        let mut msg = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        msg.extend_from_slice(value);
        msg.extend_from_slice(b"\r\n");
        let reply = self
            .with_conn(s, move |c| {
                Box::pin(async move {
                    c.get_mut().write_all(&msg).await?;
                    let mut line = String::new();
                    c.read_line(&mut line).await?;
                    Ok(line)
                })
            })
            .await?;
        if reply.trim_end() != "STORED" {
            return Err(Error::Memcached {
                addr: s.addr.clone(),
                msg: format!("set {key}: {}", reply.trim_end()),
            });
        }
        Ok(())
    }
}

/// An index cache in memcached.
#[derive(Debug, Clone)]
pub struct MemcachedIndexCache {
    client: Arc<MemcachedClient>,
}

impl MemcachedIndexCache {
    /// A cache over a new client.
    pub fn new(cfg: MemcachedConfig) -> Self {
        Self {
            client: Arc::new(MemcachedClient::new(cfg)),
        }
    }

    /// The client.
    pub fn client(&self) -> &Arc<MemcachedClient> {
        &self.client
    }
}

#[async_trait]
impl IndexCache for MemcachedIndexCache {
    async fn fetch_multi(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        let ext: Vec<String> = keys.iter().map(CacheKey::external_key).collect();
        match self.client.get_multi(&ext).await {
            Ok(mut m) => ext.iter().map(|k| m.remove(k)).collect(),
            Err(e) => {
                warn!(error = %e, "index cache: memcached get failed; treating as misses");
                vec![None; keys.len()]
            }
        }
    }

    fn store(&self, key: CacheKey, value: Bytes) {
        if value.len() as u64 > self.client.cfg.max_item_size {
            return;
        }
        let Ok(permit) = self.client.sets.clone().try_acquire_owned() else {
            debug!("index cache: memcached set dropped, too many in flight");
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        rt.spawn(async move {
            let _permit = permit;
            let k = key.external_key();
            if let Err(e) = client.set(&k, &value).await {
                warn!(error = %e, key = %k, "index cache: memcached set failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_in_range() {
        for k in 0..1000u64 {
            assert!(jump_hash(k, 3) < 3);
            assert_eq!(jump_hash(k, 1), 0);
        }
        // Growing from 3 to 4 servers moves only keys that go to the new one.
        for k in 0..1000u64 {
            let (a, b) = (jump_hash(k, 3), jump_hash(k, 4));
            assert!(a == b || b == 3);
        }
    }
}
