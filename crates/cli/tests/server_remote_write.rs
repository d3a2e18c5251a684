//! A real Prometheus 2.42 with `remote_write` to the `strata server` binary: every
//! series it sends is stored with its external labels, and its queue reports no
//! failed or dropped samples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

use std::time::{Duration, Instant};

use api_util::{get_json, StrataServer, CONFIG};

#[test]
fn prometheus_remote_writes_into_strata_server() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("strata");
    let s = StrataServer::start(&sdir, CONFIG, &["--web.enable-remote-write-receiver"]);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster: test\n    prometheus_replica: r0\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{{{{port}}}}']\n\
         remote_write:\n  - url: {}/api/v1/write\n    queue_config:\n      batch_send_deadline: 500ms\n",
        s.url()
    );
    let pdir = tmp.path().join("prom");
    let p = strata_testkit::PrometheusProcess::start_with_config(&pdir, &config, &[]);
    // Wait until Strata has the `up` series of Prometheus' self-scrape.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = get_json(&s.url(), "/api/v1/series", &[("match[]", "up")]);
        if v["data"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no series arrived: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    // Every series Prometheus has for its own job (a few seconds ago, so the queue
    // has caught up) exists in Strata, with the external labels added.
    let (_, theirs) = get_json(
        &p.url(),
        "/api/v1/series",
        &[("match[]", "{job=\"prometheus\"}"), ("start", "0")],
    );
    let (_, ours) = get_json(
        &s.url(),
        "/api/v1/series",
        &[("match[]", "{job=\"prometheus\"}"), ("start", "0")],
    );
    let ours: Vec<serde_json::Value> = ours["data"].as_array().unwrap().clone();
    assert!(!ours.is_empty());
    for o in &ours {
        assert_eq!(o["cluster"], "test", "{o}");
        assert_eq!(o["prometheus_replica"], "r0", "{o}");
    }
    let strip = |v: &serde_json::Value| {
        let mut m = v.as_object().unwrap().clone();
        m.remove("cluster");
        m.remove("prometheus_replica");
        serde_json::Value::Object(m)
    };
    let ours_set: std::collections::BTreeSet<String> =
        ours.iter().map(|v| strip(v).to_string()).collect();
    let missing: Vec<String> = theirs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .filter(|v| !ours_set.contains(v))
        .collect();
    // Series born in the last second may still be queued.
    assert!(
        missing.len() <= 5,
        "{} series missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    // Prometheus' queue saw no failures or drops.
    let (_, body) = api_util::get(&p.url(), "/metrics");
    for m in [
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_dropped_total",
    ] {
        for line in body.lines().filter(|l| l.starts_with(m)) {
            let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(v, 0.0, "{line}");
        }
    }
    assert!(
        body.contains("prometheus_remote_storage_samples_total")
            || body.contains("prometheus_remote_storage_succeeded_samples_total")
    );
}
