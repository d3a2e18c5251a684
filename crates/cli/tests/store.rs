//! End-to-end tests of `strata store` (the store gateway): blocks written by
//! Prometheus 2.42's promtool, uploaded with Thanos meta into a FILESYSTEM
//! bucket, served over the StoreAPI equal to the same blocks read locally with
//! the external labels added; blocks uploaded later appear after the next sync;
//! a corrupt block is a warning while the others keep serving; bad flags and
//! configs end the process with a clear error.

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
use strata_storage::{Frame, LabelRequest, Queryable, SelectRequest};
use strata_testkit::openmetrics::{generate, Options};

use api_util::strata;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn fs_yaml(dir: &Path) -> String {
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    )
}

fn bucket(yaml: &str) -> Bucket {
    Bucket::from_config(
        &BucketConfig::parse(yaml).unwrap(),
        &mut Registry::default(),
    )
    .unwrap()
}

/// Backfills `hours` of data from `start_secs` with promtool into `out`;
/// returns the block directories, sorted.
fn promtool_blocks(out: &Path, seed: u64, start_secs: i64, hours: i64) -> Vec<PathBuf> {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.om.txt");
    std::fs::write(
        &input,
        generate(&Options {
            start_secs,
            duration_secs: hours * 3600,
            step_ms: 60_000,
            series: 5,
            seed,
        }),
    )
    .unwrap();
    strata_testkit::promtool_create_blocks(&input, out, None);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    dirs.sort();
    dirs
}

fn upload(b: &Bucket, dir: &Path, labels: &[(&str, &str)]) -> String {
    rt().block_on(upload_async(b, dir, labels))
}

async fn upload_async(b: &Bucket, dir: &Path, labels: &[(&str, &str)]) -> String {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    strata_block::upload_block(b, dir, &labels, "test")
        .await
        .unwrap()
        .block
        .ulid
        .to_string()
}

/// A running `strata store`, killed on drop.
pub struct StoreProcess {
    child: Child,
    /// HTTP port.
    pub http: u16,
    /// gRPC port.
    pub grpc: u16,
    stderr_path: PathBuf,
    _work: tempfile::TempDir,
}

impl StoreProcess {
    /// Spawns `strata store` on free loopback ports with `objstore_yaml`.
    pub fn spawn(objstore_yaml: &str, extra: &[&str]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let stderr_path = work.path().join("stderr.log");
        let (http, grpc) = (strata_testkit::free_port(), strata_testkit::free_port());
        let child = Command::new(strata())
            .arg("store")
            .arg(format!("--data-dir={}", work.path().join("data").display()))
            .arg(format!("--objstore.config={objstore_yaml}"))
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!("--grpc-address=127.0.0.1:{grpc}"))
            .arg("--grpc-grace-period=1s")
            .arg("--http-grace-period=1s")
            .args(extra)
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

    /// Spawns and waits (at most 30 s) for `/-/ready`.
    pub fn start(objstore_yaml: &str, extra: &[&str]) -> Self {
        let mut s = Self::spawn(objstore_yaml, extra);
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{}/-/ready", s.http);
        loop {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("store exited with {st}:\n{}", s.stderr());
            }
            if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "store not ready:\n{}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (at most 30 s) for the exit; returns status and stderr.
    pub fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
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

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.wait_exit().0
    }

    /// `/metrics` text.
    pub fn metrics(&self) -> String {
        ureq::get(&format!("http://127.0.0.1:{}/metrics", self.http))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// A StoreAPI client.
    pub async fn client(&self) -> strata_storeapi::Client {
        strata_storeapi::Client::connect(&format!("127.0.0.1:{}", self.grpc))
            .await
            .unwrap()
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Series = Vec<(Labels, Vec<(i64, u64)>)>;

/// Series (samples with value bits, so NaN compares) and warnings of a select.
async fn select(q: &dyn Queryable, req: &SelectRequest) -> (Series, Vec<String>) {
    let frames: Vec<Frame> = q.select(req).await.unwrap().try_collect().await.unwrap();
    let mut series = Vec::new();
    let mut warnings = Vec::new();
    for f in frames {
        match f {
            Frame::Series(s) => {
                let samples = s.collect_samples().unwrap();
                let samples: Vec<_> = samples
                    .iter()
                    .filter(|x| x.t >= req.min_time && x.t <= req.max_time)
                    .map(|x| (x.t, x.v.to_bits()))
                    .collect();
                if !samples.is_empty() {
                    series.push((s.labels.clone(), samples));
                }
            }
            Frame::Warning(w) => warnings.push(w),
        }
    }
    (series, warnings)
}

fn m(t: MatchType, n: &str, v: &str) -> Matcher {
    Matcher::new(t, n, v).unwrap()
}

fn with_label(s: Series, name: &str, value: &str) -> Series {
    s.into_iter()
        .map(|(l, v)| {
            let mut b = l.builder();
            b.set(name, value);
            (b.build(), v)
        })
        .collect()
}

const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

#[test]
fn serves_promtool_blocks_like_the_local_tsdb() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let dirs = promtool_blocks(&local, 1, START, 5);
    assert_eq!(dirs.len(), 3, "5h from midnight make three 2h blocks");
    let yaml = fs_yaml(&tmp.path().join("bucket"));
    let b = bucket(&yaml);
    for d in &dirs {
        upload(&b, d, &[("cluster", "eu"), ("replica", "a")]);
    }
    let mut store = StoreProcess::start(&yaml, &["--sync-block-duration=1s"]);
    let db = strata_tsdb::Db::open(&local).unwrap();
    rt().block_on(async {
        let c = store.client().await;
        let info = c.endpoint_info();
        assert_eq!(
            info.source.label_sets,
            vec![Labels::from_pairs([("cluster", "eu"), ("replica", "a")])],
            "{info:?}"
        );
        let cases = [
            (
                i64::MIN,
                i64::MAX,
                vec![m(MatchType::Regex, "__name__", ".+")],
            ),
            (
                START * 1000 + 3_600_000,
                START * 1000 + 9_000_000,
                vec![m(
                    MatchType::Regex,
                    "__name__",
                    "requests_total|cpu_seconds_total",
                )],
            ),
            (
                i64::MIN,
                i64::MAX,
                vec![
                    m(MatchType::Equal, "cluster", "eu"),
                    m(MatchType::Regex, "instance", "host-[ab].*"),
                ],
            ),
        ];
        for (mint, maxt, ms) in cases {
            let (got, warnings) = select(&c, &SelectRequest::new(mint, maxt, ms.clone())).await;
            assert!(warnings.is_empty(), "{warnings:?}");
            let local_ms: Vec<_> = ms.iter().filter(|x| x.name != "cluster").cloned().collect();
            let (want, _) = select(&db, &SelectRequest::new(mint, maxt, local_ms)).await;
            let want = with_label(with_label(want, "cluster", "eu"), "replica", "a");
            assert!(!want.is_empty());
            assert_eq!(got.len(), want.len(), "{ms:?}");
            assert!(got == want, "{ms:?}: series differ");
        }
        // Matchers on external labels that do not match prune everything.
        let (none, _) = select(
            &c,
            &SelectRequest::new(
                i64::MIN,
                i64::MAX,
                vec![m(MatchType::Equal, "cluster", "us")],
            ),
        )
        .await;
        assert!(none.is_empty());

        let req = LabelRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![],
            limit: 0,
        };
        let names = c.label_names(&req).await.unwrap().value;
        let mut want = db.label_names(&req).await.unwrap().value;
        want.extend(["cluster".to_string(), "replica".to_string()]);
        want.sort();
        want.dedup();
        assert_eq!(names, want);
        let values = c.label_values("instance", &req).await.unwrap().value;
        let want = db.label_values("instance", &req).await.unwrap().value;
        assert!(!want.is_empty());
        assert_eq!(values, want);
        assert_eq!(
            c.label_values("cluster", &req).await.unwrap().value,
            vec!["eu".to_string()]
        );
    });
    let metrics = store.metrics();
    assert!(
        metrics.contains("thanos_bucket_store_blocks_loaded 3"),
        "{metrics}"
    );
    assert!(metrics.contains("thanos_objstore_bucket_operations_total{"));
    let status = store.terminate();
    assert!(status.success(), "{status}\n{}", store.stderr());
}

#[test]
fn later_uploads_appear_and_corrupt_blocks_warn() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = fs_yaml(&tmp.path().join("bucket"));
    let b = bucket(&yaml);
    let first = promtool_blocks(&tmp.path().join("a"), 1, START, 1);
    let second = promtool_blocks(&tmp.path().join("b"), 2, START + 86_400, 1);
    let third = promtool_blocks(&tmp.path().join("c"), 3, START + 2 * 86_400, 1);
    let id1 = upload(&b, &first[0], &[("cluster", "eu")]);
    let store = StoreProcess::start(&yaml, &["--sync-block-duration=1s"]);
    let all = SelectRequest::new(
        i64::MIN,
        i64::MAX,
        vec![m(MatchType::Equal, "__name__", "up")],
    );
    rt().block_on(async {
        let c = store.client().await;
        let (s, _) = select(&c, &all).await;
        let before = s.iter().map(|(_, v)| v.len()).sum::<usize>();
        assert!(before > 0);

        // A block uploaded later is served after the next sync.
        let id2 = upload_async(&b, &second[0], &[("cluster", "eu")]).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let both = loop {
            let (s, _) = select(&c, &all).await;
            let n = s.iter().map(|(_, v)| v.len()).sum::<usize>();
            if n > before {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "block {id2} not served after 20s ({n} samples)\n{}",
                store.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        // A block with a corrupt index: a warning naming it, the others serve.
        let id3 = upload_async(&b, &third[0], &[("cluster", "eu")]).await;
        std::fs::write(
            tmp.path().join("bucket").join(&id3).join("index"),
            b"garbage",
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !store.stderr().contains(&id3) {
            assert!(
                Instant::now() < deadline,
                "no warning about {id3}:\n{}",
                store.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (s, warnings) = select(&c, &all).await;
        let n = s.iter().map(|(_, v)| v.len()).sum::<usize>();
        assert_eq!(n, both, "blocks {id1} and {id2} keep serving");
        assert!(
            warnings.iter().any(|w| w.contains(&id3)),
            "warnings {warnings:?} do not name {id3}"
        );
    });
    let log = store.stderr();
    assert!(log.contains("could not be loaded"), "{log}");
}

#[test]
fn bad_flags_and_configs_exit_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = fs_yaml(&tmp.path().join("bucket"));
    let cases: [(String, Vec<String>, &str); 5] = [
        ("type: NOPE\nconfig: {}\n".into(), vec![], "NOPE"),
        (
            yaml.clone(),
            vec!["--selector.relabel-config=- action: bogus\n".into()],
            "--selector.relabel-config",
        ),
        (
            yaml.clone(),
            vec!["--index-cache.config=type: REDISX\n".into()],
            "--index-cache.config",
        ),
        (
            yaml.clone(),
            vec![
                "--min-time=2030-01-01T00:00:00Z".into(),
                "--max-time=2020-01-01T00:00:00Z".into(),
            ],
            "--min-time",
        ),
        (yaml.clone(), vec!["--max-time=tomorrow".into()], "tomorrow"),
    ];
    for (objstore, extra, want) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut s = StoreProcess::spawn(&objstore, &extra);
        let (status, log) = s.wait_exit();
        assert!(!status.success(), "{extra:?} accepted");
        assert!(log.contains(want), "{extra:?}: {want:?} not in\n{log}");
    }
    // No objstore config at all.
    let out = Command::new(strata())
        .args([
            "store",
            "--http-address=127.0.0.1:0",
            "--grpc-address=127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--objstore.config"));
    // An S3 bucket nobody listens for: the initial sync fails, naming it.
    let port = strata_testkit::free_port();
    let unreachable = format!(
        "type: S3\nconfig:\n  bucket: nowhere\n  endpoint: 127.0.0.1:{port}\n  insecure: true\n  access_key: a\n  secret_key: b\n  region: x\n  bucket_lookup_type: path\n  max_retries: 0\n"
    );
    let begin = Instant::now();
    let mut s = StoreProcess::spawn(&unreachable, &[]);
    let (status, log) = s.wait_exit();
    assert!(!status.success());
    assert!(
        log.contains("initial sync") && log.contains("nowhere"),
        "{log}"
    );
    assert!(begin.elapsed() < Duration::from_secs(25));
}
