//! `strata sidecar` beside a real Prometheus 2.42 and beside `strata server`:
//! blocks shipped to a bucket with Thanos' meta.json, read back identical to
//! promtool's dump of the local blocks, recent data over the StoreAPI equal to
//! Prometheus' own query answer, refusal without external labels, restarts
//! that neither re-upload nor skip blocks.
//!
//! The bucket is a local directory by default. Set `STRATA_TEST_OBJSTORE` to
//! an objstore YAML (e.g. S3 on a local Garage) to run the same tests against
//! it; each test then writes under its own `prefix:`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use prometheus_client::registry::Registry;
use strata_model::{Labels, MatchType, Matcher};
use strata_objstore::{Bucket, BucketConfig};
use strata_storage::{Frame, Queryable, SelectRequest};
use strata_testkit::openmetrics::{generate, Options};
use strata_testkit::PrometheusProcess;

use api_util::shipped::{check_dump, check_meta, meta};
use api_util::{get_json, strata, StrataServer};

const EXT_CONFIG: &str = "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster: test\n    replica: r0\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{{port}}']\n";
const NO_EXT_CONFIG: &str = "global:\n  scrape_interval: 1h\nscrape_configs: []\n";
/// Prometheus flags that turn its compaction off, as the sidecar requires.
const NO_COMPACTION: [&str; 2] = [
    "--storage.tsdb.min-block-duration=2h",
    "--storage.tsdb.max-block-duration=2h",
];

/// The objstore YAML of a test bucket: `STRATA_TEST_OBJSTORE` with a unique
/// prefix, or a FILESYSTEM bucket in `dir`.
fn objstore_yaml(dir: &Path, test: &str) -> String {
    match std::env::var("STRATA_TEST_OBJSTORE") {
        Ok(y) if !y.trim().is_empty() => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            format!("{}\nprefix: sidecar-{test}-{nanos}\n", y.trim_end())
        }
        _ => format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.join("bucket").display()
        ),
    }
}

fn bucket(yaml: &str) -> Bucket {
    Bucket::from_config(
        &BucketConfig::parse(yaml).unwrap(),
        &mut Registry::default(),
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Backfills 5h of data from 2024-01-01 with promtool into `data_dir`
/// (three 2h-aligned blocks); returns the block ULIDs.
fn promtool_blocks(data_dir: &Path, seed: u64, start_secs: i64) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.om.txt");
    std::fs::write(
        &input,
        generate(&Options {
            start_secs,
            duration_secs: 5 * 3600,
            step_ms: 60_000,
            series: 5,
            seed,
        }),
    )
    .unwrap();
    let out = work.path().join("blocks");
    strata_testkit::promtool_create_blocks(&input, &out, None);
    std::fs::create_dir_all(data_dir).unwrap();
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        strata_testkit::copy_dir(&e.path(), &data_dir.join(&name));
        ids.push(name);
    }
    ids.sort();
    ids
}

/// A running `strata sidecar`, killed on drop.
struct SidecarProcess {
    child: Child,
    http: u16,
    grpc: u16,
    stderr_path: PathBuf,
    _work: tempfile::TempDir,
}

impl SidecarProcess {
    fn spawn(prom_url: &str, tsdb: &Path, extra: &[&str]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let stderr_path = work.path().join("stderr.log");
        let (http, grpc) = (strata_testkit::free_port(), strata_testkit::free_port());
        let mut cmd = Command::new(strata());
        cmd.arg("sidecar")
            .arg(format!("--prometheus.url={prom_url}"))
            .arg(format!("--tsdb.path={}", tsdb.display()))
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!("--grpc-address=127.0.0.1:{grpc}"))
            .arg("--shipper.sync-interval=1s")
            .args(extra);
        if !extra
            .iter()
            .any(|a| a.starts_with("--prometheus.ready_timeout"))
        {
            cmd.arg("--prometheus.ready_timeout=20s");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            http,
            grpc,
            stderr_path,
            _work: work,
        }
    }

    /// Spawns and waits for `/-/ready`.
    fn start(prom_url: &str, tsdb: &Path, extra: &[&str]) -> Self {
        let mut s = Self::spawn(prom_url, tsdb, extra);
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{}/-/ready", s.http);
        loop {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("sidecar exited with {st}:\n{}", s.stderr());
            }
            if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "sidecar not ready:\n{}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (at most 30 s) for the exit; returns status and stderr.
    fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.wait_exit().0
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Block ULIDs with a `meta.json` in the bucket, sorted.
fn shipped(b: &Bucket) -> Vec<String> {
    rt().block_on(async {
        let mut out = Vec::new();
        for d in b.iter("").await.unwrap() {
            let id = d.trim_end_matches('/').to_string();
            if b.exists(&format!("{id}/meta.json")).await.unwrap() {
                out.push(id);
            }
        }
        out.sort();
        out
    })
}

fn wait_shipped(b: &Bucket, want: &[String], s: &SidecarProcess) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = shipped(b);
        if want.iter().all(|w| got.contains(w)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "blocks {want:?} not all shipped, bucket has {got:?}\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn shipper_state(tsdb: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tsdb.join("thanos.shipper.json")).unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    let mut ids: Vec<String> = v["uploaded"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn ships_prometheus_blocks_with_thanos_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let ids = promtool_blocks(&data, 1, 1_704_067_200);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let p = PrometheusProcess::start_with_config(&data, EXT_CONFIG, &NO_COMPACTION);
    let yaml = objstore_yaml(tmp.path(), "ships");
    let s = SidecarProcess::start(&p.url(), &data, &[&format!("--objstore.config={yaml}")]);
    let b = bucket(&yaml);
    wait_shipped(&b, &ids, &s);
    for id in &ids {
        check_meta(&b, &data, id, &[("cluster", "test"), ("replica", "r0")]);
    }
    check_dump(&b, &data, &ids);
    // Recorded as shipped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ids.iter().all(|i| shipper_state(&data).contains(i)) {
        assert!(Instant::now() < deadline, "{:?}", shipper_state(&data));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Metrics: the shipper counted its uploads.
    let body = ureq::get(&format!("http://127.0.0.1:{}/metrics", s.http))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(body.contains("thanos_shipper_uploads_total 3"), "{body}");
    assert!(body.contains("thanos_sidecar_prometheus_up 1"), "{body}");
}

fn name_matcher(re: &str) -> Matcher {
    Matcher::new(MatchType::Regex, "__name__", re).unwrap()
}

/// Series of a StoreAPI select as (labels, samples).
async fn select(
    c: &strata_storeapi::Client,
    req: &SelectRequest,
) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let frames: Vec<Frame> = c.select(req).await.unwrap().try_collect().await.unwrap();
    frames
        .into_iter()
        .filter_map(|f| match f {
            Frame::Series(s) => Some((
                s.labels.clone(),
                s.collect_samples()
                    .unwrap()
                    .iter()
                    .map(|x| (x.t, x.v))
                    .collect(),
            )),
            Frame::Warning(_) => None,
        })
        .collect()
}

#[test]
fn store_api_serves_recent_data_like_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let p = PrometheusProcess::start_with_config(&data, EXT_CONFIG, &NO_COMPACTION);
    // No bucket: serving only.
    let s = SidecarProcess::start(&p.url(), &data, &[]);
    // A few self-scrapes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = get_json(
            &p.url(),
            "/api/v1/query",
            &[("query", "count_over_time(up[1m])")],
        );
        if v["data"]["result"][0]["value"][1]
            .as_str()
            .is_some_and(|n| n.parse::<u32>().unwrap_or(0) >= 6)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no scrapes: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Two scrapes back, so every scrape at or before it is stored.
    let t_ms = now_ms - 2000;
    // Every raw sample of every series in the last 5 minutes, as Prometheus'
    // own API returns them (a range vector: 2.42 includes both ends).
    let (_, theirs) = get_json(
        &p.url(),
        "/api/v1/query",
        &[
            ("query", "{__name__=~\".+\"}[5m]"),
            ("time", &format!("{}.{:03}", t_ms / 1000, t_ms % 1000)),
        ],
    );
    type Samples = Vec<(i64, String)>;
    let mut want: BTreeMap<BTreeMap<String, String>, Samples> = BTreeMap::new();
    for r in theirs["data"]["result"].as_array().unwrap() {
        let l: BTreeMap<String, String> = serde_json::from_value(r["metric"].clone()).unwrap();
        let vs = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().to_string())
            })
            .collect();
        want.insert(l, vs);
    }
    assert!(want.len() >= 100, "{theirs}");
    assert!(want.values().map(Vec::len).sum::<usize>() >= 600);

    rt().block_on(async {
        let c = strata_storeapi::Client::connect(&format!("127.0.0.1:{}", s.grpc))
            .await
            .unwrap();
        let info = c.info();
        assert_eq!(
            info.label_sets,
            vec![Labels::from_pairs([("cluster", "test"), ("replica", "r0")])]
        );
        assert_eq!(info.max_time, i64::MAX);
        assert!(info.min_time <= t_ms, "{info:?}");
        let all = select(
            &c,
            &SelectRequest::new(t_ms - 300_000, t_ms, vec![name_matcher(".+")]),
        )
        .await;
        let mut have: BTreeMap<BTreeMap<String, String>, Samples> = BTreeMap::new();
        for (l, samples) in &all {
            // StoreAPI series carry the external labels; Prometheus' API does not.
            assert_eq!(l.get("cluster"), Some("test"), "{l:?}");
            assert_eq!(l.get("replica"), Some("r0"), "{l:?}");
            // Whole chunks may reach past the range: keep what was asked for.
            // Staleness markers are stored, but the API never shows them.
            let vs: Samples = samples
                .iter()
                .filter(|(t, v)| {
                    (t_ms - 300_000..=t_ms).contains(t) && !strata_model::is_stale_nan(*v)
                })
                .map(|(t, v)| (*t, strata_promql_fmt(*v)))
                .collect();
            if vs.is_empty() {
                continue;
            }
            let l: BTreeMap<String, String> = l
                .iter()
                .filter(|x| x.name != "cluster" && x.name != "replica")
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            have.insert(l, vs);
        }
        assert_eq!(have.len(), want.len());
        assert!(
            have == want,
            "samples served over the StoreAPI differ from Prometheus' API"
        );

        let m = vec![name_matcher(
            "up|prometheus_http_requests_total|prometheus_tsdb_head_series",
        )];
        let got = select(&c, &SelectRequest::new(t_ms - 300_000, t_ms, m.clone())).await;
        assert!(got.len() >= 3, "{}", got.len());

        // External label matchers: matching keeps all, failing selects nothing.
        let mut ok = m.clone();
        ok.push(Matcher::equal("cluster", "test"));
        assert_eq!(
            select(&c, &SelectRequest::new(t_ms - 300_000, t_ms, ok))
                .await
                .len(),
            got.len()
        );
        let mut miss = m.clone();
        miss.push(Matcher::equal("cluster", "other"));
        assert!(select(&c, &SelectRequest::new(t_ms - 300_000, t_ms, miss))
            .await
            .is_empty());
        // Absurd time ranges: min > max is empty; the whole i64 range works.
        assert!(select(&c, &SelectRequest::new(t_ms, t_ms - 1, m.clone()))
            .await
            .is_empty());
        assert!(
            !select(&c, &SelectRequest::new(i64::MIN, i64::MAX, m.clone()))
                .await
                .is_empty()
        );
        // Nonsense matchers: only external-label matchers (nothing left to ask
        // Prometheus) are refused; a matcher selecting "no label" answers
        // whatever Prometheus answers, without breaking the sidecar.
        let r = c
            .select(&SelectRequest::new(
                0,
                t_ms,
                vec![Matcher::equal("cluster", "test")],
            ))
            .await;
        let err = match r {
            Err(e) => e.to_string(),
            Ok(st) => st
                .try_collect::<Vec<_>>()
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        };
        assert!(err.contains("no matchers specified"), "{err}");
        let _ = c
            .select(&SelectRequest::new(
                0,
                t_ms,
                vec![Matcher::equal("nonexistent", "")],
            ))
            .await;
        // Label names and values.
        let names = c.label_names(&Default::default()).await.unwrap().value;
        assert!(
            names.contains(&"job".to_string()) && names.contains(&"cluster".to_string()),
            "{names:?}"
        );
        let vals = c
            .label_values("replica", &Default::default())
            .await
            .unwrap()
            .value;
        assert_eq!(vals, ["r0"]);
    });
    // The sidecar still answers after all that.
    assert!(ureq::get(&format!("http://127.0.0.1:{}/-/ready", s.http))
        .call()
        .is_ok());
}

/// A float as Prometheus' JSON writes it.
fn strata_promql_fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        let s = format!("{v}");
        s
    }
}

#[test]
fn refuses_prometheus_without_external_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let p = PrometheusProcess::start_with_config(&data, NO_EXT_CONFIG, &NO_COMPACTION);
    let mut s = SidecarProcess::spawn(&p.url(), &data, &[]);
    let (st, log) = s.wait_exit();
    assert!(!st.success(), "{log}");
    assert!(
        log.contains("no external labels configured on Prometheus server"),
        "{log}"
    );
}

#[test]
fn refuses_prometheus_that_compacts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let p = PrometheusProcess::start_with_config(
        &data,
        EXT_CONFIG,
        &["--storage.tsdb.max-block-duration=6h"],
    );
    let yaml = objstore_yaml(tmp.path(), "compacts");
    let mut s = SidecarProcess::spawn(&p.url(), &data, &[&format!("--objstore.config={yaml}")]);
    let (st, log) = s.wait_exit();
    assert!(!st.success(), "{log}");
    assert!(log.contains("Compaction needs to be disabled"), "{log}");
    // With --shipper.upload-compacted the check is skipped.
    let s = SidecarProcess::start(
        &p.url(),
        &data,
        &[
            &format!("--objstore.config={yaml}"),
            "--shipper.upload-compacted",
        ],
    );
    drop(s);
}

#[test]
fn retries_unreachable_prometheus_with_clear_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let port = strata_testkit::free_port();
    let mut s = SidecarProcess::spawn(
        &format!("http://127.0.0.1:{port}"),
        tmp.path(),
        &["--prometheus.ready_timeout=3s"],
    );
    // Healthy while waiting, not ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = format!("http://127.0.0.1:{}/-/healthy", s.http);
    while ureq::get(&health).call().is_err() {
        assert!(Instant::now() < deadline, "{}", s.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, log) = s.wait_exit();
    assert!(!st.success(), "{log}");
    assert!(log.contains("Is Prometheus running? Retrying"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(log.matches("Retrying").count() >= 2, "{log}");
}

#[test]
fn restart_neither_reuploads_nor_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let ids = promtool_blocks(&data, 2, 1_704_067_200);
    let p = PrometheusProcess::start_with_config(&data, EXT_CONFIG, &NO_COMPACTION);
    let yaml = objstore_yaml(tmp.path(), "restart");
    let flag = format!("--objstore.config={yaml}");
    let b = bucket(&yaml);
    let mut s = SidecarProcess::start(&p.url(), &data, &[&flag]);
    wait_shipped(&b, &ids, &s);
    assert!(s.terminate().success(), "{}", s.stderr());
    assert_eq!(shipper_state(&data), ids);
    let before: Vec<serde_json::Value> = ids.iter().map(|i| meta(&b, i)).collect();

    // Simulate crashes: one block uploaded but not recorded, one upload cut
    // before meta.json; plus a brand new block.
    let (recorded_only, cut) = (&ids[0], &ids[1]);
    let state = serde_json::json!({"version": 1, "uploaded": [ids[2].clone()]});
    std::fs::write(data.join("thanos.shipper.json"), state.to_string()).unwrap();
    rt().block_on(b.delete(&format!("{cut}/meta.json")))
        .unwrap();
    let new_ids = promtool_blocks(&data, 3, 1_704_067_200 + 86_400);

    let s = SidecarProcess::start(&p.url(), &data, &[&flag]);
    let mut all: Vec<String> = ids.iter().chain(&new_ids).cloned().collect();
    all.sort();
    wait_shipped(&b, &all, &s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while shipper_state(&data) != all {
        assert!(Instant::now() < deadline, "{:?}", shipper_state(&data));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not uploaded twice: identical meta.json (same upload_time).
    assert_eq!(meta(&b, recorded_only), before[0]);
    assert_eq!(meta(&b, &ids[2]), before[2]);
    // The cut upload was redone.
    assert_ne!(
        meta(&b, cut)["thanos"]["upload_time"],
        before[1]["thanos"]["upload_time"]
    );
    check_meta(&b, &data, cut, &[("cluster", "test"), ("replica", "r0")]);
    for id in &new_ids {
        check_meta(&b, &data, id, &[("cluster", "test"), ("replica", "r0")]);
    }
    check_dump(&b, &data, &all);
    let metrics = ureq::get(&format!("http://127.0.0.1:{}/metrics", s.http))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let want = format!("thanos_shipper_uploads_total {}", new_ids.len() + 1);
    assert!(metrics.contains(&want), "{want}\n{metrics}");
}

#[test]
fn ships_strata_server_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("strata");
    let ids = promtool_blocks(&data, 4, 1_704_067_200);
    let config = "global:\n  scrape_interval: 1h\n  external_labels:\n    cluster: strata\nscrape_configs: []\n";
    let srv = StrataServer::start(
        &data,
        config,
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
            "--storage.tsdb.retention.time=100y",
        ],
    );
    let yaml = objstore_yaml(tmp.path(), "server");
    let s = SidecarProcess::start(&srv.url(), &data, &[&format!("--objstore.config={yaml}")]);
    let b = bucket(&yaml);
    wait_shipped(&b, &ids, &s);
    for id in &ids {
        check_meta(&b, &data, id, &[("cluster", "strata")]);
    }
    check_dump(&b, &data, &ids);
    // Its data over the StoreAPI, with the external label.
    rt().block_on(async {
        let c = strata_storeapi::Client::connect(&format!("127.0.0.1:{}", s.grpc))
            .await
            .unwrap();
        let got = select(
            &c,
            &SelectRequest::new(i64::MIN, i64::MAX, vec![name_matcher("up")]),
        )
        .await;
        assert!(!got.is_empty());
        assert!(got
            .iter()
            .all(|(l, s)| l.get("cluster") == Some("strata") && !s.is_empty()));
    });
}
