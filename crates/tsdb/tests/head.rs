//! The head: appends, WAL durability and replay, block cutting, checkpoints, and a
//! data directory that the real promtool reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_model::{labels, Labels, Matcher};
use strata_storage::{AppendError, Queryable};
use strata_tsdb::head::{Head, HeadOptions};
use strata_tsdb::Db;

fn opts() -> HeadOptions {
    HeadOptions {
        wal_segment_size: 4 * 32 * 1024,
        ..HeadOptions::default()
    }
}

async fn dump(q: &dyn Queryable) -> String {
    let mut out = Vec::new();
    strata_tsdb::dump(q, vec![], i64::MIN, i64::MAX, &mut out)
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn series(i: usize) -> Labels {
    labels! {"__name__" => format!("m{}", i % 3), "i" => i.to_string(), "job" => "j".to_string()}
}

#[tokio::test]
async fn append_commit_errors_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let h = Head::open(dir.path(), opts()).unwrap();
    let t0 = 1_700_000_000_000i64;
    for k in 0..200i64 {
        let mut a = h.appender();
        for i in 0..50 {
            a.add(
                &series(i),
                t0 + k * 15_000 + i as i64,
                (k * i as i64) as f64,
            )
            .unwrap();
        }
        let r = a.commit_samples().unwrap();
        assert_eq!(r.appended, 50);
        assert_eq!(r.new_series, if k == 0 { 50 } else { 0 });
    }
    // Out of order, duplicate with another value, same value again (ignored).
    let mut a = h.appender();
    a.add(&series(0), t0, 1.0).unwrap();
    a.add(&series(1), t0 + 199 * 15_000 + 1, 5.0).unwrap();
    a.add(&series(2), t0 + 199 * 15_000 + 2, (199 * 2) as f64)
        .unwrap();
    let r = a.commit_samples().unwrap();
    assert_eq!((r.appended, r.out_of_order, r.duplicates), (0, 1, 1));
    let mut a = h.appender();
    assert!(matches!(
        a.add(&Labels::empty(), 1, 1.0),
        Err(AppendError::InvalidLabels(_))
    ));

    let before = dump(&h).await;
    assert_eq!(before.lines().count(), 200 * 50);
    drop(h);
    // Replay gives the same data; new appends continue after it.
    let h = Head::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&h).await, before);
    let mut a = h.appender();
    a.add(&series(7), t0 + 200 * 15_000, 1.5).unwrap();
    assert_eq!(a.commit_samples().unwrap().appended, 1);
    let sel = h.select_series(i64::MIN, i64::MAX, &[Matcher::equal("i", "7")], false);
    assert_eq!(sel.len(), 1);
    assert_eq!(sel[0].collect_samples().unwrap().len(), 201);
    // The real promtool reads our WAL too.
    drop(h);
    let prom = strata_testkit::promtool_dump(dir.path());
    let h = Head::open(dir.path(), opts()).unwrap();
    strata_testkit::assert_same_text("promtool", &prom, "strata", &dump(&h).await);
}

#[tokio::test]
async fn persist_blocks_and_truncate_wal() {
    let dir = tempfile::tempdir().unwrap();
    let h = Head::open(dir.path(), opts()).unwrap();
    let range = 7_200_000i64;
    // 7h of 15s samples for 20 series, starting at an aligned time.
    let t0 = 1_700_006_400_000i64 - (1_700_006_400_000i64 % range);
    let steps = 7 * 3600 / 15;
    for k in 0..steps {
        let mut a = h.appender();
        for i in 0..20 {
            a.add(&series(i), t0 + k * 15_000 + 500, i as f64 + k as f64 / 7.0)
                .unwrap();
        }
        a.commit_samples().unwrap();
    }
    let all_before = dump(&h).await;
    let mut blocks = 0;
    while let Some((mint, maxt)) = h.compactable_range() {
        let m = h.persist_block(dir.path(), mint, maxt).unwrap().unwrap();
        assert_eq!((m.min_time, m.max_time), (mint, maxt));
        blocks += 1;
    }
    assert_eq!(
        blocks, 2,
        "7h of data leaves 3h in the head after cutting 2 blocks"
    );
    assert!(h.min_time() >= t0 + 2 * range);
    // Old data is out of bounds now.
    let mut a = h.appender();
    assert!(matches!(
        a.add(&series(0), t0, 1.0),
        Err(AppendError::OutOfBounds)
    ));
    // Blocks + head together still hold everything.
    let db = Db::open(dir.path()).unwrap();
    let q = strata_storage::Fanout::new(vec![
        std::sync::Arc::new(db),
        std::sync::Arc::new(h.clone()),
    ]);
    strata_testkit::assert_same_text("blocks+head", &dump(&q).await, "before", &all_before);
    // The WAL was checkpointed; a restart replays checkpoint + segments.
    let wal = dir.path().join("wal");
    assert!(std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint.")));
    drop(q);
    drop(h);
    let h = Head::open(dir.path(), opts()).unwrap();
    let db = Db::open(dir.path()).unwrap();
    let head_dump = dump(&h).await;
    let q = strata_storage::Fanout::new(vec![std::sync::Arc::new(db), std::sync::Arc::new(h)]);
    strata_testkit::assert_same_text("after restart", &dump(&q).await, "before", &all_before);
    assert!(!head_dump.is_empty());
    // promtool reads the whole data dir (blocks, checkpoint, WAL) identically.
    let prom = strata_testkit::promtool_dump(dir.path());
    strata_testkit::assert_same_text("promtool", &prom, "before", &all_before);
}
