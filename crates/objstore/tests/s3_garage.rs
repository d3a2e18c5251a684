//! The S3 provider against a real S3 server (Garage, single node on loopback):
//! every bucket operation, multipart uploads, the operation metrics, and the
//! errors for wrong credentials, a missing bucket and an unreachable endpoint,
//! each within bounded time.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::registry::Registry;
use strata_objstore::{Bucket, BucketConfig, RetryPolicy};
use strata_testkit::faultproxy::{FaultKind, FaultProxy, Faults};
use strata_testkit::GarageProcess;

mod common;

use common::{bucket, counter, metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_garage() {
    let g = GarageProcess::start();
    let mut reg = Registry::default();
    let b = bucket(&g.objstore_yaml(), &mut reg);
    common::every_operation(&b, &reg, "strata-test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_of_a_large_file() {
    let g = GarageProcess::start();
    // Parts of 5 MiB (S3's smallest part size): a 13 MiB file is three parts.
    let yaml = format!("{}  part_size: 5242880\n", g.objstore_yaml());
    let b = bucket(&yaml, &mut Registry::default());
    common::multipart_round_trip(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_fast_naming_bucket() {
    let g = GarageProcess::start();
    let yaml = g.objstore_yaml().replace(g.secret_key(), &"0".repeat(64));
    let b = bucket(&yaml, &mut Registry::default());
    let start = Instant::now();
    let e = b.iter("").await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(e.is_access_denied(), "{e}");
    assert!(e.to_string().contains("strata-test"), "{e}");
    let e = b.upload("x", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    // An unknown key id too.
    let yaml = g
        .objstore_yaml()
        .replace(g.access_key(), "GK000000000000000000000000");
    let e = bucket(&yaml, &mut Registry::default())
        .get("x")
        .await
        .unwrap_err();
    assert!(e.is_access_denied(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_a_clear_error() {
    let g = GarageProcess::start();
    let yaml = g.objstore_yaml_for(&g.address(), "no-such-bucket");
    let b = bucket(&yaml, &mut Registry::default());
    let start = Instant::now();
    let e = b.iter("").await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let msg = e.to_string();
    assert!(msg.contains("no-such-bucket"), "{msg}");
    assert!(msg.to_lowercase().contains("bucket"), "{msg}");
    let e = b.upload("x", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(e.to_string().contains("no-such-bucket"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_fails_in_bounded_time() {
    let port = strata_testkit::free_port();
    let yaml = format!(
        "type: S3\nconfig:\n  bucket: gone\n  endpoint: 127.0.0.1:{port}\n  insecure: true\n  \
         access_key: GK0123456789abcdef01234567\n  secret_key: {}\n  region: garage\n  \
         bucket_lookup_type: path\n  max_retries: 0\n",
        "1".repeat(64)
    );
    let mut reg = Registry::default();
    let b = bucket(&yaml, &mut reg);
    let start = Instant::now();
    let e = b.iter("").await.unwrap_err();
    let took = start.elapsed();
    // Default policy: 5 attempts with backoff capped at 5 s; well under 30 s.
    assert!(took < Duration::from_secs(30), "{took:?}");
    let msg = e.to_string();
    assert!(msg.contains("gone") && msg.contains("attempt"), "{msg}");
    assert_eq!(
        counter(
            &metrics(&reg),
            "thanos_objstore_bucket_operation_failures_total",
            "iter"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_through_injected_faults() {
    let g = GarageProcess::start();
    let proxy = FaultProxy::start(&g.address());
    let mut reg = Registry::default();
    let b = Bucket::new(
        BucketConfig::parse(&g.objstore_yaml_for(proxy.address(), g.bucket()))
            .unwrap()
            .build_store()
            .unwrap(),
        g.bucket(),
        strata_objstore::BucketOptions {
            retry: RetryPolicy {
                max_attempts: 6,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(50),
            },
            ..Default::default()
        },
        &mut reg,
    );
    proxy.set_faults(Faults::EveryNth(2, FaultKind::Mixed));
    for i in 0..10 {
        let key = format!("k/{i}");
        b.upload(&key, Bytes::from(vec![i as u8; 1000]))
            .await
            .unwrap();
        assert_eq!(b.get(&key).await.unwrap(), vec![i as u8; 1000]);
    }
    assert!(proxy.injected() >= 10, "{} injected", proxy.injected());
    // Always failing: a bounded number of attempts, then an error naming them.
    proxy.set_faults(Faults::EveryNth(1, FaultKind::ServiceUnavailable));
    let before = proxy.requests();
    let e = b.get("k/0").await.unwrap_err();
    assert_eq!(proxy.requests() - before, 6, "{e}");
    assert!(e.to_string().contains("6 attempt"), "{e}");
}
