//! `strata query` end to end, with real processes on loopback: two `strata
//! server` replicas (external labels `cluster`, `prometheus_replica`) scraping
//! one target, a `strata sidecar` each, and the querier over the sidecars.
//! Dedup equals one replica; `dedup=false` shows both; a replica killed and
//! restarted leaves no gap and no double counting; failing endpoints give
//! warnings (or errors with `partial_response=false`) quickly; an endpoint that
//! is an HTTP server is logged and reported; a real Prometheus 2.42 behind a
//! sidecar answers the same directly and through the querier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use strata_testkit::openmetrics::{generate, Options};
use strata_testkit::{free_port, PrometheusProcess};

use api_util::get_json;
use api_util::procs::Proc;

/// `strata server` on a fixed port (so a restart keeps its address).
fn server(dir: &Path, name: &str, config: &str) -> Proc {
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    Proc::spawn(
        vec![
            "server".into(),
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.join(name).display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.min-block-duration=2h".into(),
            "--storage.tsdb.max-block-duration=2h".into(),
        ],
        format!("http://127.0.0.1:{port}"),
    )
}

/// The objstore YAML of the test's FILESYSTEM bucket, `<dir>/bucket`.
fn fs_bucket(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("bucket")).unwrap();
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.join("bucket").display()
    )
}

/// `strata sidecar` beside the server at `prom_url`; returns it and its gRPC address.
fn sidecar(dir: &Path, prom_url: &str, tsdb: &Path) -> (Proc, String) {
    sidecar_to(&fs_bucket(dir), prom_url, tsdb, &[])
}

/// `strata sidecar` shipping to the bucket `objstore` describes.
fn sidecar_to(objstore: &str, prom_url: &str, tsdb: &Path, extra: &[&str]) -> (Proc, String) {
    let (http, grpc) = (free_port(), free_port());
    let mut args = vec![
        "sidecar".into(),
        format!("--prometheus.url={prom_url}"),
        format!("--tsdb.path={}", tsdb.display()),
        format!("--http-address=127.0.0.1:{http}"),
        format!("--grpc-address=127.0.0.1:{grpc}"),
        format!("--objstore.config={objstore}"),
        "--prometheus.ready_timeout=20s".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let p = Proc::spawn(args, format!("http://127.0.0.1:{http}"));
    (p, format!("127.0.0.1:{grpc}"))
}

/// `strata store` (the gateway) over the test bucket; returns it and its gRPC
/// address.
fn store_gateway(dir: &Path) -> (Proc, String) {
    store_gateway_on(&fs_bucket(dir), &dir.join("store"))
}

/// `strata store` over the bucket `objstore` describes, with `data_dir`.
fn store_gateway_on(objstore: &str, data_dir: &Path) -> (Proc, String) {
    let (http, grpc) = (free_port(), free_port());
    let p = Proc::spawn(
        vec![
            "store".into(),
            format!("--data-dir={}", data_dir.display()),
            format!("--objstore.config={objstore}"),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
        ],
        format!("http://127.0.0.1:{http}"),
    );
    (p, format!("127.0.0.1:{grpc}"))
}

/// `strata query` over `endpoints`; returns it and its gRPC address.
fn querier(endpoints: &[String], extra: &[&str]) -> (Proc, String) {
    let (http, grpc) = (free_port(), free_port());
    let mut args = vec![
        "query".to_string(),
        format!("--http-address=127.0.0.1:{http}"),
        format!("--grpc-address=127.0.0.1:{grpc}"),
        "--endpoint.refresh-interval=1s".into(),
        "--query.timeout=20s".into(),
    ];
    args.extend(endpoints.iter().map(|e| format!("--endpoint={e}")));
    args.extend(extra.iter().map(|s| s.to_string()));
    (
        Proc::spawn(args, format!("http://127.0.0.1:{http}")),
        format!("127.0.0.1:{grpc}"),
    )
}

/// A scrape target: `test_requests_total` grows by 10/s of wall time (the same
/// for every scraper), `test_gauge` is 42. Serves until the test process ends.
fn metrics_target() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let v = now_ms() / 100;
            let body = format!(
                "# TYPE test_requests_total counter\ntest_requests_total {v}\n# TYPE test_gauge gauge\ntest_gauge 42\n"
            );
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn replica_config(target: &str, replica: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: c1\n    prometheus_replica: {replica}\nscrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: ['{target}']\n"
    )
}

/// An instant query; the whole answer and how long it took.
fn query(base: &str, q: &str, t_ms: i64, extra: &[(&str, &str)]) -> (u16, Value, Duration) {
    let t = secs(t_ms);
    let mut params = vec![("query", q), ("time", t.as_str())];
    params.extend_from_slice(extra);
    let start = Instant::now();
    let (code, v) = get_json(base, "/api/v1/query", &params);
    (code, v, start.elapsed())
}

/// The only sample value of a successful vector answer.
fn scalar(v: &Value) -> f64 {
    let r = v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(r.len(), 1, "{v}");
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Waits until `/api/v1/stores` shows `n` healthy endpoints.
fn wait_stores(base: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = get_json(base, "/api/v1/stores", &[]);
        let healthy = v["data"]
            .as_object()
            .map(|o| {
                o.values()
                    .flat_map(|a| a.as_array().unwrap().iter())
                    .filter(|e| e["lastError"].is_null())
                    .count()
            })
            .unwrap_or(0);
        if healthy >= n {
            return v;
        }
        assert!(Instant::now() < deadline, "stores not healthy: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `q` (instant, now) through `base` returns a value >= `min`.
fn wait_value(base: &str, q: &str, min: f64, extra: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v, _) = query(base, q, now_ms(), extra);
        let got = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok());
        if got.is_some_and(|g| g >= min) {
            return;
        }
        assert!(Instant::now() < deadline, "{q} never reached {min}: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

#[test]
fn dedups_replicas_without_gaps_or_double_counting() {
    let tmp = tempfile::tempdir().unwrap();
    let target = metrics_target();
    let mut a = server(tmp.path(), "a", &replica_config(&target, "A"));
    let b = server(tmp.path(), "b", &replica_config(&target, "B"));
    let (_sa, ga) = sidecar(tmp.path(), &a.http, &tmp.path().join("a"));
    let (_sb, gb) = sidecar(tmp.path(), &b.http, &tmp.path().join("b"));
    let (_gw, g_store) = store_gateway(tmp.path());
    let (q, q_grpc) = querier(
        &[ga.clone(), gb.clone(), g_store.clone()],
        &["--query.replica-label=prometheus_replica"],
    );
    let stores = wait_stores(&q.http, 3);
    assert_eq!(
        stores["data"]["store"][0]["name"],
        g_store.as_str(),
        "{stores}"
    );
    let sidecars = stores["data"]["sidecar"].as_array().unwrap();
    let mut names: Vec<&str> = sidecars
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut want = vec![ga.as_str(), gb.as_str()];
    want.sort_unstable();
    assert_eq!(names, want, "{stores}");
    for s in sidecars {
        assert_eq!(s["labelSets"][0]["cluster"], "c1", "{s}");
        assert!(s["lastCheck"].as_str().unwrap().ends_with('Z'), "{s}");
        assert!(s["minTime"].is_i64() && s["maxTime"].is_i64(), "{s}");
    }
    wait_value(&q.http, "count_over_time(test_gauge[1m])", 10.0, &[]);
    let t0 = now_ms();

    // Both replicas up: dedup equals one replica.
    let t = now_ms() - 2000;
    let (code, v, _) = query(&q.http, "test_gauge", t, &[]);
    assert_eq!(code, 200, "{v}");
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{v}");
    assert_eq!(r[0]["metric"]["cluster"], "c1");
    assert!(r[0]["metric"].get("prometheus_replica").is_none(), "{v}");
    let (_, v, _) = query(&q.http, "test_gauge", t, &[("dedup", "false")]);
    let mut replicas: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["prometheus_replica"].as_str().unwrap())
        .collect();
    replicas.sort_unstable();
    assert_eq!(replicas, ["A", "B"], "{v}");
    let (_, v, _) = query(&q.http, "count(test_gauge)", t, &[]);
    assert_eq!(scalar(&v), 1.0);
    let rate = "sum(rate(test_requests_total[5s]))";
    let (_, mine, _) = query(&q.http, rate, t, &[]);
    let (_, theirs, _) = query(&a.http, rate, t, &[]);
    let (m, th) = (scalar(&mine), scalar(&theirs));
    assert!(
        close(m, th, 0.2) && close(m, 10.0, 0.2),
        "querier {m} vs replica {th}"
    );
    let (_, both, _) = query(&q.http, rate, t, &[("dedup", "false")]);
    assert!(close(scalar(&both), 2.0 * th, 0.2), "{both}");
    // replicaLabels[] overrides the flag; an unknown one is a warning.
    let (_, v, _) = query(
        &q.http,
        "count(test_gauge)",
        t,
        &[("replicaLabels[]", "nope")],
    );
    assert_eq!(scalar(&v), 2.0, "{v}");
    assert!(warnings(&v).iter().any(|w| w.contains("\"nope\"")), "{v}");
    assert!(q.stderr().contains("nope"), "{}", q.stderr());
    // A querier stacked on this one deduplicates the same way.
    let (q2, _) = querier(&[q_grpc], &["--query.replica-label=prometheus_replica"]);
    wait_stores(&q2.http, 1);
    let (_, v, _) = query(&q2.http, rate, t, &[]);
    assert!(close(scalar(&v), m, 1e-9), "{v} vs {m}");
    let (_, v, _) = query(&q2.http, "count(test_gauge)", t, &[("dedup", "false")]);
    assert_eq!(scalar(&v), 2.0, "{v}");
    drop(q2);

    // Replica A down for several scrape intervals, then back.
    a.kill();
    let down_from = now_ms();
    std::thread::sleep(Duration::from_secs(6));
    let down_to = now_ms();
    a.start();
    wait_value(&a.http, "count_over_time(test_gauge[3s])", 2.0, &[]);
    std::thread::sleep(Duration::from_secs(2));

    let end = now_ms() - 1500;
    let (start, step) = (t0 - 3000, 1000);
    let range = |base: &str, q: &str, extra: &[(&str, &str)]| {
        let (s, e) = (secs(start), secs(end));
        let mut p = vec![
            ("query", q),
            ("start", s.as_str()),
            ("end", e.as_str()),
            ("step", "1"),
        ];
        p.extend_from_slice(extra);
        get_json(base, "/api/v1/query_range", &p).1
    };
    let steps = ((end - start) / step + 1) as usize;
    let gap = "count_over_time(test_gauge[2s])";
    // Replica A alone has the gap...
    let v = range(&a.http, gap, &[]);
    let a_points = v["data"]["result"][0]["values"].as_array().unwrap().len();
    assert!(
        a_points + 3 <= steps,
        "replica A shows no gap: {a_points} of {steps}"
    );
    // ...the deduplicated series has none.
    let v = range(&q.http, gap, &[]);
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{v}");
    let pts = r[0]["values"].as_array().unwrap();
    assert_eq!(
        pts.len(),
        steps,
        "gap in the deduplicated series (A down {down_from}..{down_to}): {v}"
    );
    // No double counting: increase over the outage matches replica B's, and no
    // replica switch looks like a counter reset.
    let window = (end - (down_from - 3000)) / 1000;
    let inc = format!("sum(increase(test_requests_total[{window}s]))");
    let (_, mine, _) = query(&q.http, &inc, end, &[]);
    let (_, theirs, _) = query(&b.http, &inc, end, &[]);
    let (m, th) = (scalar(&mine), scalar(&theirs));
    assert!(close(m, th, 0.1), "increase: querier {m} vs replica B {th}");
    assert!(
        close(m, 10.0 * window as f64, 0.15),
        "increase {m} over {window}s"
    );
    let res = format!("sum(resets(test_requests_total[{window}s]))");
    let (_, v, _) = query(&q.http, &res, end, &[]);
    assert_eq!(scalar(&v), 0.0, "{v}");
}

#[test]
fn failing_endpoints_give_warnings_or_errors_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let target = metrics_target();
    let s = server(tmp.path(), "a", &replica_config(&target, "A"));
    let (mut sc, g) = sidecar(tmp.path(), &s.http, &tmp.path().join("a"));
    // An HTTP/1 server (the scrape target) and a port nobody listens on.
    let dead = format!("127.0.0.1:{}", free_port());
    let (q, _) = querier(
        &[g.clone(), target.clone(), dead.clone()],
        &["--query.replica-label=prometheus_replica"],
    );
    wait_stores(&q.http, 1);
    wait_value(&q.http, "count_over_time(test_gauge[1m])", 2.0, &[]);
    let t = now_ms() - 1000;

    let (code, v, took) = query(&q.http, "test_gauge", t, &[]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(scalar(&v), 42.0);
    let w = warnings(&v);
    assert!(w.iter().any(|w| w.contains(&target)), "{v}");
    assert!(w.iter().any(|w| w.contains(&dead)), "{v}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let log = q.stderr();
    assert!(
        log.contains(&target) && log.contains("unhealthy"),
        "no log line about the HTTP endpoint:\n{log}"
    );
    let (code, v, took) = query(&q.http, "test_gauge", t, &[("partial_response", "false")]);
    assert!(code >= 400, "{code} {v}");
    assert_eq!(v["status"], "error", "{v}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Label calls report the same.
    let (code, v) = get_json(&q.http, "/api/v1/labels", &[]);
    assert_eq!(code, 200, "{v}");
    assert!(
        v["data"].as_array().unwrap().iter().any(|n| n == "cluster"),
        "{v}"
    );
    assert!(warnings(&v).iter().any(|w| w.contains(&dead)), "{v}");
    // Only the good endpoint selected: no warnings.
    let sm = format!("{{__address__=\"{g}\"}}");
    let (_, v, _) = query(&q.http, "test_gauge", t, &[("storeMatch[]", &sm)]);
    assert_eq!(scalar(&v), 42.0);
    assert!(warnings(&v).is_empty(), "{v}");

    // The sidecar dies: a warning (before and after the querier notices), or an
    // error, within seconds.
    sc.kill();
    for _ in 0..2 {
        let (code, v, took) = query(&q.http, "test_gauge", t, &[("storeMatch[]", &sm)]);
        assert_eq!(code, 200, "{v}");
        assert!(v["data"]["result"].as_array().unwrap().is_empty(), "{v}");
        assert!(warnings(&v).iter().any(|w| w.contains(&g)), "{v}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        let (code, v, took) = query(
            &q.http,
            "test_gauge",
            t,
            &[("storeMatch[]", &sm), ("partial_response", "false")],
        );
        assert!(code >= 400, "{code} {v}");
        assert!(v["error"].as_str().unwrap().contains(&g), "{v}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    // Bad queries are errors, not panics; the querier stays up.
    let (code, v, _) = query(&q.http, "sum(", t, &[]);
    assert_eq!(code, 400, "{v}");
    let (code, v, _) = query(&q.http, "up", t, &[("max_source_resolution", "-1s")]);
    assert_eq!(code, 400, "{v}");
    let mut q = q;
    assert!(q.terminate().success(), "{}", q.stderr());
}

/// Prometheus 2.42 with backfilled blocks and external labels, a sidecar, and
/// the querier: the same answers (external labels aside).
#[test]
fn answers_like_prometheus_on_its_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let start_secs = 1_704_067_200;
    let input = tmp.path().join("in.om.txt");
    std::fs::write(
        &input,
        generate(&Options {
            start_secs,
            duration_secs: 3 * 3600,
            step_ms: 30_000,
            series: 5,
            seed: 7,
        }),
    )
    .unwrap();
    let out = tmp.path().join("blocks");
    strata_testkit::promtool_create_blocks(&input, &out, None);
    std::fs::create_dir_all(&data).unwrap();
    for e in std::fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        strata_testkit::copy_dir(&e.path(), &data.join(e.file_name()));
    }
    let config = "global:\n  scrape_interval: 1h\n  external_labels:\n    cluster: compat\n    prometheus_replica: r0\nscrape_configs: []\n";
    let p = PrometheusProcess::start_with_config(
        &data,
        config,
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
            "--storage.tsdb.retention.time=100y",
        ],
    );
    let (sc_http, sc_grpc) = (free_port(), free_port());
    let _sc = Proc::spawn(
        vec![
            "sidecar".into(),
            format!("--prometheus.url={}", p.url()),
            format!("--tsdb.path={}", data.display()),
            format!("--http-address=127.0.0.1:{sc_http}"),
            format!("--grpc-address=127.0.0.1:{sc_grpc}"),
            "--prometheus.ready_timeout=20s".into(),
        ],
        format!("http://127.0.0.1:{sc_http}"),
    );
    let (q, _) = querier(
        &[format!("127.0.0.1:{sc_grpc}")],
        &["--query.replica-label=prometheus_replica"],
    );
    wait_stores(&q.http, 1);

    let strip = |v: &Value| -> BTreeMap<String, Vec<(f64, f64)>> {
        assert_eq!(v["status"], "success", "{v}");
        let mut out = BTreeMap::new();
        for r in v["data"]["result"].as_array().unwrap() {
            let mut m: BTreeMap<String, String> =
                serde_json::from_value(r["metric"].clone()).unwrap();
            m.remove("cluster");
            m.remove("prometheus_replica");
            let pts: Vec<Value> = match r.get("values") {
                Some(vs) => vs.as_array().unwrap().clone(),
                None => vec![r["value"].clone()],
            };
            let pts = pts
                .iter()
                .map(|p| {
                    (
                        p[0].as_f64().unwrap(),
                        p[1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            out.insert(format!("{m:?}"), pts);
        }
        out
    };
    let same = |a: &BTreeMap<String, Vec<(f64, f64)>>,
                b: &BTreeMap<String, Vec<(f64, f64)>>,
                what: &str| {
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (k, pa) in a {
            let pb = &b[k];
            assert_eq!(pa.len(), pb.len(), "{what} {k}");
            for ((ta, va), (tb, vb)) in pa.iter().zip(pb) {
                assert_eq!(ta, tb, "{what} {k}");
                assert!(
                    va == vb
                        || (va - vb).abs() <= 1e-9 * va.abs().max(1.0)
                        || (va.is_nan() && vb.is_nan()),
                    "{what} {k} at {ta}: {va} vs {vb}"
                );
            }
        }
    };
    let t = (start_secs + 2 * 3600 + 17) as f64;
    let mut nonempty = 0;
    for promql in [
        "requests_total",
        "sum by (job) (rate(requests_total[5m]))",
        "cpu_seconds_total",
        "count({__name__=~\".+\"})",
        "max_over_time(requests_total[10m])",
    ] {
        let theirs = strip(&p.query(promql, t));
        let (_, mine, _) = query(&q.http, promql, (t * 1000.0) as i64, &[]);
        same(&theirs, &strip(&mine), promql);
        nonempty += usize::from(!theirs.is_empty());
        let (s, e) = (t - 3600.0, t + 1800.0);
        let theirs = strip(&p.query_range(promql, s, e, 60.0));
        let (_, mine) = get_json(
            &q.http,
            "/api/v1/query_range",
            &[
                ("query", promql),
                ("start", &s.to_string()),
                ("end", &e.to_string()),
                ("step", "60"),
            ],
        );
        same(&theirs, &strip(&mine), promql);
    }
    assert!(nonempty >= 4, "queries returned no data");
}

/// Meta.json files under a FILESYSTEM bucket (one per uploaded block).
fn bucket_blocks(bucket: &Path) -> usize {
    std::fs::read_dir(bucket)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("meta.json").exists())
                .count()
        })
        .unwrap_or(0)
}

fn local_blocks(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("meta.json").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn history_is_seamless_across_sidecar_and_store_gateway() {
    // 8h of history in 2h blocks. A replica (a real Prometheus 2.42) ships them
    // all with its sidecar, then restarts with a 3h retention that deletes the
    // old ones locally: recent data now comes from the sidecar, old data only
    // from the store gateway, and the querier must answer like one Prometheus
    // that holds everything.
    let tmp = tempfile::tempdir().unwrap();
    let start_secs = 1_704_067_200;
    let input = tmp.path().join("in.om.txt");
    std::fs::write(
        &input,
        generate(&Options {
            start_secs,
            duration_secs: 8 * 3600,
            step_ms: 30_000,
            series: 5,
            seed: 11,
        }),
    )
    .unwrap();
    let blocks = tmp.path().join("blocks");
    strata_testkit::promtool_create_blocks(&input, &blocks, None);
    let replica = tmp.path().join("replica");
    let oracle = tmp.path().join("oracle");
    for e in std::fs::read_dir(&blocks).unwrap() {
        let e = e.unwrap();
        strata_testkit::copy_dir(&e.path(), &replica.join(e.file_name()));
        strata_testkit::copy_dir(&e.path(), &oracle.join(e.file_name()));
    }
    let total = local_blocks(&replica);
    assert!(total >= 4, "expected at least 4 blocks, got {total}");
    let config = "global:\n  scrape_interval: 1h\n  external_labels:\n    cluster: hist\n    prometheus_replica: r0\nscrape_configs: []\n";
    let start_replica = |retention: &str| {
        PrometheusProcess::start_with_config(
            &replica,
            config,
            &[
                "--storage.tsdb.min-block-duration=2h",
                "--storage.tsdb.max-block-duration=2h",
                &format!("--storage.tsdb.retention.time={retention}"),
            ],
        )
    };
    let bucket = tmp.path().join("bucket");

    // Phase 1: everything is shipped.
    {
        let srv = start_replica("100y");
        let (mut sc, _) = sidecar(tmp.path(), &srv.url(), &replica);
        let deadline = Instant::now() + Duration::from_secs(40);
        while bucket_blocks(&bucket) < total {
            assert!(
                Instant::now() < deadline,
                "sidecar shipped {} of {total} blocks:\n{}",
                bucket_blocks(&bucket),
                sc.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(sc.terminate().success());
        drop(srv);
    }

    // Phase 2: local retention shorter than the data.
    let srv = start_replica("3h");
    let deadline = Instant::now() + Duration::from_secs(20);
    while local_blocks(&replica) >= total {
        assert!(Instant::now() < deadline, "retention kept every block");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kept = local_blocks(&replica);
    assert!(kept >= 1 && kept < total, "kept {kept} of {total}");
    let (_sc, sc_grpc) = sidecar(tmp.path(), &srv.url(), &replica);
    let (_sg, sg_grpc) = store_gateway(tmp.path());
    let (q, _) = querier(
        &[sc_grpc, sg_grpc],
        &["--query.replica-label=prometheus_replica"],
    );
    wait_stores(&q.http, 2);
    let prom = PrometheusProcess::start(&oracle, &["--storage.tsdb.retention.time=100y"]);

    // Steps off the samples' timestamps, and functions whose 2.x and 3.x
    // semantics agree (3.x windows are left-open, and its rate extrapolation
    // differs near a counter's start): what is compared is the data.
    let (s, e) = ((start_secs + 7) as f64, (start_secs + 8 * 3600) as f64);
    for promql in [
        "requests_total",
        "sum by (job) (requests_total)",
        "max_over_time(requests_total[10m])",
        "count_over_time(cpu_seconds_total[10m])",
    ] {
        assert_same_range(&prom, &q.http, promql, (s, e, 300.0));
    }
}

/// A range query's series, external labels removed, keyed by their labels.
fn flat(v: &Value) -> BTreeMap<String, Vec<(f64, String)>> {
    assert_eq!(v["status"], "success", "{v}");
    let mut out = BTreeMap::new();
    for r in v["data"]["result"].as_array().unwrap() {
        let mut m: BTreeMap<String, String> = serde_json::from_value(r["metric"].clone()).unwrap();
        m.remove("cluster");
        m.remove("prometheus_replica");
        let pts = match r.get("values") {
            Some(vs) => vs.as_array().unwrap().clone(),
            None => vec![r["value"].clone()],
        };
        let pts = pts
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string()))
            .collect();
        out.insert(format!("{m:?}"), pts);
    }
    out
}

/// `promql` over `(start, end, step)` answers the same from the querier at
/// `querier` as from `prom`, with no warnings: every series, every step.
fn assert_same_range(
    prom: &PrometheusProcess,
    querier: &str,
    promql: &str,
    range: (f64, f64, f64),
) {
    let (s, e, step) = range;
    let theirs = flat(&prom.query_range(promql, s, e, step));
    let (code, mine) = get_json(
        querier,
        "/api/v1/query_range",
        &[
            ("query", promql),
            ("start", &s.to_string()),
            ("end", &e.to_string()),
            ("step", &step.to_string()),
        ],
    );
    assert_eq!(code, 200, "{mine}");
    assert!(warnings(&mine).is_empty(), "{promql}: {mine}");
    let mine = flat(&mine);
    assert!(!theirs.is_empty(), "{promql}: no data in Prometheus");
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        mine.keys().collect::<Vec<_>>(),
        "{promql}"
    );
    for (k, pts) in &theirs {
        let got = &mine[k];
        assert_eq!(pts.len(), got.len(), "{promql} {k}: steps differ");
        for ((ta, va), (tb, vb)) in pts.iter().zip(got) {
            assert_eq!(ta, tb, "{promql} {k}");
            let (fa, fb): (f64, f64) = (va.parse().unwrap(), vb.parse().unwrap());
            assert!(
                va == vb || (fa - fb).abs() <= 1e-9 * fa.abs().max(1.0),
                "{promql} {k} at {ta}: prometheus {va}, strata {vb}"
            );
        }
    }
}

/// A real `prometheus-node-exporter` on a free loopback port, killed on drop.
struct NodeExporter {
    child: Child,
    addr: String,
}

impl NodeExporter {
    fn start() -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(strata_testkit::peer_binary("prometheus-node-exporter"))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "node exporter not listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_head_blocks_on_s3_through_the_store_gateway() {
    // A real Prometheus 2.42 cuts 10s blocks from its own head while scraping
    // a real node exporter and a test target; the sidecar ships them to a real
    // S3 server (Garage). The store gateway then serves them from S3, and the
    // querier over the gateway alone answers like Prometheus from its local
    // copy, step by step. Then the gateway dies: a warning, or an error with
    // partial_response=false, within seconds.
    let garage = strata_testkit::GarageProcess::start();
    let yaml = garage.objstore_yaml();
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeExporter::start();
    let target = metrics_target();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster: heads\n    \
         prometheus_replica: r0\nscrape_configs:\n  - job_name: node\n    static_configs:\n      \
         - targets: ['{}']\n  - job_name: test\n    static_configs:\n      - targets: ['{target}']\n",
        node.addr
    );
    let data = tmp.path().join("prom");
    let prom = PrometheusProcess::start_with_config(
        &data,
        &config,
        &[
            "--storage.tsdb.min-block-duration=10s",
            "--storage.tsdb.max-block-duration=10s",
        ],
    );
    let (mut sc, _) = sidecar_to(&yaml, &prom.url(), &data, &["--shipper.sync-interval=1s"]);
    let bucket = strata_objstore::Bucket::from_config(
        &strata_objstore::BucketConfig::parse(&yaml).unwrap(),
        &mut prometheus_client::registry::Registry::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metas = |rt: &tokio::runtime::Runtime| -> Vec<strata_block::Meta> {
        rt.block_on(async {
            let list = strata_block::list_blocks(&bucket).await.unwrap();
            let mut out = Vec::new();
            for id in list.complete {
                let raw = bucket.get(&format!("{id}/meta.json")).await.unwrap();
                out.push(strata_block::Meta::from_json(&raw).unwrap());
            }
            out
        })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let shipped = loop {
        let m = metas(&rt);
        if m.len() >= 3 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "{} blocks shipped\nprometheus:\n{}\nsidecar:\n{}",
            m.len(),
            prom.stderr(),
            sc.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(sc.terminate().success(), "{}", sc.stderr());
    for m in &shipped {
        assert_eq!(m.thanos.source, "sidecar");
        // Cut by Prometheus from its head: level 1, written by Prometheus.
        assert_eq!(m.block.compaction.level, 1, "{:?}", m.block);
        assert!(data.join(m.block.ulid.to_string()).join("index").is_file());
    }
    let min_t = shipped.iter().map(|m| m.block.min_time).min().unwrap();
    let max_t = shipped.iter().map(|m| m.block.max_time).max().unwrap();

    let (mut sg, sg_grpc) = store_gateway_on(&yaml, &tmp.path().join("store"));
    let (q, _) = querier(
        std::slice::from_ref(&sg_grpc),
        &["--query.replica-label=prometheus_replica"],
    );
    wait_stores(&q.http, 1);
    // Steps on half seconds inside the shipped blocks: every sample a step
    // sees is in a shipped block, and none sits on a window's edge.
    let s = (min_t / 1000) as f64 + 1.5;
    let e = (max_t / 1000) as f64 - 0.5;
    assert!(e - s >= 15.0, "{s}..{e}");
    for promql in [
        "{__name__=~\".+\"}",
        "count by (job, __name__) ({__name__=~\".+\"})",
        "sum by (job) (node_cpu_seconds_total)",
        "test_requests_total",
        "up",
    ] {
        assert_same_range(&prom, &q.http, promql, (s, e, 1.0));
    }

    // The gateway goes down.
    sg.kill();
    let t = (e * 1000.0) as i64;
    for _ in 0..2 {
        let (code, v, took) = query(&q.http, "up", t, &[]);
        assert_eq!(code, 200, "{v}");
        assert!(v["data"]["result"].as_array().unwrap().is_empty(), "{v}");
        assert!(warnings(&v).iter().any(|w| w.contains(&sg_grpc)), "{v}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        let (code, v, took) = query(&q.http, "up", t, &[("partial_response", "false")]);
        assert!(code >= 400, "{code} {v}");
        assert!(v["error"].as_str().unwrap().contains(&sg_grpc), "{v}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
}
