//! Bad data in the bucket: each case is a warning naming the block, the other
//! blocks keep serving, nothing panics.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use strata_model::MatchType;
use strata_storage::{LabelRequest, Queryable, SelectRequest};
use ulid::Ulid;

/// Two blocks, A over [0, 2h) and B over [2h, 4h), in a bucket; also returns
/// the local block dirs.
async fn two_blocks(
    tmp: &std::path::Path,
    bucket: &strata_objstore::Bucket,
) -> (Ulid, Ulid, Vec<std::path::PathBuf>) {
    let local = tmp.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let a = write_block(&local, &gen_series("m", 20, 0, 400), |_| true);
    let b = write_block(&local, &gen_series("m", 20, 7_200_000, 400), |_| true);
    let ia = upload(bucket, &a, &[("r", "1")]).await;
    let ib = upload(bucket, &b, &[("r", "1")]).await;
    (ia, ib, vec![a, b])
}

fn all() -> SelectRequest {
    SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Regex, "__name__", ".+")],
    )
}

/// Every series of block B is served, with its 400 samples.
fn assert_b_served(got: &[strata_storage::ChunkSeries]) {
    let b: Vec<_> = samples_of(got, 7_200_000, i64::MAX);
    assert_eq!(b.len(), 20);
    assert!(b.iter().all(|(_, s)| s.len() == 400));
}

#[tokio::test]
async fn missing_chunk_segment_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = mem_bucket();
    let (a, _, _) = two_blocks(tmp.path(), &bucket).await;
    bucket.delete(&format!("{a}/chunks/000001")).await.unwrap();
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    let (got, w) = select(s.as_ref(), &all()).await;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(&a.to_string()) && w[0].contains("chunks/000001"),
        "{}",
        w[0]
    );
    assert_b_served(&got);
}

#[tokio::test]
async fn truncated_index_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = mem_bucket();
    let (a, _, dirs) = two_blocks(tmp.path(), &bucket).await;
    let index = std::fs::read(dirs[0].join("index")).unwrap();
    bucket
        .upload(
            &format!("{a}/index"),
            Bytes::from(index[..index.len() / 2].to_vec()),
        )
        .await
        .unwrap();
    let st = strata_store::BucketStore::new(
        bucket.clone(),
        opts(&tmp.path().join("data")),
        &mut Default::default(),
    )
    .unwrap();
    let r = st.sync().await.unwrap();
    assert_eq!((r.loaded, r.failed), (1, 1));
    let failed = st.failed_blocks();
    assert_eq!(failed[0].0, a);
    let (got, w) = select(&st, &all()).await;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(&a.to_string()) && w[0].contains("index"),
        "{}",
        w[0]
    );
    assert_b_served(&got);
    // A query for B's time range alone does not mention A.
    let (_, w) = select(
        &st,
        &SelectRequest::new(7_200_000, i64::MAX, all().matchers),
    )
    .await;
    assert!(w.is_empty(), "{w:?}");
    let names = st
        .label_names(&LabelRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names.warnings.len(), 1);
    assert!(names.value.contains(&"instance".to_string()));
}

#[tokio::test]
async fn corrupt_series_entries_are_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = mem_bucket();
    let (a, _, dirs) = two_blocks(tmp.path(), &bucket).await;
    // Flip bytes in the series section (after the symbol table, well before postings).
    let mut index = std::fs::read(dirs[0].join("index")).unwrap();
    let toc = index.len() - 52;
    let series = u64::from_be_bytes(index[toc + 8..toc + 16].try_into().unwrap()) as usize;
    for b in &mut index[series + 20..series + 60] {
        *b ^= 0x5a;
    }
    bucket
        .upload(&format!("{a}/index"), Bytes::from(index))
        .await
        .unwrap();
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    let (got, w) = select(s.as_ref(), &all()).await;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains(&a.to_string()), "{}", w[0]);
    assert_b_served(&got);
}

#[tokio::test]
async fn corrupt_meta_json_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = mem_bucket();
    let (a, b, _) = two_blocks(tmp.path(), &bucket).await;
    bucket
        .upload(
            &format!("{a}/meta.json"),
            Bytes::from_static(b"{\"version\": 1, \"ulid\": "),
        )
        .await
        .unwrap();
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    assert_eq!(s.block_ids(), vec![b]);
    let (got, w) = select(s.as_ref(), &all()).await;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(&a.to_string()) && w[0].contains("meta.json"),
        "{}",
        w[0]
    );
    assert_b_served(&got);
}

#[tokio::test]
async fn lying_meta_json_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = mem_bucket();
    let (a, b, _) = two_blocks(tmp.path(), &bucket).await;
    // A claims [0, 1h) but holds [0, 100 min).
    let mut meta = strata_block::download_meta(&bucket, a).await.unwrap();
    meta.block.max_time = 3_600_000;
    bucket
        .upload(
            &format!("{a}/meta.json"),
            Bytes::from(meta.to_json().unwrap()),
        )
        .await
        .unwrap();
    // B's meta names another block.
    let mut meta = strata_block::download_meta(&bucket, b).await.unwrap();
    meta.block.ulid = Ulid::new();
    bucket
        .upload(
            &format!("{b}/meta.json"),
            Bytes::from(meta.to_json().unwrap()),
        )
        .await
        .unwrap();
    let s = store(&bucket, opts(&tmp.path().join("data"))).await;
    assert_eq!(s.block_ids(), vec![a]);
    let (got, w) = select(s.as_ref(), &all()).await;
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter()
            .any(|x| x.contains(&a.to_string()) && x.contains("outside the time range")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.contains(&b.to_string()) && x.contains("names block")),
        "{w:?}"
    );
    // A's chunks inside its claimed range are still served.
    assert!(!got.is_empty());
    assert!(got
        .iter()
        .all(|x| x.chunks().iter().all(|c| c.max_time < 3_600_000)));
}

/// Corruption anywhere in the index or chunks never panics the store.
#[tokio::test]
async fn random_corruption_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let dir = write_block(&local, &gen_series("m", 30, 0, 300), |_| true);
    let index = std::fs::read(dir.join("index")).unwrap();
    let chunks = std::fs::read(dir.join("chunks/000001")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut warned = 0;
    for round in 0..40 {
        let bucket = mem_bucket();
        let id = upload(&bucket, &dir, &[("r", "1")]).await;
        let (name, mut data) = if round % 2 == 0 {
            ("index", index.clone())
        } else {
            ("chunks/000001", chunks.clone())
        };
        for _ in 0..4 {
            let i = rnd(data.len());
            data[i] ^= 1 << rnd(8);
        }
        if round % 5 == 0 {
            data.truncate(rnd(data.len()));
        }
        bucket
            .upload(&format!("{id}/{name}"), Bytes::from(data))
            .await
            .unwrap();
        let s = store(&bucket, opts(&tmp.path().join(format!("data{round}")))).await;
        let (_, w) = select(s.as_ref(), &all()).await;
        warned += usize::from(!w.is_empty());
        let _ = s
            .label_values(
                "instance",
                &LabelRequest {
                    min_time: i64::MIN,
                    max_time: i64::MAX,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    assert!(warned > 10, "only {warned} of 40 corruptions were noticed");
}
