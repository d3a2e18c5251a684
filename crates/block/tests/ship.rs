//! Block upload, download and the shipper against in-memory and FILESYSTEM
//! buckets, with a fault-injecting store in between.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use strata_block::{
    download_block, list_blocks, upload_block, Meta, Shipper, ShipperOptions, ShipperState,
};
use strata_objstore::testing::{Fault, FaultStore};
use strata_objstore::{Bucket, BucketConfig, BucketOptions, RetryPolicy};
use strata_tsdb::backfill::{create_blocks_from_openmetrics, BackfillOptions};
use ulid::Ulid;

/// Three series over five hours: three 2h blocks.
fn make_blocks(dir: &Path) -> Vec<Ulid> {
    let mut text = String::new();
    for (name, job) in [("up", "a"), ("up", "b"), ("requests_total", "a")] {
        text.push_str(&format!("# TYPE {name} gauge\n"));
        for i in 0..300 {
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
    assert_eq!(metas.len(), 3);
    metas.iter().map(|m| m.ulid).collect()
}

fn labels() -> BTreeMap<String, String> {
    [
        ("cluster".to_string(), "eu1".to_string()),
        ("replica".to_string(), "a".to_string()),
    ]
    .into()
}

fn no_retries() -> BucketOptions {
    BucketOptions {
        retry: RetryPolicy::none(),
        ..BucketOptions::default()
    }
}

fn fault_bucket(reg: &mut Registry) -> (Arc<FaultStore>, Bucket) {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let fault = Arc::new(FaultStore::new(mem));
    let b = Bucket::new(fault.clone(), "mem", no_retries(), reg);
    (fault, b)
}

fn file_size(p: &Path) -> i64 {
    std::fs::metadata(p).unwrap().len() as i64
}

#[tokio::test]
async fn upload_order_and_meta_content() {
    let d = tempfile::tempdir().unwrap();
    let ids = make_blocks(d.path());
    let block_dir = d.path().join(ids[0].to_string());
    assert!(block_dir.join("tombstones").exists());
    let mut reg = Registry::default();
    let (fault, bucket) = fault_bucket(&mut reg);

    let meta = upload_block(&bucket, &block_dir, &labels(), "sidecar")
        .await
        .unwrap();
    let id = ids[0];
    assert_eq!(
        fault.uploaded_keys(),
        vec![
            format!("{id}/chunks/000001"),
            format!("{id}/index"),
            format!("{id}/meta.json"),
        ]
    );
    let got = Meta::from_json(&bucket.get(&format!("{id}/meta.json")).await.unwrap()).unwrap();
    assert_eq!(got, meta);
    assert_eq!(got.thanos.labels, labels());
    assert_eq!(got.thanos.source, "sidecar");
    assert_eq!(got.thanos.segment_files, vec!["000001"]);
    let files: Vec<(String, i64)> = got
        .thanos
        .files
        .iter()
        .map(|f| (f.rel_path.clone(), f.size_bytes))
        .collect();
    assert_eq!(
        files,
        vec![
            (
                "chunks/000001".to_string(),
                file_size(&block_dir.join("chunks/000001"))
            ),
            ("index".to_string(), file_size(&block_dir.join("index"))),
            ("meta.json".to_string(), 0),
        ]
    );
    for f in &got.thanos.files[..2] {
        let a = bucket
            .attributes(&format!("{id}/{}", f.rel_path))
            .await
            .unwrap();
        assert_eq!(a.size as i64, f.size_bytes);
    }
    assert_ne!(got.thanos.upload_time, strata_block::meta::ZERO_TIME);
    assert_eq!(got.block, Meta::read_from_dir(&block_dir).unwrap().block);
    // Local meta.json is untouched (no thanos section).
    assert!(Meta::read_from_dir(&block_dir)
        .unwrap()
        .thanos
        .labels
        .is_empty());

    // Empty external labels are refused before anything is uploaded.
    fault.clear_calls();
    let e = upload_block(
        &bucket,
        &d.path().join(ids[1].to_string()),
        &BTreeMap::new(),
        "sidecar",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("empty external labels"), "{e}");
    assert!(fault.calls().is_empty());

    // A failed index upload removes the chunks already uploaded, and no meta.json appears.
    let id1 = ids[1];
    fault.fail_puts(1.0, Fault::Unavailable, 1);
    assert!(upload_block(
        &bucket,
        &d.path().join(id1.to_string()),
        &labels(),
        "sidecar"
    )
    .await
    .is_err());
    fault.clear_faults();
    assert!(bucket.iter(&id1.to_string()).await.unwrap().is_empty());
    let listed = list_blocks(&bucket).await.unwrap();
    assert_eq!(listed.complete, vec![id]);
    assert!(listed.partial.is_empty());
}

#[tokio::test]
async fn partial_uploads_are_listed_separately() {
    let mut reg = Registry::default();
    let (_fault, bucket) = fault_bucket(&mut reg);
    let a = Ulid::new();
    let b = Ulid::new();
    bucket
        .upload(&format!("{a}/meta.json"), "{}".into())
        .await
        .unwrap();
    bucket
        .upload(&format!("{b}/index"), "x".into())
        .await
        .unwrap();
    bucket
        .upload("debug/metas/x.json", "{}".into())
        .await
        .unwrap();
    let l = list_blocks(&bucket).await.unwrap();
    assert_eq!(l.complete, vec![a]);
    assert_eq!(l.partial, vec![b]);
}

#[tokio::test]
async fn download_round_trip_on_filesystem_bucket() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let ids = make_blocks(&src);
    let cfg = BucketConfig::filesystem(d.path().join("bucket").to_str().unwrap());
    let mut reg = Registry::default();
    let bucket = Bucket::from_config(&cfg, &mut reg).unwrap();
    for id in &ids {
        upload_block(&bucket, &src.join(id.to_string()), &labels(), "test")
            .await
            .unwrap();
    }
    assert_eq!(list_blocks(&bucket).await.unwrap().complete, {
        let mut s = ids.clone();
        s.sort();
        s
    });
    let dst = d.path().join("dst");
    for id in &ids {
        let m = download_block(&bucket, *id, &dst.join(id.to_string()))
            .await
            .unwrap();
        assert_eq!(m.thanos.labels, labels());
        assert_eq!(
            std::fs::read(dst.join(id.to_string()).join("index")).unwrap(),
            std::fs::read(src.join(id.to_string()).join("index")).unwrap()
        );
        assert!(!dst.join(id.to_string()).join("tombstones").exists());
    }
    let want = strata_testkit::promtool::dump(&src);
    let got = strata_testkit::promtool::dump(&dst);
    assert!(!want.is_empty());
    strata_testkit::assert_same_text("downloaded", &got, "original", &want);
}

fn shipper(dir: &Path, bucket: &Bucket, reg: &mut Registry) -> Shipper {
    Shipper::new(
        dir,
        bucket.clone(),
        labels(),
        ShipperOptions::default(),
        reg,
    )
}

fn meta_puts(fault: &FaultStore) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for k in fault.uploaded_keys() {
        if let Some(b) = k.strip_suffix("/meta.json") {
            *out.entry(b.to_string()).or_default() += 1;
        }
    }
    out
}

fn state(dir: &Path) -> Vec<Ulid> {
    ShipperState::read(&dir.join("thanos.shipper.json"))
        .unwrap()
        .uploaded()
        .to_vec()
}

#[tokio::test]
async fn shipper_uploads_each_block_once_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let dir: PathBuf = d.path().to_path_buf();
    let ids = make_blocks(&dir);
    let mut reg = Registry::default();
    let (fault, bucket) = fault_bucket(&mut reg);

    let s = shipper(&dir, &bucket, &mut reg);
    assert_eq!(s.sync().await.unwrap(), 3);
    assert_eq!(s.sync().await.unwrap(), 0);
    let text = std::fs::read_to_string(dir.join("thanos.shipper.json")).unwrap();
    assert!(
        text.starts_with("{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\""),
        "{text}"
    );
    assert!(text.ends_with("]\n}\n"), "{text}");
    assert_eq!(state(&dir), ids, "oldest first");
    assert!(!dir.join("thanos/upload").join(ids[0].to_string()).exists());

    // A restart: a new shipper on the same directory uploads nothing.
    let mut reg2 = Registry::default();
    let s2 = shipper(&dir, &bucket, &mut reg2);
    assert_eq!(s2.sync().await.unwrap(), 0);

    // A crash after uploading but before recording: the bucket is asked first.
    std::fs::remove_file(dir.join("thanos.shipper.json")).unwrap();
    let mut reg3 = Registry::default();
    let s3 = shipper(&dir, &bucket, &mut reg3);
    assert_eq!(s3.sync().await.unwrap(), 0);
    assert_eq!(state(&dir), ids);
    for id in &ids {
        assert_eq!(meta_puts(&fault).get(&id.to_string()), Some(&1), "{id}");
    }

    // A block that disappeared locally is dropped from the state file.
    std::fs::remove_dir_all(dir.join(ids[0].to_string())).unwrap();
    assert_eq!(s3.sync().await.unwrap(), 0);
    assert_eq!(state(&dir), ids[1..].to_vec());

    let mut m = String::new();
    encode(&mut m, &reg).unwrap();
    assert!(m.contains("thanos_shipper_uploads_total 3"), "{m}");
    assert!(m.contains("thanos_shipper_dir_syncs_total 2"), "{m}");
    assert!(
        m.contains("thanos_shipper_dir_sync_failures_total 0"),
        "{m}"
    );
}

#[tokio::test]
async fn shipper_skips_compacted_and_empty_blocks() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ids = make_blocks(dir);
    // Block 0 becomes level 2; block 1 claims no samples.
    let mut m0 = Meta::read_from_dir(&dir.join(ids[0].to_string()))
        .unwrap()
        .block;
    m0.compaction.level = 2;
    m0.write(&dir.join(ids[0].to_string())).unwrap();
    let mut m1 = Meta::read_from_dir(&dir.join(ids[1].to_string()))
        .unwrap()
        .block;
    m1.stats.num_samples = 0;
    m1.write(&dir.join(ids[1].to_string())).unwrap();
    // Leftovers that are not blocks are ignored.
    std::fs::create_dir_all(dir.join(format!("{}.tmp-for-creation", Ulid::new()))).unwrap();
    std::fs::write(dir.join(Ulid::new().to_string()), b"not a dir").unwrap();

    let mut reg = Registry::default();
    let (_fault, bucket) = fault_bucket(&mut reg);
    let s = shipper(dir, &bucket, &mut reg);
    assert_eq!(s.sync().await.unwrap(), 1);
    assert_eq!(list_blocks(&bucket).await.unwrap().complete, vec![ids[2]]);

    let mut reg2 = Registry::default();
    let opts = ShipperOptions {
        upload_compacted: true,
        ..ShipperOptions::default()
    };
    let s2 = Shipper::new(dir, bucket.clone(), labels(), opts, &mut reg2);
    assert_eq!(s2.sync().await.unwrap(), 1);
    let mut want = vec![ids[0], ids[2]];
    want.sort();
    assert_eq!(list_blocks(&bucket).await.unwrap().complete, want);
}

/// Every block that has meta.json in the bucket has all its files, at full size.
async fn assert_no_incomplete_block(bucket: &Bucket, dir: &Path) {
    for id in list_blocks(bucket).await.unwrap().complete {
        let m = Meta::from_json(&bucket.get(&format!("{id}/meta.json")).await.unwrap()).unwrap();
        for f in &m.thanos.files {
            if f.rel_path == "meta.json" {
                continue;
            }
            let a = bucket
                .attributes(&format!("{id}/{}", f.rel_path))
                .await
                .unwrap();
            assert_eq!(a.size as i64, f.size_bytes, "{id}/{}", f.rel_path);
            assert_eq!(
                a.size as i64,
                file_size(&dir.join(id.to_string()).join(&f.rel_path))
            );
        }
    }
}

#[tokio::test]
async fn shipper_survives_failing_uploads() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ids = make_blocks(dir);
    let mut reg = Registry::default();
    let (fault, bucket) = fault_bucket(&mut reg);
    fault.fail_puts(0.4, Fault::Unavailable, 7);

    let mut failures = 0;
    for pass in 0..20 {
        // Each pass may be a new process.
        let mut r = Registry::default();
        let s = shipper(dir, &bucket, &mut r);
        match s.sync().await {
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let msg = e.to_string();
                assert!(
                    msg.contains("upload") && msg.contains("mem"),
                    "pass {pass}: {msg}"
                );
            }
        }
        assert_no_incomplete_block(&bucket, dir).await;
    }
    assert!(
        failures > 0,
        "the fault share should have failed some uploads"
    );
    fault.clear_faults();
    let s = shipper(dir, &bucket, &mut reg);
    s.sync().await.unwrap();
    assert_no_incomplete_block(&bucket, dir).await;
    let mut want = ids.clone();
    want.sort();
    assert_eq!(list_blocks(&bucket).await.unwrap().complete, want);
    assert!(list_blocks(&bucket).await.unwrap().partial.is_empty());
    let puts = meta_puts(&fault);
    for id in &ids {
        assert_eq!(puts.get(&id.to_string()), Some(&1), "{id} uploaded once");
    }
    assert_eq!(state(dir), ids);
}

#[tokio::test]
async fn compacted_block_overlapping_the_bucket_is_not_shipped() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ids = make_blocks(dir);
    let mut reg = Registry::default();
    let (_fault, bucket) = fault_bucket(&mut reg);
    // The three level-1 blocks are shipped one by one.
    assert_eq!(shipper(dir, &bucket, &mut reg).sync().await.unwrap(), 3);

    // Then the local TSDB compacts the first two into one level-2 block.
    let merged = Ulid::new();
    strata_testkit::copy_dir(&dir.join(ids[0].to_string()), &dir.join(merged.to_string()));
    let second = Meta::read_from_dir(&dir.join(ids[1].to_string()))
        .unwrap()
        .block;
    let mut m = Meta::read_from_dir(&dir.join(merged.to_string()))
        .unwrap()
        .block;
    m.ulid = merged;
    m.max_time = second.max_time;
    m.compaction.level = 2;
    m.write(&dir.join(merged.to_string())).unwrap();
    for id in &ids[..2] {
        std::fs::remove_dir_all(dir.join(id.to_string())).unwrap();
    }
    let opts = || ShipperOptions {
        upload_compacted: true,
        ..ShipperOptions::default()
    };
    let s = Shipper::new(
        dir,
        bucket.clone(),
        labels(),
        opts(),
        &mut Registry::default(),
    );
    let err = s.sync().await.unwrap_err().to_string();
    assert!(
        err.contains(&merged.to_string())
            && err.contains(&ids[0].to_string())
            && err.contains(&ids[1].to_string())
            && err.contains("overlaps"),
        "{err}"
    );
    assert!(!list_blocks(&bucket)
        .await
        .unwrap()
        .complete
        .contains(&merged));

    // Blocks of other external labels are no overlap: into a bucket holding the
    // first block under another replica label, the merged block goes up.
    let (_f2, other) = fault_bucket(&mut Registry::default());
    let mut theirs = labels();
    theirs.insert("replica".into(), "b".into());
    let d2 = tempfile::tempdir().unwrap();
    let again = make_blocks(d2.path());
    upload_block(
        &other,
        &d2.path().join(again[0].to_string()),
        &theirs,
        "sidecar",
    )
    .await
    .unwrap();
    // (A fresh sidecar for that bucket: no state file.)
    std::fs::remove_file(dir.join("thanos.shipper.json")).unwrap();
    let s = Shipper::new(
        dir,
        other.clone(),
        labels(),
        opts(),
        &mut Registry::default(),
    );
    assert_eq!(s.sync().await.unwrap(), 2);
    assert!(list_blocks(&other)
        .await
        .unwrap()
        .complete
        .contains(&merged));
}
