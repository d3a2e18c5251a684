//! Scrapes a real `prometheus-node-exporter` and a real `prometheus` (its own
//! `/metrics`) into a TSDB head and checks that the stored series equal what a
//! real Prometheus 2.42 scraping the same targets stores.
//!
//! `le`/`quantile` values are compared after normalising both sides to the
//! OpenMetrics canonical float (`1` → `1.0`): Prometheus 3.x (which Strata
//! follows) normalises them when scraping, 2.42 stores them as exposed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use strata_config::Config;
use strata_scrape::ScrapeManager;
use strata_testkit::{free_port, peer_binary, PrometheusProcess};
use strata_tsdb::head::{Head, HeadOptions};

type Series = BTreeMap<String, String>;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq::get(url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not answer within 30s");
}

fn config(node: &str, prom: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
         - job_name: node\n    static_configs:\n      - targets: ['{node}']\n  \
         - job_name: prometheus\n    static_configs:\n      - targets: ['{prom}']\n"
    )
}

/// `le` and `quantile` in OpenMetrics canonical form.
fn normalise(mut s: Series) -> Series {
    for k in ["le", "quantile"] {
        if let Some(v) = s.get_mut(k) {
            let f: Option<f64> = match v.as_str() {
                "+Inf" => Some(f64::INFINITY),
                x => x.parse().ok(),
            };
            if let Some(f) = f {
                let mut c = if f.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    strata_model::gofmt::format_g(f)
                };
                if f.is_finite() && !c.contains(['.', 'e']) {
                    c.push_str(".0");
                }
                *v = c;
            }
        }
    }
    s
}

fn prometheus_series(prom: &PrometheusProcess) -> BTreeSet<Series> {
    let resp = ureq::get(&format!("{}/api/v1/series", prom.url()))
        .query("match[]", "{__name__=~\".+\"}")
        .call()
        .expect("series request");
    let resp: serde_json::Value = serde_json::from_reader(resp.into_reader()).expect("series JSON");
    resp["data"]
        .as_array()
        .expect("series array")
        .iter()
        .map(|m| {
            normalise(
                m.as_object()
                    .expect("label object")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
            )
        })
        .collect()
}

fn name_of(s: &Series) -> &str {
    s.get("__name__").map(String::as_str).unwrap_or_default()
}

#[test]
fn stored_series_match_prometheus() {
    let node_port = free_port();
    let _node = Killed(
        Command::new(peer_binary("prometheus-node-exporter"))
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter"),
    );
    let node = format!("127.0.0.1:{node_port}");
    wait_http(&format!("http://{node}/metrics"));
    let prom_dir = tempfile::tempdir().unwrap();
    let prom = PrometheusProcess::start_with_config(
        prom_dir.path(),
        &config(&node, "127.0.0.1:{{port}}"),
        &[],
    );
    let target_prom = format!("127.0.0.1:{}", prom.port());
    // Let Prometheus scrape a few times first: some of its own series (TSDB
    // append counters, remote storage gauges) only appear once it ingests.
    std::thread::sleep(Duration::from_secs(3));

    let head_dir = tempfile::tempdir().unwrap();
    let head = Arc::new(Head::open(head_dir.path(), HeadOptions::default()).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let snapshot = rt.block_on(async {
        let mut reg = Registry::default();
        let m = ScrapeManager::new(head.clone(), &mut reg);
        m.apply_config(&Config::parse(&config(&node, &target_prom)).unwrap())
            .unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let snap = m.targets();
        m.stop().await;
        snap
    });
    assert_eq!(snapshot.active_targets.len(), 2, "{snapshot:?}");
    for t in &snapshot.active_targets {
        assert_eq!(t.health, "up", "{t:?}");
        assert_eq!(t.last_error, "", "{t:?}");
    }

    let ours: BTreeSet<Series> = head
        .select_series(i64::MIN, i64::MAX, &[], true)
        .into_iter()
        .map(|s| {
            normalise(
                s.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
            )
        })
        .collect();
    let theirs = prometheus_series(&prom);
    drop(prom);

    // The node exporter's series must match exactly, but for a few per-scrape
    // gauges of the exporter's own process that may appear in one run only.
    let node_only = |set: &BTreeSet<Series>| -> BTreeSet<Series> {
        set.iter()
            .filter(|s| s.get("job").map(String::as_str) == Some("node"))
            .cloned()
            .collect()
    };
    let (a, b) = (node_only(&ours), node_only(&theirs));
    let only_ours: Vec<_> = a.difference(&b).collect();
    let only_theirs: Vec<_> = b.difference(&a).collect();
    assert!(a.len() > 200, "too few node series: {}", a.len());
    assert!(
        only_ours.len() + only_theirs.len() <= a.len() / 50,
        "node series differ:\nonly Strata: {only_ours:#?}\nonly Prometheus: {only_theirs:#?}"
    );

    // Prometheus' own metrics change as it runs (handlers, scrape pools): the
    // metric names must match, and label sets nearly so.
    let names = |set: &BTreeSet<Series>, job: &str| -> BTreeSet<String> {
        set.iter()
            .filter(|s| s.get("job").map(String::as_str) == Some(job))
            .map(|s| name_of(s).to_owned())
            .collect()
    };
    let (na, nb) = (names(&ours, "prometheus"), names(&theirs, "prometheus"));
    // Prometheus' set spans its whole history (some of its own metrics appear or
    // vanish as it starts up); ours covers a few seconds. So: almost nothing only
    // in ours, a little more slack the other way.
    let only_ours = na.difference(&nb).count();
    let only_theirs = nb.difference(&na).count();
    assert!(
        na.len() > 100 && only_ours <= na.len() / 50 && only_theirs <= na.len() / 20,
        "prometheus metric names differ:\nonly Strata: {:#?}\nonly Prometheus: {:#?}",
        na.difference(&nb).collect::<Vec<_>>(),
        nb.difference(&na).collect::<Vec<_>>()
    );
    for synthetic in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert!(
            na.contains(synthetic) && nb.contains(synthetic),
            "{synthetic}"
        );
    }

    // Samples per scrape of the node exporter: our last scrape_samples_scraped
    // against the series count both stores hold.
    let ssc = head.select_series(
        i64::MIN,
        i64::MAX,
        &[
            strata_model::Matcher::equal("__name__", "scrape_samples_scraped"),
            strata_model::Matcher::equal("job", "node"),
        ],
        false,
    );
    let samples = ssc[0].collect_samples().unwrap();
    assert!(samples.len() >= 3, "only {} scrapes", samples.len());
    let last = samples.last().unwrap().v as usize;
    let node_series = a
        .iter()
        .filter(|s| !name_of(s).starts_with("scrape_") && name_of(s) != "up")
        .count();
    assert!(
        last.abs_diff(node_series) <= node_series / 50,
        "scraped {last} samples, stored {node_series} series"
    );
}
