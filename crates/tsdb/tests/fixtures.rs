//! Reads the real Prometheus 2.42 blocks in `shared/fixtures` and compares with
//! what `promtool` printed for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;

use strata_model::{MatchType, Matcher};
use strata_tsdb::{block::Block, Db};

fn fixture_blocks() -> PathBuf {
    strata_testkit::fixtures_dir().join("backfill-6h/blocks")
}

fn gunzip(p: PathBuf) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[tokio::test]
async fn dump_matches_promtool_byte_for_byte() {
    let db = Db::open(&fixture_blocks()).unwrap();
    assert_eq!(db.blocks().len(), 3);
    let mut out = Vec::new();
    let n = strata_tsdb::dump(&db, vec![], i64::MIN, i64::MAX, &mut out)
        .await
        .unwrap();
    assert_eq!(n, 308_509);
    let want = gunzip(strata_testkit::fixtures_dir().join("backfill-6h/dump.txt.gz"));
    let got = String::from_utf8(out).unwrap();
    if got != want {
        for (i, (a, b)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(a, b, "first difference at line {}", i + 1);
        }
        assert_eq!(got.len(), want.len());
    }
}

#[test]
fn block_stats_match_meta() {
    for d in Db::block_dirs(&fixture_blocks()).unwrap() {
        let b = Block::open(&d).unwrap();
        let mut p = b.index().all_postings().unwrap();
        let (mut series, mut chunks, mut samples) = (0u64, 0u64, 0u64);
        while let Some(r) = p.next() {
            let e = b.index().series(r).unwrap();
            series += 1;
            for c in &e.chunks {
                chunks += 1;
                let raw = b.chunk_reader().chunk(c.chunk_ref).unwrap();
                samples += raw.num_samples().unwrap() as u64;
            }
        }
        let st = &b.meta().stats;
        assert_eq!(
            (series, chunks, samples),
            (st.num_series, st.num_chunks, st.num_samples)
        );
    }
}

#[test]
fn reencoding_fixture_chunks_is_byte_identical() {
    use strata_chunkenc::{SampleIterator, XorChunk, XorIterator};
    let mut n = 0;
    for d in Db::block_dirs(&fixture_blocks()).unwrap() {
        let b = Block::open(&d).unwrap();
        let mut p = b.index().all_postings().unwrap();
        while let Some(r) = p.next() {
            for c in b.index().series(r).unwrap().chunks {
                let raw = b.chunk_reader().chunk(c.chunk_ref).unwrap();
                let mut it = XorIterator::new(&raw.data);
                let mut a = XorChunk::new().appender();
                while let Some((t, v)) = it.next().unwrap() {
                    a.append(t, v).unwrap();
                }
                assert_eq!(a.finish().bytes(), &raw.data[..]);
                n += 1;
            }
        }
    }
    assert_eq!(n, 854 + 867 + 854);
}

#[tokio::test]
async fn matchers_select_like_prometheus() {
    let db = Db::open(&fixture_blocks()).unwrap();
    let count = |ms: Vec<Matcher>| {
        let db = &db;
        async move {
            let mut out = Vec::new();
            strata_tsdb::dump(db, ms, i64::MIN, i64::MAX, &mut out)
                .await
                .unwrap();
            let s = String::from_utf8(out).unwrap();
            let mut series: Vec<String> = s
                .lines()
                .map(|l| l.rsplitn(3, ' ').nth(2).unwrap().to_string())
                .collect();
            series.dedup();
            series.len()
        }
    };
    let m = |k, n: &str, v: &str| Matcher::new(k, n, v).unwrap();
    assert_eq!(count(vec![m(MatchType::Equal, "__name__", "up")]).await, 4);
    assert_eq!(
        count(vec![
            m(MatchType::Equal, "__name__", "up"),
            m(MatchType::Regex, "instance", "host-[ab].*")
        ])
        .await,
        2
    );
    assert_eq!(
        count(vec![
            m(MatchType::Equal, "__name__", "up"),
            m(MatchType::NotEqual, "instance", "host-a:8080")
        ])
        .await,
        3
    );
    // `le=""` selects series without `le`.
    let all_dur = count(vec![m(
        MatchType::Regex,
        "__name__",
        "http_request_duration_seconds.*",
    )])
    .await;
    let no_le = count(vec![
        m(
            MatchType::Regex,
            "__name__",
            "http_request_duration_seconds.*",
        ),
        m(MatchType::Equal, "le", ""),
    ])
    .await;
    assert_eq!(all_dur - no_le, 4 * 2 * 12);
    assert_eq!(count(vec![m(MatchType::NotRegex, "job", ".*")]).await, 0);
}

#[tokio::test]
async fn wal_replay_dump_matches_promtool() {
    let dir = strata_testkit::fixtures_dir().join("prometheus-2.42-datadir");
    let (head, warnings) = strata_tsdb::head::Head::replay_read_only(&dir).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut out = Vec::new();
    let n = strata_tsdb::dump(&head, vec![], i64::MIN, i64::MAX, &mut out)
        .await
        .unwrap();
    assert_eq!(n, 23_728);
    let want = gunzip(strata_testkit::fixtures_dir().join("prometheus-2.42-datadir.dump.txt.gz"));
    let got = String::from_utf8(out).unwrap();
    strata_testkit::assert_same_text("strata dump", &got, "promtool dump", &want);
}

#[test]
fn corrupt_wal_is_an_error_naming_the_segment() {
    let src = strata_testkit::fixtures_dir().join("prometheus-2.42-datadir/wal/00000000");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("wal")).unwrap();
    let mut b = std::fs::read(&src).unwrap();
    b[40_000] ^= 0xff;
    std::fs::write(tmp.path().join("wal/00000000"), &b).unwrap();
    let e = strata_tsdb::head::Head::replay_read_only(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("wal/00000000") && e.contains("checksum"), "{e}");
    // A torn tail of the newest segment is tolerated (crash mid-write).
    let b = std::fs::read(&src).unwrap();
    std::fs::write(tmp.path().join("wal/00000000"), &b[..100_000]).unwrap();
    let (h, _) = strata_tsdb::head::Head::replay_read_only(tmp.path()).unwrap();
    assert!(h.num_series() > 0);
}
