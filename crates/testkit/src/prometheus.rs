//! A real `prometheus` server on loopback, for checking that it reads what
//! Strata writes, and the checks run against it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::openmetrics::{self, Sample};
use crate::peer::{free_port, peer_binary};

/// How long [`PrometheusProcess::start`] waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at starting when the chosen port was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;
/// Prometheus' default lookback delta.
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Config with no scrape targets: the server only serves what is on disk.
const CONFIG: &str =
    "global:\n  scrape_interval: 1h\n  evaluation_interval: 1m\nscrape_configs: []\n";

/// A running `prometheus` child process, killed on drop.
///
/// It listens on `127.0.0.1:<free port>` and stores its data in the data
/// directory it was given (which it writes to: `wal/`, `lock`, ...). Because
/// `Drop` kills it, a failing test does not leave it running.
#[derive(Debug)]
pub struct PrometheusProcess {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    agent: ureq::Agent,
    /// Holds the config and log files; removed after the child is killed.
    _work: tempfile::TempDir,
}

impl PrometheusProcess {
    /// Starts `prometheus` on `data_dir` and waits until `/-/ready` answers 200.
    ///
    /// The command line is a generated config with no scrape targets,
    /// `--storage.tsdb.path=<data_dir>`, `--web.listen-address=127.0.0.1:<port>`
    /// and `extra_args`. Unless `extra_args` sets a
    /// `--storage.tsdb.retention.*` flag, `--storage.tsdb.retention.time=100y`
    /// is added, so backfilled blocks from the past are not deleted at start.
    ///
    /// # Panics
    ///
    /// If the binary is missing, exits, or is not ready within 60 s; the
    /// message holds its stderr.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_with_config(data_dir, CONFIG, extra_args)
    }

    /// As [`Self::start`], with `config_yaml` as its `prometheus.yml` (e.g. with
    /// scrape targets, `remote_write`, `remote_read` or external labels). Every
    /// `{{port}}` in it is replaced by the port Prometheus listens on, so it can
    /// scrape itself (`targets: ['127.0.0.1:{{port}}']`).
    ///
    /// # Panics
    ///
    /// As [`Self::start`], also when Prometheus rejects the config.
    pub fn start_with_config(data_dir: &Path, config_yaml: &str, extra_args: &[&str]) -> Self {
        let binary = peer_binary("prometheus");
        let mut work = tempfile::tempdir().expect("create a temporary directory");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let config = work.path().join("prometheus.yml");
            std::fs::write(&config, config_yaml.replace("{{port}}", &port.to_string()))
                .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
            let stderr_path = work.path().join(format!("stderr-{attempt}.log"));
            let stderr = File::create(&stderr_path)
                .unwrap_or_else(|e| panic!("create {}: {e}", stderr_path.display()));
            let mut cmd = Command::new(&binary);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(extra_args);
            if !extra_args
                .iter()
                .any(|a| a.starts_with("--storage.tsdb.retention"))
            {
                cmd.arg("--storage.tsdb.retention.time=100y");
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
            let mut p = Self {
                child,
                port,
                data_dir: data_dir.to_owned(),
                stderr_path,
                agent: agent.clone(),
                _work: work,
            };
            match p.wait_ready() {
                Ok(()) => return p,
                Err(log) if log.contains("address already in use") && attempt < PORT_ATTEMPTS => {
                    work = p.into_work_dir();
                }
                Err(log) => panic!(
                    "prometheus on {} did not become ready: {}\n--- stderr ---\n{log}",
                    data_dir.display(),
                    p.child_state()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Polls `/-/ready` until 200; on exit or timeout returns the stderr log.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/-/ready", self.url());
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.stderr());
            }
            if let Ok(resp) = self.agent.get(&url).call() {
                if resp.status() == 200 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "(not ready after {READY_TIMEOUT:?})\n{}",
            self.stderr()
        ))
    }

    fn child_state(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("it exited with {status}"),
            _ => "it is still running (will be killed)".to_owned(),
        }
    }

    /// Kills the child and hands back the work directory for another attempt.
    fn into_work_dir(mut self) -> tempfile::TempDir {
        self.kill();
        let work = tempfile::tempdir().expect("create a temporary directory");
        std::mem::replace(&mut self._work, work)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory it was started on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What it has logged to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.stderr_path.display()))
    }

    /// Instant query: `GET /api/v1/query?query=<promql>&time=<time_secs>`.
    ///
    /// Returns the whole JSON answer (`{"status": ..., "data": ...}`), also for
    /// an error status such as `bad_data`, so tests can assert on errors.
    ///
    /// # Panics
    ///
    /// If the request fails below HTTP or the answer is not JSON.
    pub fn query(&self, promql: &str, time_secs: f64) -> Value {
        self.get(
            "/api/v1/query",
            &[("query", promql), ("time", &time_secs.to_string())],
        )
    }

    /// Range query: `GET /api/v1/query_range` with `start`, `end` and `step`
    /// in seconds. Returns the whole JSON answer, as [`Self::query`].
    ///
    /// # Panics
    ///
    /// As [`Self::query`].
    pub fn query_range(
        &self,
        promql: &str,
        start_secs: f64,
        end_secs: f64,
        step_secs: f64,
    ) -> Value {
        self.get(
            "/api/v1/query_range",
            &[
                ("query", promql),
                ("start", &start_secs.to_string()),
                ("end", &end_secs.to_string()),
                ("step", &step_secs.to_string()),
            ],
        )
    }

    /// [`Self::query`] that must succeed with a vector: each element's labels
    /// and value (`NaN`, `±Inf` included), in the server's order.
    ///
    /// # Panics
    ///
    /// If the answer is an error or not a vector.
    pub fn query_vector(
        &self,
        promql: &str,
        time_secs: f64,
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        let answer = self.query(promql, time_secs);
        let data = success_data(&answer, promql);
        assert_eq!(data["resultType"], "vector", "{promql}: {answer}");
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: result is not an array: {answer}"))
            .iter()
            .map(|el| (labels_of(&el["metric"]), parse_value(&el["value"][1])))
            .collect()
    }

    fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut req = self.agent.get(&format!("{}{path}", self.url()));
        for (k, v) in params {
            req = req.query(k, v);
        }
        let resp = match req.call() {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => panic!(
                "GET {path} {params:?}: {e}\n--- prometheus stderr ---\n{}",
                self.stderr()
            ),
        };
        serde_json::from_reader(resp.into_reader())
            .unwrap_or_else(|e| panic!("GET {path} {params:?}: answer is not JSON: {e}"))
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn success_data<'a>(answer: &'a Value, promql: &str) -> &'a Value {
    assert_eq!(
        answer["status"], "success",
        "query {promql} failed: {answer}"
    );
    &answer["data"]
}

fn labels_of(metric: &Value) -> BTreeMap<String, String> {
    metric
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A sample value as the HTTP API writes it: a string, `NaN`, `+Inf`, `-Inf`.
fn parse_value(v: &Value) -> f64 {
    match v.as_str() {
        Some("NaN") => f64::NAN,
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(s) => s
            .parse()
            .unwrap_or_else(|e| panic!("bad sample value {s:?}: {e}")),
        None => panic!("sample value is not a string: {v}"),
    }
}

/// Equal bits, or both NaN (`-0` and `0` differ).
fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Asserts that `prom` serves the data of `input` (text from
/// [`openmetrics::generate`], backfilled into its data directory).
///
/// Checks, against values computed from `input`:
///
/// - instant queries of single series at a sample's timestamp: the first and
///   last sample of every metric, the first `NaN`, `+Inf`, `-Inf`, `-0` and
///   subnormal values, and series with the longest, tab- and newline-holding
///   label values; the value must match bit for bit (any NaN matches NaN);
/// - `count by (__name__) ({__name__=~".+"})` at three times: the series with
///   a sample in the 5-minute lookback window, per metric name;
/// - a range query over an hour of one gauge series.
///
/// Query times are 1 ms past a multiple of 125 ms, so no sample sits exactly on
/// the edge of a lookback window.
///
/// # Panics
///
/// On the first mismatch, naming the query.
pub fn assert_serves(prom: &PrometheusProcess, input: &str) {
    let all = openmetrics::samples(input);
    assert!(!all.is_empty(), "no samples in the input");
    for s in interesting(&all) {
        let got = prom.query_vector(&s.series, s.timestamp_ms as f64 / 1000.0);
        assert_eq!(
            got.len(),
            1,
            "{} at {} ms: expected one series, got {got:?}",
            s.series,
            s.timestamp_ms
        );
        let (labels, value) = &got[0];
        assert_eq!(labels.get("__name__"), Some(&s.name), "{}", s.series);
        assert!(
            same_value(*value, s.value),
            "{} at {} ms: got {value}, input has {}",
            s.series,
            s.timestamp_ms,
            s.value
        );
    }

    let min = all.iter().map(|s| s.timestamp_ms).min().unwrap_or_default();
    let max = all.iter().map(|s| s.timestamp_ms).max().unwrap_or_default();
    for t in [min + (max - min) / 7, min + (max - min) / 2, max] {
        let t = t - t.rem_euclid(125) + 1;
        let mut expected: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
        for s in all
            .iter()
            .filter(|s| (t - LOOKBACK_MS..=t).contains(&s.timestamp_ms))
        {
            expected
                .entry(s.name.clone())
                .or_default()
                .insert(&s.series);
        }
        let expected: BTreeMap<String, f64> = expected
            .into_iter()
            .map(|(k, v)| (k, v.len() as f64))
            .collect();
        let q = r#"count by (__name__) ({__name__=~".+"})"#;
        let got: BTreeMap<String, f64> = prom
            .query_vector(q, t as f64 / 1000.0)
            .into_iter()
            .map(|(l, v)| (l.get("__name__").cloned().unwrap_or_default(), v))
            .collect();
        assert_eq!(got, expected, "{q} at {t} ms");
    }

    // A range query over an hour of the first series of the first gauge.
    let first = &all[0];
    let series: Vec<&Sample> = all.iter().filter(|s| s.series == first.series).collect();
    let start = first.timestamp_ms + 1;
    let (step, steps) = (60_000, 60);
    let mut expected = Vec::new();
    for k in 0..=steps {
        let t = start + k * step;
        if let Some(s) = series
            .iter()
            .rev()
            .find(|s| (t - LOOKBACK_MS..=t).contains(&s.timestamp_ms))
        {
            expected.push((t, s.value));
        }
    }
    let answer = prom.query_range(
        &first.series,
        start as f64 / 1000.0,
        (start + steps * step) as f64 / 1000.0,
        step as f64 / 1000.0,
    );
    let data = success_data(&answer, &first.series);
    let values = data["result"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let got: Vec<(i64, f64)> = values
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap_or_default() * 1000.0).round() as i64,
                parse_value(&p[1]),
            )
        })
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "range query of {}: {answer}",
        first.series
    );
    for ((gt, gv), (et, ev)) in got.iter().zip(&expected) {
        assert!(
            *gt == *et && same_value(*gv, *ev),
            "range query of {} at {et}: got {gv} at {gt}, want {ev}",
            first.series
        );
    }
}

/// The samples [`assert_serves`] queries one by one.
fn interesting(all: &[Sample]) -> Vec<&Sample> {
    let mut picked: Vec<&Sample> = Vec::new();
    let mut first_last: BTreeMap<&str, (&Sample, &Sample)> = BTreeMap::new();
    for s in all {
        first_last
            .entry(&s.name)
            .and_modify(|e| e.1 = s)
            .or_insert((s, s));
    }
    for (first, last) in first_last.into_values() {
        picked.extend([first, last]);
    }
    let kinds: [fn(&Sample) -> bool; 8] = [
        |s| s.value.is_nan(),
        |s| s.value == f64::INFINITY,
        |s| s.value == f64::NEG_INFINITY,
        |s| s.value == 0.0 && s.value.is_sign_negative(),
        |s| s.value != 0.0 && s.value.abs() < f64::MIN_POSITIVE,
        |s| s.value.abs() > 1e300 && s.value.is_finite(),
        |s| s.series.contains('\t'),
        |s| s.series.contains("\\n"),
    ];
    for kind in kinds {
        picked.extend(all.iter().find(|s| kind(s)));
    }
    picked.extend(all.iter().max_by_key(|s| s.series.len()));
    picked.sort_by(|a, b| (&a.series, a.timestamp_ms).cmp(&(&b.series, b.timestamp_ms)));
    picked.dedup_by(|a, b| a.series == b.series && a.timestamp_ms == b.timestamp_ms);
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openmetrics::{generate, Options};
    use crate::promtool;

    /// The harness itself, on blocks that promtool wrote: what Strata's
    /// blocks must pass too.
    #[test]
    fn serves_promtool_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            duration_secs: 5 * 3600,
            step_ms: 60_000,
            series: 50,
            ..Options::default()
        };
        let text = generate(&opts);
        let input = dir.path().join("input.om.txt");
        std::fs::write(&input, &text).unwrap();
        let data = dir.path().join("data");
        promtool::create_blocks(&input, &data, None);
        let prom = PrometheusProcess::start(&data, &[]);
        assert_serves(&prom, &text);
        let answer = prom.query("up{", 1.0);
        assert_eq!(answer["status"], "error", "{answer}");
        assert_eq!(answer["errorType"], "bad_data", "{answer}");
        let all = openmetrics::samples(&text);
        let t = all[all.len() / 2].timestamp_ms as f64 / 1000.0;
        assert_eq!(
            prom.query("vector(1)", t)["data"]["result"][0]["value"][1],
            "1"
        );
    }

    #[test]
    fn start_panics_with_stderr_on_bad_flags() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            std::panic::catch_unwind(|| PrometheusProcess::start(dir.path(), &["--no-such-flag"]))
                .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("did not become ready") && msg.contains("no-such-flag"),
            "{msg}"
        );
    }
}
