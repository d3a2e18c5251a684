//! Bucket operations on FILESYSTEM and in-memory stores, retries through a
//! fault-injecting store, and the metrics they leave.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use strata_objstore::testing::{Fault, FaultStore};
use strata_objstore::{Bucket, BucketConfig, BucketOptions, RetryPolicy};

fn fast_retries(attempts: u32) -> BucketOptions {
    BucketOptions {
        retry: RetryPolicy {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
        ..BucketOptions::default()
    }
}

fn metrics(reg: &Registry) -> String {
    let mut s = String::new();
    encode(&mut s, reg).unwrap();
    s
}

fn metric_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

async fn exercise(b: &Bucket) {
    b.upload("01A/chunks/000001", Bytes::from_static(b"chunk-one"))
        .await
        .unwrap();
    b.upload("01A/index", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    b.upload("01A/meta.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    b.upload("01B/meta.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    b.upload("top.txt", Bytes::from_static(b"x")).await.unwrap();

    assert_eq!(b.iter("").await.unwrap(), vec!["01A/", "01B/", "top.txt"]);
    assert_eq!(
        b.iter("01A").await.unwrap(),
        vec!["01A/chunks/", "01A/index", "01A/meta.json"]
    );
    assert_eq!(b.iter("01A/").await.unwrap(), b.iter("01A").await.unwrap());
    assert_eq!(
        b.iter_recursive("01A").await.unwrap(),
        vec!["01A/chunks/000001", "01A/index", "01A/meta.json"]
    );
    assert!(b.iter("nope").await.unwrap().is_empty());

    assert_eq!(&b.get("01A/index").await.unwrap()[..], b"0123456789");
    assert_eq!(&b.get_range("01A/index", 2, 3).await.unwrap()[..], b"234");
    assert_eq!(&b.get_range("01A/index", 8, 100).await.unwrap()[..], b"89");
    assert!(b.get_range("01A/index", 3, 0).await.unwrap().is_empty());

    assert!(b.exists("01A/index").await.unwrap());
    assert!(!b.exists("01A/nope").await.unwrap());
    let attrs = b.attributes("01A/index").await.unwrap();
    assert_eq!(attrs.size, 10);

    let e = b.get("01A/missing").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("01A/missing") && msg.contains(b.name()),
        "{msg}"
    );
    assert!(b
        .attributes("01A/missing")
        .await
        .unwrap_err()
        .is_not_found());

    b.delete("top.txt").await.unwrap();
    assert!(!b.exists("top.txt").await.unwrap());
}

#[tokio::test]
async fn in_memory_operations() {
    let mut reg = Registry::default();
    let b = Bucket::new(Arc::new(InMemory::new()), "mem", fast_retries(3), &mut reg);
    exercise(&b).await;
    let m = metrics(&reg);
    let l = metric_line(
        &m,
        "thanos_objstore_bucket_operations_total{bucket=\"mem\",operation=\"upload\"}",
    )
    .unwrap();
    assert!(l.ends_with(" 5"), "{l}");
    // Not-found is expected, not a failure.
    let l = metric_line(
        &m,
        "thanos_objstore_bucket_operation_failures_total{bucket=\"mem\",operation=\"get\"}",
    )
    .unwrap();
    assert!(l.ends_with(" 0"), "{l}");
    assert!(m.contains("thanos_objstore_bucket_operation_duration_seconds_bucket{le=\"0.001\",bucket=\"mem\",operation=\"get_range\"}")
        || m.contains("thanos_objstore_bucket_operation_duration_seconds_bucket{bucket=\"mem\",operation=\"get_range\",le=\"0.001\"}"), "{m}");
    assert!(m.contains("thanos_objstore_bucket_last_successful_upload_time{bucket=\"mem\"}"));
    for op in strata_objstore::OPERATIONS {
        assert!(
            m.contains(&format!("operation=\"{op}\"")),
            "{op} missing in\n{m}"
        );
    }
}

#[tokio::test]
async fn filesystem_operations_and_prefix() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("bkt");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: tenant\n",
        dir.display()
    );
    let cfg = BucketConfig::parse(&yaml).unwrap();
    let mut reg = Registry::default();
    let b = Bucket::from_config(&cfg, &mut reg).unwrap();
    assert_eq!(b.name(), format!("fs: {}", dir.display()));
    exercise(&b).await;
    assert!(dir.join("tenant/01A/index").is_file());
}

#[tokio::test]
async fn file_upload_multipart_and_download() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("big");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();

    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let fault = Arc::new(FaultStore::new(mem));
    let mut reg = Registry::default();
    let opts = BucketOptions {
        multipart_threshold: 10_000,
        part_size: 16_384,
        ..fast_retries(3)
    };
    let b = Bucket::new(fault.clone(), "mem", opts, &mut reg);
    assert_eq!(b.upload_file("x/big", &src).await.unwrap(), 100_000);
    let calls = fault.calls();
    assert_eq!(calls.last().unwrap().op, "put_multipart", "{calls:?}");
    assert_eq!(&b.get("x/big").await.unwrap()[..], &data[..]);

    // Small files go up in one request.
    let small = d.path().join("small");
    std::fs::write(&small, b"tiny").unwrap();
    fault.clear_calls();
    b.upload_file("x/small", &small).await.unwrap();
    assert_eq!(fault.calls()[0].op, "put");

    let dst = d.path().join("down");
    assert_eq!(b.download_file("x/big", &dst).await.unwrap(), 100_000);
    assert_eq!(std::fs::read(&dst).unwrap(), data);

    // Missing local file: error names the file and the key.
    let e = b
        .upload_file("x/none", &d.path().join("none"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("x/none") && e.contains("none"), "{e}");
    // Missing object: no file is left behind.
    let gone = d.path().join("gone");
    assert!(b
        .download_file("x/nope", &gone)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(!gone.exists());
}

#[tokio::test]
async fn transient_errors_are_retried() {
    for fault_kind in [Fault::Unavailable, Fault::Timeout] {
        let fault = Arc::new(FaultStore::new(Arc::new(InMemory::new())));
        let mut reg = Registry::default();
        let b = Bucket::new(fault.clone(), "mem", fast_retries(4), &mut reg);
        fault.fail_next(3, fault_kind);
        b.upload("k", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(fault.calls().len(), 4);
        fault.fail_next(2, fault_kind);
        assert_eq!(&b.get("k").await.unwrap()[..], b"v");
        fault.fail_next(1, fault_kind);
        assert!(b.exists("k").await.unwrap());
        fault.fail_next(1, fault_kind);
        assert_eq!(b.iter("").await.unwrap(), vec!["k"]);
        let m = metrics(&reg);
        let l = metric_line(
            &m,
            "thanos_objstore_bucket_operation_failures_total{bucket=\"mem\",operation=\"upload\"}",
        )
        .unwrap();
        assert!(l.ends_with(" 0"), "{l}");
        let l = metric_line(
            &m,
            "thanos_objstore_bucket_operations_total{bucket=\"mem\",operation=\"upload\"}",
        )
        .unwrap();
        assert!(
            l.ends_with(" 1"),
            "one operation, however many attempts: {l}"
        );

        // Exhausted retries: the error says how many attempts were made.
        fault.fail_next(10, fault_kind);
        let e = b.get("k").await.unwrap_err().to_string();
        assert!(
            e.contains("after 4 attempt(s)") && e.contains("bucket mem") && e.contains(" k"),
            "{e}"
        );
        fault.clear_faults();
        let m = metrics(&reg);
        let l = metric_line(
            &m,
            "thanos_objstore_bucket_operation_failures_total{bucket=\"mem\",operation=\"get\"}",
        )
        .unwrap();
        assert!(l.ends_with(" 1"), "{l}");
    }
}

#[tokio::test]
async fn forbidden_and_not_found_are_not_retried() {
    let fault = Arc::new(FaultStore::new(Arc::new(InMemory::new())));
    let mut reg = Registry::default();
    let b = Bucket::new(fault.clone(), "mem", fast_retries(5), &mut reg);
    fault.fail_next(1, Fault::Forbidden);
    let e = b.upload("k", Bytes::from_static(b"v")).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    assert_eq!(fault.calls().len(), 1);
    fault.clear_calls();
    assert!(b.get("missing").await.unwrap_err().is_not_found());
    assert_eq!(fault.calls().len(), 1);
}

#[tokio::test]
async fn user_metadata_is_attached() {
    let mem = Arc::new(InMemory::new());
    let mut reg = Registry::default();
    let mut opts = fast_retries(1);
    opts.user_metadata.insert("team".into(), "obs".into());
    let b = Bucket::new(mem.clone(), "mem", opts, &mut reg);
    b.upload("k", Bytes::from_static(b"v")).await.unwrap();
    use object_store::ObjectStoreExt;
    let got = mem.get(&"k".into()).await.unwrap();
    let v = got
        .attributes
        .get(&object_store::Attribute::Metadata("team".into()))
        .unwrap();
    assert_eq!(v.as_ref(), "obs");
}
