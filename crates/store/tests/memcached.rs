//! The memcached index cache against the real `memcached` binary (Debian
//! package `memcached`).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use strata_model::MatchType;
use strata_storage::SelectRequest;
use strata_store::cache::{
    CacheKey, IndexCache, MemcachedConfig, MemcachedIndexCache, ITEM_POSTINGS, ITEM_SERIES,
};
use strata_store::IndexCacheConfig;

/// A memcached process on a free loopback port, killed on drop.
struct Memcached {
    child: Child,
    addr: String,
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_memcached() -> Memcached {
    let bin = strata_testkit::peer_binary("memcached");
    let port = strata_testkit::free_port();
    let child = Command::new(bin)
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
            "-u",
            "root",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting memcached (apt-get install memcached)");
    let addr = format!("127.0.0.1:{port}");
    let m = Memcached { child, addr };
    for _ in 0..200 {
        if std::net::TcpStream::connect(&m.addr).is_ok() {
            return m;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("memcached did not start listening on {}", m.addr);
}

#[tokio::test]
async fn memcached_cache_roundtrip() {
    let mc = start_memcached();
    let cache = MemcachedIndexCache::new(MemcachedConfig {
        addresses: vec![mc.addr.clone()],
        timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let block = ulid::Ulid::new();
    let k1 = CacheKey::Postings {
        block,
        name: "job".into(),
        value: "a b\r\nc".into(),
    };
    let k2 = CacheKey::Series {
        block,
        series_ref: 7,
    };
    let v1 = Bytes::from(vec![1u8, 2, 3, b'\r', b'\n', 0]);
    cache.client().set(&k1.external_key(), &v1).await.unwrap();
    let got = cache.fetch_multi(&[k1.clone(), k2.clone()]).await;
    assert_eq!(got, vec![Some(v1), None]);
    // Asynchronous store, then visible.
    cache.store(k2.clone(), Bytes::from_static(b"series"));
    let mut seen = None;
    for _ in 0..100 {
        seen = cache
            .fetch_multi(std::slice::from_ref(&k2))
            .await
            .pop()
            .flatten();
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, Some(Bytes::from_static(b"series")));
}

#[tokio::test]
async fn unreachable_memcached_is_a_miss() {
    let port = strata_testkit::free_port();
    let cache = MemcachedIndexCache::new(MemcachedConfig {
        addresses: vec![format!("127.0.0.1:{port}")],
        timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let k = CacheKey::Series {
        block: ulid::Ulid::new(),
        series_ref: 1,
    };
    assert_eq!(cache.fetch_multi(&[k]).await, vec![None]);
}

#[tokio::test]
async fn bucket_store_hits_memcached_on_repeated_queries() {
    let mc = start_memcached();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    let dir = write_block(&local, &gen_series("m", 50, 0, 200), |_| true);
    upload(&bucket, &dir, &[("r", "1")]).await;
    let mut o = opts(&tmp.path().join("data"));
    o.index_cache = IndexCacheConfig::from_yaml(&format!(
        "type: MEMCACHED\nconfig:\n  addresses: [\"{}\"]\n  timeout: 2s\n",
        mc.addr
    ))
    .unwrap();
    let s = store(&bucket, o).await;
    let req = SelectRequest::new(
        0,
        i64::MAX,
        vec![m(MatchType::Regex, "instance", "host-0000[0-4]")],
    );
    let (first, _) = select(s.as_ref(), &req).await;
    assert_eq!(first.len(), 5);
    // Sets are asynchronous: wait until the second query hits.
    let c = s.index_cache();
    for _ in 0..100 {
        let (second, _) = select(s.as_ref(), &req).await;
        assert_eq!(
            samples_of(&second, 0, i64::MAX),
            samples_of(&first, 0, i64::MAX)
        );
        if c.counts(ITEM_SERIES).1 >= 5 && c.counts(ITEM_POSTINGS).1 >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "no memcached hits: postings {:?}, series {:?}",
        c.counts(ITEM_POSTINGS),
        c.counts(ITEM_SERIES)
    );
}
