//! The AZURE provider against Azurite, Microsoft's storage emulator (blob
//! service, in memory on loopback), configured the way Thanos users point at
//! it: `storage_connection_string` with the account, key and `BlobEndpoint`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::registry::Registry;
use strata_objstore::{Bucket, BucketConfig, BucketOptions};
use strata_testkit::emulators::{AzuriteProcess, AZURITE_KEY};

mod common;

use common::bucket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_azurite() {
    let az = AzuriteProcess::start("strata-test");
    let mut reg = Registry::default();
    let b = bucket(&az.objstore_yaml(), &mut reg);
    common::every_operation(&b, &reg, "strata-test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_to_azurite() {
    let az = AzuriteProcess::start("strata-test");
    // Blocks of 5 MiB: a 13 MiB file is three staged blocks.
    let b = Bucket::new(
        BucketConfig::parse(&az.objstore_yaml())
            .unwrap()
            .build_store()
            .unwrap(),
        az.container(),
        BucketOptions {
            multipart_threshold: 5 << 20,
            part_size: 5 << 20,
            ..Default::default()
        },
        &mut Registry::default(),
    );
    common::multipart_round_trip(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_missing_container_are_clear_errors() {
    let az = AzuriteProcess::start("strata-test");
    let wrong = "A".repeat(AZURITE_KEY.len() - 2) + "==";
    let b = bucket(
        &az.objstore_yaml().replace(AZURITE_KEY, &wrong),
        &mut Registry::default(),
    );
    let start = Instant::now();
    let e = b.iter("").await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(e.is_access_denied(), "{e}");
    assert!(e.to_string().contains("strata-test"), "{e}");
    let e = b.upload("x", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");

    let b = bucket(
        &az.objstore_yaml()
            .replace("container: strata-test", "container: no-such-container"),
        &mut Registry::default(),
    );
    let start = Instant::now();
    let e = b.upload("x", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(e.to_string().contains("no-such-container"), "{e}");
}
