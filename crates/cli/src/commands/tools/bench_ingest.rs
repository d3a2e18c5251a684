//! `strata tools bench ingest`: remote-write ingest of `strata server` next to a real
//! Prometheus with the same load, in one run: sustained samples/s, peak RSS per
//! active series, WAL replay time and bytes per sample on disk after compaction.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bench_proc::{free_port, Proc};
use clap::Args;

/// Flags of `bench ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Active series.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Rounds of load per server: every series gets one sample per round, 15 s
    /// apart in sample time, so both servers hold the same data.
    #[arg(long, default_value_t = 60)]
    rounds: u64,
    /// Series per remote-write request.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// The prometheus binary to compare with.
    #[arg(long, default_value = "prometheus")]
    prometheus: String,
    /// Which servers to run, comma-separated (e.g. `strata` to measure only ours).
    #[arg(long, default_value = "strata,prometheus", value_delimiter = ',')]
    servers: Vec<String>,
    /// Measure ingest and memory only (no restart, replay or compaction phase).
    #[arg(long)]
    ingest_only: bool,
    /// Working directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const T0: i64 = 1_700_000_000_000;

fn out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// The encoded label fields (`Label` messages inside a `TimeSeries`) of every
/// series, built once so that the load generator spends its CPU on sending, not
/// on formatting: it shares the 2 cores with the server under test.
fn encoded_labels(n: usize) -> Vec<Vec<u8>> {
    let mut l = Vec::with_capacity(64);
    (0..n)
        .map(|i| {
            let mut ts = Vec::with_capacity(96);
            let inst = format!("host-{}", i / 100);
            let ser = i.to_string();
            for (n, v) in [
                ("__name__", "bench_ingest"),
                ("instance", inst.as_str()),
                ("job", "bench"),
                ("series", ser.as_str()),
            ] {
                l.clear();
                field_bytes(&mut l, 1, n.as_bytes());
                field_bytes(&mut l, 2, v.as_bytes());
                field_bytes(&mut ts, 1, &l);
            }
            ts
        })
        .collect()
}

/// A snappy-compressed remote-write 1.0 request: series `lo..hi`, one sample each.
fn request(
    labels: &[Vec<u8>],
    lo: usize,
    hi: usize,
    t: i64,
    round: u64,
    buf: &mut Vec<u8>,
) -> Vec<u8> {
    buf.clear();
    let mut ts = Vec::with_capacity(128);
    let mut l = Vec::with_capacity(32);
    for (i, enc) in labels.iter().enumerate().take(hi).skip(lo) {
        ts.clear();
        ts.extend_from_slice(enc);
        l.clear();
        l.push(1 << 3 | 1);
        l.extend_from_slice(&((round * (1 + i as u64 % 7)) as f64).to_le_bytes());
        l.push(2 << 3);
        varint(&mut l, t as u64);
        field_bytes(&mut ts, 2, &l);
        field_bytes(buf, 1, &ts);
    }
    snap::raw::Encoder::new()
        .compress_vec(buf)
        .unwrap_or_default()
}

/// Sends `a.rounds` rounds of one sample per series starting at `start_round`;
/// returns acknowledged samples and the next round.
fn load(url: &str, a: &IngestArgs, labels: &Arc<Vec<Vec<u8>>>, start_round: u64) -> (u64, u64) {
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let round_done = Arc::new(std::sync::Barrier::new(a.senders));
    let rounds = Arc::new(AtomicU64::new(start_round));
    let end_round = start_round + a.rounds;
    let mut hs = Vec::new();
    for k in 0..a.senders {
        let (acked, stop, barrier, rounds, labels) = (
            acked.clone(),
            stop.clone(),
            round_done.clone(),
            rounds.clone(),
            labels.clone(),
        );
        let url = format!("{url}/api/v1/write");
        let (n, batch, senders) = (a.series, a.batch, a.senders);
        hs.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build();
            let mut buf = Vec::new();
            let mut round = start_round;
            loop {
                let t = T0 + round as i64 * 15_000;
                let mut b = k;
                while b * batch < n {
                    let (lo, hi) = (b * batch, ((b + 1) * batch).min(n));
                    let body = request(&labels, lo, hi, t, round, &mut buf);
                    let r = agent
                        .post(&url)
                        .set("Content-Type", "application/x-protobuf")
                        .set("Content-Encoding", "snappy")
                        .set("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .send_bytes(&body);
                    if matches!(&r, Ok(resp) if resp.status() / 100 == 2) {
                        acked.fetch_add((hi - lo) as u64, Ordering::Relaxed);
                    }
                    b += senders;
                }
                round += 1;
                if k == 0 {
                    rounds.store(round, Ordering::Relaxed);
                    if round >= end_round {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                barrier.wait();
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        }));
    }
    for h in hs {
        let _ = h.join();
    }
    (
        acked.load(Ordering::Relaxed),
        rounds.load(Ordering::Relaxed),
    )
}

/// Bytes per sample over the blocks of a data directory (chunks + index).
fn blocks_bytes_per_sample(dir: &Path) -> Option<(f64, usize)> {
    let mut bytes = 0u64;
    let mut samples = 0u64;
    let mut n = 0;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::read(p.join("meta.json")) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&meta).ok()?;
        samples += v["stats"]["numSamples"].as_u64().unwrap_or(0);
        bytes += std::fs::metadata(p.join("index"))
            .map(|m| m.len())
            .unwrap_or(0);
        for c in std::fs::read_dir(p.join("chunks")).ok()?.flatten() {
            bytes += c.metadata().map(|m| m.len()).unwrap_or(0);
        }
        n += 1;
    }
    (samples > 0).then(|| (bytes as f64 / samples as f64, n))
}

/// Runs the comparison.
pub fn run(a: IngestArgs) -> anyhow::Result<()> {
    let tmp = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("strata-bench-ingest-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let cfg = tmp.join("config.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;
    let me = std::env::current_exe()?;
    out(&format!(
        "load: {} series x {} rounds, {} series per request, {} senders; 5m blocks so compaction happens",
        a.series, a.rounds, a.batch, a.senders
    ));
    out(&format!(
        "{:<12} {:>14} {:>16} {:>12} {:>16}",
        "server", "samples/s", "peak RSS/series", "WAL replay", "bytes/sample"
    ));
    let labels = Arc::new(encoded_labels(a.series));
    let mut results = Vec::new();
    for name in ["strata", "prometheus"] {
        if !a.servers.iter().any(|s| s == name) {
            continue;
        }
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir)?;
        let cmd = |port: u16| {
            let mut c = if name == "strata" {
                let mut c = Command::new(&me);
                c.arg("server");
                c
            } else {
                Command::new(&a.prometheus)
            };
            c.arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-remote-write-receiver")
                .arg("--storage.tsdb.retention.time=100y")
                .arg("--storage.tsdb.min-block-duration=5m")
                .arg("--storage.tsdb.max-block-duration=5m");
            c
        };
        let port = free_port()?;
        let (mut p, _) = Proc::start(&mut cmd(port), port)?;
        let started = Instant::now();
        let (acked, rounds) = load(&p.url, &a, &labels, 0);
        let rate = acked as f64 / started.elapsed().as_secs_f64();
        let rss_per_series = p.peak_rss_kib() as f64 * 1024.0 / a.series as f64;
        p.terminate();
        if a.ingest_only {
            out(&format!("{name:<12} {rate:>14.0} {rss_per_series:>14.0} B"));
            results.push((rate, rss_per_series));
            continue;
        }
        let port = free_port()?;
        let (mut p, replay) = Proc::start(&mut cmd(port), port)?;
        // One more short load so the head passes 1.5 block ranges, then give both
        // servers their compaction cycle (Prometheus checks every minute).
        let short = IngestArgs {
            rounds: 5,
            ..clone_args(&a)
        };
        let _ = load(&p.url, &short, &labels, rounds);
        std::thread::sleep(Duration::from_secs(75));
        p.terminate();
        let bps = blocks_bytes_per_sample(&dir);
        out(&format!(
            "{name:<12} {:>14.0} {:>14.0} B {:>12.2?} {:>16}",
            rate,
            rss_per_series,
            replay,
            bps.map(|(b, n)| format!("{b:.3} ({n} blocks)"))
                .unwrap_or_else(|| "no blocks".into())
        ));
        results.push((rate, rss_per_series));
    }
    if let [s, p] = results.as_slice() {
        out(&format!(
            "ratio: ingest {:.2}x, memory per series {:.2}x",
            s.0 / p.0,
            s.1 / p.1
        ));
    }
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

fn clone_args(a: &IngestArgs) -> IngestArgs {
    IngestArgs {
        series: a.series,
        rounds: a.rounds,
        batch: a.batch,
        senders: a.senders,
        prometheus: a.prometheus.clone(),
        dir: a.dir.clone(),
        servers: a.servers.clone(),
        ingest_only: a.ingest_only,
    }
}
