//! WAL written by Strata: read back by Strata and by the real promtool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_model::Labels;
use strata_tsdb::wal::{encode_samples, encode_series, RefSample, RefSeries, WalWriter};

/// Writes `n` series × `k` samples in batches, returns the expected dump lines.
fn write_wal(dir: &std::path::Path, segment_size: usize, compress: bool) -> Vec<String> {
    let mut w = WalWriter::open(&dir.join("wal"), segment_size, compress).unwrap();
    let n = 300u64;
    let series: Vec<RefSeries> = (0..n)
        .map(|i| RefSeries {
            series_ref: i + 1,
            labels: Labels::from_pairs([
                ("__name__", format!("metric_{}", i % 5)),
                ("instance", format!("host-{i}")),
                ("long", "x".repeat((i as usize * 37) % 2000)),
            ]),
        })
        .collect();
    // Series records spanning pages (a few hundred KiB each), then samples.
    for part in series.chunks(20) {
        w.log(&encode_series(part)).unwrap();
    }
    let t0 = 1_700_000_000_000i64;
    for k in 0..50i64 {
        let batch: Vec<RefSample> = (0..n)
            .map(|i| RefSample {
                series_ref: i + 1,
                t: t0 + k * 15_000 + i as i64,
                v: if k == 7 {
                    f64::NAN
                } else {
                    (k * i as i64) as f64 / 3.0
                },
            })
            .collect();
        w.log(&encode_samples(&batch)).unwrap();
        if k % 10 == 0 {
            w.sync().unwrap();
        }
    }
    w.close().unwrap();
    let mut lines = Vec::new();
    let mut sorted = series.clone();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    for s in sorted {
        let i = (s.series_ref - 1) as i64;
        for k in 0..50i64 {
            let v = if k == 7 {
                f64::NAN
            } else {
                (k * i) as f64 / 3.0
            };
            lines.push(format!(
                "{} {} {}",
                s.labels,
                strata_model::gofmt::format_g(v),
                t0 + k * 15_000 + i
            ));
        }
    }
    lines
}

#[tokio::test]
async fn strata_wal_reads_back_and_promtool_agrees() {
    for (segment_size, compress) in [
        (128 * 1024 * 1024, true),
        (3 * 32 * 1024, false),
        (2 * 32 * 1024, true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let want = write_wal(tmp.path(), segment_size, compress);
        let segs = strata_tsdb::wal::segments(&tmp.path().join("wal")).unwrap();
        if segment_size < 1 << 20 {
            assert!(
                segs.len() > 2,
                "expected several segments, got {}",
                segs.len()
            );
        }
        let (head, _) = strata_tsdb::head::Head::replay_read_only(tmp.path()).unwrap();
        let mut out = Vec::new();
        strata_tsdb::dump(&head, vec![], i64::MIN, i64::MAX, &mut out)
            .await
            .unwrap();
        let got = String::from_utf8(out).unwrap();
        let want = want.join("\n") + "\n";
        strata_testkit::assert_same_text("strata replay", &got, "expected", &want);
        let prom = strata_testkit::promtool_dump(tmp.path());
        strata_testkit::assert_same_text("promtool dump of strata WAL", &prom, "expected", &want);
    }
}
