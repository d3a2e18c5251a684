//! The compactor's passes over a FILESYSTEM bucket: vertical compaction of
//! replicas, downsampling, retention and deletion in simulated time, bad
//! blocks set aside, partial uploads cleaned.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use strata_block::markers::{read_marker, DeletionMark, NoCompactMark};
use strata_block::{download_block, download_meta, list_blocks, upload_block, Meta};
use strata_chunkenc::{AggrChunk, AggrType, RawChunk, SampleIterator, XorChunk};
use strata_compact::cleanup::Retention;
use strata_compact::downsample::{RES_1H, RES_5M};
use strata_compact::merge::MergeFunc;
use strata_compact::{Compactor, CompactorOptions, Failure, Metrics, STRATA_UNUSABLE_REASON};
use strata_model::{Labels, Sample};
use strata_objstore::{Bucket, BucketConfig};
use strata_storage::ChunkMeta;
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

const H: i64 = 3_600_000;

struct Env {
    _dir: tempfile::TempDir,
    bucket: Bucket,
    work: std::path::PathBuf,
    data: std::path::PathBuf,
    clock: Arc<Mutex<SystemTime>>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bdir = dir.path().join("bucket");
        std::fs::create_dir_all(&bdir).unwrap();
        let cfg = BucketConfig::filesystem(bdir.to_string_lossy().to_string());
        let bucket = Bucket::from_config(&cfg, &mut Registry::default()).unwrap();
        let work = dir.path().join("work");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&work).unwrap();
        Self {
            _dir: dir,
            bucket,
            work,
            data,
            clock: Arc::new(Mutex::new(SystemTime::now())),
        }
    }

    fn set_now_ms(&self, ms: i64) {
        *self.clock.lock().unwrap() = UNIX_EPOCH + Duration::from_millis(ms as u64);
    }

    fn options(&self) -> CompactorOptions {
        let clock = self.clock.clone();
        let mut o = CompactorOptions {
            data_dir: self.data.clone(),
            clock: Arc::new(move || *clock.lock().unwrap()),
            ..Default::default()
        };
        o.sync.consistency_delay = Duration::ZERO;
        o
    }

    fn compactor(&self, opts: CompactorOptions) -> (Compactor, Registry) {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg, 0, 0);
        let c = Compactor::new(self.bucket.clone(), opts, m, CancellationToken::new()).unwrap();
        (c, reg)
    }

    /// Writes a block of `series` into the bucket with external `ext` labels.
    async fn put(
        &self,
        ext: &[(&str, &str)],
        range: (i64, i64),
        series: &[(Labels, Vec<Sample>)],
    ) -> Ulid {
        let meta = write_block(&self.work, range, series);
        let ext: BTreeMap<String, String> = ext
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = self.work.join(meta.ulid.to_string());
        upload_block(&self.bucket, &dir, &ext, "sidecar")
            .await
            .unwrap();
        meta.ulid
    }

    /// Blocks in the bucket without a deletion mark.
    async fn live(&self) -> Vec<Meta> {
        let mut out = Vec::new();
        for id in list_blocks(&self.bucket).await.unwrap().complete {
            if read_marker::<DeletionMark>(&self.bucket, id)
                .await
                .unwrap()
                .is_none()
            {
                out.push(download_meta(&self.bucket, id).await.unwrap());
            }
        }
        out.sort_by_key(|m| (m.thanos.downsample.resolution, m.block.min_time));
        out
    }

    /// Every series of a bucket block with its raw samples.
    async fn samples(&self, id: Ulid) -> BTreeMap<Labels, Vec<(i64, f64)>> {
        let dst = self.work.join(format!("read-{id}"));
        download_block(&self.bucket, id, &dst).await.unwrap();
        let b = Block::open(&dst).unwrap();
        let mut out = BTreeMap::new();
        let mut p = b.index().all_postings().unwrap();
        while let Some(r) = p.next() {
            let s = b
                .read_series(r, i64::MIN, i64::MAX, false)
                .unwrap()
                .unwrap();
            let v: Vec<(i64, f64)> = s
                .collect_samples()
                .unwrap()
                .iter()
                .map(|x| (x.t, x.v))
                .collect();
            out.insert(s.labels.clone(), v);
        }
        std::fs::remove_dir_all(&dst).unwrap();
        out
    }
}

fn chunked(samples: &[Sample]) -> Vec<ChunkMeta> {
    samples
        .chunks(120)
        .map(|part| {
            let mut a = XorChunk::new().appender();
            for s in part {
                a.append(s.t, s.v).unwrap();
            }
            ChunkMeta {
                min_time: part[0].t,
                max_time: part[part.len() - 1].t,
                chunk: RawChunk::from_xor(a.finish()),
            }
        })
        .collect()
}

fn write_block(
    dir: &Path,
    range: (i64, i64),
    series: &[(Labels, Vec<Sample>)],
) -> strata_tsdb::meta::BlockMeta {
    let mut symbols: Vec<String> = series
        .iter()
        .flat_map(|(l, _)| {
            l.iter()
                .flat_map(|x| [x.name.to_string(), x.value.to_string()])
        })
        .collect();
    symbols.sort();
    symbols.dedup();
    let mut w = BlockWriter::create(dir, BlockWriterOptions::default()).unwrap();
    w.add_symbols(symbols.iter().map(String::as_str)).unwrap();
    let mut sorted: Vec<&(Labels, Vec<Sample>)> = series.iter().collect();
    sorted.sort_by(|a, b| a.0.compare(&b.0));
    for (l, s) in sorted {
        w.add_series(l, &chunked(s)).unwrap();
    }
    w.finish(Some(range)).unwrap().unwrap()
}

/// `n` counters sampled every `step` ms in `[from, to)`, shifted by `offset`.
fn counters(n: usize, from: i64, to: i64, step: i64, offset: i64) -> Vec<(Labels, Vec<Sample>)> {
    (0..n)
        .map(|i| {
            let l = Labels::from_pairs([
                ("__name__", "requests_total".to_string()),
                ("i", format!("{i:03}")),
            ]);
            let mut t = from + offset;
            let mut s = Vec::new();
            while t < to {
                s.push(Sample::new(t, ((t / 1000) as f64) * (i as f64 + 1.0)));
                t += step;
            }
            (l, s)
        })
        .collect()
}

fn marker_count(reg: &Registry, needle: &str) -> f64 {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, reg).unwrap();
    out.lines()
        .filter(|l| l.starts_with(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_compact_vertically_into_8h_and_sources_go_after_the_delete_delay() {
    let env = Env::new();
    let mut inputs: Vec<BTreeMap<Labels, Vec<(i64, f64)>>> = Vec::new();
    // Two replicas, five 2h blocks each (0-10h); replica b scrapes 7 s later
    // and shares every fourth timestamp with a.
    for (replica, offset) in [("a", 0), ("b", 7_000)] {
        for k in 0..5 {
            let (lo, hi) = (k * 2 * H, (k + 1) * 2 * H);
            let mut series = counters(4, lo, hi, 60_000, offset);
            if replica == "b" {
                for (_, s) in &mut series {
                    for (j, x) in s.iter_mut().enumerate() {
                        if j % 4 == 0 {
                            x.t -= 7_000;
                        }
                    }
                }
            }
            env.put(
                &[("cluster", "eu"), ("replica", replica)],
                (lo, hi),
                &series,
            )
            .await;
            inputs.push(
                series
                    .into_iter()
                    .map(|(l, s)| (l, s.iter().map(|x| (x.t, x.v)).collect()))
                    .collect(),
            );
        }
    }
    let mut opts = env.options();
    opts.sync.replica_labels = vec!["replica".into()];
    opts.downsampling_disabled = true;
    let (c, reg) = env.compactor(opts);
    let report = c.run_once().await.unwrap();
    assert!(!report.compacted.is_empty());

    let live = env.live().await;
    let ranges: Vec<(i64, i64)> = live
        .iter()
        .map(|m| (m.block.min_time, m.block.max_time))
        .collect();
    // 0-8h compacted; the newest 2h range is never picked by the planner, but
    // its two replicas overlap and are merged.
    assert_eq!(ranges, vec![(0, 8 * H), (8 * H, 10 * H)], "{live:#?}");
    for m in &live {
        assert_eq!(
            m.thanos.labels,
            BTreeMap::from([("cluster".to_string(), "eu".to_string())])
        );
        assert_eq!(m.thanos.source, "compactor");
        assert_eq!(m.thanos.downsample.resolution, 0);
    }
    assert_eq!(live[0].block.compaction.sources.len(), 8);
    assert_eq!(live[1].block.compaction.sources.len(), 2);

    // The union of both replicas, identical timestamps collapsed.
    let mut want: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    for b in &inputs {
        for (l, s) in b {
            let e = want.entry(l.clone()).or_default();
            for (t, v) in s {
                e.entry(*t).or_insert(*v);
            }
        }
    }
    let mut got: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for m in &live {
        for (l, s) in env.samples(m.block.ulid).await {
            got.entry(l).or_default().extend(s);
        }
    }
    let want: BTreeMap<Labels, Vec<(i64, f64)>> = want
        .into_iter()
        .map(|(l, m)| (l, m.into_iter().collect()))
        .collect();
    assert_eq!(got, want);
    assert!(marker_count(&reg, "thanos_compact_group_vertical_compactions_total") >= 5.0);

    // The ten sources and the intermediate blocks are marked, not deleted yet.
    let all = list_blocks(&env.bucket).await.unwrap().complete;
    assert!(all.len() > 2);
    // A second pass finds nothing to do.
    let again = c.run_once().await.unwrap();
    assert!(
        again.compacted.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );
    // 49 hours later the marked blocks are gone.
    *env.clock.lock().unwrap() += Duration::from_secs(49 * 3600);
    let later = c.run_once().await.unwrap();
    assert_eq!(later.deleted.len(), all.len() - 2, "{later:?}");
    let left: HashSet<Ulid> = list_blocks(&env.bucket)
        .await
        .unwrap()
        .complete
        .into_iter()
        .collect();
    assert_eq!(left, live.iter().map(|m| m.block.ulid).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn penalty_and_strata_dedup_keep_one_replica() {
    for func in [MergeFunc::Penalty, MergeFunc::Strata] {
        let env = Env::new();
        for (replica, offset) in [("a", 0), ("b", 7_000)] {
            for k in 0..2 {
                let (lo, hi) = (k * 2 * H, (k + 1) * 2 * H);
                env.put(
                    &[("cluster", "eu"), ("replica", replica)],
                    (lo, hi),
                    &counters(2, lo, hi, 15_000, offset),
                )
                .await;
            }
        }
        let mut opts = env.options();
        opts.sync.replica_labels = vec!["replica".into()];
        opts.downsampling_disabled = true;
        opts.merge_func = func;
        let (c, _) = env.compactor(opts);
        c.run_once().await.unwrap();
        let live = env.live().await;
        assert_eq!(live.len(), 2, "{func:?}");
        for m in &live {
            for (l, s) in env.samples(m.block.ulid).await {
                // One replica's density: one sample per 15 s, not two.
                let n = s.len() as i64;
                let expect = 2 * H / 15_000;
                assert!(
                    (n - expect).abs() <= 2,
                    "{func:?} {l}: {n} samples, want about {expect}"
                );
                assert!(s.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
    }
}

fn xor_values(c: &AggrChunk<'_>, t: AggrType) -> Vec<(i64, f64)> {
    let mut it = c.iter(t).unwrap().unwrap();
    let mut out = Vec::new();
    while let Some(s) = it.next().unwrap() {
        out.push(s);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_blocks_downsample_to_5m_then_1h() {
    let env = Env::new();
    // One 10-day raw block (as a 14d compaction would leave), 2 series at 1 min.
    let span = 10 * 24 * H;
    let series = counters(2, 0, span, 60_000, 0);
    let raw = env.put(&[("cluster", "eu")], (0, span), &series).await;
    let (c, reg) = env.compactor(env.options());
    let report = c.run_once().await.unwrap();
    assert_eq!(report.downsampled.len(), 2, "{report:?}");
    let live = env.live().await;
    let res: Vec<i64> = live
        .iter()
        .map(|m| m.thanos.downsample.resolution)
        .collect();
    assert_eq!(res, vec![0, RES_5M, RES_1H]);
    let raw_meta = &live[0];
    assert_eq!(raw_meta.block.ulid, raw);
    for m in &live[1..] {
        // Same range and compaction section as the raw block.
        assert_eq!((m.block.min_time, m.block.max_time), (0, span));
        assert_eq!(
            m.block.compaction.sources,
            raw_meta.block.compaction.sources
        );
        assert_eq!(m.thanos.source, "compactor");
    }
    // Counts add up to the raw samples; sums to the raw sums, per series.
    for m in &live[1..] {
        let dst = env.work.join(format!("d-{}", m.block.ulid));
        download_block(&env.bucket, m.block.ulid, &dst)
            .await
            .unwrap();
        let b = Block::open(&dst).unwrap();
        let mut p = b.index().all_postings().unwrap();
        let mut n = 0;
        while let Some(r) = p.next() {
            let s = b
                .read_series(r, i64::MIN, i64::MAX, false)
                .unwrap()
                .unwrap();
            let raw_s = &series.iter().find(|(l, _)| *l == s.labels).unwrap().1;
            let (mut count, mut sum) = (0.0, 0.0);
            for c in s.chunks() {
                let a = AggrChunk::new(&c.chunk.data);
                count += xor_values(&a, AggrType::Count)
                    .iter()
                    .map(|x| x.1)
                    .sum::<f64>();
                sum += xor_values(&a, AggrType::Sum)
                    .iter()
                    .map(|x| x.1)
                    .sum::<f64>();
            }
            assert_eq!(count, raw_s.len() as f64);
            let raw_sum: f64 = raw_s.iter().map(|x| x.v).sum();
            assert!((sum - raw_sum).abs() / raw_sum < 1e-12);
            n += 1;
        }
        assert_eq!(n, 2);
    }
    assert_eq!(marker_count(&reg, "thanos_compact_downsample_total"), 2.0);
    // Nothing left to downsample.
    assert!(c.run_once().await.unwrap().downsampled.is_empty());
    let _ = Sample::new(0, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_marks_and_deletes_in_simulated_time() {
    let env = Env::new();
    let day = 24 * H;
    let old = env
        .put(
            &[("cluster", "eu")],
            (0, 2 * H),
            &counters(1, 0, 2 * H, 60_000, 0),
        )
        .await;
    let newer = env
        .put(
            &[("cluster", "eu")],
            (10 * day, 10 * day + 2 * H),
            &counters(1, 10 * day, 10 * day + 2 * H, 60_000, 0),
        )
        .await;
    let mut opts = env.options();
    opts.downsampling_disabled = true;
    opts.retention = Retention {
        raw: Duration::from_secs(5 * 86_400),
        ..Default::default()
    };
    let (c, _) = env.compactor(opts);
    // Day 6: the old block is past 5d of retention, the newer one is not.
    env.set_now_ms(6 * day);
    let r = c.run_once().await.unwrap();
    assert_eq!(r.marked_for_deletion, vec![old]);
    assert!(read_marker::<DeletionMark>(&env.bucket, old)
        .await
        .unwrap()
        .is_some());
    assert!(r.deleted.is_empty());
    // Two days and a bit later the delete delay (48h) has passed.
    env.set_now_ms(8 * day + H);
    let r = c.run_once().await.unwrap();
    assert_eq!(r.deleted, vec![old]);
    assert_eq!(
        list_blocks(&env.bucket).await.unwrap().complete,
        vec![newer]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downsampling_refuses_short_retention() {
    let env = Env::new();
    let mut opts = env.options();
    opts.retention.raw = Duration::from_secs(39 * 3600);
    let e = Compactor::new(
        env.bucket.clone(),
        opts,
        Metrics::new(&mut Registry::default(), 0, 0),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("40h"), "{e}");
}

/// Overwrites the first chunk segment of a bucket block with garbage CRCs.
async fn corrupt_chunks(env: &Env, id: Ulid) {
    let key = format!("{id}/chunks/000001");
    let mut b = env.bucket.get(&key).await.unwrap().to_vec();
    for x in b.iter_mut().skip(20).step_by(7) {
        *x ^= 0x5a;
    }
    env.bucket.upload(&key, b.into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_is_set_aside_and_other_groups_compact() {
    let env = Env::new();
    let mut bad_group = Vec::new();
    for (cluster, ids) in [("bad", &mut bad_group), ("good", &mut Vec::new())] {
        for k in 0..5 {
            let (lo, hi) = (k * 2 * H, (k + 1) * 2 * H);
            ids.push(
                env.put(
                    &[("cluster", cluster)],
                    (lo, hi),
                    &counters(3, lo, hi, 60_000, 0),
                )
                .await,
            );
        }
    }
    corrupt_chunks(&env, bad_group[1]).await;
    let mut opts = env.options();
    opts.downsampling_disabled = true;
    let (c, reg) = env.compactor(opts.clone());
    let r = c.run_once().await.unwrap();
    assert_eq!(r.marked_unusable, vec![bad_group[1]]);
    let mark = read_marker::<NoCompactMark>(&env.bucket, bad_group[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mark.reason, STRATA_UNUSABLE_REASON);
    assert!(
        mark.details.contains(&bad_group[1].to_string()),
        "{}",
        mark.details
    );
    assert_eq!(marker_count(&reg, "thanos_compact_blocks_marked_total{marker=\"no-compact-mark.json\",reason=\"block-unusable\"}"), 1.0);
    // The good group reached 8h; the bad block and its data are untouched.
    let live = env.live().await;
    let good: Vec<(i64, i64)> = live
        .iter()
        .filter(|m| m.thanos.labels.get("cluster").map(String::as_str) == Some("good"))
        .map(|m| (m.block.min_time, m.block.max_time))
        .collect();
    assert_eq!(good, vec![(0, 8 * H), (8 * H, 10 * H)]);
    assert!(live.iter().any(|m| m.block.ulid == bad_group[1]));

    // As Thanos: with --debug.halt-on-error the same block halts the compactor.
    let env2 = Env::new();
    let mut ids = Vec::new();
    for k in 0..5 {
        let (lo, hi) = (k * 2 * H, (k + 1) * 2 * H);
        ids.push(
            env2.put(
                &[("cluster", "bad")],
                (lo, hi),
                &counters(3, lo, hi, 60_000, 0),
            )
            .await,
        );
    }
    corrupt_chunks(&env2, ids[0]).await;
    let mut opts = env2.options();
    opts.downsampling_disabled = true;
    opts.halt_on_error = true;
    let (c, _) = env2.compactor(opts);
    match c.run_once().await {
        Err(Failure::Halt(e)) => assert!(e.to_string().contains(&ids[0].to_string()), "{e}"),
        other => panic!("expected a halt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_meta_lies_about_its_range_is_set_aside() {
    let env = Env::new();
    let mut ids = Vec::new();
    for k in 0..5 {
        let (lo, hi) = (k * 2 * H, (k + 1) * 2 * H);
        // Block 2 claims 2-4h but holds samples up to 5h.
        let data_hi = if k == 1 { hi + H } else { hi };
        ids.push(
            env.put(
                &[("cluster", "eu")],
                (lo, hi),
                &counters(2, lo, data_hi, 60_000, 0),
            )
            .await,
        );
    }
    let mut opts = env.options();
    opts.downsampling_disabled = true;
    let (c, _) = env.compactor(opts);
    let r = c.run_once().await.unwrap();
    assert_eq!(r.marked_unusable, vec![ids[1]]);
    let mark = read_marker::<NoCompactMark>(&env.bucket, ids[1])
        .await
        .unwrap()
        .unwrap();
    assert!(
        mark.details.contains("outside of the block's range"),
        "{}",
        mark.details
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_uploads_are_removed_after_48h_and_own_ones_at_once() {
    let env = Env::new();
    let stray = Ulid::new();
    env.bucket
        .upload(&format!("{stray}/index"), bytes_of("x"))
        .await
        .unwrap();
    let (c, _) = env.compactor(env.options());
    let r = c.run_once().await.unwrap();
    assert!(r.deleted.is_empty());
    env.set_now_ms(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 49 * H,
    );
    let r = c.run_once().await.unwrap();
    assert_eq!(r.deleted, vec![stray]);
    assert!(env.bucket.iter("").await.unwrap().is_empty());

    // An upload of the compactor's own that a crash cut short goes at the next start.
    let own = Ulid::new();
    env.bucket
        .upload(&format!("{own}/chunks/000001"), bytes_of("x"))
        .await
        .unwrap();
    std::fs::create_dir_all(env.data.join("uploading")).unwrap();
    std::fs::write(env.data.join("uploading").join(own.to_string()), b"").unwrap();
    env.set_now_ms(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let r = c.run_once().await.unwrap();
    assert_eq!(r.deleted, vec![own]);
    assert!(env.bucket.iter("").await.unwrap().is_empty());
}

fn bytes_of(s: &str) -> bytes::Bytes {
    bytes::Bytes::from(s.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relabel_config_that_selects_nothing_does_nothing() {
    let env = Env::new();
    for k in 0..5 {
        let (lo, hi) = (k * 2 * H, (k + 1) * 2 * H);
        env.put(
            &[("cluster", "eu")],
            (lo, hi),
            &counters(1, lo, hi, 60_000, 0),
        )
        .await;
    }
    let mut opts = env.options();
    opts.sync.relabel = strata_config::parse_relabel_configs(
        "- action: keep\n  source_labels: [cluster]\n  regex: nowhere\n",
    )
    .unwrap();
    let (c, _) = env.compactor(opts);
    let r = c.run_once().await.unwrap();
    assert_eq!(r, strata_compact::PassReport::default());
    assert_eq!(env.live().await.len(), 5);
}
