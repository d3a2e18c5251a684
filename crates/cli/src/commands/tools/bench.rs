//! `strata tools bench …`: repeatable measurements of hot paths, side by side with
//! Prometheus' own tools where the issue asks for it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strata_chunkenc::{RawChunk, SampleIterator, XorChunk, XorIterator};
use strata_model::{Labels, MatchType, Matcher};
use strata_storage::ChunkMeta;
use strata_tsdb::backfill::{create_blocks_from_openmetrics, BackfillOptions};
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use strata_tsdb::index::postings;

/// `strata tools bench` flags.
#[derive(Debug, Args)]
pub struct Config {
    #[command(subcommand)]
    cmd: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// XOR chunk encode/decode throughput on one core.
    Xor(XorArgs),
    /// Block write throughput and bytes/sample, next to `promtool tsdb create-blocks-from`.
    Backfill(BackfillArgs),
    /// Series selection latency and reader memory on a block with many series.
    Select(SelectArgs),
    /// PromQL latency and memory of `strata server` next to Prometheus on the same blocks.
    Query(super::bench_query::QueryArgs),
    /// Remote-write ingest of `strata server` next to Prometheus with the same load.
    Ingest(super::bench_ingest::IngestArgs),
    /// Store gateway memory, bucket bytes per query and latency through the
    /// querier, next to Prometheus on the same blocks.
    Store(super::bench_store::StoreArgs),
    /// Compactor throughput (2h → 8h → 2d, raw → 5m, 5m → 1h) and peak memory.
    Compact(super::bench_compact::CompactArgs),
    /// A 30-day range query through querier → store gateway at `auto`
    /// resolution next to raw: latency and bytes fetched from the bucket.
    Downsampled(super::bench_downsampled::DownsampledArgs),
}

#[derive(Debug, Args)]
struct XorArgs {
    /// Samples to encode and decode per round.
    #[arg(long, default_value_t = 12_000_000)]
    samples: usize,
    /// Rounds (the best is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[derive(Debug, Args)]
struct BackfillArgs {
    /// Number of series.
    #[arg(long, default_value_t = 2000)]
    series: usize,
    /// Hours of 15 s samples per series.
    #[arg(long, default_value_t = 6)]
    hours: usize,
    /// The promtool binary to compare with ("" to skip).
    #[arg(long, default_value = "promtool")]
    promtool: String,
    /// Working directory (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SelectArgs {
    /// Number of series in the block.
    #[arg(long, default_value_t = 1_000_000)]
    series: usize,
    /// Query repetitions (median reported).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Working directory (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs a bench subcommand.
pub async fn run(c: Config) -> anyhow::Result<()> {
    match c.cmd {
        BenchCommand::Xor(a) => xor(a),
        BenchCommand::Backfill(a) => backfill(a),
        BenchCommand::Select(a) => select(a),
        BenchCommand::Query(a) => {
            tokio::task::spawn_blocking(move || super::bench_query::run(a)).await?
        }
        BenchCommand::Ingest(a) => {
            tokio::task::spawn_blocking(move || super::bench_ingest::run(a)).await?
        }
        BenchCommand::Compact(a) => {
            tokio::task::spawn_blocking(move || super::bench_compact::run(a)).await?
        }
        BenchCommand::Store(a) => {
            tokio::task::spawn_blocking(move || super::bench_store::run(a)).await?
        }
        BenchCommand::Downsampled(a) => {
            tokio::task::spawn_blocking(move || super::bench_downsampled::run(a)).await?
        }
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
}

/// Deterministic realistic samples: 15 s scrapes with jitter, counters and gauges.
fn series_samples(seed: u64, n: usize, start_ms: i64) -> Vec<(i64, f64)> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let counter = seed.is_multiple_of(2);
    let mut v = 0.0f64;
    let mut t = start_ms + (seed % 15) as i64 * 1000;
    (0..n)
        .map(|_| {
            t += 15_000 + if next() % 10 == 0 { 125 } else { 0 };
            let r = next();
            if counter {
                v += (r % 50) as f64;
            } else {
                v = (r % 100_000) as f64 / 100.0;
            }
            (t, v)
        })
        .collect()
}

fn xor(a: XorArgs) -> anyhow::Result<()> {
    let per_series = 120;
    let nseries = (a.samples / per_series).max(1);
    let samples: Vec<Vec<(i64, f64)>> = (0..nseries as u64)
        .map(|i| series_samples(i, per_series, 1_700_000_000_000))
        .collect();
    let total = (nseries * per_series) as f64;
    let mut best_enc = Duration::MAX;
    let mut chunks = Vec::new();
    for _ in 0..a.rounds {
        let t = Instant::now();
        let cs: Vec<Vec<u8>> = samples
            .iter()
            .map(|s| {
                let mut ap = XorChunk::new().appender();
                for (t, v) in s {
                    let _ = ap.append(*t, *v);
                }
                ap.finish().into_bytes()
            })
            .collect();
        best_enc = best_enc.min(t.elapsed());
        chunks = cs;
    }
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    let mut best_dec = Duration::MAX;
    let mut sink = 0.0;
    for _ in 0..a.rounds {
        let t = Instant::now();
        for c in &chunks {
            let mut it = XorIterator::new(c);
            while let Ok(Some((_, v))) = it.next() {
                sink += v;
            }
        }
        best_dec = best_dec.min(t.elapsed());
    }
    out(&format!(
        "xor: {} samples in {} chunks, {:.3} bytes/sample (checksum {sink:e})",
        total,
        chunks.len(),
        bytes as f64 / total
    ));
    out(&format!(
        "encode: {:.1} M samples/s",
        total / best_enc.as_secs_f64() / 1e6
    ));
    out(&format!(
        "decode: {:.1} M samples/s ({:.0} MiB/s of chunk data)",
        total / best_dec.as_secs_f64() / 1e6,
        bytes as f64 / best_dec.as_secs_f64() / 1048576.0
    ));
    // Memory bandwidth for context: copy a 256 MiB buffer.
    let src = vec![1u8; 256 << 20];
    let mut dst = vec![0u8; 256 << 20];
    let mut best_copy = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        best_copy = best_copy.min(t.elapsed());
    }
    out(&format!(
        "memory bandwidth (memcpy, read+write): {:.1} GiB/s (check byte {})",
        2.0 * 256.0 / 1024.0 / best_copy.as_secs_f64(),
        dst[12345]
    ));
    Ok(())
}

fn gen_openmetrics(series: usize, hours: usize) -> (Vec<u8>, usize) {
    let start = 1_704_067_200_000i64;
    let n = hours * 3600 / 15;
    let mut s = String::new();
    let mut count = 0;
    for m in 0..(series / 100).max(1) {
        let name = format!("bench_metric_{m}");
        s.push_str(&format!("# TYPE {name} gauge\n"));
        for i in 0..100.min(series - m * 100) {
            let id = (m * 100 + i) as u64;
            for (t, v) in series_samples(id, n, start) {
                s.push_str(&format!(
                    "{name}{{instance=\"host-{i}:9100\",job=\"node\",shard=\"{}\"}} {v} {}.{:03}\n",
                    id % 7,
                    t / 1000,
                    t % 1000
                ));
                count += 1;
            }
        }
    }
    s.push_str("# EOF\n");
    (s.into_bytes(), count)
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                total += dir_size(&path);
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

fn chunk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            total += dir_size(&e.path().join("chunks"));
        }
    }
    total
}

fn backfill(a: BackfillArgs) -> anyhow::Result<()> {
    let tmp = tempfile_dir(a.dir.as_deref())?;
    let input = tmp.join("input.om.txt");
    let (text, samples) = gen_openmetrics(a.series, a.hours);
    std::fs::write(&input, &text).context("writing input")?;
    out(&format!(
        "input: {} series, {samples} samples, {} MiB of OpenMetrics",
        a.series,
        text.len() >> 20
    ));

    let ours = tmp.join("strata");
    let t = Instant::now();
    create_blocks_from_openmetrics(&text, &ours, &BackfillOptions::default(), |_, _, _| {})?;
    let ours_s = t.elapsed().as_secs_f64();
    let ours_bytes = dir_size(&ours);
    let ours_chunks = chunk_bytes(&ours);
    out(&format!(
        "strata:   {:.2} s, {:.2} M samples/s, {:.3} bytes/sample on disk ({:.3} in chunks)",
        ours_s,
        samples as f64 / ours_s / 1e6,
        ours_bytes as f64 / samples as f64,
        ours_chunks as f64 / samples as f64
    ));
    if a.promtool.is_empty() {
        return Ok(());
    }
    let theirs = tmp.join("promtool");
    let t = Instant::now();
    let st = Command::new(&a.promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&input)
        .arg(&theirs)
        .status()
        .with_context(|| format!("running {}", a.promtool))?;
    if !st.success() {
        bail!("promtool failed: {st}");
    }
    let theirs_s = t.elapsed().as_secs_f64();
    let theirs_bytes = dir_size(&theirs);
    let theirs_chunks = chunk_bytes(&theirs);
    out(&format!(
        "promtool: {:.2} s, {:.2} M samples/s, {:.3} bytes/sample on disk ({:.3} in chunks)",
        theirs_s,
        samples as f64 / theirs_s / 1e6,
        theirs_bytes as f64 / samples as f64,
        theirs_chunks as f64 / samples as f64
    ));
    out(&format!(
        "ratio: strata is {:.2}x faster, {:.3}x the bytes/sample",
        theirs_s / ours_s,
        ours_bytes as f64 / theirs_bytes as f64
    ));
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

fn tempfile_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let p = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("strata-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn select(a: SelectArgs) -> anyhow::Result<()> {
    let tmp = tempfile_dir(a.dir.as_deref())?;
    let blocks = tmp.join("select");
    let _ = std::fs::remove_dir_all(&blocks);
    std::fs::create_dir_all(&blocks)?;
    // 1M series: 100 jobs × instances; labels sorted as the index requires.
    let jobs: Vec<String> = (0..100).map(|j| format!("job-{j:02}")).collect();
    let per_job = a.series / jobs.len();
    let mut symbols: Vec<String> = vec![
        "__name__".into(),
        "instance".into(),
        "job".into(),
        "up".into(),
        "x".into(),
    ];
    symbols.extend(jobs.iter().cloned());
    let inst = |i: usize| format!("{}{i:07}", if i.is_multiple_of(10) { "a" } else { "b" });
    for i in 0..per_job {
        symbols.push(inst(i));
    }
    symbols.sort();
    symbols.dedup();
    let t = Instant::now();
    let mut w = BlockWriter::create(&blocks, BlockWriterOptions::default())?;
    w.add_symbols(symbols.iter().map(String::as_str))?;
    let mut ap = XorChunk::new().appender();
    for k in 0..4 {
        ap.append(k * 15_000, 1.0)?;
    }
    let chunk = RawChunk::from_xor(ap.finish());
    let meta = [ChunkMeta {
        min_time: 0,
        max_time: 45_000,
        chunk,
    }];
    // Series order: by labels (__name__, instance, job).
    let mut insts: Vec<String> = (0..per_job).map(inst).collect();
    insts.sort();
    for i in &insts {
        for j in &jobs {
            let l = Labels::from_pairs([
                ("__name__", "up"),
                ("instance", i.as_str()),
                ("job", j.as_str()),
            ]);
            w.add_series(&l, &meta)?;
        }
    }
    let m = w.finish(None)?.context("empty block")?;
    out(&format!(
        "wrote block of {} series in {:.1?}",
        m.stats.num_series,
        t.elapsed()
    ));

    let rss0 = rss_kib();
    let b = Block::open(&blocks.join(m.ulid.to_string()))?;
    let rss1 = rss_kib();
    let ms = vec![
        Matcher::equal("job", "job-07"),
        Matcher::new(MatchType::Regex, "instance", "a.*")?,
    ];
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..a.rounds {
        let t = Instant::now();
        let refs = postings::collect(b.index().postings_for_matchers(&ms)?);
        n = 0;
        for r in refs {
            if b.read_series(r, i64::MIN, i64::MAX, false)?.is_some() {
                n += 1;
            }
        }
        times.push(t.elapsed());
    }
    times.sort();
    let rss2 = rss_kib();
    out(&format!(
        "select {{job=\"job-07\", instance=~\"a.*\"}}: {n} series, median {:.2?}, min {:.2?} (labels + chunks)",
        times[times.len() / 2],
        times[0]
    ));
    out(&format!(
        "index size {} MiB; reader RSS after open {} MiB, after queries {} MiB",
        b.index().size() >> 20,
        rss1.saturating_sub(rss0) >> 10,
        rss2.saturating_sub(rss0) >> 10
    ));
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
