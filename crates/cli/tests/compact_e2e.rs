//! End-to-end tests of `strata compact`:
//! - two real Prometheus 2.42 replicas ship 50h of backfilled history with
//!   `strata sidecar` to a real S3 server (Garage); `strata compact`, through
//!   a proxy failing 30% of requests, deduplicates the replicas, compacts
//!   2h → 8h → 2d and downsamples the 2d block to 5m; `promtool tsdb dump` of
//!   the compacted raw blocks equals the input, and the store gateway plus the
//!   querier answer like a Prometheus holding the raw data;
//! - `strata compact` killed with SIGKILL at random moments, 20 times, during a
//!   multi-group run, then a clean run: every sample once, no overlaps, no
//!   partial uploads left.

#![allow(clippy::unwrap_used)]

mod api_util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;
use strata_block::{download_block, list_blocks, upload_block, Meta};
use strata_objstore::{Bucket, BucketConfig};
use strata_testkit::faultproxy::{FaultKind, FaultProxy, Faults};
use strata_testkit::openmetrics::{generate, Options};
use strata_testkit::{free_port, GarageProcess, PrometheusProcess};

use api_util::procs::Proc;
use api_util::shipped::rt;
use api_util::{get_json, strata};

const H: i64 = 3600;
/// 2023-12-31T00:00:00Z: a multiple of 2 days, so 2d ranges start here.
const T0: i64 = 1_703_980_800;

fn bucket_of(yaml: &str) -> Bucket {
    Bucket::from_config(
        &BucketConfig::parse(yaml).unwrap(),
        &mut prometheus_client::registry::Registry::default(),
    )
    .unwrap()
}

/// Blocks with meta.json and no deletion mark.
fn live(b: &Bucket) -> Vec<Meta> {
    rt().block_on(async {
        let mut out = Vec::new();
        for id in list_blocks(b).await.unwrap().complete {
            let marked = b.exists(&format!("{id}/deletion-mark.json")).await.unwrap();
            if !marked {
                let raw = b.get(&format!("{id}/meta.json")).await.unwrap();
                out.push(Meta::from_json(&raw).unwrap());
            }
        }
        out.sort_by_key(|m| {
            (
                m.thanos.labels.clone(),
                m.thanos.downsample.resolution,
                m.block.min_time,
            )
        });
        out
    })
}

/// `strata compact` once (no `--wait`); its output.
fn compact_once(objstore: &str, data: &Path, extra: &[&str]) -> Output {
    Command::new(strata())
        .arg("compact")
        .arg(format!("--objstore.config={objstore}"))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--http-address=127.0.0.1:{}", free_port()))
        .arg("--consistency-delay=0s")
        .arg("--delete-delay=0s")
        .args(extra)
        .output()
        .unwrap()
}

/// Downloads the raw blocks among `metas` into `dir`.
fn download_raw(b: &Bucket, metas: &[Meta], dir: &Path) {
    rt().block_on(async {
        for m in metas.iter().filter(|m| m.thanos.downsample.resolution == 0) {
            let id = m.block.ulid;
            download_block(b, id, &dir.join(id.to_string()))
                .await
                .unwrap();
        }
    })
}

fn backfill_promtool(dir: &Path, hours: i64, series: usize, seed: u64) -> PathBuf {
    let input = dir.join(format!("in-{seed}.om.txt"));
    std::fs::write(
        &input,
        generate(&Options {
            start_secs: T0,
            duration_secs: hours * H,
            step_ms: 60_000,
            series,
            seed,
        }),
    )
    .unwrap();
    let blocks = dir.join(format!("blocks-{seed}"));
    strata_testkit::promtool_create_blocks(&input, &blocks, None);
    blocks
}

/// Copies every block of `from` into `to` under a fresh ULID (as another
/// replica would have written it); returns how many.
fn copy_blocks(from: &Path, to: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(from).unwrap() {
        let id = ulid::Ulid::new();
        let dst = to.join(id.to_string());
        strata_testkit::copy_dir(&e.unwrap().path(), &dst);
        let mut meta = strata_tsdb::meta::BlockMeta::read(&dst).unwrap();
        meta.ulid = id;
        meta.compaction.sources = vec![id];
        meta.write(&dst).unwrap();
        n += 1;
    }
    n
}

fn flat(v: &Value) -> BTreeMap<String, Vec<(f64, String)>> {
    assert_eq!(v["status"], "success", "{v}");
    let mut out = BTreeMap::new();
    for r in v["data"]["result"].as_array().unwrap() {
        let mut m: BTreeMap<String, String> = serde_json::from_value(r["metric"].clone()).unwrap();
        m.remove("cluster");
        m.remove("prometheus_replica");
        let pts = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string()))
            .collect();
        out.insert(format!("{m:?}"), pts);
    }
    out
}

#[test]
fn prometheus_blocks_are_deduplicated_compacted_and_downsampled_on_s3_through_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let garage = GarageProcess::start();
    let direct = garage.objstore_yaml();
    let proxy = FaultProxy::start(&garage.address());
    let faulty = garage.objstore_yaml_for(proxy.address(), garage.bucket());

    // 52h of history in 2h blocks, the same in both replicas and the oracle.
    // A backfilled block ends at its last sample, so no range is ever "full":
    // as in Thanos, a range is compacted once it ends before the second-newest
    // block starts (here: 48h-50h).
    let blocks = backfill_promtool(tmp.path(), 52, 6, 5);
    let oracle = tmp.path().join("oracle");
    let total = copy_blocks(&blocks, &oracle);
    assert_eq!(total, 26);
    let mut ships = Vec::new();
    for r in ["r0", "r1"] {
        let data = tmp.path().join(r);
        copy_blocks(&blocks, &data);
        let config = format!(
            "global:\n  scrape_interval: 1h\n  external_labels:\n    cluster: e2e\n    prometheus_replica: {r}\nscrape_configs: []\n"
        );
        let prom = PrometheusProcess::start_with_config(
            &data,
            &config,
            &[
                "--storage.tsdb.min-block-duration=2h",
                "--storage.tsdb.max-block-duration=2h",
                "--storage.tsdb.retention.time=100y",
            ],
        );
        let (http, grpc) = (free_port(), free_port());
        let sc = Proc::spawn(
            vec![
                "sidecar".into(),
                format!("--prometheus.url={}", prom.url()),
                format!("--tsdb.path={}", data.display()),
                format!("--http-address=127.0.0.1:{http}"),
                format!("--grpc-address=127.0.0.1:{grpc}"),
                format!("--objstore.config={direct}"),
                "--shipper.sync-interval=1s".into(),
            ],
            format!("http://127.0.0.1:{http}"),
        );
        ships.push((prom, sc));
    }
    let b = bucket_of(&direct);
    let deadline = Instant::now() + Duration::from_secs(90);
    while live(&b).len() < 2 * total {
        assert!(
            Instant::now() < deadline,
            "shipped {} of {}",
            live(&b).len(),
            2 * total
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(ships);

    // The compactor through 20% injected failures: a pass that hits one ends
    // with an error, and the next picks up where it stopped.
    proxy.set_faults(Faults::Random(0.2, FaultKind::Mixed));
    let work = tmp.path().join("compact");
    let mut failed = 0;
    let mut clean = false;
    for _ in 0..40 {
        let out = compact_once(
            &faulty,
            &work,
            &["--deduplication.replica-label=prometheus_replica"],
        );
        if out.status.success() {
            clean = true;
            break;
        }
        failed += 1;
    }
    proxy.set_faults(Faults::None);
    assert!(clean, "no clean pass in 40 tries");
    let out = compact_once(
        &faulty,
        &work,
        &["--deduplication.replica-label=prometheus_replica"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{failed} passes failed on injected faults ({} injected)",
        proxy.injected()
    );

    // 2d [T0, T0+48h) and the two newest 2h blocks, replicas merged, plus the
    // 5m block of the 2d one; every source deleted (delete-delay 0).
    let metas = live(&b);
    let shape: Vec<(i64, i64)> = metas
        .iter()
        .map(|m| (m.thanos.downsample.resolution, m.block.min_time / 1000 - T0))
        .collect();
    assert_eq!(
        shape,
        vec![(0, 0), (0, 48 * H), (0, 50 * H), (300_000, 0)],
        "{metas:#?}"
    );
    let two_days = &metas[0].block;
    assert!(two_days.max_time / 1000 - T0 > 47 * H && two_days.max_time / 1000 - T0 <= 48 * H);
    assert_eq!(
        (metas[3].block.min_time, metas[3].block.max_time),
        (two_days.min_time, two_days.max_time)
    );
    for m in &metas {
        assert_eq!(
            m.thanos.labels,
            BTreeMap::from([("cluster".to_string(), "e2e".to_string())])
        );
        assert_eq!(m.thanos.source, "compactor");
    }
    assert_eq!(metas[0].block.compaction.sources.len(), 48);
    let all = rt().block_on(list_blocks(&b)).unwrap();
    assert_eq!(all.complete.len(), 4, "sources left behind: {all:?}");
    assert!(all.partial.is_empty(), "{all:?}");

    // promtool reads the compacted raw blocks, and they hold the input.
    let got = tmp.path().join("got");
    download_raw(&b, &metas, &got);
    assert_eq!(
        strata_testkit::promtool_dump(&got),
        strata_testkit::promtool_dump(&oracle)
    );

    // The store gateway and the querier answer like Prometheus over the input.
    let (http, grpc) = (free_port(), free_port());
    let _sg = Proc::spawn(
        vec![
            "store".into(),
            format!("--data-dir={}", tmp.path().join("store").display()),
            format!("--objstore.config={direct}"),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
        ],
        format!("http://127.0.0.1:{http}"),
    );
    let qhttp = free_port();
    let q = Proc::spawn(
        vec![
            "query".into(),
            format!("--http-address=127.0.0.1:{qhttp}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
            format!("--endpoint=127.0.0.1:{grpc}"),
            "--endpoint.refresh-interval=1s".into(),
        ],
        format!("http://127.0.0.1:{qhttp}"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = get_json(&q.http, "/api/v1/stores", &[]);
        if v["data"]["store"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let prom = PrometheusProcess::start(&oracle, &["--storage.tsdb.retention.time=100y"]);
    let (s, e) = ((T0 + 7) as f64, (T0 + 52 * H) as f64);
    for promql in [
        "requests_total",
        "sum by (job) (requests_total)",
        "max_over_time(requests_total[10m])",
        "count_over_time(cpu_seconds_total[10m])",
    ] {
        let theirs = flat(&prom.query_range(promql, s, e, 900.0));
        let (code, mine) = get_json(
            &q.http,
            "/api/v1/query_range",
            &[
                ("query", promql),
                ("start", &s.to_string()),
                ("end", &e.to_string()),
                ("step", "900"),
            ],
        );
        assert_eq!(code, 200, "{mine}");
        assert!(
            mine["warnings"].as_array().is_none_or(|w| w.is_empty()),
            "{promql}: {}",
            mine["warnings"]
        );
        assert!(!theirs.is_empty(), "{promql}");
        assert_eq!(theirs, flat(&mine), "{promql}");
    }
    drop(q);
}

/// Blocks of 3 clusters × 2 replicas × 16 h in a FILESYSTEM bucket.
fn multi_group_bucket(dir: &Path) -> (String, BTreeSet<String>) {
    let bdir = dir.join("bucket");
    std::fs::create_dir_all(&bdir).unwrap();
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bdir.display()
    );
    let b = bucket_of(&yaml);
    let mut expected = BTreeSet::new();
    for (ci, cluster) in ["c1", "c2", "c3"].iter().enumerate() {
        let input = dir.join(format!("{cluster}.om.txt"));
        let text = generate(&Options {
            start_secs: T0,
            duration_secs: 16 * H,
            step_ms: 30_000,
            series: 8,
            seed: 40 + ci as u64,
        });
        std::fs::write(&input, &text).unwrap();
        let out = dir.join(format!("blocks-{cluster}"));
        let st = Command::new(strata())
            .args(["tools", "tsdb", "create-blocks-from", "openmetrics", "-q"])
            .arg(&input)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        for replica in ["a", "b"] {
            let staging = dir.join(format!("staging-{cluster}-{replica}"));
            copy_blocks(&out, &staging);
            for e in std::fs::read_dir(&staging).unwrap() {
                let ext = BTreeMap::from([
                    ("cluster".to_string(), cluster.to_string()),
                    ("replica".to_string(), replica.to_string()),
                ]);
                rt().block_on(upload_block(&b, &e.unwrap().path(), &ext, "sidecar"))
                    .unwrap();
            }
        }
        for line in api_util::strata_dump(&out).lines() {
            expected.insert(format!("{cluster} {line}"));
        }
    }
    (yaml, expected)
}

#[test]
fn compaction_killed_at_random_moments_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (yaml, expected) = multi_group_bucket(tmp.path());
    let b = bucket_of(&yaml);
    let work = tmp.path().join("compact");
    let args = |c: &mut Command| {
        c.arg("compact")
            .arg(format!("--objstore.config={yaml}"))
            .arg(format!("--data-dir={}", work.display()))
            .arg(format!("--http-address=127.0.0.1:{}", free_port()))
            .args([
                "--consistency-delay=0s",
                "--delete-delay=0s",
                "--deduplication.replica-label=replica",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let mut finished_early = 0;
    for _ in 0..20 {
        let mut c = Command::new(strata());
        args(&mut c);
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..350)));
        if child.try_wait().unwrap().is_some() {
            finished_early += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // A clean run to the end.
    let mut c = Command::new(strata());
    args(&mut c);
    let st = c.stderr(Stdio::piped()).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    eprintln!("{finished_early} of 20 killed runs had already finished");

    let all = rt().block_on(list_blocks(&b)).unwrap();
    assert!(
        all.partial.is_empty(),
        "partial uploads left: {:?}",
        all.partial
    );
    let metas = live(&b);
    assert_eq!(metas.len(), all.complete.len(), "marked blocks left behind");
    // Per group: no overlaps.
    let mut by_group: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for m in &metas {
        assert_eq!(m.thanos.downsample.resolution, 0);
        by_group
            .entry(format!("{:?}", m.thanos.labels))
            .or_default()
            .push((m.block.min_time, m.block.max_time));
    }
    assert_eq!(by_group.len(), 3, "{by_group:?}");
    for (g, ranges) in &by_group {
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "{g}: overlapping blocks {ranges:?}");
        }
    }
    // Every sample exactly once: the dump of each group equals its input.
    for m in &metas {
        let cluster = &m.thanos.labels["cluster"];
        let d = tmp
            .path()
            .join("got")
            .join(cluster)
            .join(m.block.ulid.to_string());
        rt().block_on(download_block(&b, m.block.ulid, &d)).unwrap();
    }
    let mut got = BTreeSet::new();
    let mut lines = 0;
    for cluster in ["c1", "c2", "c3"] {
        let dump = api_util::strata_dump(&tmp.path().join("got").join(cluster));
        for line in dump.lines() {
            lines += 1;
            got.insert(format!("{cluster} {line}"));
        }
    }
    assert_eq!(lines, got.len(), "duplicated samples");
    let missing: Vec<_> = expected.difference(&got).take(3).collect();
    let extra: Vec<_> = got.difference(&expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} samples expected, {} found; missing e.g. {missing:?}, unexpected e.g. {extra:?}",
        expected.len(),
        got.len()
    );
}
