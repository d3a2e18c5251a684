//! End-to-end comparison of `/api/v1/query` and `/api/v1/query_range` answers
//! with a real Prometheus on a copy of the same backfilled blocks. The answers
//! must be JSON-equal, value strings included (formatting counts), except that
//! values computed by summing may differ in the last digits: Prometheus 3.x (and
//! Strata) sum with Kahan compensation, 2.42 does not. Queries whose windows
//! include a counter's first sample are left out, because 3.x changed `rate`'s
//! extrapolation there on purpose.

#![allow(clippy::unwrap_used)]

mod api_util;

use api_util::{backfill, get_json, small_opts, StrataServer, CONFIG};
use strata_testkit::{copy_dir, PrometheusProcess};

/// 2024-01-01T00:00:00Z, the first scrape of the data.
const START: i64 = 1_704_067_200;

const INSTANT_QUERIES: [&str; 14] = [
    "up",
    "sum(up)",
    "count by (instance) (up)",
    "rate(requests_total[5m])",
    "sum by (instance) (rate(requests_total[5m]))",
    "increase(cpu_seconds_total[10m])",
    "temperature_celsius",
    "max_over_time(memory_bytes[15m])",
    "special_value",
    "requests_total offset 30m",
    "scalar(sum(up))",
    "vector(1e-7) + 1e21",
    "time()",
    "\"a string\"",
];

const RANGE_QUERIES: [&str; 5] = [
    "up",
    "sum(up)",
    "rate(requests_total[5m])",
    "avg by (instance) (temperature_celsius)",
    "special_value",
];

fn servers(dir: &std::path::Path) -> (StrataServer, PrometheusProcess) {
    let (_, blocks) = backfill(dir, &small_opts(START));
    let prom_dir = dir.join("prom");
    copy_dir(&blocks, &prom_dir);
    (
        StrataServer::start(&blocks, CONFIG, &[]),
        PrometheusProcess::start(&prom_dir, &[]),
    )
}

/// JSON equality, with numeric strings equal within a relative 1e-12.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::String(x), Value::String(y)) if x != y => {
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn compare(s: &StrataServer, p: &PrometheusProcess, path: &str, params: &[(&str, &str)]) {
    let (sc, sv) = get_json(&s.url(), path, params);
    let (pc, pv) = get_json(&p.url(), path, params);
    assert_eq!(pc, 200, "prometheus {path} {params:?}: {pv}");
    assert_eq!(sc, pc, "{path} {params:?}: strata {sv}");
    if same(&sv, &pv) {
        return;
    }
    // Name the first differing result element, not the whole answers.
    let (sr, pr) = (&sv["data"]["result"], &pv["data"]["result"]);
    if let (Some(sa), Some(pa)) = (sr.as_array(), pr.as_array()) {
        for (i, (a, b)) in sa.iter().zip(pa).enumerate() {
            assert!(
                same(a, b),
                "{path} {params:?}: result[{i}] differs: strata {a} vs prometheus {b}"
            );
        }
        assert_eq!(sa.len(), pa.len(), "{path} {params:?}: result lengths");
    }
    assert_eq!(sv, pv, "{path} {params:?}");
}

#[test]
fn instant_queries_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (s, p) = servers(dir.path());
    // Times off the 1-minute scrape grid (and off the 125 ms sample grid).
    let times = [
        format!("{}.001", START + 3600 + 7),
        format!("{}.250", START + 2 * 3600 + 31),
        format!("{}", START + 3 * 3600 - 59),
        "2024-01-01T01:30:12.345Z".to_owned(),
    ];
    for q in INSTANT_QUERIES {
        for t in &times {
            compare(&s, &p, "/api/v1/query", &[("query", q), ("time", t)]);
        }
    }
    // limit truncates with a warning in both.
    compare(
        &s,
        &p,
        "/api/v1/query",
        &[
            ("query", "up"),
            ("time", &times[0]),
            ("lookback_delta", "1m"),
        ],
    );
}

#[test]
fn range_queries_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (s, p) = servers(dir.path());
    let start = format!("{}.5", START + 300);
    let end = format!("{}", START + 3 * 3600 - 1);
    for q in RANGE_QUERIES {
        for step in ["37", "60s", "15m"] {
            compare(
                &s,
                &p,
                "/api/v1/query_range",
                &[
                    ("query", q),
                    ("start", &start),
                    ("end", &end),
                    ("step", step),
                ],
            );
        }
    }
}

#[test]
fn epoch_queries_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (_, blocks) = backfill(dir.path(), &small_opts(0));
    let prom_dir = dir.path().join("prom");
    copy_dir(&blocks, &prom_dir);
    let s = StrataServer::start(&blocks, CONFIG, &[]);
    let p = PrometheusProcess::start(&prom_dir, &[]);
    for (q, first) in [
        ("up", "0"),
        ("sum(up)", "0"),
        ("rate(requests_total[5m])", "601"),
    ] {
        for t in ["0", "0.5", "61.001", "3600.125"] {
            if t.parse::<f64>().unwrap() < first.parse::<f64>().unwrap() {
                continue;
            }
            compare(&s, &p, "/api/v1/query", &[("query", q), ("time", t)]);
        }
        compare(
            &s,
            &p,
            "/api/v1/query_range",
            &[
                ("query", q),
                ("start", first),
                ("end", "3600"),
                ("step", "30"),
            ],
        );
    }
}
