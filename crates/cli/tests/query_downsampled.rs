//! PromQL over downsampled data, end to end with real processes on loopback.
//!
//! A gauge and a counter (with resets) are scraped every minute (at `:07`)
//! for 11 days. The first 10.5 days are one raw block; the real `strata
//! compact` downsamples it to 5m and 1h in a FILESYSTEM bucket. The last half
//! day is uploaded afterwards as 2h raw blocks, as a sidecar would ship them
//! before the compactor reaches them. `strata store` serves the bucket, `strata
//! query` sits on top, and `strata server` over the same raw blocks is the
//! reference. Asserted through the HTTP API:
//!
//! - `max_source_resolution=0s` equals `strata server` on the raw blocks;
//! - at 5m and 1h, `max_over_time`/`min_over_time`/`sum_over_time` over hour
//!   windows equal raw; `count_over_time` counts aggregates (Thanos reads the
//!   count aggregate as samples: 12 per hour at 5m); the plain selector is the
//!   window average; `rate`/`increase` stay within [`RATE_TOLERANCE`] of raw,
//!   including the hours with a counter reset;
//! - the dynamic lookback delta leaves no gaps in 1h data (a request's
//!   `lookback_delta=5m` brings them back);
//! - `auto` reads 5m data at a 1h step and 1h data at a 6h step;
//! - where only raw blocks exist, `max_source_resolution=1h` answers from them
//!   with no gap;
//! - without `max_source_resolution` (and without `--query.auto-downsampling`)
//!   the querier reads raw data; with the flag, range queries use step/5.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use serde_json::Value;
use strata_objstore::{Bucket, BucketConfig};
use strata_testkit::free_port;

use api_util::shipped::rt;
use api_util::{get_json, strata, StrataServer, CONFIG};

/// Start of the data: a multiple of 486h, the window of
/// `create-blocks-from --max-block-duration=486h`, so 10.5 days make one block.
const T0: i64 = 1_704_110_400;
const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// Scrapes in the block the compactor downsamples (10.5 days).
const OLD_SCRAPES: i64 = 15_120;
/// All scrapes (11 days).
const ALL_SCRAPES: i64 = 15_840;
/// Where raw-only data starts.
const RAW_ONLY_FROM: i64 = T0 + OLD_SCRAPES * MIN;
/// Counter resets: in the 5m/1h data (day 3, day 7) and in the raw-only data.
const RESETS: [i64; 3] = [3 * 1440 + 17, 7 * 1440 + 301, OLD_SCRAPES + 100];
/// Largest relative difference allowed between a rate over downsampled data
/// and over raw data (measured: 1.7% at most).
const RATE_TOLERANCE: f64 = 0.02;
/// The same for a window spanning the seam between downsampled and raw-only
/// data (measured: 4.1% for a 1d window over 1h data).
const SEAM_TOLERANCE: f64 = 0.05;

/// Scrape `i`'s timestamp, s.
fn ts(i: i64) -> i64 {
    T0 + i * MIN + 7
}

/// The gauge: multiples of 1/4, so every sum of them is exact.
fn gauge(i: i64) -> f64 {
    ((i * 7919) % 1000) as f64 / 4.0
}

/// The counter's values, resets included.
fn counter() -> Vec<f64> {
    let mut v = Vec::with_capacity(ALL_SCRAPES as usize);
    let mut c = 0.0;
    for i in 0..ALL_SCRAPES {
        c = if RESETS.contains(&i) {
            (i % 3) as f64
        } else {
            c + 2.0 + (i % 3) as f64
        };
        v.push(c);
    }
    v
}

/// OpenMetrics text of scrapes `[from, to)`.
fn openmetrics(from: i64, to: i64) -> String {
    let c = counter();
    let mut s = String::from("# TYPE ds_gauge gauge\n");
    for i in from..to {
        s += &format!("ds_gauge{{series=\"g\"}} {} {}\n", gauge(i), ts(i));
    }
    s += "# TYPE ds_counter counter\n";
    for i in from..to {
        s += &format!(
            "ds_counter_total{{series=\"c\"}} {} {}\n",
            c[i as usize],
            ts(i)
        );
    }
    s + "# EOF\n"
}

/// Backfills scrapes `[from, to)` into `out` with blocks of at most
/// `max_block`; returns the block directories.
fn backfill(work: &Path, out: &Path, from: i64, to: i64, max_block: &str) -> Vec<PathBuf> {
    let input = work.join(format!("in-{from}.om.txt"));
    std::fs::write(&input, openmetrics(from, to)).unwrap();
    let st = Command::new(strata())
        .args(["tools", "tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(format!("--max-block-duration={max_block}"))
        .arg(&input)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Uploads `dirs` with external label `cluster="a"`.
fn upload(b: &Bucket, dirs: &[PathBuf]) {
    let labels = BTreeMap::from([("cluster".to_string(), "a".to_string())]);
    for d in dirs {
        rt().block_on(strata_block::upload_block(b, d, &labels, "sidecar"))
            .unwrap();
    }
}

/// Resolutions of the bucket's blocks, with their count.
fn resolutions(bucket_dir: &Path) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(bucket_dir).unwrap() {
        let meta = e.unwrap().path().join("meta.json");
        let Ok(raw) = std::fs::read(&meta) else {
            continue;
        };
        let m: Value = serde_json::from_slice(&raw).unwrap();
        let r = m["thanos"]["downsample"]["resolution"].as_i64().unwrap();
        *out.entry(r).or_default() += 1;
    }
    out
}

/// A `strata` subcommand, killed on drop.
struct Proc {
    child: Child,
    http: String,
    log: PathBuf,
    _work: tempfile::TempDir,
}

impl Proc {
    /// Starts `strata <args> --http-address=<free port>` and waits for
    /// `/-/ready`.
    fn start(mut args: Vec<String>) -> Self {
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("stderr.log");
        let port = free_port();
        args.push(format!("--http-address=127.0.0.1:{port}"));
        let child = Command::new(strata())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut p = Self {
            child,
            http: format!("http://127.0.0.1:{port}"),
            log,
            _work: work,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("{args:?} exited with {st}:\n{}", p.stderr());
            }
            let ready = ureq::get(&format!("{}/-/ready", p.http)).call();
            if ready.is_ok_and(|r| r.status() == 200) {
                return p;
            }
            assert!(Instant::now() < deadline, "{args:?}:\n{}", p.stderr());
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

/// `strata query` over `store` with `extra` flags; waits until the store is
/// healthy in `/api/v1/stores`.
fn querier(store: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "query".to_string(),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
        format!("--endpoint={store}"),
        "--endpoint.refresh-interval=1s".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let q = Proc::start(args);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = get_json(&q.http, "/api/v1/stores", &[]);
        let healthy = v["data"].as_object().is_some_and(|o| {
            o.values()
                .flat_map(|a| a.as_array().unwrap().iter())
                .any(|e| e["lastError"].is_null())
        });
        if healthy {
            return q;
        }
        assert!(Instant::now() < deadline, "store not healthy: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A range query's only series as `t (s) -> value`; `extra` adds parameters.
fn range(
    base: &str,
    q: &str,
    (start, end, step): (i64, i64, i64),
    extra: &[(&str, &str)],
) -> BTreeMap<i64, f64> {
    let (s, e, st) = (start.to_string(), end.to_string(), step.to_string());
    let mut params = vec![("query", q), ("start", &s), ("end", &e), ("step", &st)];
    params.extend_from_slice(extra);
    let (code, v) = get_json(base, "/api/v1/query_range", &params);
    assert_eq!(code, 200, "{q} {extra:?}: {v}");
    let r = v["data"]["result"].as_array().unwrap();
    assert!(r.len() <= 1, "{q}: {v}");
    r.first()
        .map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_i64().unwrap(),
                        p[1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An instant query's only value.
fn instant(base: &str, q: &str, t: i64, extra: &[(&str, &str)]) -> f64 {
    let t = t.to_string();
    let mut params = vec![("query", q), ("time", t.as_str())];
    params.extend_from_slice(extra);
    let (code, v) = get_json(base, "/api/v1/query", &params);
    assert_eq!(code, 200, "{v}");
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("{q}: {v}"))
        .parse()
        .unwrap()
}

fn msr(r: &str) -> [(&str, &str); 1] {
    [("max_source_resolution", r)]
}

/// Hour steps over the downsampled data and the raw-only half day.
const HOURS: (i64, i64, i64) = (T0 + HOUR, T0 + 11 * DAY, HOUR);

#[test]
fn answers_over_downsampled_data_like_thanos_without_gaps() {
    let begin = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let bucket_dir = work.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).unwrap();
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    );
    let bucket = Bucket::from_config(
        &BucketConfig::parse(&objstore).unwrap(),
        &mut Registry::default(),
    )
    .unwrap();

    // 10.5 days in one raw block, downsampled by the real compactor.
    let old = backfill(
        work.path(),
        &work.path().join("old"),
        0,
        OLD_SCRAPES,
        "486h",
    );
    assert_eq!(old.len(), 1, "{old:?}");
    upload(&bucket, &old);
    let out = Command::new(strata())
        .args(["compact", "--wait=false", "--consistency-delay=0s"])
        .arg(format!("--objstore.config={objstore}"))
        .arg(format!(
            "--data-dir={}",
            work.path().join("compact").display()
        ))
        .arg(format!("--http-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        resolutions(&bucket_dir),
        BTreeMap::from([(0, 1), (300_000, 1), (3_600_000, 1)])
    );
    // The last half day: raw 2h blocks the compactor has not seen yet.
    let recent = backfill(
        work.path(),
        &work.path().join("recent"),
        OLD_SCRAPES,
        ALL_SCRAPES,
        "2h",
    );
    assert_eq!(recent.len(), 6);
    upload(&bucket, &recent);

    // Reference: `strata server` over the same raw blocks.
    let data = work.path().join("server");
    for d in old.iter().chain(&recent) {
        let dst = data.join(d.file_name().unwrap());
        std::fs::create_dir_all(dst.join("chunks")).unwrap();
        for f in ["meta.json", "index", "tombstones"] {
            if d.join(f).exists() {
                std::fs::copy(d.join(f), dst.join(f)).unwrap();
            }
        }
        for c in std::fs::read_dir(d.join("chunks")).unwrap() {
            let c = c.unwrap().path();
            std::fs::copy(&c, dst.join("chunks").join(c.file_name().unwrap())).unwrap();
        }
    }
    let server = StrataServer::start(&data, CONFIG, &[]);
    let store_grpc = format!("127.0.0.1:{}", free_port());
    let _store = Proc::start(vec![
        "store".into(),
        format!("--data-dir={}", work.path().join("store").display()),
        format!("--objstore.config={objstore}"),
        format!("--grpc-address={store_grpc}"),
    ]);
    let q = querier(&store_grpc, &[]);
    let raw = msr("0s");
    let (m5, h1) = (msr("5m"), msr("1h"));

    // Raw data through store and querier equals the server's answers.
    for expr in [
        "ds_gauge",
        "max_over_time(ds_gauge[1h])",
        "min_over_time(ds_gauge[1h])",
        "sum_over_time(ds_gauge[1h])",
        "count_over_time(ds_gauge[1h])",
        "avg_over_time(ds_gauge[1h])",
        "rate(ds_counter_total[1h])",
        "increase(ds_counter_total[1h])",
        "resets(ds_counter_total[1h])",
    ] {
        let want = range(&server.url(), expr, HOURS, &[]);
        assert_eq!(want.len(), 264, "{expr}");
        assert_eq!(range(&q.http, expr, HOURS, &raw), want, "{expr}");
    }
    // A direct computation anchors the reference.
    let want_max = range(&server.url(), "max_over_time(ds_gauge[1h])", HOURS, &[]);
    for (&t, &v) in &want_max {
        let first = (t - HOUR - T0) / MIN;
        let direct = (first..first + 60).map(gauge).fold(f64::MIN, f64::max);
        assert_eq!(v, direct, "max at {t}");
    }

    // Over-time functions over hour windows: 5m and 1h equal raw.
    let old_hours = |m: &BTreeMap<i64, f64>| -> BTreeMap<i64, f64> {
        m.iter()
            .filter(|(&t, _)| t <= RAW_ONLY_FROM)
            .map(|(&t, &v)| (t, v))
            .collect()
    };
    for expr in [
        "max_over_time(ds_gauge[1h])",
        "min_over_time(ds_gauge[1h])",
        "sum_over_time(ds_gauge[1h])",
        "max_over_time(ds_gauge[1d])",
        "sum_over_time(ds_gauge[3h])",
    ] {
        let want = range(&q.http, expr, HOURS, &raw);
        for res in [m5, h1] {
            assert_eq!(range(&q.http, expr, HOURS, &res), want, "{expr} {res:?}");
        }
    }
    // count_over_time counts the aggregates, as in Thanos: 12 per hour at 5m,
    // one per hour at 1h (two where a 1h chunk boundary splits the hour).
    let count = "count_over_time(ds_gauge[1h])";
    let c5 = range(&q.http, count, HOURS, &m5);
    let c1 = range(&q.http, count, HOURS, &h1);
    for t in (HOURS.0..=HOURS.1).step_by(HOUR as usize) {
        let (want5, want1) = if t <= RAW_ONLY_FROM {
            (12.0, 1.0)
        } else {
            (60.0, 60.0)
        };
        assert_eq!(c5.get(&t), Some(&want5), "5m count at {t}");
        let got1 = c1.get(&t).copied().unwrap_or_default();
        assert!(
            got1 == want1 || (t <= RAW_ONLY_FROM && got1 == 2.0),
            "1h count at {t}: {got1}"
        );
    }
    assert!(old_hours(&c1).values().filter(|&&c| c == 1.0).count() > 200);

    // The plain selector reads the window average.
    let avg5 = range(&q.http, "avg_over_time(ds_gauge[5m])", HOURS, &raw);
    assert_eq!(
        old_hours(&range(&q.http, "ds_gauge", HOURS, &m5)),
        old_hours(&avg5)
    );
    let avg1 = range(&q.http, "avg_over_time(ds_gauge[1h])", HOURS, &raw);
    let plain1 = range(&q.http, "ds_gauge", HOURS, &h1);
    for (t, c) in old_hours(&c1) {
        if c == 1.0 {
            assert_eq!(plain1.get(&t), avg1.get(&t), "1h average at {t}");
        }
    }

    // rate/increase over 5m data (1h data is capped to range/2 = 30m, as in
    // Thanos) stay close to raw, across the counter resets too. A window that
    // spans the seam between downsampled and raw-only data has points of both
    // densities, and PromQL extrapolates its start by half the average
    // interval only: up to about one coarse step short (SEAM_TOLERANCE).
    let (mut worst, mut worst_seam) = (0.0f64, 0.0f64);
    for (expr, window) in [
        ("rate(ds_counter_total[1h])", HOUR),
        ("increase(ds_counter_total[1h])", HOUR),
        ("increase(ds_counter_total[1d])", DAY),
    ] {
        let want = range(&q.http, expr, HOURS, &raw);
        for res in [m5, h1] {
            let got = range(&q.http, expr, HOURS, &res);
            assert_eq!(got.len(), want.len(), "{expr} {res:?}");
            for (&t, w) in &want {
                let g = got[&t];
                let rel = (g - w).abs() / w.abs().max(1e-9);
                let (seam, tol) = if t - window < RAW_ONLY_FROM && t > RAW_ONLY_FROM {
                    (&mut worst_seam, SEAM_TOLERANCE)
                } else {
                    (&mut worst, RATE_TOLERANCE)
                };
                *seam = seam.max(rel);
                assert!(rel <= tol, "{expr} {res:?} at {t}: {g} vs {w}");
            }
        }
    }
    eprintln!("largest relative rate/increase difference: {worst:.5}, at the seam {worst_seam:.5}");
    // Thanos' counter aggregate hides resets: resets() is 0 on downsampled data.
    let resets = range(&q.http, "resets(ds_counter_total[1d])", HOURS, &m5);
    let raw_resets = range(&q.http, "resets(ds_counter_total[1d])", HOURS, &raw);
    assert!(raw_resets.values().any(|&r| r > 0.0));
    assert!(old_hours(&resets).values().all(|&r| r == 0.0), "{resets:?}");

    // 1h data has no lookback gaps with the dynamic lookback delta; a
    // request's own lookback_delta still wins and leaves them.
    let day = (T0 + 2 * DAY, T0 + 3 * DAY, 5 * MIN);
    assert_eq!(range(&q.http, "ds_gauge", day, &h1).len(), 289);
    let gappy = range(
        &q.http,
        "ds_gauge",
        day,
        &[("max_source_resolution", "1h"), ("lookback_delta", "5m")],
    );
    assert!(gappy.len() < 100, "{}", gappy.len());

    // auto: step/5 picks 5m for a 1h step and 1h for a 6h step.
    let auto = msr("auto");
    let c = range(&q.http, count, HOURS, &auto);
    assert_eq!(c[&(T0 + 2 * DAY)], 12.0);
    let c = range(&q.http, count, (T0 + HOUR, T0 + 10 * DAY, 6 * HOUR), &auto);
    assert!(c.values().all(|&v| v == 1.0 || v == 2.0), "{c:?}");

    // Raw-only hours answer at 1h from the raw blocks, with no gap.
    let tail = (RAW_ONLY_FROM - 2 * HOUR, T0 + 11 * DAY, 5 * MIN);
    for expr in [
        "ds_gauge",
        "max_over_time(ds_gauge[1h])",
        "rate(ds_counter_total[30m])",
    ] {
        let got = range(&q.http, expr, tail, &h1);
        assert_eq!(got.len(), 12 * 14 + 1, "{expr}");
        let want = range(&q.http, expr, tail, &raw);
        for (t, w) in want.iter().filter(|(&t, _)| t > RAW_ONLY_FROM + HOUR) {
            assert_eq!(got.get(t), Some(w), "{expr} at {t}");
        }
    }

    // No max_source_resolution, no --query.auto-downsampling: raw data.
    let t = T0 + 2 * DAY;
    assert_eq!(instant(&q.http, count, t, &[]), 60.0);
    assert_eq!(instant(&q.http, count, t, &m5), 12.0);
    assert_eq!(range(&q.http, count, HOURS, &[])[&t], 60.0);
    // With it, range queries read step/5 and instant queries raw data.
    let qa = querier(&store_grpc, &["--query.auto-downsampling"]);
    assert_eq!(range(&qa.http, count, HOURS, &[])[&t], 12.0);
    assert_eq!(instant(&qa.http, count, t, &[]), 60.0);

    for (name, log) in [("query", q.stderr()), ("auto query", qa.stderr())] {
        assert!(!log.contains("ERROR"), "{name}:\n{log}");
    }
    eprintln!("took {:?}", begin.elapsed());
}
