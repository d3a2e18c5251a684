//! Writing, reading, compacting and corrupting blocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use strata_model::{labels, Labels, Matcher};
use strata_storage::{Frame, LabelRequest, Queryable, SelectRequest};
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use strata_tsdb::compact::compact_blocks;
use strata_tsdb::cut::ChunkCutter;
use strata_tsdb::tombstones::{Interval, Tombstones};
use strata_tsdb::Db;

type Series = (Labels, Vec<(i64, f64)>);

fn write_block(dir: &Path, series: Vec<Series>) -> Arc<Block> {
    write_block_range(dir, series, None)
}

fn write_block_range(dir: &Path, mut series: Vec<Series>, range: Option<(i64, i64)>) -> Arc<Block> {
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut syms: Vec<String> = series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|x| [x.name.clone(), x.value.clone()]))
        .collect();
    syms.sort();
    syms.dedup();
    let mut w = BlockWriter::create(dir, BlockWriterOptions::default()).unwrap();
    w.add_symbols(syms.iter().map(String::as_str)).unwrap();
    for (l, s) in &series {
        let mut c = ChunkCutter::new(7_200_000);
        for (t, v) in s {
            c.append(*t, *v).unwrap();
        }
        w.add_series(l, &c.finish()).unwrap();
    }
    let m = w.finish(range).unwrap().unwrap();
    Block::open(&dir.join(m.ulid.to_string())).unwrap()
}

async fn read_all(q: &dyn Queryable, ms: Vec<Matcher>) -> Vec<Series> {
    let mut s = q
        .select(&SelectRequest::new(i64::MIN, i64::MAX, ms))
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(f) = s.next().await {
        if let Frame::Series(s) = f.unwrap() {
            let v = s
                .collect_samples()
                .unwrap()
                .iter()
                .map(|x| (x.t, x.v))
                .collect();
            out.push((s.labels.clone(), v));
        }
    }
    out
}

fn ramp(from: i64, to: i64, step: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (from..to)
        .step_by(step as usize)
        .map(|t| (t, f(t)))
        .collect()
}

#[tokio::test]
async fn roundtrip_many_series() {
    let d = tempfile::tempdir().unwrap();
    let mut input: Vec<Series> = (0..500)
        .map(|i| {
            let l = labels! {"__name__" => format!("m{}", i % 7), "i" => i.to_string(), "long" => "x".repeat(i % 300)};
            (l, ramp(i as i64, 7_200_000, 15_000 + i as i64, |t| (t as f64).sqrt()))
        })
        .collect();
    write_block(d.path(), input.clone());
    let db = Db::open(d.path()).unwrap();
    input.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        read_all(
            &db,
            vec![Matcher::new(strata_model::MatchType::Regex, "i", ".+").unwrap()]
        )
        .await,
        input
    );
    let names = db
        .label_names(&LabelRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names.value, vec!["__name__", "i", "long"]);
    let vals = db
        .label_values(
            "__name__",
            &LabelRequest {
                min_time: 0,
                max_time: 10,
                matchers: vec![Matcher::equal("i", "3")],
                limit: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(vals.value, vec!["m3"]);
}

#[tokio::test]
async fn vertical_compaction_dedups_and_applies_tombstones() {
    let d = tempfile::tempdir().unwrap();
    let a = labels! {"__name__" => "a"};
    let b = labels! {"__name__" => "b"};
    // Two overlapping blocks sharing identical samples of `a` plus extra ones.
    write_block(
        d.path(),
        vec![
            (a.clone(), ramp(0, 600_000, 10_000, |t| t as f64)),
            (b.clone(), ramp(0, 100_000, 10_000, |_| 1.0)),
        ],
    );
    let b2 = write_block(
        d.path(),
        vec![(a.clone(), ramp(300_000, 900_000, 10_000, |t| t as f64))],
    );
    // Delete part of `a` in the second block.
    let mut t = Tombstones::default();
    let sref = strata_tsdb::index::postings::collect(
        b2.index().postings("__name__", &["a".into()]).unwrap(),
    )[0];
    t.add(
        sref,
        Interval {
            min_time: 800_000,
            max_time: 850_000,
        },
    );
    t.write(b2.dir()).unwrap();

    let db = Db::open(d.path()).unwrap();
    let blocks: Vec<_> = db.blocks().iter().cloned().collect();
    let out = tempfile::tempdir().unwrap();
    let m = compact_blocks(out.path(), &blocks).await.unwrap().unwrap();
    assert_eq!(m.compaction.level, 2);
    assert_eq!(m.compaction.parents.len(), 2);
    let merged = Db::open(out.path()).unwrap();
    let got = read_all(&merged, vec![Matcher::equal("__name__", "a")]).await;
    let want: Vec<(i64, f64)> = ramp(0, 900_000, 10_000, |t| t as f64)
        .into_iter()
        .filter(|(t, _)| !(800_000..=850_000).contains(t))
        .collect();
    assert_eq!(got, vec![(a, want.clone())]);
    assert_eq!(m.stats.num_samples as usize, want.len() + 10);
    // Re-cut chunks hold about 120 samples.
    let blk = merged.blocks()[0].clone();
    let e = blk
        .index()
        .series(
            strata_tsdb::index::postings::collect(
                blk.index().postings("__name__", &["a".into()]).unwrap(),
            )[0],
        )
        .unwrap();
    assert!(e.chunks.len() <= 2, "{:?}", e.chunks);
    // The same query through the un-compacted Db merges at query time.
    let at_query = read_all(&db, vec![Matcher::equal("__name__", "a")]).await;
    assert_eq!(at_query[0].1, want);
}

#[tokio::test]
async fn deleted_block_stays_readable_during_query() {
    let d = tempfile::tempdir().unwrap();
    let a = labels! {"__name__" => "a"};
    write_block(
        d.path(),
        vec![(a.clone(), ramp(0, 1_000_000, 1000, |t| t as f64))],
    );
    let db = Db::open(d.path()).unwrap();
    let mut s = db
        .select(&SelectRequest::new(
            0,
            i64::MAX,
            vec![Matcher::equal("__name__", "a")],
        ))
        .await
        .unwrap();
    for b in Db::block_dirs(d.path()).unwrap() {
        std::fs::remove_dir_all(b).unwrap();
    }
    db.reload().unwrap();
    assert!(db.blocks().is_empty());
    let Some(Ok(Frame::Series(s))) = s.next().await else {
        panic!("no series")
    };
    assert_eq!(s.collect_samples().unwrap().len(), 1000);
}

fn copy_block(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.join("chunks")).unwrap();
    for f in ["meta.json", "index", "tombstones", "chunks/000001"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
}

fn fixture_block() -> std::path::PathBuf {
    strata_testkit::fixtures_dir().join("backfill-6h/blocks/01M89M4019TEQQXC7RBVCP8DEY")
}

#[tokio::test]
async fn corruption_is_reported_with_file_and_offset() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("01M89M4019TEQQXC7RBVCP8DEY");
    // Truncated index.
    copy_block(&fixture_block(), &dir);
    let idx = std::fs::read(dir.join("index")).unwrap();
    for cut in [0, 3, 100, idx.len() / 2, idx.len() - 1] {
        std::fs::write(dir.join("index"), &idx[..cut]).unwrap();
        let e = Block::open(&dir).unwrap_err().to_string();
        assert!(e.contains("index"), "{e}");
    }
    // Every single-byte flip in the index is caught (by a CRC or a bounds check) or
    // at least never panics when the whole block is read.
    for pos in (0..idx.len()).step_by(97) {
        let mut b = idx.clone();
        b[pos] ^= 0x5a;
        std::fs::write(dir.join("index"), &b).unwrap();
        if let Ok(blk) = Block::open(&dir) {
            if let Ok(mut p) = blk.index().all_postings() {
                while let Some(r) = p.next() {
                    let _ = blk.read_series(r, i64::MIN, i64::MAX, false);
                }
            }
        }
    }
    std::fs::write(dir.join("index"), &idx).unwrap();
    // A flipped chunk byte fails the CRC when read, naming the segment.
    let seg = dir.join("chunks/000001");
    let mut c = std::fs::read(&seg).unwrap();
    c[500] ^= 0xff;
    std::fs::write(&seg, &c).unwrap();
    let db = Db::open(root.path()).unwrap();
    let mut s = db
        .select(&SelectRequest::new(
            i64::MIN,
            i64::MAX,
            vec![Matcher::new(strata_model::MatchType::Regex, "__name__", ".+").unwrap()],
        ))
        .await
        .unwrap();
    let mut err = None;
    while let Some(f) = s.next().await {
        if let Err(e) = f {
            err = Some(e.to_string());
            break;
        }
    }
    let e = err.expect("corrupt chunk not detected");
    assert!(e.contains("chunks/000001") && e.contains("checksum"), "{e}");
    // Truncated chunk segment.
    std::fs::write(&seg, &c[..4]).unwrap();
    assert!(Block::open(&dir)
        .unwrap_err()
        .to_string()
        .contains("000001"));
    copy_block(&fixture_block(), &dir);
    // Bad meta.json and tombstones.
    std::fs::write(dir.join("meta.json"), b"{\"ulid\":").unwrap();
    assert!(Block::open(&dir)
        .unwrap_err()
        .to_string()
        .contains("meta.json"));
    copy_block(&fixture_block(), &dir);
    std::fs::write(dir.join("tombstones"), [1u8, 2, 3]).unwrap();
    assert!(Block::open(&dir)
        .unwrap_err()
        .to_string()
        .contains("tombstones"));
}

#[tokio::test]
async fn leveled_planner_merges_three_2h_blocks_into_6h() {
    use strata_tsdb::compact::{block_ranges, plan};
    let d = tempfile::tempdir().unwrap();
    let a = labels! {"__name__" => "a"};
    let h2 = 7_200_000i64;
    // Four aligned 2h blocks: the first three fill a 6h range, the fourth is newest.
    for k in 0..4 {
        write_block_range(
            d.path(),
            vec![(a.clone(), ramp(k * h2, (k + 1) * h2, 60_000, |t| t as f64))],
            Some((k * h2, (k + 1) * h2)),
        );
    }
    let db = Db::open(d.path()).unwrap();
    let blocks: Vec<_> = db.blocks().iter().cloned().collect();
    let ranges = block_ranges(h2, 24 * h2);
    assert_eq!(ranges, vec![h2, 3 * h2, 9 * h2]);
    let p = plan(&blocks, &ranges);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].meta().min_time, 0);
    // Nothing to do with only the newest block, or ranges of one level.
    assert!(plan(&blocks[3..], &ranges).is_empty());
    assert!(plan(&blocks, &ranges[..1]).is_empty());
    let out = tempfile::tempdir().unwrap();
    let m = compact_blocks(out.path(), &p).await.unwrap().unwrap();
    assert_eq!((m.min_time, m.max_time), (0, 3 * h2));
    assert_eq!(m.compaction.level, 2);
}
