//! `strata tools bench compact`: the compactor's throughput and memory.
//!
//! It writes `--blocks` 2h blocks of `--series` counters at 15 s (plus one
//! newer block, which the planner never picks) into a FILESYSTEM bucket, then
//! runs one compactor pass in this process: 2h → 8h → 2d where chunks are
//! copied, then raw → 5m of the 2d block. Throughput is per core (the merge
//! and the downsampling run on one thread); the peak RSS is this process's
//! over the whole pass, reset after the data was written. A second part
//! downsamples `--series-1h` series over 10 days to 5m and times 5m → 1h.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use prometheus_client::registry::Registry;
use strata_chunkenc::{RawChunk, XorChunk};
use strata_compact::downsample::{downsample_block, RES_1H, RES_5M};
use strata_compact::{Compactor, CompactorOptions, Metrics};
use strata_model::Labels;
use strata_objstore::{Bucket, BucketConfig};
use strata_storage::ChunkMeta;
use strata_tsdb::block::{Block, BlockWriter, BlockWriterOptions};
use tokio_util::sync::CancellationToken;

use super::bench_proc::dir_bytes;

/// `strata tools bench compact` flags.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Series per block.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// 2h blocks to compact (24 = 2 days: 2h → 8h → 2d).
    #[arg(long, default_value_t = 24)]
    blocks: usize,
    /// Series of the 10-day data set of the 5m → 1h measurement (0: skip).
    #[arg(long = "series-1h", default_value_t = 1000)]
    series_1h: usize,
    /// Working directory (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// An hour, ms.
pub(super) const H: i64 = 3_600_000;
/// 2023-12-31T00:00:00Z, a multiple of 2 days.
const T0: i64 = 1_703_980_800_000;
/// 2023-12-21T00:00:00Z, a multiple of 14 days (the largest compaction level).
pub(super) const T0_14D: i64 = 1_703_116_800_000;

fn out(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{s}");
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Writes one block of `series` counters `bench_requests_total` sampled every
/// `step` ms over `[from, to)`; returns its directory and sample count.
///
/// With `gauges` (the downsampling benchmark's data set), also as many gauges
/// `bench_gauge` with the same other labels, and counters that go on from
/// where the previous block of the same length ended (no resets between
/// blocks from [`T0_14D`] on). Without it, counters start again in each block
/// as they always have, so that `bench compact`'s numbers stay comparable.
pub(super) fn write_block(
    dir: &Path,
    series: usize,
    from: i64,
    to: i64,
    step: i64,
    gauges: bool,
) -> anyhow::Result<(PathBuf, u64)> {
    let names: &[&str] = if gauges {
        &["bench_gauge", "bench_requests_total"]
    } else {
        &["bench_requests_total"]
    };
    let labels: Vec<(usize, bool, Labels)> = names
        .iter()
        .flat_map(|&name| {
            (0..series).map(move |i| {
                let l = Labels::from_pairs([
                    ("__name__", name.to_string()),
                    ("instance", format!("host-{:03}", i % 100)),
                    ("series", format!("{i:06}")),
                ]);
                (i, name == "bench_gauge", l)
            })
        })
        .collect();
    let mut symbols: Vec<String> = labels
        .iter()
        .flat_map(|(_, _, l)| {
            l.iter()
                .flat_map(|x| [x.name.to_string(), x.value.to_string()])
        })
        .collect();
    symbols.sort();
    symbols.dedup();
    let mut sorted: Vec<&(usize, bool, Labels)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.2.compare(&b.2));
    let mut w = BlockWriter::create(dir, BlockWriterOptions::default())?;
    w.add_symbols(symbols.iter().map(String::as_str))?;
    let mut chunks = Vec::new();
    for (i, gauge, l) in sorted.into_iter().map(|(i, g, l)| (*i, *g, l)) {
        chunks.clear();
        let mut t = from;
        // The increments below add up to 10 over any 5 samples in a row.
        let carried = if gauges {
            (from - T0_14D).max(0) / step * 2
        } else {
            0
        };
        let mut v = (i * 7) as f64 + carried as f64;
        while t < to {
            let mut a = XorChunk::new().appender();
            let first = t;
            let mut last = t;
            for _ in 0..120 {
                if t >= to {
                    break;
                }
                if gauge {
                    // A gauge wandering over [0, 100) in steps of 0.1.
                    let k = (t / step).wrapping_mul(7919) + i as i64 * 31;
                    v = k.rem_euclid(1000) as f64 / 10.0;
                } else {
                    // A counter with a few distinct increments, as scrapes give.
                    v += ((t / step + i as i64) % 5) as f64;
                }
                a.append(t, v)?;
                last = t;
                t += step;
            }
            chunks.push(ChunkMeta {
                min_time: first,
                max_time: last,
                chunk: RawChunk::from_xor(a.finish()),
            });
        }
        w.add_series(l, &chunks)?;
    }
    let n = w.num_samples();
    let meta = w.finish(Some((from, to)))?.context("empty block")?;
    Ok((dir.join(meta.ulid.to_string()), n))
}

/// Runs the measurement.
pub fn run(a: CompactArgs) -> anyhow::Result<()> {
    if a.blocks < 4 || a.series == 0 {
        bail!("--blocks must be at least 4 and --series positive");
    }
    let tmp = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("strata-bench-compact-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let (staging, bucket_dir) = (tmp.join("staging"), tmp.join("bucket"));
    std::fs::create_dir_all(&staging)?;
    std::fs::create_dir_all(&bucket_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bucket = Bucket::from_config(
        &BucketConfig::filesystem(bucket_dir.display().to_string()),
        &mut Registry::default(),
    )?;
    let labels = BTreeMap::from([("cluster".to_string(), "bench".to_string())]);
    let t = Instant::now();
    let mut samples = 0u64;
    for k in 0..=a.blocks as i64 {
        let (dir, n) = write_block(
            &staging,
            a.series,
            T0 + k * 2 * H,
            T0 + (k + 1) * 2 * H,
            15_000,
            false,
        )?;
        if k < a.blocks as i64 {
            samples += n;
        }
        rt.block_on(strata_block::upload_block(
            &bucket, &dir, &labels, "sidecar",
        ))?;
        std::fs::remove_dir_all(&dir)?;
    }
    let source_bytes = dir_bytes(&bucket_dir, None) * a.blocks as u64 / (a.blocks as u64 + 1);
    out(&format!(
        "bucket: {} + 1 blocks x {} series, {samples} samples to compact ({:.1} MiB), written in {:.1?}",
        a.blocks,
        a.series,
        source_bytes as f64 / 1048576.0,
        t.elapsed()
    ));

    // Compaction only; samples are counted once per level they pass through.
    let mut opts = CompactorOptions {
        data_dir: tmp.join("data"),
        downsampling_disabled: true,
        ..Default::default()
    };
    opts.sync.consistency_delay = Duration::ZERO;
    let mut reg = Registry::default();
    let metrics = Metrics::new(&mut reg, 0, 0);
    let c = Compactor::new(
        bucket.clone(),
        opts,
        metrics.clone(),
        CancellationToken::new(),
    )?;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = peak_rss_kib();
    let t = Instant::now();
    let r = rt
        .block_on(c.run_once())
        .map_err(|f| anyhow::anyhow!("compaction pass failed: {f}"))?;
    let took = t.elapsed();
    let peak = peak_rss_kib();
    let secs = took.as_secs_f64();
    let merged = metrics.samples_written.get();
    let merge_secs = metrics.merge_seconds.get();
    let copied = metrics.chunks_copied.get();
    out(&format!(
        "compaction 2h -> 8h -> 2d: {} new blocks, {merged} samples written ({copied} chunks copied, {} re-encoded)",
        r.compacted.len(),
        metrics.chunks_reencoded.get(),
    ));
    out(&format!(
        "  merge only: {merge_secs:.2}s, {:.1} M samples/s on one core",
        merged as f64 / merge_secs / 1e6,
    ));
    out(&format!(
        "  whole pass (sync, download, merge, upload): {took:.2?}, {:.1} M samples/s, {:.1} MiB/s of the source blocks",
        merged as f64 / secs / 1e6,
        source_bytes as f64 / secs / 1048576.0,
    ));
    out(&format!(
        "  peak RSS of the pass: {:.0} MiB (process before the pass: {:.0} MiB)",
        peak as f64 / 1024.0,
        base as f64 / 1024.0
    ));

    // Raw -> 5m of the 2d block, in place.
    let two_days = rt.block_on(async {
        let mut best = None;
        for id in strata_block::list_blocks(&bucket).await?.complete {
            let m = strata_block::download_meta(&bucket, id).await?;
            if m.block.max_time - m.block.min_time >= 40 * H && m.thanos.downsample.resolution == 0
            {
                best = Some(m);
            }
        }
        Ok::<_, anyhow::Error>(best)
    })?;
    let Some(two_days) = two_days else {
        bail!("no block of 40h or more after compaction");
    };
    let local = tmp.join("local");
    let bdir = local.join(two_days.block.ulid.to_string());
    rt.block_on(strata_block::download_block(
        &bucket,
        two_days.block.ulid,
        &bdir,
    ))?;
    let block = Block::open(&bdir)?;
    let raw_bytes = dir_bytes(&bdir, None);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let m5 = downsample_block(&block, &two_days, &local, RES_5M)?;
    let took = t.elapsed().as_secs_f64();
    out(&format!(
        "downsampling raw -> 5m: {} raw samples, {:.1} MiB in {took:.2}s: {:.1} M samples/s, {:.1} MiB/s (one core), peak RSS {:.0} MiB",
        two_days.block.stats.num_samples,
        raw_bytes as f64 / 1048576.0,
        two_days.block.stats.num_samples as f64 / took / 1e6,
        raw_bytes as f64 / took / 1048576.0,
        peak_rss_kib() as f64 / 1024.0
    ));
    drop(block);
    let _ = m5;

    if a.series_1h > 0 {
        // 10 days of 1-minute raw data -> 5m (not timed) -> 1h (timed).
        let (dir, n) = write_block(&local, a.series_1h, T0, T0 + 240 * H, 60_000, false)?;
        let mut meta = strata_block::Meta::read_from_dir(&dir)?;
        meta.thanos.labels = labels.clone();
        let raw = Block::open(&dir)?;
        let m5 = downsample_block(&raw, &meta, &local, RES_5M)?;
        let d5 = local.join(m5.block.ulid.to_string());
        let b5 = Block::open(&d5)?;
        let bytes5 = dir_bytes(&d5, None);
        let t = Instant::now();
        let m1h = downsample_block(&b5, &m5, &local, RES_1H)?;
        let took = t.elapsed().as_secs_f64();
        out(&format!(
            "downsampling 5m -> 1h: {} series, 10 days ({n} raw samples, {} 5m aggregates, {:.1} MiB) in {took:.2}s: {:.1} MiB/s of 5m blocks, {:.1} M raw samples/s (one core); 1h block {} aggregates",
            a.series_1h,
            m5.block.stats.num_samples,
            bytes5 as f64 / 1048576.0,
            bytes5 as f64 / took / 1048576.0,
            n as f64 / took / 1e6,
            m1h.block.stats.num_samples,
        ));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
