//! BucketStore over filesystem buckets: the acceptance suite, equality with
//! the local TSDB, ranged reads, filters, caches, limits and resolutions.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use strata_block::markers::{write_marker, DeletionMark};
use strata_model::relabel::{Action, Regex, RelabelConfig};
use strata_model::{Labels, MatchType};
use strata_storage::{LabelRequest, Queryable, SelectRequest};
use strata_store::cache::{ITEM_CHUNKS, ITEM_POSTINGS, ITEM_SERIES};
use strata_store::Limits;

#[tokio::test]
async fn bucket_store_passes_acceptance() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let data = tmp.path().join("data");
    strata_testkit::queryable_acceptance(|series| async move {
        // Two overlapping blocks, merged at query time.
        for part in 0..2 {
            let dir = write_block(&local, &series, |i| i % 2 == part || i < 10);
            upload(&bucket, &dir, &[]).await;
        }
        let s = store(&bucket, opts(&data)).await;
        assert_eq!(s.block_ids().len(), 2);
        s as Arc<dyn Queryable>
    })
    .await;
}

/// The same blocks read through the bucket and from local disk agree; the
/// store adds the external labels.
#[tokio::test]
async fn equals_local_db_on_prometheus_fixture_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    strata_testkit::copy_dir(
        &strata_testkit::fixtures_dir().join("backfill-6h/blocks"),
        &local,
    );
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    for d in strata_tsdb::Db::block_dirs(&local).unwrap() {
        upload(&bucket, &d, &[("cluster", "eu")]).await;
    }
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    assert_eq!(s.block_ids().len(), 3);
    let db = strata_tsdb::Db::open(&local).unwrap();
    let info = s.info();
    assert_eq!(
        info.label_sets,
        vec![Labels::from_pairs([("cluster", "eu")])]
    );
    let cases = vec![
        (
            i64::MIN,
            i64::MAX,
            vec![m(MatchType::Regex, "__name__", ".+")],
        ),
        (
            1704070800000,
            1704078000000,
            vec![m(MatchType::Equal, "__name__", "http_requests_total")],
        ),
        (
            i64::MIN,
            i64::MAX,
            vec![
                m(MatchType::Regex, "instance", "host-[ab].*"),
                m(MatchType::NotEqual, "job", "x"),
            ],
        ),
        (
            i64::MIN,
            i64::MAX,
            vec![
                m(MatchType::Equal, "cluster", "eu"),
                m(MatchType::Equal, "le", "+Inf"),
            ],
        ),
        (
            i64::MIN,
            i64::MAX,
            vec![m(MatchType::Regex, "location", ".+")],
        ),
    ];
    for (mint, maxt, ms) in cases {
        let req = SelectRequest::new(mint, maxt, ms.clone());
        let (got, warnings) = select(s.as_ref(), &req).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        let local_ms: Vec<_> = ms.iter().filter(|x| x.name != "cluster").cloned().collect();
        let (want, _) = select(&db, &SelectRequest::new(mint, maxt, local_ms)).await;
        let got = samples_of(&got, mint, maxt);
        let want: Vec<_> = samples_of(&want, mint, maxt)
            .into_iter()
            .map(|(l, v)| {
                let mut b = l.builder();
                b.set("cluster", "eu");
                (b.build(), v)
            })
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{ms:?}");
        assert!(got == want, "{ms:?}: results differ");
    }
    let req = LabelRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![],
        limit: 0,
    };
    let names = s.label_names(&req).await.unwrap().value;
    let mut want = db.label_names(&req).await.unwrap().value;
    want.push("cluster".into());
    want.sort();
    assert_eq!(names, want);
    let vals = s.label_values("instance", &req).await.unwrap().value;
    assert_eq!(vals, db.label_values("instance", &req).await.unwrap().value);
    assert_eq!(
        s.label_values("cluster", &req).await.unwrap().value,
        vec!["eu"]
    );
}

/// A query for one series reads a tiny part of the block: no whole-block download.
#[tokio::test]
async fn selective_query_reads_far_less_than_the_block() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let series = gen_series("m", 3000, 0, 480);
    let dir = write_block(&local, &series, |_| true);
    let size: u64 = walk_size(&dir);
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    upload(&bucket, &dir, &[("r", "1")]).await;
    let mut o = opts(&tmp.path().join("data"));
    o.index_cache = strata_store::IndexCacheConfig::in_memory(0);
    let s = store(&bucket, o).await;
    let after_sync = s.bytes_fetched();
    let req = SelectRequest::new(
        0,
        i64::MAX,
        vec![m(MatchType::Equal, "instance", "host-01234")],
    );
    let (got, _) = select(s.as_ref(), &req).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].collect_samples().unwrap().len(), 480);
    let per_query = s.bytes_fetched() - after_sync;
    assert!(
        per_query * 100 < size,
        "query read {per_query} bytes of a {size}-byte block"
    );
    assert!(
        after_sync * 5 < size,
        "sync read {after_sync} bytes of a {size}-byte block"
    );
}

fn walk_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            let md = e.metadata().unwrap();
            if md.is_dir() {
                walk_size(&e.path())
            } else {
                md.len()
            }
        })
        .sum()
}

async fn sharded_bucket(tmp: &std::path::Path) -> (strata_objstore::Bucket, Vec<ulid::Ulid>) {
    let local = tmp.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let bucket = fs_bucket(&tmp.join("bucket"));
    let mut ids = Vec::new();
    for shard in 0..4 {
        let series = gen_series(&format!("m{shard}"), 5, shard as i64 * 7_200_000, 100);
        let dir = write_block(&local, &series, |_| true);
        ids.push(upload(&bucket, &dir, &[("shard", &shard.to_string())]).await);
    }
    (bucket, ids)
}

#[tokio::test]
async fn relabel_selector_shards_blocks_by_external_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let (bucket, ids) = sharded_bucket(tmp.path()).await;
    let mut o = opts(&tmp.path().join("data"));
    o.relabel = vec![RelabelConfig {
        source_labels: vec!["shard".into()],
        regex: Regex::new("0|2").unwrap(),
        action: Action::Keep,
        ..Default::default()
    }];
    let s = BucketStore::new(bucket.clone(), o, &mut Default::default()).unwrap();
    let r = s.sync().await.unwrap();
    assert_eq!((r.loaded, r.relabeled_away), (2, 2));
    assert_eq!(s.block_ids(), {
        let mut v = vec![ids[0], ids[2]];
        v.sort();
        v
    });
    assert_eq!(s.info().label_sets.len(), 2);
    // __block_id is visible to the rules too.
    let mut o = opts(&tmp.path().join("data2"));
    o.relabel = vec![RelabelConfig {
        source_labels: vec!["__block_id".into()],
        regex: Regex::new(&ids[3].to_string()).unwrap(),
        action: Action::Drop,
        ..Default::default()
    }];
    let s = store(&bucket, o).await;
    assert_eq!(s.block_ids().len(), 3);
    assert!(!s.block_ids().contains(&ids[3]));
    // Matchers on external labels prune whole groups.
    let (got, _) = select(
        s.as_ref(),
        &SelectRequest::new(i64::MIN, i64::MAX, vec![m(MatchType::Equal, "shard", "1")]),
    )
    .await;
    assert_eq!(got.len(), 5);
    assert!(got
        .iter()
        .all(|x| x.labels.get("shard") == Some("1") && x.labels.get("__name__") == Some("m1")));
}

use strata_store::BucketStore;

#[tokio::test]
async fn deletion_marks_partial_uploads_time_filter_and_vanished_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (bucket, ids) = sharded_bucket(tmp.path()).await;
    // A partial upload: an index without meta.json.
    let partial = ulid::Ulid::new();
    bucket
        .upload(&format!("{partial}/index"), bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    let data = tmp.path().join("data");
    let s = BucketStore::new(bucket.clone(), opts(&data), &mut Default::default()).unwrap();
    let r = s.sync().await.unwrap();
    assert_eq!((r.loaded, r.partial, r.failed), (4, 1, 0));
    assert!(data.join(ids[1].to_string()).join("index-header").exists());

    write_marker(&bucket, ids[1], &DeletionMark::new(ids[1], "test"))
        .await
        .unwrap();
    strata_block::delete_block(&bucket, ids[2]).await.unwrap();
    let r = s.sync().await.unwrap();
    assert_eq!((r.loaded, r.marked_for_deletion, r.dropped), (2, 1, 2));
    assert_eq!(s.block_ids().len(), 2);
    assert!(
        !data.join(ids[1].to_string()).exists(),
        "index-header of a dropped block is removed"
    );
    let (got, w) = select(
        &s,
        &SelectRequest::new(
            i64::MIN,
            i64::MAX,
            vec![m(MatchType::Regex, "__name__", ".+")],
        ),
    )
    .await;
    assert!(w.is_empty());
    assert_eq!(got.len(), 10);

    // Time partitioning: only blocks overlapping [min_time, max_time].
    let mut o = opts(&tmp.path().join("data2"));
    o.min_time = 7_200_000 * 3;
    let s2 = BucketStore::new(bucket.clone(), o, &mut Default::default()).unwrap();
    let r = s2.sync().await.unwrap();
    assert_eq!((r.loaded, r.outside_time_range), (1, 1));
    assert_eq!(s2.block_ids(), vec![ids[3]]);
}

#[tokio::test]
async fn index_cache_serves_repeated_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let (bucket, _) = sharded_bucket(tmp.path()).await;
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    let req = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Regex, "job", "job-[0-3]")],
    );
    let (first, _) = select(s.as_ref(), &req).await;
    let c = s.index_cache();
    assert_eq!(c.counts(ITEM_POSTINGS).1, 0);
    let before = s.bytes_fetched();
    let (second, _) = select(s.as_ref(), &req).await;
    assert_eq!(
        samples_of(&first, i64::MIN, i64::MAX),
        samples_of(&second, i64::MIN, i64::MAX)
    );
    let (preq, phits) = c.counts(ITEM_POSTINGS);
    let (sreq, shits) = c.counts(ITEM_SERIES);
    assert!(phits > 0 && phits * 2 == preq, "postings {phits}/{preq}");
    assert!(shits > 0 && shits * 2 == sreq, "series {shits}/{sreq}");
    let (creq, chits) = c.counts(ITEM_CHUNKS);
    assert!(chits > 0 && chits * 2 == creq, "chunks {chits}/{creq}");
    // Everything came from the cache the second time.
    assert_eq!(s.bytes_fetched(), before);
}

#[tokio::test]
async fn limits_fail_requests_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (bucket, _) = sharded_bucket(tmp.path()).await;
    let mut o = opts(&tmp.path().join("data"));
    o.limits = Limits {
        max_series: 6,
        max_samples: 0,
        max_concurrency: 2,
    };
    let s = store(&bucket, o).await;
    let all = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Regex, "__name__", ".+")],
    );
    let e = s.select(&all).await.err().unwrap().to_string();
    assert!(e.contains("--store.limits.request-series=6"), "{e}");
    let one = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Equal, "__name__", "m0")],
    );
    assert_eq!(select(s.as_ref(), &one).await.0.len(), 5);

    let mut o = opts(&tmp.path().join("data2"));
    o.limits.max_samples = 120 * 4;
    let s = store(&bucket, o).await;
    let e = s.select(&one).await.err().unwrap().to_string();
    assert!(e.contains("--store.limits.request-samples=480"), "{e}");
}

/// Thanos' resolution choice: the highest resolution at most the maximum, gaps
/// filled from lower resolutions.
#[tokio::test]
async fn picks_the_highest_allowed_resolution_and_fills_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    // Raw data over [0, 4h): two blocks; a "5m" block over [0, 2h) with other values.
    let raw1 = gen_series("m", 2, 0, 480);
    let raw2 = gen_series("m", 2, 7_200_000, 480);
    let mut down = gen_series("m", 2, 0, 24);
    for (_, s) in down.iter_mut() {
        for (k, x) in s.iter_mut().enumerate() {
            x.t = k as i64 * 300_000;
            x.v = -1.0;
        }
    }
    for ser in [&raw1, &raw2] {
        let d = write_block(&local, ser, |_| true);
        upload(&bucket, &d, &[("c", "x")]).await;
    }
    let d = write_block(&local, &down, |_| true);
    let mut meta = strata_block::Meta::read_from_dir(&d).unwrap();
    meta.block.min_time = 0;
    meta.block.max_time = 7_200_000;
    meta.thanos.downsample.resolution = 300_000;
    meta.write_to_dir(&d).unwrap();
    // upload_block rewrites only labels and source, the resolution stays.
    upload(&bucket, &d, &[("c", "x")]).await;
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    let ms = vec![m(MatchType::Equal, "instance", "host-00000")];
    let mut req = SelectRequest::new(0, 4 * 3_600_000, ms);
    let (raw, _) = select(s.as_ref(), &req).await;
    let raw = raw[0].collect_samples().unwrap();
    assert_eq!(raw.len(), 960);
    assert!(raw.iter().all(|x| x.v >= 0.0));
    req.max_resolution_ms = 3_600_000;
    let (mixed, _) = select(s.as_ref(), &req).await;
    let mixed = mixed[0].collect_samples().unwrap();
    // [0, 2h) from the 5m block, [2h, 4h) from raw.
    assert_eq!(mixed.len(), 24 + 480);
    assert!(mixed[..24].iter().all(|x| x.v == -1.0));
    assert!(mixed[24..].iter().all(|x| x.v >= 0.0 && x.t >= 7_200_000));
}

#[tokio::test]
async fn label_queries_with_matchers_and_time_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let (bucket, _) = sharded_bucket(tmp.path()).await;
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    let req = LabelRequest {
        min_time: 7_200_000,
        max_time: 7_200_000 * 2 - 1,
        matchers: vec![],
        limit: 0,
    };
    assert_eq!(
        s.label_values("__name__", &req).await.unwrap().value,
        vec!["m1"]
    );
    assert_eq!(
        s.label_values("shard", &req).await.unwrap().value,
        vec!["1"]
    );
    let req = LabelRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![
            m(MatchType::Regex, "__name__", "m[23]"),
            m(MatchType::Equal, "instance", "host-00001"),
        ],
        limit: 0,
    };
    assert_eq!(
        s.label_values("shard", &req).await.unwrap().value,
        vec!["2", "3"]
    );
    assert_eq!(
        s.label_values("job", &req).await.unwrap().value,
        vec!["job-1"]
    );
    assert_eq!(
        s.label_names(&req).await.unwrap().value,
        vec!["__name__", "instance", "job", "shard"]
    );
    let req = LabelRequest { limit: 1, ..req };
    assert_eq!(
        s.label_values("shard", &req).await.unwrap().value,
        vec!["2"]
    );
}
