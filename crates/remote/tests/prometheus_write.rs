//! A real Prometheus 2.42 scraping itself every second and remote-writing to the
//! receiver (in process, into a head): after ~10 s every series and sample it
//! holds up to a cutoff is in the head, with its external labels, and it counts
//! no failed, retried or dropped samples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use prometheus_client::registry::Registry;
use serde_json::Value;
use strata_model::{is_stale_nan, MatchType, Matcher};
use strata_remote::{write_router, WriteOptions};
use strata_storage::{Frame, Queryable, SelectRequest};
use strata_testkit::PrometheusProcess;
use strata_tsdb::head::{Head, HeadOptions};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

type Data = BTreeMap<Vec<(String, String)>, Vec<(i64, u64)>>;

/// Bits of a value, with every NaN the same.
fn bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

fn metric_values(text: &str, name: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn prometheus_remote_write_arrives_complete() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(&dir.path().join("strata"), HeadOptions::default()).unwrap();
    let mut registry = Registry::default();
    let router = write_router(
        Arc::new(head.clone()),
        WriteOptions::default(),
        &mut registry,
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router).await });

    let config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1m
  external_labels:
    cluster: test
    replica: a
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{{{{port}}}}']
remote_write:
  - url: http://{addr}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 30ms
      max_backoff: 1s
"#
    );
    let start = now_ms();
    let prom_dir = dir.path().join("prometheus");
    let prom = PrometheusProcess::start_with_config(&prom_dir, &config, &[]);
    // Discovery starts scraping ~5 s after start; wait for 8 scrapes (~13 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = prom.query_vector("count_over_time(up[5m])", now_ms() as f64 / 1000.0);
        if v.first().is_some_and(|(_, n)| *n >= 8.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no scrapes: {v:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let cutoff = now_ms() - 3000;
    // Everything up to the cutoff has been sent after a few batch deadlines.
    std::thread::sleep(Duration::from_secs(4));

    // Prometheus' raw samples up to the cutoff (range vectors drop stale markers).
    let range_s = (cutoff - start) / 1000 + 60;
    let answer = prom.query(
        &format!("{{__name__=~\".+\"}}[{range_s}s]"),
        cutoff as f64 / 1000.0,
    );
    assert_eq!(answer["status"], "success", "{answer}");
    let mut want: Data = BTreeMap::new();
    for s in answer["data"]["result"].as_array().unwrap() {
        let mut labels: BTreeMap<String, String> = s["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        for (k, v) in [("cluster", "test"), ("replica", "a")] {
            labels.entry(k.into()).or_insert_with(|| v.into());
        }
        let samples = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p: &Value| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v: f64 = match p[1].as_str().unwrap() {
                    "NaN" => f64::NAN,
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    x => x.parse().unwrap(),
                };
                (t, bits(v))
            })
            .collect();
        want.insert(labels.into_iter().collect(), samples);
    }
    assert!(want.len() > 100, "only {} series scraped", want.len());

    let got: Data = rt.block_on(async {
        let req = SelectRequest::new(
            cutoff - range_s * 1000,
            cutoff,
            vec![Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()],
        );
        let mut stream = head.select(&req).await.unwrap();
        let mut out = BTreeMap::new();
        while let Some(f) = stream.next().await {
            let Frame::Series(s) = f.unwrap() else {
                continue;
            };
            let samples: Vec<(i64, u64)> = s
                .collect_samples()
                .unwrap()
                .into_iter()
                .filter(|x| x.t <= cutoff && !is_stale_nan(x.v))
                .map(|x| (x.t, bits(x.v)))
                .collect();
            if !samples.is_empty() {
                let labels = s
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                out.insert(labels, samples);
            }
        }
        out
    });
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "series missing in the head: {missing:?}"
    );
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "series only in the head: {extra:?}");
    for (k, v) in &want {
        assert_eq!(&got[k], v, "samples of {k:?}");
    }
    let total: usize = want.values().map(Vec::len).sum();
    assert!(
        total >= 3 * want.len(),
        "{total} samples in {} series",
        want.len()
    );

    // Prometheus' own view of the remote storage: nothing failed.
    let metrics = ureq::get(&format!("{}/metrics", prom.url()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for name in [
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_dropped_total",
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_metadata_failed_total",
    ] {
        let v = metric_values(&metrics, name);
        assert!(!v.is_empty(), "{name} not exported");
        assert!(v.iter().all(|x| *x == 0.0), "{name} = {v:?}");
    }
    let sent = metric_values(&metrics, "prometheus_remote_storage_samples_total");
    assert!(sent.iter().sum::<f64>() >= total as f64, "sent {sent:?}");

    // And the receiver answered every request with 204.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let codes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("strata_remote_write_requests_total{"))
        .collect();
    assert!(
        !codes.is_empty() && codes.iter().all(|l| l.contains("code=\"204\"")),
        "{codes:?}"
    );
    drop(prom);
}
