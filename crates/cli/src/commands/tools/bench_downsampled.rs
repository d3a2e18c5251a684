//! `strata tools bench downsampled`: what downsampling saves a long range
//! query through querier → store gateway.
//!
//! It writes `--days` of 2h blocks (`--series` counters and as many gauges,
//! one sample every `--scrape-interval`) into a FILESYSTEM bucket with the
//! external labels `{cluster="bench"}`, runs the compactor in this process
//! until it has nothing left to do (2h → 8h → 2d → 14d, raw → 5m, 5m → 1h),
//! and prints the bucket's blocks per resolution. Then it starts `strata
//! store` (with a 1 MB index cache) and `strata query` and runs each range
//! query over the whole period with `max_source_resolution=0s` (raw) and
//! `=auto` (step/5). Each round restarts both servers: the first query after
//! the restart is "cold" (empty index cache; the OS page cache stays warm),
//! an immediate repeat is "warm" (what the 1 MB index cache keeps). It
//! reports the medians of latency and of the bytes the store gateway fetched
//! from the bucket (the delta of `strata_store_bucket_fetched_bytes_total`),
//! and the ratios raw/auto. Which resolution answered is found by bytes: a
//! cold `count_over_time(<metric>[1h])` at each explicit resolution gives
//! each resolution's bytes, and a query fetched those of the one it read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use prometheus_client::registry::Registry;
use strata_compact::downsample::{RES_1H, RES_5M};
use strata_compact::{Compactor, CompactorOptions, Metrics};
use strata_objstore::{Bucket, BucketConfig};
use tokio_util::sync::CancellationToken;

use super::bench_compact::{write_block, H, T0_14D};
use super::bench_proc::{dir_bytes, free_port, metric_sum, query_range, wait_for_store, Proc};

/// Flags of `bench downsampled`.
#[derive(Debug, Args)]
pub struct DownsampledArgs {
    /// Counters `bench_requests_total`, and as many gauges `bench_gauge`.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Days of data, in 2h blocks (and the range of the queries).
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Seconds between samples.
    #[arg(long = "scrape-interval", default_value_t = 60)]
    scrape_interval: i64,
    /// Rounds per query and resolution (each restarts the servers; medians
    /// are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Working directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const FETCHED: &str = "strata_store_bucket_fetched_bytes_total";
const BLOCKS_QUERIED: &str = "thanos_bucket_store_series_blocks_queried_total";

fn out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// Removes the temporary working directory on drop, also after an error.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn mib(b: f64) -> f64 {
    b / 1048576.0
}

fn median<T: Copy + PartialOrd>(v: &mut [T]) -> Option<T> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}

fn res_name(ms: i64) -> &'static str {
    match ms {
        0 => "raw",
        RES_5M => "5m",
        RES_1H => "1h",
        _ => "other",
    }
}

/// `max_source_resolution` of a resolution.
fn res_param(ms: i64) -> &'static str {
    match ms {
        0 => "0s",
        RES_5M => "5m",
        _ => "1h",
    }
}

fn span_name(ms: i64) -> String {
    if ms % (24 * H) == 0 {
        format!("{}d", ms / (24 * H))
    } else {
        format!("{}h", (ms + H / 2) / H)
    }
}

/// Writes the 2h blocks (plus one newer block, which the compactor's planner
/// leaves alone as it would a just-uploaded one) and uploads them.
fn fill_bucket(
    rt: &tokio::runtime::Runtime,
    bucket: &Bucket,
    tmp: &Path,
    a: &DownsampledArgs,
) -> anyhow::Result<()> {
    let staging = tmp.join("staging");
    std::fs::create_dir_all(&staging)?;
    let labels = BTreeMap::from([("cluster".to_string(), "bench".to_string())]);
    let t = Instant::now();
    let blocks = a.days * 12;
    let mut samples = 0u64;
    for k in 0..=blocks {
        let (from, to) = (T0_14D + k * 2 * H, T0_14D + (k + 1) * 2 * H);
        let step = a.scrape_interval * 1000;
        let (dir, n) = write_block(&staging, a.series, from, to, step, true)?;
        samples += n;
        rt.block_on(strata_block::upload_block(bucket, &dir, &labels, "sidecar"))?;
        std::fs::remove_dir_all(&dir)?;
    }
    out(&format!(
        "bucket: {blocks} + 1 blocks of 2h x {} series ({} counters, {} gauges, one sample per {}s): {samples} samples, {:.1} MiB, written and uploaded in {:.1?}",
        2 * a.series,
        a.series,
        a.series,
        a.scrape_interval,
        mib(dir_bytes(&tmp.join("bucket"), None) as f64),
        t.elapsed()
    ));
    Ok(())
}

/// Runs compactor passes until one creates no block.
fn compact(rt: &tokio::runtime::Runtime, bucket: &Bucket, tmp: &Path) -> anyhow::Result<()> {
    let mut opts = CompactorOptions {
        data_dir: tmp.join("compact"),
        downsampling_disabled: false,
        ..Default::default()
    };
    opts.sync.consistency_delay = Duration::ZERO;
    opts.sync.delete_delay = Duration::ZERO;
    let metrics = Metrics::new(&mut Registry::default(), 0, 0);
    let c = Compactor::new(bucket.clone(), opts, metrics, CancellationToken::new())?;
    let t = Instant::now();
    for pass in 1..=5 {
        let tp = Instant::now();
        let r = rt
            .block_on(c.run_once())
            .map_err(|f| anyhow::anyhow!("compaction pass {pass} failed: {f}"))?;
        out(&format!(
            "compactor pass {pass}: {} blocks compacted, {} downsampled, {} deleted in {:.1?}",
            r.compacted.len(),
            r.downsampled.len(),
            r.deleted.len(),
            tp.elapsed()
        ));
        if !r.marked_unusable.is_empty() {
            bail!(
                "the compactor marked blocks unusable: {:?}",
                r.marked_unusable
            );
        }
        if r.compacted.is_empty() && r.downsampled.is_empty() {
            break;
        }
    }
    out(&format!(
        "compaction and downsampling took {:.1?}",
        t.elapsed()
    ));
    Ok(())
}

/// Prints the bucket's blocks per resolution (count, lengths, size); returns
/// the resolutions.
fn census(
    rt: &tokio::runtime::Runtime,
    bucket: &Bucket,
    bucket_dir: &Path,
) -> anyhow::Result<BTreeSet<i64>> {
    let metas = rt.block_on(async {
        let mut v = Vec::new();
        for id in strata_block::list_blocks(bucket).await?.complete {
            if bucket.exists(&format!("{id}/deletion-mark.json")).await? {
                continue;
            }
            v.push(strata_block::download_meta(bucket, id).await?);
        }
        Ok::<_, anyhow::Error>(v)
    })?;
    let mut by_res: BTreeMap<i64, (BTreeMap<i64, usize>, u64)> = BTreeMap::new();
    for m in &metas {
        let e = by_res.entry(m.thanos.downsample.resolution).or_default();
        *e.0.entry(m.block.max_time - m.block.min_time).or_default() += 1;
        e.1 += dir_bytes(&bucket_dir.join(m.block.ulid.to_string()), None);
    }
    out("blocks in the bucket (not marked for deletion), by resolution:");
    for (res, (spans, bytes)) in &by_res {
        let n: usize = spans.values().sum();
        let spans: Vec<String> = spans
            .iter()
            .rev()
            .map(|(s, k)| format!("{k} x {}", span_name(*s)))
            .collect();
        out(&format!(
            "  {:<4} {n:>3} blocks ({}), {:.1} MiB",
            res_name(*res),
            spans.join(", "),
            mib(*bytes as f64)
        ));
    }
    Ok(by_res.keys().copied().collect())
}

/// One query as the table runs it: expression, step (s) and resolution.
struct Case {
    query: String,
    step: i64,
    res: &'static str,
}

/// Medians of one case's rounds.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    cold: Duration,
    warm: Duration,
    cold_bytes: f64,
    warm_bytes: f64,
    cold_chunks: f64,
    blocks: f64,
    /// Mean of the result's values (the same data at any resolution gives
    /// about the same).
    mean: f64,
    points: usize,
}

/// The store gateway and the querier on it, killed on drop.
struct Stack {
    store: Proc,
    query: Proc,
}

fn start_stack(tmp: &Path, cfg: &Path, max_time_ms: i64) -> anyhow::Result<Stack> {
    let me = std::env::current_exe()?;
    let (sg, sh) = (free_port()?, free_port()?);
    let (store, _) = Proc::start(
        Command::new(&me)
            .arg("store")
            .arg(format!("--data-dir={}", tmp.join("store").display()))
            .arg(format!("--objstore.config-file={}", cfg.display()))
            .arg(format!("--grpc-address=127.0.0.1:{sg}"))
            .arg(format!("--http-address=127.0.0.1:{sh}"))
            .arg("--index-cache-size=1MB"),
        sh,
    )?;
    let (qg, qh) = (free_port()?, free_port()?);
    let (query, _) = Proc::start(
        Command::new(&me)
            .arg("query")
            .arg(format!("--endpoint=127.0.0.1:{sg}"))
            .arg(format!("--grpc-address=127.0.0.1:{qg}"))
            .arg(format!("--http-address=127.0.0.1:{qh}")),
        qh,
    )?;
    wait_for_store(&query.url, max_time_ms, Duration::from_secs(60))?;
    Ok(Stack { store, query })
}

/// Mean of the values of a matrix result, and the number of points.
fn result_mean(body: &str) -> anyhow::Result<(f64, usize)> {
    let v: serde_json::Value = serde_json::from_str(body).context("decoding the result")?;
    let (mut sum, mut n) = (0.0, 0usize);
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        for p in s["values"].as_array().into_iter().flatten() {
            if let Some(x) = p.get(1).and_then(|x| x.as_str()?.parse::<f64>().ok()) {
                sum += x;
                n += 1;
            }
        }
    }
    Ok((if n == 0 { f64::NAN } else { sum / n as f64 }, n))
}

/// Runs `rounds` rounds of one case, each on freshly started servers.
fn run_case(
    c: &Case,
    rounds: usize,
    tmp: &Path,
    cfg: &Path,
    range: (i64, i64),
) -> anyhow::Result<Stats> {
    let params = vec![
        ("query", c.query.clone()),
        ("start", (range.0 / 1000).to_string()),
        ("end", (range.1 / 1000).to_string()),
        ("step", c.step.to_string()),
        ("max_source_resolution", c.res.to_string()),
    ];
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let (mut cb, mut wb, mut cc, mut bq) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last = (f64::NAN, 0);
    for _ in 0..rounds {
        let s = start_stack(tmp, cfg, range.1 - H)?;
        let url = &s.store.url;
        let chunks = "data_type=\"chunks\"";
        let (b0, c0, q0) = (
            metric_sum(url, FETCHED, "")?,
            metric_sum(url, FETCHED, chunks)?,
            metric_sum(url, BLOCKS_QUERIED, "")?,
        );
        let (t, body) = query_range(&s.query.url, &params)?;
        let (b1, c1, q1) = (
            metric_sum(url, FETCHED, "")?,
            metric_sum(url, FETCHED, chunks)?,
            metric_sum(url, BLOCKS_QUERIED, "")?,
        );
        cold.push(t);
        cb.push(b1 - b0);
        cc.push(c1 - c0);
        bq.push(q1 - q0);
        last = result_mean(&body)?;
        let (t, _) = query_range(&s.query.url, &params)?;
        warm.push(t);
        wb.push(metric_sum(url, FETCHED, "")? - b1);
    }
    let m = |v: &mut Vec<f64>| median(v).unwrap_or(f64::NAN);
    Ok(Stats {
        cold: median(&mut cold).unwrap_or_default(),
        warm: median(&mut warm).unwrap_or_default(),
        cold_bytes: m(&mut cb),
        warm_bytes: m(&mut wb),
        cold_chunks: m(&mut cc),
        blocks: m(&mut bq),
        mean: last.0,
        points: last.1,
    })
}

/// The resolution `auto` (step/5) allows, of those in the bucket.
fn auto_res(step_s: i64, have: &BTreeSet<i64>) -> i64 {
    have.iter()
        .copied()
        .filter(|&r| r <= step_s * 1000 / 5)
        .max()
        .unwrap_or(0)
}

/// The bytes a cold `count_over_time(metric[1h])` over the range fetches at
/// each resolution of the bucket (a function the querier never sends to a
/// finer resolution than asked): which resolution answered a query is the
/// one whose bytes it fetched.
fn fingerprints(
    metric: &str,
    have: &BTreeSet<i64>,
    tmp: &Path,
    cfg: &Path,
    range: (i64, i64),
) -> anyhow::Result<Vec<(i64, f64)>> {
    have.iter()
        .map(|&r| {
            let c = Case {
                query: format!("count_over_time({metric}[1h])"),
                step: 3600,
                res: res_param(r),
            };
            Ok((r, run_case(&c, 1, tmp, cfg, range)?.cold_bytes))
        })
        .collect()
}

/// Runs the benchmark.
pub fn run(a: DownsampledArgs) -> anyhow::Result<()> {
    if a.rounds == 0 || a.days < 2 || a.series == 0 || a.scrape_interval <= 0 {
        bail!("--rounds, --series and --scrape-interval must be positive, --days at least 2");
    }
    let tmp = match &a.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("strata-bench-downsampled-{}", std::process::id()))
        }
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let _cleanup = TempDir(a.dir.is_none().then(|| tmp.clone()));
    let bucket_dir = tmp.join("bucket");
    std::fs::create_dir_all(&bucket_dir)?;
    let cfg = tmp.join("bucket.yml");
    std::fs::write(
        &cfg,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket_dir.display()
        ),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bucket = Bucket::from_config(
        &BucketConfig::filesystem(bucket_dir.display().to_string()),
        &mut Registry::default(),
    )?;
    fill_bucket(&rt, &bucket, &tmp, &a)?;
    compact(&rt, &bucket, &tmp)?;
    let have = census(&rt, &bucket, &bucket_dir)?;
    drop(rt);

    let range = (T0_14D, T0_14D + a.days * 24 * H);
    let queries = [
        (
            "bench_requests_total",
            "sum by (instance) (rate(bench_requests_total[1h]))",
        ),
        ("bench_gauge", "max_over_time(bench_gauge[1h])"),
    ];
    let mut prints = BTreeMap::new();
    for (metric, _) in queries {
        prints.insert(metric, fingerprints(metric, &have, &tmp, &cfg, range)?);
    }
    out(&format!(
        "{}-day range queries through querier -> store gateway (--index-cache-size=1MB); per round both servers restart: cold = first query, warm = an immediate repeat; medians of {} rounds; MiB = bytes the store gateway fetched from the bucket",
        a.days, a.rounds
    ));
    out(&format!(
        "{:<52} {:>4} {:>4} {:>10} {:>10} {:>9} {:>10} {:>9} {:>6} {:>8} {:>10}",
        "query",
        "step",
        "res",
        "cold",
        "warm",
        "cold MiB",
        "chunks MiB",
        "warm MiB",
        "blocks",
        "points",
        "mean"
    ));
    let mut summary = Vec::new();
    for (metric, q) in queries {
        for step in [3600, 6 * 3600] {
            let mut row = Vec::new();
            for res in ["0s", "auto"] {
                let c = Case {
                    query: q.to_string(),
                    step,
                    res,
                };
                let s = run_case(&c, a.rounds, &tmp, &cfg, range)?;
                out(&format!(
                    "{q:<52} {:>4} {:>4} {:>10.2?} {:>10.2?} {:>9.2} {:>10.2} {:>9.2} {:>6} {:>8} {:>10.4}",
                    span_name(step * 1000),
                    if res == "0s" { "raw" } else { res },
                    s.cold,
                    s.warm,
                    mib(s.cold_bytes),
                    mib(s.cold_chunks),
                    mib(s.warm_bytes),
                    s.blocks,
                    s.points,
                    s.mean
                ));
                row.push(s);
            }
            if let [raw, auto] = row[..] {
                summary.push((metric, q, step, raw, auto));
            }
        }
    }
    out("which resolution answered: bytes of a cold count_over_time(<metric>[1h]) at each resolution:");
    for (metric, p) in &prints {
        let v: Vec<String> = p
            .iter()
            .map(|(r, b)| format!("{} {:.2} MiB", res_name(*r), mib(*b)))
            .collect();
        out(&format!("  {metric:<21} {}", v.join(", ")));
    }
    out("raw / auto (higher is better for auto):");
    for (metric, q, step, raw, auto) in summary {
        let answered = prints
            .get(metric)
            .into_iter()
            .flatten()
            .find(|(_, b)| (b - auto.cold_bytes).abs() <= 0.01 * auto.cold_bytes.max(1.0))
            .map_or("no single resolution", |(r, _)| res_name(*r));
        out(&format!(
            "  {q:<52} step {:>3}: cold latency {:>5.2}x, warm latency {:>5.2}x, cold bytes {:>5.2}x, warm bytes {:>5.2}x; auto read {answered} (step/5 allows {})",
            span_name(step * 1000),
            raw.cold.as_secs_f64() / auto.cold.as_secs_f64(),
            raw.warm.as_secs_f64() / auto.warm.as_secs_f64(),
            raw.cold_bytes / auto.cold_bytes,
            raw.warm_bytes / auto.warm_bytes,
            res_name(auto_res(step, &have))
        ));
    }
    Ok(())
}
