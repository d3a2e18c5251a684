//! Crash safety: `strata server` is killed with SIGKILL at random moments during
//! remote-write ingest, 20 times. After each restart every sample whose write was
//! acknowledged (2xx) is there exactly once, and the data directory stays readable
//! by promtool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERIES: usize = 50;
const T0: i64 = 1_700_000_000_000;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A remote-write 1.0 `WriteRequest`, snappy-compressed: one sample per series at `t`.
fn write_request(t: i64) -> Vec<u8> {
    let mut req = Vec::new();
    for i in 0..SERIES {
        let mut ts = Vec::new();
        for (n, v) in [
            ("__name__", "crash_test"),
            ("series", &i.to_string()),
            ("zone", "z1"),
        ] {
            let mut l = Vec::new();
            put_bytes(&mut l, 1, n.as_bytes());
            put_bytes(&mut l, 2, v.as_bytes());
            put_bytes(&mut ts, 1, &l);
        }
        let mut s = Vec::new();
        s.push(1 << 3 | 1); // value: double
        s.extend_from_slice(&((t / 1000 + i as i64) as f64).to_le_bytes());
        s.push(2 << 3); // timestamp: varint
        put_varint(&mut s, t as u64);
        put_bytes(&mut ts, 2, &s);
        put_bytes(&mut req, 1, &ts);
    }
    snap::raw::Encoder::new().compress_vec(&req).unwrap()
}

fn start(dir: &Path, port: u16) -> Child {
    let cfg = dir.join("strata.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["server", "--web.enable-remote-write-receiver"])
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ureq::get(&format!("http://127.0.0.1:{port}/-/ready"))
            .call()
            .is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server not ready");
}

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_samples_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut next_t = T0;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..20 {
        let port = strata_testkit::free_port();
        let mut server = Killer(start(tmp.path(), port));
        wait_ready(port);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let acked = acked.clone();
            let start_t = next_t;
            std::thread::spawn(move || {
                let mut t = start_t;
                let url = format!("http://127.0.0.1:{port}/api/v1/write");
                while !stop.load(Ordering::Relaxed) {
                    let body = write_request(t);
                    let r = ureq::post(&url)
                        .set("Content-Type", "application/x-protobuf")
                        .set("Content-Encoding", "snappy")
                        .set("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .timeout(Duration::from_secs(5))
                        .send_bytes(&body);
                    match r {
                        Ok(resp) if resp.status() / 100 == 2 => acked.lock().unwrap().push(t),
                        Ok(_) | Err(_) => {}
                    }
                    t += 1000;
                }
                t
            })
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(50 + rng % 400));
        let _ = server.0.kill(); // SIGKILL
        let _ = server.0.wait();
        stop.store(true, Ordering::Relaxed);
        next_t = writer.join().unwrap();
        assert!(
            !acked.lock().unwrap().is_empty() || round < 3,
            "no write was acknowledged yet"
        );
    }

    // Every acknowledged sample exactly once: dump the data dir (blocks + WAL).
    let dump = api_util::strata_dump(&tmp.path().join("data"));
    let mut seen: BTreeMap<(String, i64), u32> = BTreeMap::new();
    for line in dump.lines() {
        let mut parts = line.rsplitn(3, ' ');
        let t: i64 = parts.next().unwrap().parse().unwrap();
        let _v = parts.next().unwrap();
        let series = parts.next().unwrap().to_string();
        *seen.entry((series, t)).or_default() += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "duplicated samples in the dump"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few acknowledged writes ({})",
        acked.len()
    );
    for t in &acked {
        for i in 0..SERIES {
            let key = (
                format!("{{__name__=\"crash_test\", series=\"{i}\", zone=\"z1\"}}"),
                *t,
            );
            assert!(seen.contains_key(&key), "acknowledged sample lost: {key:?}");
        }
    }
    // The data dir stays readable by the real promtool.
    let prom = strata_testkit::promtool_dump(&tmp.path().join("data"));
    assert_eq!(prom.lines().count(), dump.lines().count());
    // And a real Prometheus 2.42 opens it and answers from it.
    let copy = tmp.path().join("prom");
    strata_testkit::copy_dir(&tmp.path().join("data"), &copy);
    let p = strata_testkit::PrometheusProcess::start(&copy, &[]);
    let last = *acked.iter().max().unwrap();
    let v = p.query("count(crash_test)", (last as f64) / 1000.0);
    assert_eq!(
        v["data"]["result"][0]["value"][1],
        SERIES.to_string(),
        "{v}"
    );
}
