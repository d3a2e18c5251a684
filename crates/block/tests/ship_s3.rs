//! The shipper against a real S3 server (Garage) behind a proxy that fails a
//! random 30% of the requests (503s and cut connections): uploads retry, no
//! block ever has its `meta.json` without every other file, a shipper
//! "restarted" after a failed pass resumes from its state file, and once the
//! faults stop every block is in the bucket exactly once with the right sizes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use prometheus_client::registry::Registry;
use strata_block::{list_blocks, Meta, Shipper, ShipperOptions, ShipperState};
use strata_objstore::{Bucket, BucketConfig, BucketOptions, RetryPolicy};
use strata_testkit::faultproxy::{FaultKind, FaultProxy, Faults};
use strata_testkit::GarageProcess;
use strata_tsdb::backfill::{create_blocks_from_openmetrics, BackfillOptions};
use ulid::Ulid;

/// Eight 2h blocks of a few series.
fn make_blocks(dir: &Path) -> Vec<Ulid> {
    let mut text = String::new();
    for (name, job) in [("up", "a"), ("up", "b"), ("requests_total", "a")] {
        text.push_str(&format!("# TYPE {name} gauge\n"));
        for i in 0..960 {
            let t = i * 60;
            text.push_str(&format!("{name}{{job=\"{job}\"}} {} {t}\n", i % 7));
        }
    }
    text.push_str("# EOF\n");
    let metas = create_blocks_from_openmetrics(
        text.as_bytes(),
        dir,
        &BackfillOptions::default(),
        |_, _, _| {},
    )
    .unwrap();
    let mut ids: Vec<Ulid> = metas.iter().map(|m| m.ulid).collect();
    ids.sort();
    ids
}

fn labels() -> BTreeMap<String, String> {
    [("cluster".to_string(), "s3".to_string())].into()
}

fn s3_bucket(yaml: &str, name: &str, attempts: u32) -> Bucket {
    Bucket::new(
        BucketConfig::parse(yaml).unwrap().build_store().unwrap(),
        name,
        BucketOptions {
            retry: RetryPolicy {
                max_attempts: attempts,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
            ..BucketOptions::default()
        },
        &mut Registry::default(),
    )
}

/// Every block with a `meta.json` has every file its meta lists, with the
/// listed size; returns those blocks.
async fn check_complete(direct: &Bucket, local: &Path) -> Vec<Ulid> {
    let list = list_blocks(direct).await.unwrap();
    for id in &list.complete {
        let raw = direct.get(&format!("{id}/meta.json")).await.unwrap();
        let meta = Meta::from_json(&raw).unwrap();
        assert!(!meta.thanos.files.is_empty(), "{id}: no file list");
        for f in &meta.thanos.files {
            if f.rel_path == "meta.json" {
                continue;
            }
            let key = format!("{id}/{}", f.rel_path);
            let attrs = direct
                .attributes(&key)
                .await
                .unwrap_or_else(|e| panic!("block {id} has meta.json but {key} is missing: {e}"));
            assert_eq!(attrs.size as i64, f.size_bytes, "{key}");
            let local_size = std::fs::metadata(local.join(id.to_string()).join(&f.rel_path))
                .unwrap()
                .len();
            assert_eq!(attrs.size, local_size, "{key} differs from the local file");
        }
    }
    list.complete
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_through_faults_is_atomic_and_resumes_after_restart() {
    let g = GarageProcess::start();
    let proxy = FaultProxy::start(&g.address());
    let tsdb = tempfile::tempdir().unwrap();
    let ids = make_blocks(tsdb.path());
    assert_eq!(ids.len(), 8);
    let direct = s3_bucket(&g.objstore_yaml(), g.bucket(), 5);
    // Few attempts per operation, so that whole passes fail now and then.
    let faulty = s3_bucket(
        &g.objstore_yaml_for(proxy.address(), g.bucket()),
        g.bucket(),
        2,
    );
    proxy.set_faults(Faults::Random(0.3, FaultKind::Mixed));

    let new_shipper = || {
        Shipper::new(
            tsdb.path(),
            faulty.clone(),
            labels(),
            ShipperOptions::default(),
            &mut Registry::default(),
        )
    };
    let mut shipper = new_shipper();
    let (mut failed, mut restarts, mut done) = (0, 0, false);
    for _ in 0..80 {
        let res = shipper.sync().await;
        check_complete(&direct, tsdb.path()).await;
        match res {
            Ok(_) => {
                let state = ShipperState::read(&shipper.state_path()).unwrap();
                if state.uploaded().len() == ids.len() {
                    done = true;
                    break;
                }
            }
            Err(e) => {
                failed += 1;
                assert!(e.to_string().contains(g.bucket()), "{e}");
                // Every other failure: a restart with the same state file.
                if failed % 2 == 0 {
                    drop(shipper);
                    shipper = new_shipper();
                    restarts += 1;
                }
            }
        }
    }
    assert!(
        done,
        "not all blocks shipped after 80 passes ({failed} failed)"
    );
    assert!(proxy.injected() > 0, "no fault was injected");
    assert!(
        failed > 0 && restarts > 0,
        "{failed} failed passes, {restarts} restarts"
    );

    // Faults off: nothing more to upload, every block once, complete.
    proxy.set_faults(Faults::None);
    assert_eq!(new_shipper().sync().await.unwrap(), 0);
    let complete = check_complete(&direct, tsdb.path()).await;
    assert_eq!(complete, ids);
    let list = list_blocks(&direct).await.unwrap();
    assert!(list.partial.is_empty(), "{:?}", list.partial);
    let top = direct.iter("").await.unwrap();
    assert_eq!(top.len(), ids.len(), "{top:?}");
    let mut state = ShipperState::read(&tsdb.path().join("thanos.shipper.json"))
        .unwrap()
        .uploaded()
        .to_vec();
    state.sort();
    assert_eq!(state, ids);
    // Exactly once: each block's meta.json was written successfully by one
    // PUT through the proxy, never twice (retries only follow failures).
    let forwarded = proxy.forwarded();
    for id in &ids {
        let suffix = format!("/{id}/meta.json");
        let ok_puts = forwarded
            .iter()
            .filter(|r| r.starts_with("PUT ") && r.contains(&suffix) && r.ends_with(" 200"))
            .count();
        assert_eq!(ok_puts, 1, "{id}: {ok_puts} successful meta.json PUTs");
    }
    eprintln!(
        "{} requests, {} faults injected, {failed} failed passes, {restarts} restarts",
        proxy.requests(),
        proxy.injected()
    );
}
