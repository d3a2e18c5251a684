//! The sidecar and the store gateway on a real S3 server (Garage, started by
//! the test): `strata sidecar` ships Prometheus 2.42's blocks into the S3
//! bucket (meta.json and sizes checked, the bucket's copy dumps like promtool
//! dumps the local blocks), then `strata store` serves them from there, equal to the blocks read
//! locally plus the external labels. Needs no environment: CI covers S3 here.
//! (`sidecar.rs` runs its whole suite against any objstore YAML given in
//! `STRATA_TEST_OBJSTORE`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

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
use strata_testkit::{GarageProcess, PrometheusProcess};

use api_util::shipped::{check_dump, check_meta};
use api_util::strata;

const EXT_CONFIG: &str = "global:\n  scrape_interval: 1h\n  external_labels:\n    cluster: s3\n    replica: r0\nscrape_configs: []\n";

/// A `strata` subcommand on free loopback ports, killed on drop.
struct Proc {
    child: Child,
    http: u16,
    grpc: u16,
    log: PathBuf,
    _work: tempfile::TempDir,
}

impl Proc {
    fn start(args: &[String]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("stderr.log");
        let (http, grpc) = (strata_testkit::free_port(), strata_testkit::free_port());
        let child = Command::new(strata())
            .args(args)
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!("--grpc-address=127.0.0.1:{grpc}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut p = Self {
            child,
            http,
            grpc,
            log,
            _work: work,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{http}/-/ready");
        loop {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("{args:?} exited with {st}:\n{}", p.stderr());
            }
            if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
                return p;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", p.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn promtool_blocks(data_dir: &Path) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.om.txt");
    std::fs::write(
        &input,
        generate(&Options {
            start_secs: 1_704_067_200,
            duration_secs: 5 * 3600,
            step_ms: 60_000,
            series: 5,
            seed: 4,
        }),
    )
    .unwrap();
    strata_testkit::promtool_create_blocks(&input, data_dir, None);
    let mut ids: Vec<String> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 26)
        .collect();
    ids.sort();
    ids
}

async fn series(q: &dyn Queryable, req: &SelectRequest) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let frames: Vec<Frame> = q.select(req).await.unwrap().try_collect().await.unwrap();
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Series(s) => (
                s.labels.clone(),
                s.collect_samples()
                    .unwrap()
                    .iter()
                    .map(|x| (x.t, x.v.to_bits()))
                    .collect(),
            ),
            Frame::Warning(w) => panic!("warning: {w}"),
        })
        .collect()
}

#[test]
fn sidecar_ships_to_s3_and_store_gateway_serves_from_it() {
    let garage = GarageProcess::start();
    let yaml = garage.objstore_yaml();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    let ids = promtool_blocks(&data);
    assert_eq!(ids.len(), 3, "{ids:?}");
    // A pristine copy: the local truth, untouched by Prometheus.
    let local = tmp.path().join("local");
    strata_testkit::copy_dir(&data, &local);
    let prom = PrometheusProcess::start_with_config(
        &data,
        EXT_CONFIG,
        &[
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
        ],
    );
    let sidecar = Proc::start(&[
        "sidecar".into(),
        format!("--prometheus.url={}", prom.url()),
        format!("--tsdb.path={}", data.display()),
        format!("--objstore.config={yaml}"),
        "--shipper.sync-interval=1s".into(),
        "--prometheus.ready_timeout=20s".into(),
    ]);
    let rt = api_util::shipped::rt();
    let b = Bucket::from_config(
        &BucketConfig::parse(&yaml).unwrap(),
        &mut Registry::default(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = rt.block_on(strata_block::list_blocks(&b)).unwrap();
        let got: Vec<String> = list.complete.iter().map(|u| u.to_string()).collect();
        if ids.iter().all(|i| got.contains(i)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shipped {got:?} of {ids:?}\n{}",
            sidecar.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // meta.json's Thanos section and every file's size, then the bucket's
    // copy dumped by `strata tools tsdb dump` equal to promtool's dump of the
    // local blocks.
    for id in &ids {
        check_meta(&b, &local, id, &[("cluster", "s3"), ("replica", "r0")]);
    }
    check_dump(&b, &local, &ids);

    let store_dir = tmp.path().join("store");
    let store = Proc::start(&[
        "store".into(),
        format!("--data-dir={}", store_dir.display()),
        format!("--objstore.config={yaml}"),
        "--sync-block-duration=1s".into(),
    ]);
    let db = strata_tsdb::Db::open(&local).unwrap();
    rt.block_on(async {
        let c = strata_storeapi::Client::connect(&format!("127.0.0.1:{}", store.grpc))
            .await
            .unwrap();
        let req = SelectRequest::new(
            i64::MIN,
            i64::MAX,
            vec![Matcher::new(MatchType::Regex, "__name__", ".+").unwrap()],
        );
        let got = series(&c, &req).await;
        let want: Vec<_> = series(&db, &req)
            .await
            .into_iter()
            .map(|(l, v)| {
                let mut b = l.builder();
                b.set("cluster", "s3");
                b.set("replica", "r0");
                (b.build(), v)
            })
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "series served from S3 differ from the local blocks"
        );
    });
    let metrics = ureq::get(&format!("http://127.0.0.1:{}/metrics", store.http))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("thanos_objstore_bucket_operations_total{")
            && metrics.contains("bucket=\"strata-test\""),
        "{metrics}"
    );
}
