//! Shared helpers of the `api_*` end-to-end tests: blocks made by backfill, a
//! running `strata server` (killed on drop), and plain HTTP calls.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_testkit::openmetrics::{generate, Options};

pub mod bucket;
pub mod procs;
pub mod shipped;

/// The `strata` binary under test.
pub fn strata() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// `strata tools tsdb dump` of `dir` (blocks, and the WAL of a data
/// directory); panics with its stderr when it fails.
pub fn strata_dump(dir: &Path) -> String {
    let out = Command::new(strata())
        .args(["tools", "tsdb", "dump"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Backfills `opts`' OpenMetrics text into `<dir>/blocks` with
/// `strata tools tsdb create-blocks-from openmetrics`; returns the text and the
/// blocks directory.
pub fn backfill(dir: &Path, opts: &Options) -> (String, PathBuf) {
    let text = generate(opts);
    let input = dir.join("input.om.txt");
    std::fs::write(&input, &text).unwrap();
    let blocks = dir.join("blocks");
    let out = Command::new(strata())
        .args(["tools", "tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&input)
        .arg(&blocks)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "backfill failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (text, blocks)
}

/// A running `strata server`, killed on drop.
pub struct StrataServer {
    child: Child,
    port: u16,
    stderr_path: PathBuf,
    _work: tempfile::TempDir,
}

impl StrataServer {
    /// Starts `strata server` on `data_dir` with `config` as its `prometheus.yml`
    /// and `extra` flags, and waits for `/-/ready`.
    pub fn start(data_dir: &Path, config: &str, extra: &[&str]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let cfg = work.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        for attempt in 0..3 {
            let port = strata_testkit::free_port();
            let stderr_path = work.path().join(format!("stderr-{attempt}.log"));
            let child = Command::new(strata())
                .arg("server")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&stderr_path).unwrap())
                .spawn()
                .unwrap();
            let mut s = Self {
                child,
                port,
                stderr_path,
                _work: tempfile::tempdir().unwrap(),
            };
            match s.wait_ready() {
                Ok(()) => {
                    s._work = work;
                    return s;
                }
                Err(log) if log.contains("in use") && attempt < 2 => continue,
                Err(log) => panic!("strata server did not become ready:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}\n{}", self.stderr()));
            }
            if let Ok((200, _)) = try_get(&format!("{}/-/ready", self.url())) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not ready after 60s\n{}", self.stderr()))
    }

    /// `http://127.0.0.1:<port>`.
    /// The `prometheus.yml` it was started with (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self._work.path().join("prometheus.yml")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.wait_exit()
    }

    /// Waits (at most 30 s) for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within 30s\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for StrataServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

fn try_get(url: &str) -> Result<(u16, String), String> {
    match agent().get(url).call() {
        Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// GET `base + path_and_query` (already URL-encoded); returns status and body.
pub fn get(base: &str, path_and_query: &str) -> (u16, String) {
    try_get(&format!("{base}{path_and_query}"))
        .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
}

/// GET with query parameters (encoded here).
pub fn get_params(base: &str, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent().get(&format!("{base}{path}"));
    for (k, v) in params {
        req = req.query(k, v);
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("GET {path} {params:?}: {e}"),
    }
}

/// POST a form body.
pub fn post_form(base: &str, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    match agent().post(&format!("{base}{path}")).send_form(params) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("POST {path} {params:?}: {e}"),
    }
}

/// GET returning parsed JSON (whatever the status).
pub fn get_json(base: &str, path: &str, params: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let (code, body) = get_params(base, path, params);
    let v = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path} {params:?}: not JSON ({e}): {body}"));
    (code, v)
}

/// A config with no scrape targets.
pub const CONFIG: &str =
    "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\nscrape_configs: []\n";

/// Small data: 3 h of 1-minute scrapes.
pub fn small_opts(start_secs: i64) -> Options {
    Options {
        start_secs,
        duration_secs: 3 * 3600,
        step_ms: 60_000,
        series: 10,
        ..Options::default()
    }
}
