//! Shared helpers of the benchmarks that run real servers: spawning them,
//! reading their `/metrics`, timing HTTP API queries, sizing directories.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A server process killed on drop.
pub(crate) struct Proc {
    child: Child,
    /// Its base URL.
    pub(crate) url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `cmd` (listening on `port`) and waits for `/-/ready`; returns the
    /// process and the time it took to become ready.
    pub(crate) fn start(cmd: &mut Command, port: u16) -> anyhow::Result<(Self, Duration)> {
        let t = Instant::now();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning server")?;
        let p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if ureq::get(&format!("{}/-/ready", p.url)).call().is_ok() {
                return Ok((p, t.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not become ready", p.url)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM), KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Sends SIGTERM, like an operator would, and waits for the exit.
    pub(crate) fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sum of a counter family's samples on a `/metrics` page, over the samples
/// whose label text contains `labels` (`""`: all of them).
pub(crate) fn metric_sum(url: &str, name: &str, labels: &str) -> anyhow::Result<f64> {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .with_context(|| format!("{url}/metrics"))?
        .into_string()?;
    Ok(text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                && l.contains(labels)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Runs one `/api/v1/query_range` with `params`; returns its latency and the
/// response body, or an error when the status is not `success`.
pub(crate) fn query_range(
    url: &str,
    params: &[(&str, String)],
) -> anyhow::Result<(Duration, String)> {
    let mut req = ureq::get(&format!("{url}/api/v1/query_range"));
    for (k, v) in params {
        req = req.query(k, v);
    }
    let t = Instant::now();
    // Not `into_string`: it refuses bodies over 10 MB.
    let mut body = String::new();
    req.call()
        .with_context(|| format!("{url}/api/v1/query_range"))?
        .into_reader()
        .read_to_string(&mut body)
        .with_context(|| format!("reading {url}/api/v1/query_range"))?;
    let took = t.elapsed();
    if !body.contains("\"success\"") {
        bail!("{url}: {body}");
    }
    Ok((took, body))
}

/// Waits until the querier at `query_url` knows a store whose data reaches
/// `max_time_ms` (it learns time ranges from its periodic Info refresh).
pub(crate) fn wait_for_store(
    query_url: &str,
    max_time_ms: i64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = ureq::get(&format!("{query_url}/api/v1/stores")).call() {
            let v: serde_json::Value = serde_json::from_str(&r.into_string()?)?;
            let max = v["data"]["store"][0]["maxTime"]
                .as_i64()
                .unwrap_or(i64::MIN);
            if max >= max_time_ms {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the querier did not see the store gateway's blocks within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bytes of the files under `p`, recursively; only files named `name` when
/// given.
pub(crate) fn dir_bytes(p: &Path, name: Option<&str>) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_bytes(&path, name)
            } else if name.is_none_or(|n| e.file_name() == n) {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}
