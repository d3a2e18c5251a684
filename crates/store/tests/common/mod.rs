//! Helpers shared by the store's integration tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use prometheus_client::registry::Registry;
use strata_block::Meta;
use strata_model::{Labels, Matcher, Sample};
use strata_objstore::{Bucket, BucketOptions};
use strata_storage::{ChunkSeries, Frame, Queryable, SelectRequest};
use strata_store::{BucketStore, StoreOptions};
use strata_tsdb::block::{BlockWriter, BlockWriterOptions};
use strata_tsdb::cut::ChunkCutter;
use ulid::Ulid;

/// A bucket in a local directory.
pub fn fs_bucket(dir: &Path) -> Bucket {
    std::fs::create_dir_all(dir).unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    Bucket::new(
        Arc::new(store),
        "test",
        BucketOptions::default(),
        &mut Registry::default(),
    )
}

/// A bucket in memory.
pub fn mem_bucket() -> Bucket {
    Bucket::new(
        Arc::new(object_store::memory::InMemory::new()),
        "mem",
        BucketOptions::default(),
        &mut Registry::default(),
    )
}

/// Writes a block of `series` (samples kept where `keep(i)`) under `parent`.
pub fn write_block(
    parent: &Path,
    series: &[(Labels, Vec<Sample>)],
    keep: impl Fn(usize) -> bool,
) -> PathBuf {
    let mut syms: Vec<String> = series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|x| [x.name.clone(), x.value.clone()]))
        .collect();
    syms.sort();
    syms.dedup();
    let mut w = BlockWriter::create(parent, BlockWriterOptions::default()).unwrap();
    let id = w.ulid();
    w.add_symbols(syms.iter().map(String::as_str)).unwrap();
    for (l, s) in series {
        let mut c = ChunkCutter::new(7_200_000);
        for (i, x) in s.iter().enumerate() {
            if keep(i) {
                c.append(x.t, x.v).unwrap();
            }
        }
        w.add_series(l, &c.finish()).unwrap();
    }
    w.finish(None).unwrap();
    parent.join(id.to_string())
}

/// Uploads a block; with empty `ext` the objects are put directly (Thanos'
/// uploader refuses empty external labels).
pub async fn upload(bucket: &Bucket, dir: &Path, ext: &[(&str, &str)]) -> Ulid {
    let labels: BTreeMap<String, String> = ext
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !labels.is_empty() {
        return strata_block::upload_block(bucket, dir, &labels, "test")
            .await
            .unwrap()
            .block
            .ulid;
    }
    let meta = Meta::read_from_dir(dir).unwrap();
    let id = meta.block.ulid;
    for f in strata_block::segment_files(dir).unwrap() {
        bucket
            .upload_file(&format!("{id}/chunks/{f}"), &dir.join("chunks").join(&f))
            .await
            .unwrap();
    }
    bucket
        .upload_file(&format!("{id}/index"), &dir.join("index"))
        .await
        .unwrap();
    bucket
        .upload(
            &format!("{id}/meta.json"),
            Bytes::from(meta.to_json().unwrap()),
        )
        .await
        .unwrap();
    id
}

/// Store options for tests: deletion marks act at once.
pub fn opts(data_dir: &Path) -> StoreOptions {
    let mut o = StoreOptions::new(data_dir);
    o.ignore_deletion_marks_delay = std::time::Duration::ZERO;
    o
}

/// A synced store.
pub async fn store(bucket: &Bucket, o: StoreOptions) -> Arc<BucketStore> {
    let s = BucketStore::new(bucket.clone(), o, &mut Registry::default()).unwrap();
    s.sync().await.unwrap();
    Arc::new(s)
}

/// Series and warnings of a select.
pub async fn select(q: &dyn Queryable, req: &SelectRequest) -> (Vec<ChunkSeries>, Vec<String>) {
    let mut s = q.select(req).await.unwrap();
    let (mut series, mut warnings) = (Vec::new(), Vec::new());
    while let Some(f) = s.next().await {
        match f.unwrap() {
            Frame::Series(x) => series.push(x),
            Frame::Warning(w) => warnings.push(w),
        }
    }
    (series, warnings)
}

/// Labels and samples inside `[mint, maxt]`, for comparisons.
pub fn samples_of(series: &[ChunkSeries], mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
    series
        .iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.collect_samples()
                    .unwrap()
                    .into_iter()
                    .filter(|x| x.t >= mint && x.t <= maxt)
                    .map(|x| (x.t, x.v.to_bits()))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// `n` series of metric `name` with `samples` samples 15s apart from `start`.
pub fn gen_series(name: &str, n: usize, start: i64, samples: usize) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..n)
        .map(|i| {
            let l = Labels::from_pairs([
                ("__name__", name.to_string()),
                ("instance", format!("host-{i:05}")),
                ("job", format!("job-{}", i % 10)),
            ]);
            let s = (0..samples)
                .map(|k| Sample::new(start + k as i64 * 15_000, (i * 1000 + k) as f64))
                .collect();
            (l, s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A matcher.
pub fn m(kind: strata_model::MatchType, n: &str, v: &str) -> Matcher {
    Matcher::new(kind, n, v).unwrap()
}
