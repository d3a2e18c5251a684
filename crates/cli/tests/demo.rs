//! End-to-end test of `strata demo`: the README's main command brings up two
//! replicas, their sidecars, a store gateway and a deduplicating querier, answers
//! queries, and stops every component on SIGINT.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The demo process; killed (with its children, by their kill-on-drop) if the
/// test fails before stopping it.
struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn query(url: &str, q: &str, extra: &str) -> Value {
    let r = ureq::get(&format!("{url}/api/v1/query"))
        .query("query", q)
        .query("dedup", extra)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap();
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

fn result_len(v: &Value) -> usize {
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn demo_runs_the_stack_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("demo.log");
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "demo",
            &format!("--data-dir={}", dir.path().join("d").display()),
            &format!("--http-address=127.0.0.1:{port}"),
            "--scrape-interval=1s",
        ])
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap();
    let mut demo = Demo { child };

    // Ready: the banner names the URL; then both replicas' self-scrapes show up
    // once deduplicated and twice without dedup.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (dedup, raw) = loop {
        assert!(
            demo.child.try_wait().unwrap().is_none(),
            "demo exited early:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let banner = std::fs::read_to_string(&log).unwrap_or_default();
        if banner.contains("Press Ctrl-C to stop") {
            let d = query(&url, "up", "true");
            let r = query(&url, "up", "false");
            if result_len(&d) == 2 && result_len(&r) == 4 {
                break (d, r);
            }
        }
        assert!(
            Instant::now() < deadline,
            "demo not answering within 90s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let banner = std::fs::read_to_string(&log).unwrap();
    assert!(banner.contains(&url), "{banner}");
    for s in dedup["data"]["result"].as_array().unwrap() {
        assert!(s["metric"].get("prometheus_replica").is_none(), "{s}");
        assert_eq!(s["metric"]["cluster"], "demo", "{s}");
        assert_eq!(s["value"][1], "1", "{s}");
    }
    let replicas: Vec<&str> = raw["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["prometheus_replica"].as_str().unwrap())
        .collect();
    assert_eq!(replicas.iter().filter(|r| **r == "a").count(), 2, "{raw}");
    assert_eq!(replicas.iter().filter(|r| **r == "b").count(), 2, "{raw}");

    // The querier sees both sidecars and the store gateway.
    let stores: Value = serde_json::from_str(
        &ureq::get(&format!("{url}/api/v1/stores"))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stores["data"]["sidecar"].as_array().map(Vec::len),
        Some(2),
        "{stores}"
    );
    assert_eq!(
        stores["data"]["store"].as_array().map(Vec::len),
        Some(1),
        "{stores}"
    );

    // The compactor ran its first pass over the bucket.
    let compact_log = dir.path().join("d/logs/compact.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&compact_log)
        .unwrap_or_default()
        .contains("compaction pass done")
    {
        assert!(
            Instant::now() < deadline,
            "compactor did no pass within 30s:\n{}",
            std::fs::read_to_string(&compact_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The bucket config is the embedded default: a local filesystem bucket.
    let bucket = std::fs::read_to_string(dir.path().join("d/bucket.yml")).unwrap();
    assert!(bucket.contains("type: FILESYSTEM"), "{bucket}");

    // Children, from the "started" log lines.
    let pids: Vec<u32> = banner
        .lines()
        .filter(|l| l.contains("started"))
        .filter_map(|l| l.split("pid=").nth(1))
        .filter_map(|p| p.split_whitespace().next())
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 7, "{banner}");
    assert!(pids.iter().all(|p| pid_alive(*p)));

    // Ctrl-C: every component stops and the demo exits 0.
    Command::new("kill")
        .arg("-INT")
        .arg(demo.child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = demo.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not stop within 60s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "demo exited with {status}:\n{text}");
    assert_eq!(text.matches("stopped").count(), 7, "{text}");
    for p in pids {
        assert!(
            !pid_alive(p),
            "component {p} still running after the demo stopped"
        );
    }
}
