use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::promtool;

fn small() -> Options {
    Options {
        duration_secs: 5 * 3600,
        step_ms: 60_000,
        series: 30,
        ..Options::default()
    }
}

#[test]
fn is_deterministic() {
    assert_eq!(generate(&small()), generate(&small()));
    assert_ne!(
        generate(&small()),
        generate(&Options { seed: 2, ..small() })
    );
}

#[test]
fn timestamps_are_eighths_of_a_second_and_increase_per_series() {
    let text = generate(&Options {
        step_ms: 1000,
        duration_secs: 900,
        ..Options::default()
    });
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let ts = line.rsplit(' ').next().unwrap();
        let (_, frac) = ts.split_once('.').unwrap_or((ts, ""));
        assert!(
            ["", "125", "25", "375", "5", "625", "75", "875"].contains(&frac),
            "{line}"
        );
    }
    for s in samples(&text) {
        assert_eq!(s.timestamp_ms % 125, 0, "{s:?}");
        if let Some(prev) = last.insert(s.series.clone(), s.timestamp_ms) {
            assert!(prev < s.timestamp_ms, "{s:?} after {prev}");
        }
    }
}

#[test]
fn families_are_contiguous_and_typed() {
    let text = generate(&small());
    assert!(text.ends_with("\n# EOF\n"));
    let mut seen = BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap().to_owned();
            assert!(
                seen.insert(current.clone()),
                "family {current} appears twice"
            );
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert_eq!(base, current, "sample outside its family: {line}");
        }
    }
    assert!(seen.len() >= 12, "{seen:?}");
}

#[test]
fn covers_the_awkward_cases() {
    let text = generate(&small());
    let all = samples(&text);
    assert!(all.iter().any(|s| s.value.is_nan()));
    assert!(all.iter().any(|s| s.value == f64::INFINITY));
    assert!(all.iter().any(|s| s.value == f64::NEG_INFINITY));
    assert!(all
        .iter()
        .any(|s| s.value == 0.0 && s.value.is_sign_negative()));
    assert!(all.iter().any(|s| s.value == 5e-324));
    assert!(
        text.contains(" 5e-324 ") && text.contains("e-7 "),
        "exponent notation"
    );
    for needle in [
        "Zürich",
        "東京",
        "🌡",
        r#"\"quoted\""#,
        r"C:\\build\\path",
        r"Line one.\nLine two",
        "\t",
    ] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
    let longest = all.iter().map(|s| s.series.len()).max().unwrap();
    assert!(longest > 300, "{longest}");
    // Counters reset: some requests_total series goes down.
    let mut by_series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in all.iter().filter(|s| s.name == "requests_total") {
        by_series.entry(&s.series).or_default().push(s.value);
    }
    assert_eq!(by_series.len(), 30);
    assert!(
        by_series
            .values()
            .any(|v| v.windows(2).any(|w| w[1] < w[0])),
        "no counter reset"
    );
    // Series come and go: some requests_total series starts after the first scrape.
    let first = all.iter().map(|s| s.timestamp_ms).min().unwrap();
    let starts: BTreeSet<i64> = by_series
        .keys()
        .map(|k| all.iter().find(|s| s.series == *k).unwrap().timestamp_ms)
        .collect();
    assert!(starts.iter().any(|&t| t > first + 3_600_000), "{starts:?}");
}

#[test]
fn starts_at_the_epoch() {
    let text = generate(&Options {
        start_secs: 0,
        duration_secs: 600,
        step_ms: 15_000,
        ..Options::default()
    });
    assert!(
        text.contains("\nup{instance=\"host-a:9100\",job=\"node\"} 1 0\n"),
        "{}",
        &text[..500]
    );
    assert_eq!(samples(&text).iter().map(|s| s.timestamp_ms).min(), Some(0));
}

#[test]
fn reads_samples_back() {
    assert_eq!(parse_ts_ms("1704067205.125"), 1_704_067_205_125);
    assert_eq!(parse_ts_ms("0.5"), 500);
    assert_eq!(parse_ts_ms("7"), 7000);
    let s = &samples("# TYPE a gauge\na{b=\"c d\"} -Inf 1.25\n# EOF\n")[0];
    assert_eq!(s.series, "a{b=\"c d\"}");
    assert_eq!(s.name, "a");
    assert_eq!(s.value, f64::NEG_INFINITY);
    assert_eq!(s.timestamp_ms, 1250);
}

/// Writes `opts`' output to a file and backfills it with promtool.
fn promtool_backfill(
    opts: &Options,
    max_block_duration: Option<&str>,
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = generate(opts);
    let input = dir.path().join("input.om.txt");
    std::fs::write(&input, &text).unwrap();
    promtool::create_blocks(&input, &dir.path().join("blocks"), max_block_duration);
    (dir, text)
}

#[test]
fn promtool_accepts_it_and_keeps_every_sample() {
    let opts = small();
    let (dir, text) = promtool_backfill(&opts, None);
    let blocks = dir.path().join("blocks");
    let dump = promtool::dump(&blocks);
    assert_eq!(dump.lines().count(), sample_lines(&text));
    // 5h from 00:00 is three 2h blocks.
    let rows = promtool::parse_list(&promtool::list(&blocks));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows.iter().map(|r| r.samples).sum::<u64>(),
        sample_lines(&text) as u64
    );
    assert!(dump.contains("NaN") && dump.contains("+Inf") && dump.contains("-Inf"));
    assert!(
        dump.contains(r#"ctrl="tab\there zero\u200bwidth bell\a del\x7f end""#),
        "Go quoting"
    );
    let dumped: BTreeSet<&str> = dump
        .lines()
        .map(|l| l.rsplitn(3, ' ').nth(2).unwrap())
        .collect();
    let input: BTreeSet<String> = samples(&text).into_iter().map(|s| s.series).collect();
    assert_eq!(dumped.len(), input.len(), "distinct series");
}

#[test]
fn promtool_accepts_it_at_the_epoch_with_6h_blocks() {
    let opts = Options {
        start_secs: 0,
        duration_secs: 7 * 3600,
        step_ms: 120_000,
        series: 8,
        seed: 7,
    };
    let (dir, text) = promtool_backfill(&opts, Some("6h"));
    let blocks = dir.path().join("blocks");
    let rows = promtool::parse_list(&promtool::list(&blocks));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].min_time_ms, 0);
    assert!(rows[1].min_time_ms >= 6 * 3_600_000);
    assert_eq!(promtool::dump(&blocks).lines().count(), sample_lines(&text));
}
