//! Store gateway figures on a bucket of many blocks.
//!
//! ```text
//! cargo run --release -p strata-store --example bucket_bench -- [DIR] [BLOCKS] [SERIES]
//! ```
//!
//! Writes BLOCKS (default 20) consecutive 2h blocks of SERIES (default 10000)
//! series, 15s apart, into a filesystem bucket under DIR (default a temporary
//! directory; an existing bucket there is reused), then measures in a fresh
//! process: resident memory at rest per block and per series after the sync
//! built the index-headers, after all index-headers were loaded, bytes fetched
//! from the bucket per query against the block size, and query latency (cold
//! index cache, then warm) for a few selectors.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use prometheus_client::registry::Registry;
use strata_model::{Labels, MatchType, Matcher};
use strata_objstore::{Bucket, BucketOptions};
use strata_storage::{Frame, LabelRequest, Queryable, SelectRequest};
use strata_store::{BucketStore, StoreOptions};
use strata_tsdb::block::{BlockWriter, BlockWriterOptions};
use strata_tsdb::cut::ChunkCutter;

const BLOCK_MS: i64 = 7_200_000;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn bucket_at(dir: &Path) -> Bucket {
    std::fs::create_dir_all(dir).unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    Bucket::new(
        Arc::new(store),
        "bench",
        BucketOptions::default(),
        &mut Registry::default(),
    )
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn prepare(root: &Path, blocks: usize, series: usize) {
    let bucket = bucket_at(&root.join("bucket"));
    let local = root.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let mut labels: Vec<Labels> = (0..series)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("instance", format!("host-{i:05}")),
                ("job", format!("job-{}", i % 10)),
            ])
        })
        .collect();
    labels.sort();
    let mut syms: Vec<String> = labels
        .iter()
        .flat_map(|l| l.iter().flat_map(|x| [x.name.clone(), x.value.clone()]))
        .collect();
    syms.sort();
    syms.dedup();
    let ext = [("cluster".to_string(), "bench".to_string())]
        .into_iter()
        .collect();
    for b in 0..blocks {
        let start = b as i64 * BLOCK_MS;
        let mut w = BlockWriter::create(&local, BlockWriterOptions::default()).unwrap();
        let id = w.ulid();
        w.add_symbols(syms.iter().map(String::as_str)).unwrap();
        for (i, l) in labels.iter().enumerate() {
            let mut c = ChunkCutter::new(BLOCK_MS);
            let mut v = (i * 7) as f64;
            for k in 0..(BLOCK_MS / 15_000) {
                v += ((k as usize * 31 + i) % 17) as f64;
                c.append(start + k * 15_000, v).unwrap();
            }
            w.add_series(l, &c.finish()).unwrap();
        }
        w.finish(Some((start, start + BLOCK_MS))).unwrap();
        let dir = local.join(id.to_string());
        strata_block::upload_block(&bucket, &dir, &ext, "test")
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        println!("prepared block {}/{blocks}", b + 1);
    }
}

async fn run_query(s: &BucketStore, req: &SelectRequest) -> (usize, usize, usize) {
    let mut st = s.select(req).await.unwrap();
    let (mut n, mut samples, mut warnings) = (0, 0, 0);
    while let Some(f) = st.next().await {
        match f.unwrap() {
            Frame::Series(x) => {
                n += 1;
                samples += x
                    .chunks()
                    .iter()
                    .map(|c| c.chunk.num_samples().unwrap_or(0))
                    .sum::<usize>();
            }
            Frame::Warning(_) => warnings += 1,
        }
    }
    (n, samples, warnings)
}

async fn measure(root: &Path) {
    let bucket_dir = root.join("bucket");
    let bucket = bucket_at(&bucket_dir);
    let total_size = dir_size(&bucket_dir);
    let data_dir = root.join("data");
    let _ = std::fs::remove_dir_all(&data_dir);
    let rss0 = rss_bytes();
    let s = BucketStore::new(
        bucket,
        StoreOptions::new(&data_dir),
        &mut Registry::default(),
    )
    .unwrap();
    let t = Instant::now();
    let rep = s.sync().await.unwrap();
    let sync_time = t.elapsed();
    let rss1 = rss_bytes();
    let stats = s.stats();
    let blocks = stats.blocks.max(1) as f64;
    let series = stats.series.max(1) as f64;
    let block_size = total_size as f64 / blocks;
    println!(
        "bucket: {} blocks, {} series in all, {:.1} MiB ({:.1} MiB per block)",
        stats.blocks,
        stats.series,
        total_size as f64 / 1048576.0,
        block_size / 1048576.0
    );
    println!(
        "sync (index-headers built): {:?}, read {:.2} MiB from the bucket, {:?}",
        sync_time,
        s.bytes_fetched() as f64 / 1048576.0,
        rep
    );
    println!(
        "index-headers on disk: {:.2} MiB",
        dir_size(&data_dir) as f64 / 1048576.0
    );
    println!(
        "RSS at rest after sync: +{:.2} MiB = {:.1} KiB per block, {:.1} bytes per series",
        (rss1.saturating_sub(rss0)) as f64 / 1048576.0,
        rss1.saturating_sub(rss0) as f64 / blocks / 1024.0,
        rss1.saturating_sub(rss0) as f64 / series
    );
    let all = LabelRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        ..Default::default()
    };
    s.label_names(&all).await.unwrap();
    let rss2 = rss_bytes();
    let stats = s.stats();
    println!(
        "RSS with all index-headers loaded: +{:.2} MiB = {:.1} KiB per block, {:.1} bytes per series (index-header heap {:.2} MiB)",
        rss2.saturating_sub(rss0) as f64 / 1048576.0,
        rss2.saturating_sub(rss0) as f64 / blocks / 1024.0,
        rss2.saturating_sub(rss0) as f64 / series,
        stats.index_header_bytes as f64 / 1048576.0
    );
    let end = stats.blocks as i64 * BLOCK_MS - 1;
    let m = |k, n: &str, v: &str| Matcher::new(k, n, v).unwrap();
    let cases: Vec<(&str, i64, i64, Vec<Matcher>)> = vec![
        (
            "1 series, all blocks",
            0,
            end,
            vec![m(MatchType::Equal, "instance", "host-01234")],
        ),
        (
            "10 series (regex), all blocks",
            0,
            end,
            vec![m(MatchType::Regex, "instance", "host-0000.")],
        ),
        (
            "1/10 of series, last 2h",
            end - BLOCK_MS + 1,
            end,
            vec![m(MatchType::Equal, "job", "job-3")],
        ),
        (
            "1/10 of series, all blocks",
            0,
            end,
            vec![m(MatchType::Equal, "job", "job-3")],
        ),
        (
            "all series, last 2h",
            end - BLOCK_MS + 1,
            end,
            vec![m(MatchType::Equal, "__name__", "m")],
        ),
    ];
    println!("| query | series | samples | blocks touched | cold: ms, bytes fetched (per block touched, % of block) | warm: ms, bytes fetched |");
    println!("|---|---|---|---|---|---|");
    for (name, mint, maxt, ms) in cases {
        let req = SelectRequest::new(mint, maxt, ms);
        let touched = ((maxt - mint) / BLOCK_MS + 1).min(stats.blocks as i64) as f64;
        let mut row = Vec::new();
        let mut shape = (0, 0);
        for _ in 0..2 {
            let before = s.bytes_fetched();
            let t = Instant::now();
            let (n, samples, w) = run_query(&s, &req).await;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(w, 0);
            shape = (n, samples);
            let bytes = s.bytes_fetched() - before;
            row.push(format!(
                "{ms:.1} ms, {:.1} KiB ({:.1} KiB/block, {:.3}% of a block)",
                bytes as f64 / 1024.0,
                bytes as f64 / touched / 1024.0,
                bytes as f64 / touched / block_size * 100.0
            ));
        }
        println!(
            "| {name} | {} | {} | {touched} | {} | {} |",
            shape.0, shape.1, row[0], row[1]
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--measure") {
        measure(Path::new(&args[2])).await;
        return;
    }
    let tmp;
    let root: PathBuf = match args.get(1) {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    let blocks: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    let series: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    if !root.join("bucket").exists() {
        prepare(&root, blocks, series).await;
    }
    // Measure in a fresh process so that memory used to write the blocks does
    // not count.
    let st = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--measure", root.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
}
