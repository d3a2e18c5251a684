//! Checks shared by the tests against real servers and emulators: every
//! bucket operation with its metrics, and a multipart round trip.

#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use strata_objstore::{Bucket, BucketConfig};

/// A bucket for `yaml`, registering its metrics in `reg`.
pub fn bucket(yaml: &str, reg: &mut Registry) -> Bucket {
    Bucket::from_config(&BucketConfig::parse(yaml).unwrap(), reg).unwrap()
}

/// The registry in the text format.
pub fn metrics(reg: &Registry) -> String {
    let mut s = String::new();
    encode(&mut s, reg).unwrap();
    s
}

/// The value of `name{operation="op"}` in `text` (0 when absent).
pub fn counter(text: &str, name: &str, op: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("operation=\"{op}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Upload, get, ranged get, exists, attributes, iter (flat and recursive),
/// not-found and delete against an empty bucket named `name`, then the
/// operation counters in `reg`.
pub async fn every_operation(b: &Bucket, reg: &Registry, name: &str) {
    assert_eq!(b.name(), name);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    b.upload("blk/chunks/000001", Bytes::from(data.clone()))
        .await
        .unwrap();
    b.upload("blk/meta.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(b.get("blk/chunks/000001").await.unwrap(), data);
    assert_eq!(
        b.get_range("blk/chunks/000001", 100, 50).await.unwrap(),
        data[100..150]
    );
    assert!(b.exists("blk/meta.json").await.unwrap());
    assert!(!b.exists("blk/nope").await.unwrap());
    assert_eq!(
        b.attributes("blk/chunks/000001").await.unwrap().size,
        10_000
    );
    assert_eq!(b.iter("").await.unwrap(), vec!["blk/".to_string()]);
    assert_eq!(
        b.iter("blk").await.unwrap(),
        vec!["blk/chunks/".to_string(), "blk/meta.json".to_string()]
    );
    assert_eq!(
        b.iter_recursive("blk").await.unwrap(),
        vec!["blk/chunks/000001".to_string(), "blk/meta.json".to_string()]
    );
    let e = b.get("blk/nope").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(e.to_string().contains("blk/nope"), "{e}");
    b.delete("blk/meta.json").await.unwrap();
    assert!(!b.exists("blk/meta.json").await.unwrap());

    let m = metrics(reg);
    for (op, at_least) in [
        ("upload", 2),
        ("get", 2),
        ("get_range", 1),
        ("exists", 3),
        ("iter", 3),
        ("delete", 1),
    ] {
        let n = counter(&m, "thanos_objstore_bucket_operations_total", op);
        assert!(n >= at_least, "{op}: {n} < {at_least}\n{m}");
    }
    assert!(m.contains(&format!("bucket=\"{name}\"")), "{m}");
    // A missing object is not a failure.
    assert_eq!(
        counter(&m, "thanos_objstore_bucket_operation_failures_total", "get"),
        0
    );
}

/// A 13 MiB file through `upload_file` (parts of the bucket's part size),
/// read back whole and across a part boundary.
pub async fn multipart_round_trip(b: &Bucket) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big");
    let data: Vec<u8> = (0..13 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    assert_eq!(
        b.upload_file("blk/index", &path).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(
        b.attributes("blk/index").await.unwrap().size,
        data.len() as u64
    );
    let back = tmp.path().join("back");
    b.download_file("blk/index", &back).await.unwrap();
    assert!(std::fs::read(&back).unwrap() == data, "round trip differs");
    let off = 5 * 1024 * 1024 - 10;
    assert_eq!(
        b.get_range("blk/index", off, 20).await.unwrap(),
        data[off as usize..off as usize + 20]
    );
}
