//! Series read lazily, a batch of postings at a time
//! (`StoreOptions::series_batch_size`, `--debug.series-batch-size`): how much a
//! select reads before the consumer asks, results independent of the batch
//! size, and limits that still hold mid-stream.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use futures::StreamExt;
use prometheus_client::registry::Registry;
use strata_model::{Labels, MatchType, Sample};
use strata_storage::{Frame, Queryable, SelectRequest};
use strata_store::{BucketStore, StoreOptions};

/// A synced store and its metrics registry.
async fn store_with_registry(
    bucket: &strata_objstore::Bucket,
    o: StoreOptions,
) -> (Arc<BucketStore>, Registry) {
    let mut reg = Registry::default();
    let s = BucketStore::new(bucket.clone(), o, &mut reg).unwrap();
    s.sync().await.unwrap();
    (Arc::new(s), reg)
}

/// `thanos_bucket_store_series_data_fetched_total{data_type="series"}`: series
/// entries read from the bucket.
fn series_entries_fetched(reg: &Registry) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, reg).unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("thanos_bucket_store_series_data_fetched_total{data_type=\"series\"}")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap()
}

fn all() -> SelectRequest {
    SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Regex, "__name__", ".+")],
    )
}

/// With a batch of 2 over a block of 1000 series, the select reads one batch
/// of series entries, and the first series reaches the consumer after at most
/// a few batches plus the prefetch window: not the whole block.
#[tokio::test]
async fn reads_series_entries_a_batch_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    let dir = write_block(&local, &gen_series("m", 1000, 0, 240), |_| true);
    upload(&bucket, &dir, &[("cluster", "a")]).await;
    let mut o = opts(&tmp.path().join("data"));
    o.series_batch_size = 2;
    let (s, reg) = store_with_registry(&bucket, o).await;
    assert_eq!(series_entries_fetched(&reg), 0);

    let mut stream = s.select(&all()).await.unwrap();
    // The select itself read the postings and the first batch only.
    assert_eq!(series_entries_fetched(&reg), 2);
    let first = match stream.next().await.unwrap().unwrap() {
        Frame::Series(x) => x,
        Frame::Warning(w) => panic!("{w}"),
    };
    assert_eq!(first.labels.get("instance"), Some("host-00000"));
    let read = series_entries_fetched(&reg);
    // The block's task runs ahead by at most the prefetch window (32 series)
    // plus the batch it is loading.
    assert!(
        (2..=2 + 32 + 2 * 2).contains(&read),
        "{read} series entries read before the first series was consumed"
    );
    let mut n = 1;
    while let Some(f) = stream.next().await {
        assert!(matches!(f.unwrap(), Frame::Series(_)));
        n += 1;
    }
    assert_eq!(n, 1000);
    assert_eq!(series_entries_fetched(&reg), 1000);
}

/// Series of one metric whose label sets extend each other (`{__name__="m"}`,
/// `{__name__="m",a="1"}`, …): external label `cluster` sorts after `a` but
/// before `z`, so adding it reorders some of them.
fn tricky_series(start: i64, samples: usize) -> Vec<(Labels, Vec<Sample>)> {
    let mut sets: Vec<Vec<(&str, String)>> = Vec::new();
    for i in 0..40 {
        let name = format!("m{}", i % 4);
        sets.push(vec![("__name__", name.clone())]);
        sets.push(vec![("__name__", name.clone()), ("a", format!("{i}"))]);
        sets.push(vec![
            ("__name__", name.clone()),
            ("a", format!("{i}")),
            ("b", "x".into()),
        ]);
        sets.push(vec![
            ("__name__", name.clone()),
            ("a", format!("{i}")),
            ("zz", "y".into()),
        ]);
        sets.push(vec![("__name__", name.clone()), ("z", format!("{i}"))]);
        // `zone` on every series of `n*`: a block whose external labels hold
        // `zone` overrides it and must sort the block as a whole.
        sets.push(vec![
            ("__name__", format!("n{}", i % 3)),
            ("i", format!("{i:02}")),
            ("zone", format!("z{}", i % 5)),
        ]);
    }
    let mut out: Vec<(Labels, Vec<Sample>)> = sets
        .into_iter()
        .enumerate()
        .map(|(k, ls)| {
            let s = (0..samples)
                .map(|j| Sample::new(start + j as i64 * 30_000, (k * 1000 + j) as f64))
                .collect();
            (Labels::from_pairs(ls), s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Writes and uploads the two halves of `series` (first and second 2h) with `ext`.
async fn upload_halves(
    bucket: &strata_objstore::Bucket,
    local: &Path,
    ext: &[(&str, &str)],
) -> Vec<(Labels, Vec<Sample>)> {
    let series = tricky_series(0, 480);
    for part in 0..2 {
        let dir = write_block(local, &series, |i| (i < 240) == (part == 0));
        upload(bucket, &dir, ext).await;
    }
    series
}

/// The same series and samples for batch sizes 1, 7 and 10000, over two
/// groups (external labels that reorder runs of extending label sets, and
/// external labels that override a series label), each of two blocks merged
/// in label order; equal to an oracle built from the input.
#[tokio::test]
async fn results_do_not_depend_on_the_batch_size() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    let mut want = Vec::new();
    for ext in [[("cluster", "c")], [("zone", "ext")]] {
        for (l, s) in upload_halves(&bucket, &local, &ext).await {
            let mut b = l.builder();
            b.set(ext[0].0, ext[0].1);
            let v: Vec<(i64, u64)> = s.iter().map(|x| (x.t, x.v.to_bits())).collect();
            want.push((b.build(), v));
        }
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));
    // Overriding `zone` makes some label sets equal: their samples merge.
    let mut oracle: Vec<(Labels, Vec<(i64, u64)>)> = Vec::new();
    for (l, v) in want {
        match oracle.last_mut() {
            Some((pl, pv)) if *pl == l => {
                pv.extend(v);
                pv.sort_by_key(|x| x.0);
                pv.dedup_by_key(|x| x.0);
            }
            _ => oracle.push((l, v)),
        }
    }

    let mut results = Vec::new();
    for batch in [1, 7, 10_000] {
        let mut o = opts(&tmp.path().join(format!("data-{batch}")));
        o.series_batch_size = batch;
        let s = store(&bucket, o).await;
        assert_eq!(s.block_ids().len(), 4);
        let (got, warnings) = select(s.as_ref(), &all()).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(
            got.windows(2).all(|w| w[0].labels < w[1].labels),
            "batch {batch}: series not strictly sorted"
        );
        let got = samples_of(&got, i64::MIN, i64::MAX);
        assert_eq!(got.len(), oracle.len(), "batch {batch}");
        assert!(
            got == oracle,
            "batch {batch}: results differ from the oracle"
        );
        results.push(got);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
}

/// Limits count batch by batch: a series limit below the first batch fails the
/// select; one reached by a later batch ends the stream with the limit error.
#[tokio::test]
async fn limits_hold_across_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let bucket = fs_bucket(&tmp.path().join("bucket"));
    let dir = write_block(&local, &gen_series("m", 100, 0, 240), |_| true);
    upload(&bucket, &dir, &[("cluster", "a")]).await;

    let mut o = opts(&tmp.path().join("data"));
    o.series_batch_size = 10;
    o.limits.max_series = 5;
    let s = store(&bucket, o).await;
    let e = s.select(&all()).await.err().unwrap().to_string();
    assert!(e.contains("--store.limits.request-series=5"), "{e}");

    for (series, samples, flag) in [
        (25, 0, "--store.limits.request-series=25"),
        (0, 120 * 2 * 25, "--store.limits.request-samples=6000"),
    ] {
        let mut o = opts(&tmp.path().join(format!("data-{series}-{samples}")));
        o.series_batch_size = 10;
        o.limits.max_series = series;
        o.limits.max_samples = samples;
        let s = store(&bucket, o).await;
        let mut stream = s.select(&all()).await.unwrap();
        let (mut n, mut err) = (0, None);
        while let Some(f) = stream.next().await {
            match f {
                Ok(Frame::Series(_)) => n += 1,
                Ok(Frame::Warning(w)) => panic!("{w}"),
                Err(e) => err = Some(e.to_string()),
            }
        }
        let e = err.expect("the limit ends the stream with an error");
        assert!(e.contains(flag), "{e}");
        assert!(n <= 20, "{n} series streamed past a limit of 25 series");
    }
}
