//! `strata tools bench store`: the global view over a bucket, next to a real
//! Prometheus answering from its local copy of the same blocks, in one run.
//!
//! It writes `--hours` of 2h blocks (10,000 series each), uploads them to a
//! FILESYSTEM bucket with Thanos meta.json, and starts `strata store` on the bucket
//! and `strata query` on the store gateway. It reports the store gateway's resident
//! memory at rest per block and per series (next to the blocks' index size), the
//! bytes it fetched from the bucket per query (next to the size of the blocks the
//! query touches), range-query latency through querier → store gateway next to
//! Prometheus on the same blocks, and the peak resident memory of both during
//! each query (the kernel's high-water mark, reset before each query through
//! `/proc/<pid>/clear_refs`). The last query reads every series of every block.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use super::bench_proc::{dir_bytes, free_port, metric_sum, query_range, wait_for_store, Proc};
use super::bench_query::{copy_dir, write_blocks, T0_MS};

/// Flags of `bench store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Hours of 15 s samples, in 2h blocks of 10,000 series (48h: 24 blocks).
    #[arg(long, default_value_t = 48)]
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
    /// `--debug.series-batch-size` of the store gateway (default: its own).
    #[arg(long)]
    series_batch_size: Option<usize>,
}

fn out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// Resident memory now (VmRSS), KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak resident memory (VmHWM) of `pid` to its current RSS, so a
/// later [`Proc::peak_rss_kib`] is the peak since now. Linux only; false when
/// the kernel refuses.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Uploads every block under `src` to the bucket configured in `cfg`.
fn upload_all(src: &Path, cfg: &Path) -> anyhow::Result<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let bc = strata_objstore::BucketConfig::from_file(cfg)?;
        let mut reg = prometheus_client::registry::Registry::default();
        let bucket = strata_objstore::Bucket::from_config(&bc, &mut reg)?;
        let labels = BTreeMap::from([("cluster".to_string(), "bench".to_string())]);
        let mut n = 0;
        for e in std::fs::read_dir(src)? {
            let p = e?.path();
            if p.join("meta.json").exists() {
                strata_block::upload_block(&bucket, &p, &labels, "sidecar").await?;
                n += 1;
            }
        }
        Ok::<_, anyhow::Error>(n)
    })
}

/// Runs the comparison.
pub fn run(a: StoreArgs) -> anyhow::Result<()> {
    if a.rounds == 0 || a.hours < 2 {
        bail!("--rounds must be at least 1 and --hours at least 2");
    }
    let tmp = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("strata-bench-store-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let (blocks_dir, pdir, bucket_dir) = (
        tmp.join("blocks"),
        tmp.join("prometheus"),
        tmp.join("bucket"),
    );
    for d in [&blocks_dir, &bucket_dir, &tmp.join("store")] {
        std::fs::create_dir_all(d)?;
    }
    let t = Instant::now();
    let samples = write_blocks(&blocks_dir, a.hours)?;
    let cfg = tmp.join("bucket.yml");
    std::fs::write(
        &cfg,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket_dir.display()
        ),
    )?;
    let nblocks = upload_all(&blocks_dir, &cfg)?;
    copy_dir(&blocks_dir, &pdir)?;
    let index_bytes = dir_bytes(&blocks_dir, Some("index"));
    let total_bytes = dir_bytes(&blocks_dir, None);
    let series = 10_000u64;
    out(&format!(
        "bucket: {nblocks} blocks x {series} series, {samples} samples, {:.1} MiB ({:.1} MiB of index), written in {:.1?}",
        total_bytes as f64 / 1048576.0,
        index_bytes as f64 / 1048576.0,
        t.elapsed()
    ));

    let me = std::env::current_exe()?;
    let start_store = |data_dir: &Path, cfg: &Path| -> anyhow::Result<(Proc, u16)> {
        let (sg, sh) = (free_port()?, free_port()?);
        let mut cmd = Command::new(&me);
        cmd.arg("store")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--objstore.config-file={}", cfg.display()))
            .arg(format!("--grpc-address=127.0.0.1:{sg}"))
            .arg(format!("--http-address=127.0.0.1:{sh}"));
        if let Some(n) = a.series_batch_size {
            cmd.arg(format!("--debug.series-batch-size={n}"));
        }
        let (p, _) = Proc::start(&mut cmd, sh)?;
        Ok((p, sg))
    };
    // The same binary over an empty bucket: what any store gateway costs.
    let empty_cfg = tmp.join("empty.yml");
    std::fs::create_dir_all(tmp.join("empty-bucket"))?;
    std::fs::write(
        &empty_cfg,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            tmp.join("empty-bucket").display()
        ),
    )?;
    let base_kib = {
        let (p, _) = start_store(&tmp.join("empty-store"), &empty_cfg)?;
        std::thread::sleep(Duration::from_secs(1));
        rss_kib(p.pid())
    };
    let (store, sg) = start_store(&tmp.join("store"), &cfg)?;
    let (qg, qh) = (free_port()?, free_port()?);
    let (query, _) = Proc::start(
        Command::new(&me)
            .arg("query")
            .arg(format!("--endpoint=127.0.0.1:{sg}"))
            .arg(format!("--grpc-address=127.0.0.1:{qg}"))
            .arg(format!("--http-address=127.0.0.1:{qh}")),
        qh,
    )?;
    let pcfg = tmp.join("prometheus.yml");
    std::fs::write(&pcfg, "global:\n  scrape_interval: 15s\n")?;
    let pp = free_port()?;
    let (prom, _) = Proc::start(
        Command::new(&a.prometheus)
            .arg(format!("--config.file={}", pcfg.display()))
            .arg(format!("--storage.tsdb.path={}", pdir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{pp}"))
            .arg("--storage.tsdb.retention.time=100y"),
        pp,
    )?;
    // At rest: synced, index-headers built, no query yet.
    let rest_kib = rss_kib(store.pid());
    // The querier learns the store's time range from its Info refresh.
    let end = (T0_MS + a.hours * 3_600_000) / 1000;
    wait_for_store(&query.url, end * 1000 - 15_000, Duration::from_secs(60))?;
    let added_kib = rest_kib.saturating_sub(base_kib) as f64;
    out(&format!(
        "store gateway at rest (after sync): RSS {:.1} MiB, {:.1} MiB over an empty bucket's {:.1} MiB = {:.0} KiB per block, {:.1} B per series-in-block; blocks' index size {:.1} MiB",
        rest_kib as f64 / 1024.0,
        added_kib / 1024.0,
        base_kib as f64 / 1024.0,
        added_kib / nblocks as f64,
        added_kib * 1024.0 / (nblocks as f64 * series as f64),
        index_bytes as f64 / 1048576.0
    ));

    let block_bytes = total_bytes as f64 / nblocks as f64;
    let classes: Vec<(&str, String, i64)> = vec![
        (
            "rate+sum by, 6h",
            "sum by (job) (rate(bench_requests_total[5m]))".into(),
            6,
        ),
        (
            "topk, 6h",
            "topk(5, rate(bench_requests_total[5m]))".into(),
            6,
        ),
        (
            "histogram_quantile, 6h",
            "histogram_quantile(0.9, sum by (le) (rate(bench_latency_seconds_bucket[5m])))".into(),
            6,
        ),
        (
            "regex selector, 6h",
            "sum by (zone) (bench_gauge{instance=~\"i0[1-4].*\", zone!~\"z[34]\"})".into(),
            6,
        ),
        (
            "one series, all",
            "bench_gauge{instance=\"i001\",job=\"j1\",zone=\"z1\"}".into(),
            a.hours,
        ),
        (
            "rate+sum by, all",
            "sum by (job) (rate(bench_requests_total[5m]))".into(),
            a.hours,
        ),
        (
            "all series, all",
            "count({__name__=~\"bench_.+\"})".into(),
            a.hours,
        ),
    ];
    out(&format!(
        "range queries (step: range/360): one cold run, then the median of {} warm runs; bytes the cold run fetched from the bucket; peak RSS during the query's runs (store gateway: cold and warm; prometheus: its runs):",
        a.rounds
    ));
    out(&format!(
        "{:<24} {:>11} {:>12} {:>12} {:>7} {:>14} {:>16} {:>10} {:>10}",
        "query",
        "cold",
        "query→store",
        "prometheus",
        "ratio",
        "cold fetched",
        "of blocks read",
        "SG peak",
        "prom peak"
    ));
    let time_one = |url: &str, params: &[(&str, String)]| -> anyhow::Result<Duration> {
        Ok(query_range(url, params)?.0)
    };
    let time = |url: &str, params: &[(&str, String)]| -> anyhow::Result<Duration> {
        let mut ts = (0..a.rounds)
            .map(|_| time_one(url, params))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ts.sort();
        Ok(ts[ts.len() / 2])
    };
    let mut ratios = Vec::new();
    // Peaks over all queries (per-query peaks reset the kernel's high-water mark).
    let (mut sg_max, mut prom_max) = (0u64, 0u64);
    for (name, q, hours) in &classes {
        let start = end - hours * 3600;
        let step = (hours * 3600 / 360).max(15);
        let p = vec![
            ("query", q.clone()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ];
        // The first run is cold (nothing cached): its bytes are what a query
        // costs the bucket; then the median of warm runs.
        let before = metric_sum(&store.url, "strata_store_bucket_fetched_bytes_total", "")?;
        let peaks = reset_peak_rss(store.pid());
        let cold = time_one(&query.url, &p)?;
        let fetched =
            metric_sum(&store.url, "strata_store_bucket_fetched_bytes_total", "")? - before;
        let s = time(&query.url, &p)?;
        let sg_peak = store.peak_rss_kib();
        let peaks = reset_peak_rss(prom.pid()) && peaks;
        let pr = time(&prom.url, &p)?;
        let prom_peak = prom.peak_rss_kib();
        sg_max = sg_max.max(sg_peak);
        prom_max = prom_max.max(prom_peak);
        let peak = |kib: u64| {
            if peaks {
                format!("{} MiB", kib >> 10)
            } else {
                "n/a".to_string()
            }
        };
        let touched = (*hours as f64 / 2.0).ceil() + 1.0;
        let ratio = s.as_secs_f64() / pr.as_secs_f64();
        ratios.push(ratio);
        out(&format!(
            "{name:<24} {:>11.2?} {:>12.2?} {:>12.2?} {:>6.2}x {:>10.2} MiB {:>15.1}% {:>10} {:>10}",
            cold,
            s,
            pr,
            ratio,
            fetched / 1048576.0,
            100.0 * fetched / (touched.min(nblocks as f64) * block_bytes),
            peak(sg_peak),
            peak(prom_peak)
        ));
    }
    ratios.sort_by(f64::total_cmp);
    out(&format!(
        "latency ratio query→store / prometheus: median {:.2}x, worst {:.2}x",
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    ));
    out(&format!(
        "peak RSS over all queries: store gateway {} MiB, querier {} MiB, prometheus {} MiB",
        sg_max.max(store.peak_rss_kib()) >> 10,
        query.peak_rss_kib() >> 10,
        prom_max.max(prom.peak_rss_kib()) >> 10
    ));
    drop(query);
    drop(store);
    drop(prom);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
