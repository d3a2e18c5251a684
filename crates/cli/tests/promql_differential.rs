//! Differential test: the same blocks served by a real Prometheus 2.42 and by
//! `strata server` must answer a generated corpus of PromQL queries equally (within
//! float tolerance).
//!
//! Sample timestamps sit off whole seconds (x.250 s, x.500 s, x.750 s) and every
//! query time, range and step is whole seconds, so no sample sits on a window edge
//! where Prometheus 2.x (closed windows) and 3.x (left-open windows) differ. What
//! changed between 2.x and 3.x on purpose (functions 2.42 lacks or 3.x renamed,
//! regexes matching newlines) is left out here and covered by the promqltest
//! scripts instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Data start (2023-11-14T22:13:20Z).
const T0: i64 = 1_700_000_000;
/// Hours of data.
const HOURS: i64 = 6;

/// OpenMetrics input: counters with resets, gauges with NaN, a classic histogram,
/// series that start late, stop early or come and go.
fn generate_input() -> String {
    let mut s = String::new();
    let n = HOURS * 3600 / 15;
    let ts = |k: i64, phase: i64| -> String {
        // phase in quarter seconds, never 0: .250, .500, .750 (and +1 s).
        let ms = (T0 + k * 15) * 1000 + 250 * phase;
        format!("{}.{:03}", ms / 1000, ms % 1000)
    };
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    // Counters: 3 jobs × 4 instances × 3 codes.
    s.push_str("# TYPE http_requests counter\n");
    let mut sid = 0.0;
    for job in ["api", "web", "db"] {
        for inst in 0..4 {
            for code in ["200", "404", "500"] {
                let phase = 1 + (inst % 3) as i64;
                // Counters start high: near a series' start, 3.x applies the
                // zero-point clamp of rate() after the extrapolation threshold and
                // 2.x before it (a deliberate 3.x fix), so a counter starting near
                // zero would answer differently on purpose.
                sid += 1.0;
                let mut v = 100_000.0 * (inst + 1) as f64 + 1000.0 * sid;
                for k in 0..n {
                    if inst == 2 && k == n / 2 {
                        v = 0.0; // restart: counter reset
                    }
                    v += rnd(match code {
                        "200" => 100,
                        "404" => 10,
                        _ => 3,
                    }) as f64;
                    if inst == 3 && (300..340).contains(&k) {
                        continue; // scrape gap
                    }
                    writeln!(
                        s,
                        "http_requests_total{{code=\"{code}\",instance=\"host-{inst}:9100\",job=\"{job}\"}} {v} {}",
                        ts(k, phase)
                    )
                    .unwrap();
                }
            }
        }
    }
    s.push_str("# TYPE cpu_temp gauge\n");
    for inst in 0..6 {
        // A distinct fraction per instance: no ties, so topk/bottomk pick the same
        // series in every engine.
        let mut v = 40.0 + inst as f64 + inst as f64 / 64.0;
        for k in 0..n {
            v += (rnd(9) as f64 - 4.0) * 0.25;
            let val = if inst == 5 && (100..110).contains(&k) {
                "NaN".to_string()
            } else {
                format!("{v}")
            };
            // host-4 starts late, host-5 stops early
            if (inst == 4 && k < n / 3) || (inst == 5 && k > 2 * n / 3) {
                continue;
            }
            writeln!(
                s,
                "cpu_temp{{instance=\"host-{inst}:9100\",job=\"node\",zone=\"z{}\"}} {val} {}",
                inst % 2,
                ts(k, 2)
            )
            .unwrap();
        }
    }
    s.push_str("# TYPE batch_running gauge\n");
    for k in 0..n {
        if (k / 40) % 2 == 0 {
            writeln!(
                s,
                "batch_running{{job=\"batch\",name=\"reindex\"}} 1 {}",
                ts(k, 3)
            )
            .unwrap();
        }
    }
    s.push_str("# TYPE req_duration_seconds histogram\n");
    let les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    for job in ["api", "web"] {
        // Buckets start high, like counters (see the counters above).
        let mut counts = [
            10_000f64, 20_000., 30_000., 40_000., 50_000., 60_000., 70_000.,
        ];
        let mut sum = 50_000.0;
        for k in 0..n {
            for _ in 0..rnd(20) {
                let d = rnd(3000) as f64 / 1000.0;
                sum += d;
                for (i, le) in les.iter().enumerate() {
                    if *le == "+Inf" || d <= le.parse::<f64>().unwrap() {
                        counts[i] += 1.0;
                    }
                }
            }
            for (i, le) in les.iter().enumerate() {
                writeln!(
                    s,
                    "req_duration_seconds_bucket{{job=\"{job}\",le=\"{le}\"}} {} {}",
                    counts[i],
                    ts(k, 1)
                )
                .unwrap();
            }
            writeln!(
                s,
                "req_duration_seconds_count{{job=\"{job}\"}} {} {}",
                counts[6],
                ts(k, 1)
            )
            .unwrap();
            writeln!(
                s,
                "req_duration_seconds_sum{{job=\"{job}\"}} {sum} {}",
                ts(k, 1)
            )
            .unwrap();
        }
    }
    s.push_str("# EOF\n");
    s
}

/// The query corpus: every function, operator, aggregation and modifier 2.42 and 3.x
/// share, over several selectors.
fn corpus() -> Vec<String> {
    let mut q: Vec<String> = Vec::new();
    let counters = [
        "http_requests_total",
        "http_requests_total{job=\"api\"}",
        "http_requests_total{code=~\"4..|5..\"}",
    ];
    let gauges = ["cpu_temp", "cpu_temp{zone=\"z1\"}", "batch_running"];
    let ranges = ["1m", "5m", "1h"];
    for c in counters {
        for r in ["1m", "2m", "5m", "10m", "1h"] {
            for f in [
                "rate", "irate", "increase", "resets", "changes", "delta", "idelta", "deriv",
            ] {
                q.push(format!("{f}({c}[{r}])"));
            }
            q.push(format!("sum by (job) (rate({c}[{r}]))"));
            q.push(format!("predict_linear({c}[{r}], 600)"));
        }
    }
    for g in gauges {
        q.push(g.to_string());
        for r in ranges {
            for f in [
                "avg_over_time",
                "min_over_time",
                "max_over_time",
                "sum_over_time",
                "count_over_time",
                "last_over_time",
                "present_over_time",
                "stddev_over_time",
                "stdvar_over_time",
                "absent_over_time",
            ] {
                q.push(format!("{f}({g}[{r}])"));
            }
            q.push(format!("quantile_over_time(0.9, {g}[{r}])"));
        }
        for f in [
            "abs",
            "ceil",
            "floor",
            "round",
            "exp",
            "ln",
            "log2",
            "log10",
            "sqrt",
            "sgn",
            "timestamp",
            "absent",
            "sort",
            "sort_desc",
        ] {
            q.push(format!("{f}({g})"));
        }
        q.push(format!("round({g}, 0.5)"));
        q.push(format!("clamp({g}, 40, 45)"));
        q.push(format!("clamp_min({g}, 42)"));
        q.push(format!("clamp_max({g}, 42)"));
        q.push(format!(
            "label_replace({g}, \"host\", \"$1\", \"instance\", \"(.*):.*\")"
        ));
        q.push(format!(
            "label_join({g}, \"both\", \"-\", \"instance\", \"job\")"
        ));
        q.push(format!("{g} offset 10m"));
        q.push(format!("{g} @ {}", T0 + 3600));
        q.push(format!("{g} @ start()"));
        q.push(format!("{g} @ end()"));
        q.push(format!("max_over_time({g}[10m] offset 5m)"));
    }
    for agg in [
        "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
    ] {
        for sel in ["cpu_temp", "rate(http_requests_total[5m])"] {
            q.push(format!("{agg}({sel})"));
            q.push(format!("{agg} by (job) ({sel})"));
            q.push(format!("{agg} without (instance) ({sel})"));
            q.push(format!("{agg} by (instance, job) ({sel})"));
        }
    }
    for (agg, p) in [
        ("topk", "3"),
        ("bottomk", "2"),
        ("quantile", "0.75"),
        ("quantile", "0"),
        ("quantile", "1"),
    ] {
        q.push(format!("{agg}({p}, cpu_temp)"));
        // Rates of different series can tie, and engines may break ties
        // differently; raw counters never tie here.
        let sel = if agg == "quantile" {
            "rate(http_requests_total[5m])"
        } else {
            "http_requests_total"
        };
        q.push(format!("{agg} by (job) ({p}, {sel})"));
    }
    q.push("count_values(\"value\", round(cpu_temp))".into());
    q.push("count_values by (zone) (\"v\", round(cpu_temp / 5))".into());
    for op in [
        "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=",
    ] {
        q.push(format!("cpu_temp {op} 42"));
        q.push(format!("42 {op} cpu_temp"));
        q.push(format!("rate(http_requests_total[5m]) {op} on (instance, job, code) rate(http_requests_total[1m])"));
    }
    for op in ["==", "!=", ">", "<", ">=", "<="] {
        q.push(format!("cpu_temp {op} bool 42"));
        q.push(format!(
            "sum by (job) (rate(http_requests_total[5m])) {op} bool 10"
        ));
    }
    q.push("2 * 3 + 4".into());
    q.push("time()".into());
    q.push("vector(1) + time()".into());
    q.push("scalar(sum(cpu_temp))".into());
    q.push(
        "cpu_temp * on (instance) group_left (code) http_requests_total{code=\"200\",job=\"api\"}"
            .into(),
    );
    q.push("sum by (instance) (rate(http_requests_total[5m])) / on (instance) group_left count by (instance) (http_requests_total)".into());
    q.push("http_requests_total{code=\"200\",job=\"api\"} / ignoring (code) group_left http_requests_total{code=\"200\",job=\"api\"}".into());
    q.push("rate(http_requests_total[5m]) / ignoring (code) group_left sum by (instance, job) (rate(http_requests_total[5m]))".into());
    q.push("cpu_temp and cpu_temp > 42".into());
    q.push("cpu_temp or batch_running".into());
    q.push("cpu_temp unless cpu_temp{zone=\"z0\"}".into());
    q.push("cpu_temp and on (zone) cpu_temp{instance=\"host-0:9100\"}".into());
    q.push("cpu_temp unless ignoring (instance, zone) batch_running".into());
    q.push("-cpu_temp".into());
    q.push("(cpu_temp)".into());
    for h in ["0", "0.5", "0.9", "0.99", "1"] {
        q.push(format!(
            "histogram_quantile({h}, sum by (le) (rate(req_duration_seconds_bucket[5m])))"
        ));
        q.push(format!(
            "histogram_quantile({h}, rate(req_duration_seconds_bucket[10m]))"
        ));
    }
    q.push("rate(req_duration_seconds_sum[5m]) / rate(req_duration_seconds_count[5m])".into());
    for f in [
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "hour",
        "minute",
        "month",
        "year",
    ] {
        q.push(format!("{f}()"));
        q.push(format!("{f}(timestamp(cpu_temp))"));
    }
    for sub in ["[30m:1m]", "[1h:5m]", "[10m:]"] {
        q.push(format!("max_over_time(rate(http_requests_total[5m]){sub})"));
        q.push(format!("avg_over_time(cpu_temp{sub})"));
        q.push(format!(
            "sum_over_time(sum by (job) (rate(http_requests_total[1m])){sub})"
        ));
        q.push(format!("deriv(cpu_temp{sub})"));
    }
    q.push("min_over_time(max_over_time(cpu_temp[5m])[20m:2m] offset 10m)".into());
    q.push("absent(nonexistent_metric)".into());
    q.push("absent(nonexistent_metric{job=\"x\"})".into());
    q.push("absent_over_time(nonexistent_metric[5m])".into());
    q.push("nonexistent_metric".into());
    q.push("sum(nonexistent_metric)".into());
    q.push("count(http_requests_total)".into());
    q.push("count by (__name__) ({__name__=~\"http_.*|cpu_.*\"})".into());
    q.push("{job=\"node\"}".into());
    q.push("{__name__=~\"cpu.*\", instance!~\"host-[01].*\"}".into());
    q.push("http_requests_total{instance=~\"host-(1|2):9100\",code!=\"200\"}".into());
    q.push("sort(sum by (job) (http_requests_total))".into());
    q.push("topk(1, sum by (job) (http_requests_total))".into());
    q.push("vector(time()) - timestamp(cpu_temp)".into());
    q.push("sgn(deriv(cpu_temp[10m]))".into());
    q.push("cpu_temp / 0".into());
    q.push("0 / 0".into());
    q.push("-1 ^ 0.5".into());
    q.push("ln(-1)".into());
    q
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_strata(dir: &Path) -> Server {
    let port = strata_testkit::free_port();
    let cfg = dir.join("strata.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["server", &format!("--config.file={}", cfg.display())])
        .arg(format!("--storage.tsdb.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning strata server");
    let s = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq::get(&format!("{}/-/ready", s.url)).call().is_ok() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("strata server did not become ready");
}

fn get(url: &str, params: &[(&str, String)]) -> Value {
    let mut req = ureq::get(url);
    for (k, v) in params {
        req = req.query(k, v);
    }
    match req.call() {
        Ok(r) => serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        Err(ureq::Error::Status(_, r)) => {
            serde_json::from_str(&r.into_string().unwrap_or_default()).unwrap_or(Value::Null)
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

fn close(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            if x.is_nan() && y.is_nan() {
                return true;
            }
            let d = (x - y).abs();
            d <= 1e-9 * x.abs().max(y.abs()) || d < 1e-12
        }
        _ => false,
    }
}

/// Compares two API responses; returns a description of the first difference.
fn diff(a: &Value, b: &Value) -> Option<String> {
    if a["status"] != b["status"] {
        return Some(format!(
            "status {} vs {} ({} / {})",
            a["status"], b["status"], a["error"], b["error"]
        ));
    }
    if a["status"] != "success" {
        return None;
    }
    let (da, db) = (&a["data"], &b["data"]);
    if da["resultType"] != db["resultType"] {
        return Some(format!(
            "resultType {} vs {}",
            da["resultType"], db["resultType"]
        ));
    }
    let points = |v: &Value| -> Vec<(String, f64, String)> {
        let mut out = Vec::new();
        let series: Vec<Value> = match &v["result"] {
            Value::Array(a) if v["resultType"] != "scalar" && v["resultType"] != "string" => {
                a.clone()
            }
            other => vec![serde_json::json!({"metric": {}, "value": other})],
        };
        for s in series {
            let m = s["metric"].to_string();
            let mut pts = Vec::new();
            if let Some(p) = s.get("value") {
                pts.push(p.clone());
            }
            if let Some(Value::Array(ps)) = s.get("values") {
                pts.extend(ps.iter().cloned());
            }
            for p in pts {
                out.push((
                    m.clone(),
                    p[0].as_f64().unwrap_or(f64::NAN),
                    p[1].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        out.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
        out
    };
    let (pa, pb) = (points(da), points(db));
    if pa.len() != pb.len() {
        let ma: std::collections::BTreeSet<_> = pa.iter().map(|p| p.0.clone()).collect();
        let mb: std::collections::BTreeSet<_> = pb.iter().map(|p| p.0.clone()).collect();
        return Some(format!(
            "{} vs {} points; series only in strata: {:?}; only in prometheus: {:?}",
            pa.len(),
            pb.len(),
            ma.difference(&mb).take(3).collect::<Vec<_>>(),
            mb.difference(&ma).take(3).collect::<Vec<_>>()
        ));
    }
    for (x, y) in pa.iter().zip(&pb) {
        if x.0 != y.0 || (x.1 - y.1).abs() > 1e-9 || !close(&x.2, &y.2) {
            return Some(format!(
                "{} @{} = {} vs {} @{} = {}",
                x.0, x.1, x.2, y.0, y.1, y.2
            ));
        }
    }
    None
}

fn blocks(dir: &Path) -> PathBuf {
    let input = dir.join("input.om.txt");
    std::fs::write(&input, generate_input()).unwrap();
    let out = dir.join("blocks");
    let st = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tools", "tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&input)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

#[test]
fn strata_answers_like_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = blocks(tmp.path());
    let pdir = tmp.path().join("prom");
    let sdir = tmp.path().join("strata");
    strata_testkit::copy_dir(&blocks, &pdir);
    strata_testkit::copy_dir(&blocks, &sdir);
    let prom = strata_testkit::PrometheusProcess::start(&pdir, &[]);
    let strata = start_strata(&sdir);

    let queries = corpus();
    let mut checked = 0;
    let mut failures = Vec::new();
    let end = T0 + HOURS * 3600;
    for q in &queries {
        for t in [T0 + 1800, T0 + 4 * 3600 + 7, end + 120] {
            let p = vec![("query", q.clone()), ("time", t.to_string())];
            let a = get(&format!("{}/api/v1/query", strata.url), &p);
            let b = get(&format!("{}/api/v1/query", prom.url()), &p);
            checked += 1;
            if let Some(d) = diff(&a, &b) {
                failures.push(format!("instant {q} @{t}: {d}"));
            }
        }
        for (start, stop, step) in [
            (T0, end, 300),
            (T0 + 3000, T0 + 3000 + 1800, 15),
            (T0 - 600, T0 + 900, 60),
        ] {
            let p = vec![
                ("query", q.clone()),
                ("start", start.to_string()),
                ("end", stop.to_string()),
                ("step", step.to_string()),
            ];
            let a = get(&format!("{}/api/v1/query_range", strata.url), &p);
            let b = get(&format!("{}/api/v1/query_range", prom.url()), &p);
            checked += 1;
            if let Some(d) = diff(&a, &b) {
                failures.push(format!("range {q} [{start},{stop}] step {step}: {d}"));
            }
        }
    }
    eprintln!(
        "{} queries, {checked} comparisons, {} differences",
        queries.len(),
        failures.len()
    );
    assert!(
        queries.len() >= 500,
        "corpus has only {} queries",
        queries.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
