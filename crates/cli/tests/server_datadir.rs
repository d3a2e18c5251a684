//! `strata server` takes over a data directory written by Prometheus 2.42 (a real,
//! snappy-compressed WAL) and answers from its head.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

use api_util::{get_json, StrataServer, CONFIG};

#[test]
fn serves_a_prometheus_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    strata_testkit::copy_dir(
        &strata_testkit::fixtures_dir().join("prometheus-2.42-datadir"),
        &dir,
    );
    let s = StrataServer::start(&dir, CONFIG, &[]);
    // The fixture holds 361 series and ends at 1795619513152 ms.
    let (code, v) = get_json(
        &s.url(),
        "/api/v1/series",
        &[
            ("match[]", "{__name__=~\".+\"}"),
            ("start", "1795619400"),
            ("end", "1795619600"),
        ],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 361);
    let (code, v) = get_json(
        &s.url(),
        "/api/v1/query",
        &[("query", "up"), ("time", "1795619513.152")],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
    let (_, v) = get_json(
        &s.url(),
        "/api/v1/query",
        &[
            ("query", "count_over_time(up[1m])"),
            ("time", "1795619513.152"),
        ],
    );
    // One scrape per second: the left-open minute holds 60 samples.
    assert_eq!(v["data"]["result"][0]["value"][1], "60");
    let (code, body) = api_util::get(&s.url(), "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("prometheus_tsdb_head_series 361"), "{body}");
    assert!(
        body.contains("prometheus_tsdb_lowest_timestamp_seconds 1795619448"),
        "{body}"
    );
}

#[test]
fn size_retention_deletes_the_oldest_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, blocks) = api_util::backfill(tmp.path(), &api_util::small_opts(1_704_067_200));
    let dirs = strata_tsdb::Db::block_dirs(&blocks).unwrap();
    assert!(dirs.len() >= 2, "need several blocks, got {}", dirs.len());
    let newest_size: u64 = {
        let b = strata_tsdb::block::Block::open(dirs.last().unwrap()).unwrap();
        b.size()
    };
    let limit = format!("--storage.tsdb.retention.size={}B", newest_size + 1024);
    let s = StrataServer::start(&blocks, CONFIG, &[&limit]);
    let (code, body) = api_util::get(&s.url(), "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("prometheus_tsdb_blocks_loaded 1"), "{body}");
    assert_eq!(strata_tsdb::Db::block_dirs(&blocks).unwrap().len(), 1);
}

/// The number on a `/metrics` line `name value`, if present.
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `/metrics` (at most 40 s) until `name`'s value satisfies `ok`;
/// returns that page.
fn wait_metric(s: &StrataServer, name: &str, ok: impl Fn(f64) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let (code, body) = api_util::get(&s.url(), "/metrics");
        assert_eq!(code, 200);
        if metric(&body, name).is_some_and(&ok) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never matched:\n{body}\n{}",
            s.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn head_compaction_truncation_and_reloads_are_counted() {
    // The fixture's head spans 65 s: with 20 s blocks, the background
    // maintenance right after start cuts blocks from it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    strata_testkit::copy_dir(
        &strata_testkit::fixtures_dir().join("prometheus-2.42-datadir"),
        &dir,
    );
    let s = StrataServer::start(
        &dir,
        CONFIG,
        &[
            "--storage.tsdb.min-block-duration=20s",
            "--storage.tsdb.max-block-duration=20s",
        ],
    );
    let body = wait_metric(&s, "prometheus_tsdb_compactions_total", |v| v >= 1.0);
    for counter in [
        "prometheus_tsdb_head_truncations_total",
        "prometheus_tsdb_reloads_total",
    ] {
        assert!(
            metric(&body, counter).unwrap_or(0.0) >= 1.0,
            "{counter}\n{body}"
        );
    }
    for failures in [
        "prometheus_tsdb_compactions_failed_total",
        "prometheus_tsdb_head_truncations_failed_total",
        "prometheus_tsdb_reloads_failures_total",
    ] {
        assert_eq!(metric(&body, failures), Some(0.0), "{failures}\n{body}");
    }
    let on_disk: u64 = strata_tsdb::Db::block_dirs(&dir)
        .unwrap()
        .iter()
        .map(|d| strata_tsdb::block::Block::open(d).unwrap().size())
        .sum();
    assert!(on_disk > 0);
    // The gauge is refreshed by the maintenance pass after the compaction.
    wait_metric(&s, "prometheus_tsdb_storage_blocks_bytes", |v| v > 0.0);
    // The blocks answer like the head did.
    let (code, v) = get_json(
        &s.url(),
        "/api/v1/query",
        &[
            ("query", "count_over_time(up[1m])"),
            ("time", "1795619513.152"),
        ],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "60");
}
