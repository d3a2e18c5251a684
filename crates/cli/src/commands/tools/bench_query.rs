//! `strata tools bench query`: PromQL latency and memory of `strata server` next to a
//! real Prometheus on the same blocks, in one run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::bench_proc::{free_port, Proc};
use clap::Args;
use strata_model::Labels;
use strata_tsdb::block::{BlockWriter, BlockWriterOptions};
use strata_tsdb::cut::ChunkCutter;

/// Flags of `bench query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Hours of 15 s samples (blocks of 2h).
    #[arg(long, default_value_t = 24)]
    hours: i64,
    /// Repetitions per query (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The prometheus binary to compare with.
    #[arg(long, default_value = "prometheus")]
    prometheus: String,
    /// Working directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub(crate) const T0_MS: i64 = 1_700_000_000_000;

fn out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// 10,000 series: 3,000 counters, 2,000 histogram buckets, 5,000 gauges.
fn series_set() -> Vec<(Labels, u8)> {
    let mut v = Vec::new();
    for j in 0..10 {
        for i in 0..100 {
            for code in ["200", "404", "500"] {
                v.push((
                    Labels::from_pairs([
                        ("__name__", "bench_requests_total".to_string()),
                        ("code", code.into()),
                        ("instance", format!("i{i:03}")),
                        ("job", format!("j{j}")),
                    ]),
                    0,
                ));
            }
            for z in 0..5 {
                v.push((
                    Labels::from_pairs([
                        ("__name__", "bench_gauge".to_string()),
                        ("instance", format!("i{i:03}")),
                        ("job", format!("j{j}")),
                        ("zone", format!("z{z}")),
                    ]),
                    1,
                ));
            }
        }
        for i in 0..20 {
            for le in [
                "0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
            ] {
                v.push((
                    Labels::from_pairs([
                        ("__name__", "bench_latency_seconds_bucket".to_string()),
                        ("instance", format!("i{i:03}")),
                        ("job", format!("j{j}")),
                        ("le", le.into()),
                    ]),
                    2,
                ));
            }
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub(crate) fn write_blocks(dir: &Path, hours: i64) -> anyhow::Result<u64> {
    let series = series_set();
    let mut syms: Vec<String> = series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|x| [x.name.clone(), x.value.clone()]))
        .collect();
    syms.sort();
    syms.dedup();
    let block = 7_200_000i64;
    let mut total = 0u64;
    for b in 0..(hours * 3_600_000 / block) {
        let (lo, hi) = (T0_MS + b * block, T0_MS + (b + 1) * block);
        let mut w = BlockWriter::create(dir, BlockWriterOptions::default())?;
        w.add_symbols(syms.iter().map(String::as_str))?;
        for (idx, (l, kind)) in series.iter().enumerate() {
            let mut c = ChunkCutter::new(block);
            let phase = (idx as i64 * 7919) % 15_000 + 1;
            let mut t = lo + phase;
            let mut k = (lo - T0_MS) / 15_000;
            while t < hi {
                let h = (idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (k as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let v = match kind {
                    0 => (k * (1 + (idx as i64 % 7)) + (h % 5) as i64) as f64,
                    1 => 20.0 + (h % 1000) as f64 / 100.0,
                    _ => (k * (1 + (idx as i64 % 10))) as f64,
                };
                c.append(t, v)?;
                total += 1;
                t += 15_000;
                k += 1;
            }
            w.add_series(l, &c.finish())?;
        }
        w.finish(None)?;
    }
    Ok(total)
}

fn start(cmd: &mut Command, port: u16) -> anyhow::Result<Proc> {
    Ok(Proc::start(cmd, port)?.0)
}

pub(crate) fn copy_dir(src: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), to)?;
        }
    }
    Ok(())
}

/// Runs the comparison.
pub fn run(a: QueryArgs) -> anyhow::Result<()> {
    let tmp = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("strata-bench-query-{}", std::process::id())),
    };
    let sdir = tmp.join("strata");
    let pdir = tmp.join("prometheus");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&sdir)?;
    let t = Instant::now();
    let samples = write_blocks(&sdir, a.hours)?;
    out(&format!(
        "data: 10000 series, {samples} samples over {}h, written in {:.1?}",
        a.hours,
        t.elapsed()
    ));
    copy_dir(&sdir, &pdir)?;
    let cfg = tmp.join("config.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n")?;

    let pport = free_port()?;
    let prom = start(
        Command::new(&a.prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", pdir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .arg("--storage.tsdb.retention.time=100y"),
        pport,
    )?;
    let sport = free_port()?;
    let me = std::env::current_exe()?;
    let strata = start(
        Command::new(me)
            .arg("server")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", sdir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{sport}"))
            .arg("--storage.tsdb.retention.time=100y"),
        sport,
    )?;

    let end = (T0_MS + a.hours * 3_600_000) / 1000;
    let start_s = end - 6 * 3600;
    let classes: Vec<(&str, String)> = vec![
        (
            "rate+sum by",
            "sum by (job) (rate(bench_requests_total[5m]))".into(),
        ),
        ("topk", "topk(5, rate(bench_requests_total[5m]))".into()),
        (
            "histogram_quantile",
            "histogram_quantile(0.9, sum by (le) (rate(bench_latency_seconds_bucket[5m])))".into(),
        ),
        (
            "regex selector",
            "sum by (zone) (bench_gauge{instance=~\"i0[1-4].*\", zone!~\"z[34]\"})".into(),
        ),
        (
            "subquery",
            "max_over_time(rate(bench_requests_total{job=\"j1\"}[5m])[1h:1m])".into(),
        ),
        (
            "count by all series",
            "count by (job) ({__name__=~\"bench_.*\"})".into(),
        ),
    ];
    out(&format!(
        "range queries over the last 6h, step 60s, median of {} runs:",
        a.rounds
    ));
    out(&format!(
        "{:<22} {:>12} {:>12} {:>8}",
        "class", "strata", "prometheus", "ratio"
    ));
    let time = |url: &str, path: &str, params: &[(&str, String)]| -> anyhow::Result<Duration> {
        let mut ts = Vec::new();
        for _ in 0..a.rounds {
            let mut req = ureq::get(&format!("{url}{path}"));
            for (k, v) in params {
                req = req.query(k, v);
            }
            let t = Instant::now();
            let r = req.call().with_context(|| format!("{url}{path}"))?;
            let _ = r.into_string()?;
            ts.push(t.elapsed());
        }
        ts.sort();
        Ok(ts[ts.len() / 2])
    };
    for (name, q) in &classes {
        let p = vec![
            ("query", q.clone()),
            ("start", start_s.to_string()),
            ("end", end.to_string()),
            ("step", "60".into()),
        ];
        let s = time(&strata.url, "/api/v1/query_range", &p)?;
        let pr = time(&prom.url, "/api/v1/query_range", &p)?;
        out(&format!(
            "{name:<22} {:>12.2?} {:>12.2?} {:>7.2}x",
            s,
            pr,
            s.as_secs_f64() / pr.as_secs_f64()
        ));
    }
    let p = vec![("start", start_s.to_string()), ("end", end.to_string())];
    let s = time(&strata.url, "/api/v1/label/instance/values", &p)?;
    let pr = time(&prom.url, "/api/v1/label/instance/values", &p)?;
    out(&format!(
        "{:<22} {:>12.2?} {:>12.2?} {:>7.2}x",
        "label values",
        s,
        pr,
        s.as_secs_f64() / pr.as_secs_f64()
    ));
    out(&format!(
        "peak RSS: strata {} MiB, prometheus {} MiB",
        strata.peak_rss_kib() >> 10,
        prom.peak_rss_kib() >> 10
    ));
    drop(strata);
    drop(prom);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
