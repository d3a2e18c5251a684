//! End-to-end tests of `strata server`'s HTTP API: the real binary on blocks made
//! by backfill, compared with a real Prometheus on a copy of the same blocks.

#![allow(clippy::unwrap_used)]

mod api_util;

use api_util::{backfill, get, get_json, get_params, post_form, small_opts, StrataServer, CONFIG};
use serde_json::Value;
use strata_testkit::{copy_dir, PrometheusProcess};

/// The same blocks served by strata and by Prometheus.
struct Pair {
    strata: StrataServer,
    prom: PrometheusProcess,
    _dir: tempfile::TempDir,
}

fn pair(start_secs: i64) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (_, blocks) = backfill(dir.path(), &small_opts(start_secs));
    let prom_dir = dir.path().join("prom");
    copy_dir(&blocks, &prom_dir);
    let strata = StrataServer::start(&blocks, CONFIG, &[]);
    let prom = PrometheusProcess::start(&prom_dir, &[]);
    Pair {
        strata,
        prom,
        _dir: dir,
    }
}

/// Asserts both servers answer `path?params` with status 200 and equal JSON.
fn assert_same(p: &Pair, path: &str, params: &[(&str, &str)]) -> Value {
    let (sc, s) = get_json(&p.strata.url(), path, params);
    let (pc, pr) = get_json(&p.prom.url(), path, params);
    assert_eq!(pc, 200, "prometheus {path} {params:?}: {pr}");
    assert_eq!(sc, 200, "strata {path} {params:?}: {s}");
    assert_eq!(s, pr, "{path} {params:?}");
    s
}

#[test]
fn series_labels_and_values_match_prometheus() {
    let p = pair(1_704_067_200);
    let v = assert_same(&p, "/api/v1/labels", &[]);
    assert!(v["data"].as_array().unwrap().len() > 3, "{v}");
    for name in [
        "__name__",
        "instance",
        "job",
        "le",
        "location",
        "no_such_label",
    ] {
        assert_same(&p, &format!("/api/v1/label/{name}/values"), &[]);
    }
    let v = assert_same(&p, "/api/v1/series", &[("match[]", "up")]);
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
    assert_same(&p, "/api/v1/series", &[("match[]", r#"{__name__=~".+"}"#)]);
    assert_same(
        &p,
        "/api/v1/series",
        &[
            ("match[]", "up"),
            ("match[]", r#"requests_total{instance=~"host-[ab].*"}"#),
        ],
    );
    // A time window inside the data: only series with samples in it.
    let window = [
        ("match[]", r#"{__name__=~".+"}"#),
        ("start", "1704070800"),
        ("end", "2024-01-01T01:10:00Z"),
    ];
    assert_same(&p, "/api/v1/series", &window);
    assert_same(
        &p,
        "/api/v1/labels",
        &[
            ("match[]", "requests_total"),
            ("start", "1704070800"),
            ("end", "1704071400"),
        ],
    );
    assert_same(
        &p,
        "/api/v1/label/instance/values",
        &[("match[]", "up"), ("start", "1704067200.5")],
    );
    // Outside the data.
    assert_same(&p, "/api/v1/series", &[("match[]", "up"), ("end", "1000")]);
    assert_same(&p, "/api/v1/labels", &[("start", "1800000000")]);
}

#[test]
fn epoch_data_is_served() {
    let p = pair(0);
    assert_same(&p, "/api/v1/labels", &[]);
    assert_same(&p, "/api/v1/label/__name__/values", &[]);
    let v = assert_same(
        &p,
        "/api/v1/series",
        &[("match[]", "up"), ("start", "0"), ("end", "60")],
    );
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
    // Retention did not delete the old blocks.
    let (_, m) = get(&p.strata.url(), "/metrics");
    assert!(
        m.contains("prometheus_tsdb_lowest_timestamp_seconds 0"),
        "{m}"
    );
}

#[test]
fn post_forms_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, blocks) = backfill(dir.path(), &small_opts(1_704_067_200));
    let s = StrataServer::start(&blocks, CONFIG, &[]);
    let u = s.url();
    let (code, body) = post_form(&u, "/api/v1/series", &[("match[]", "up")]);
    assert_eq!(code, 200, "{body}");
    let (_, get_body) = get_params(&u, "/api/v1/series", &[("match[]", "up")]);
    assert_eq!(body, get_body);
    let (code, _) = post_form(&u, "/api/v1/labels", &[("match[]", "up")]);
    assert_eq!(code, 200);

    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let errors: [Case; 6] = [
        ("/api/v1/series", &[], "no match[] parameter provided"),
        (
            "/api/v1/series",
            &[("match[]", "up"), ("start", "yesterday")],
            "invalid parameter \"start\": invalid time value for 'start': cannot parse \"yesterday\" to a valid timestamp",
        ),
        (
            "/api/v1/labels",
            &[("limit", "-3")],
            "invalid parameter \"limit\": limit must be non-negative",
        ),
        (
            "/api/v1/query_range",
            &[("query", "up"), ("start", "10"), ("end", "0"), ("step", "1")],
            "invalid parameter \"end\": end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range",
            &[("query", "up"), ("start", "0"), ("end", "100000"), ("step", "1")],
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            "/api/v1/query",
            &[("query", "up"), ("timeout", "later")],
            "invalid parameter \"timeout\": cannot parse \"later\" to a valid duration",
        ),
    ];
    for (path, params, msg) in errors {
        let (code, v) = get_json(&u, path, params);
        assert_eq!(code, 400, "{path} {params:?}: {v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data", "{v}");
        assert_eq!(v["error"], msg, "{path} {params:?}");
        assert!(
            v.get("data").is_none() && v.get("warnings").is_none(),
            "{v}"
        );
    }
    // Query syntax errors: 400 bad_data with the parser's message.
    for q in ["up{", "sum(", "rate(x[5m]"] {
        for (path, extra) in [
            ("/api/v1/query", vec![]),
            (
                "/api/v1/query_range",
                vec![("start", "0"), ("end", "60"), ("step", "15")],
            ),
        ] {
            let mut params = vec![("query", q)];
            params.extend(extra);
            let (code, v) = get_json(&u, path, &params);
            assert_eq!(code, 400, "{path} {q}: {v}");
            assert_eq!(v["errorType"], "bad_data");
            let msg = v["error"].as_str().unwrap();
            assert!(msg.starts_with("invalid parameter \"query\": "), "{msg}");
        }
    }
}

#[test]
fn query_errors_agree_with_prometheus() {
    let p = pair(1_704_067_200);
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("/api/v1/query", &[("query", "up{")]),
        ("/api/v1/query", &[("query", "up"), ("time", "nope")]),
        (
            "/api/v1/query_range",
            &[("query", "up"), ("start", "1"), ("end", "0"), ("step", "1")],
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "1"),
                ("step", "-1"),
            ],
        ),
        ("/api/v1/series", &[]),
    ];
    for (path, params) in cases {
        let (sc, s) = get_json(&p.strata.url(), path, params);
        let (pc, pr) = get_json(&p.prom.url(), path, params);
        assert_eq!(
            (sc, &s["status"], &s["errorType"]),
            (pc, &pr["status"], &pr["errorType"]),
            "{path} {params:?}: strata {s} prometheus {pr}"
        );
    }
}

#[test]
fn status_endpoints_probes_metrics_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (_, blocks) = backfill(dir.path(), &small_opts(1_704_067_200));
    let n_blocks = std::fs::read_dir(&blocks)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("meta.json").is_file())
        .count();
    let config = "global:\n  scrape_interval: 15s\n  external_labels:\n    replica: a\n";
    let mut s = StrataServer::start(&blocks, config, &[]);
    let u = s.url();

    assert_eq!(
        get(&u, "/-/ready"),
        (200, "Prometheus Server is Ready.\n".into())
    );
    assert_eq!(
        get(&u, "/-/healthy"),
        (200, "Prometheus Server is Healthy.\n".into())
    );

    let (_, v) = get_json(&u, "/api/v1/status/config", &[]);
    assert_eq!(v["data"]["yaml"], config);
    let (_, v) = get_json(&u, "/api/v1/status/flags", &[]);
    let f = &v["data"];
    assert_eq!(f["storage.tsdb.min-block-duration"], "2h");
    assert_eq!(f["storage.tsdb.max-block-duration"], "1d12h");
    assert_eq!(f["storage.tsdb.retention.time"], "15d");
    assert_eq!(f["storage.tsdb.path"], blocks.display().to_string());
    assert_eq!(f["query.lookback-delta"], "5m");
    assert_eq!(f["web.enable-lifecycle"], "false");
    assert!(f.as_object().unwrap().values().all(Value::is_string), "{f}");
    let (_, v) = get_json(&u, "/api/v1/status/buildinfo", &[]);
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(v["data"][k].is_string(), "{k}: {v}");
    }
    let (_, v) = get_json(&u, "/api/v1/status/runtimeinfo", &[]);
    assert_eq!(v["data"]["storageRetention"], "15d");
    assert_eq!(v["data"]["reloadConfigSuccess"], true);
    let (_, v) = get_json(&u, "/api/v1/metadata", &[]);
    assert_eq!(v, serde_json::json!({"status": "success", "data": {}}));
    // Lifecycle is off by default.
    let (code, _) = post_form(&u, "/-/quit", &[]);
    assert_eq!(code, 403);

    get(&u, "/api/v1/labels");
    let (code, m) = get(&u, "/metrics");
    assert_eq!(code, 200);
    assert!(
        m.contains(&format!("prometheus_tsdb_blocks_loaded {n_blocks}")),
        "{m}"
    );
    assert!(
        m.contains("prometheus_tsdb_lowest_timestamp_seconds 1704067"),
        "{m}"
    );
    assert!(m.contains("prometheus_build_info{"), "{m}");
    assert!(
        m.contains(r#"prometheus_http_requests_total{code="200",handler="/api/v1/labels"} 1"#),
        "{m}"
    );
    assert!(
        m.contains("prometheus_http_request_duration_seconds_bucket"),
        "{m}"
    );

    let status = s.terminate();
    assert!(status.success(), "exit {status}\n{}", s.stderr());
}

#[test]
fn lifecycle_quit_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty");
    let mut s = StrataServer::start(&data, CONFIG, &["--web.enable-lifecycle"]);
    let u = s.url();
    assert!(data.is_dir(), "the data directory is created");
    let (_, v) = get_json(&u, "/api/v1/labels", &[]);
    assert_eq!(v, serde_json::json!({"status": "success", "data": []}));
    let (code, body) = post_form(&u, "/-/reload", &[]);
    assert_eq!(code, 200, "{body}");
    let (_, m) = get(&u, "/metrics");
    assert!(
        m.contains("prometheus_config_last_reload_successful 1"),
        "{m}"
    );
    assert!(
        m.contains("prometheus_config_last_reload_success_timestamp_seconds 1"),
        "{m}"
    );
    // A bad config: the reload fails, the metric says so, the server stays up.
    std::fs::write(s.config_path(), "global:\n  scrape_intervall: 1m\n").unwrap();
    let (code, body) = post_form(&u, "/-/reload", &[]);
    assert!(code >= 400, "{code} {body}");
    let (_, m) = get(&u, "/metrics");
    assert!(
        m.contains("prometheus_config_last_reload_successful 0"),
        "{m}"
    );
    let (code, _) = post_form(&u, "/-/quit", &[]);
    assert_eq!(code, 200);
    let status = s.wait_exit();
    assert!(status.success(), "exit {status}\n{}", s.stderr());
}

#[test]
fn bad_config_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    std::fs::write(&cfg, "global:\n  scrape_intervall: 1m\n").unwrap();
    let out = std::process::Command::new(api_util::strata())
        .arg("server")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("d").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scrape_intervall") && err.contains("line 2"),
        "{err}"
    );
}
