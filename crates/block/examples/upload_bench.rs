//! Upload, download and ranged-read throughput of blocks: a FILESYSTEM bucket
//! against a real S3 server (Garage, started here on loopback).
//!
//! `cargo run -p strata-block --release --example upload_bench -j 2 -- [BLOCKS] [MIB_PER_BLOCK]`
//!
//! Builds `BLOCKS` (default 8) block directories of about `MIB_PER_BLOCK`
//! (default 26) MiB each: a real meta.json from a backfill, three chunk
//! segments and an index of random bytes (`upload_block` does not decode
//! them). Uploads them all with `upload_block`, downloads them with
//! `download_block`, then reads 2000 random 16 KiB ranges of the chunk
//! segments, one after another, and prints MiB/s for each on stderr.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use prometheus_client::registry::Registry;
use rand::{Rng, RngCore, SeedableRng};
use strata_block::{download_block, upload_block, Meta};
use strata_objstore::{Bucket, BucketConfig};
use strata_tsdb::backfill::{create_blocks_from_openmetrics, BackfillOptions};
use ulid::Ulid;

const RANGE: u64 = 16 * 1024;
const READS: usize = 2000;

fn make_blocks(dir: &Path, n: usize, mib: usize) -> (Vec<PathBuf>, u64) {
    let seed = dir.join("seed");
    let text = "# TYPE up gauge\nup{job=\"a\"} 1 0\nup{job=\"a\"} 1 60\n# EOF\n";
    let metas = create_blocks_from_openmetrics(
        text.as_bytes(),
        &seed,
        &BackfillOptions::default(),
        |_, _, _| {},
    )
    .unwrap();
    let template = Meta::read_from_dir(&seed.join(metas[0].ulid.to_string())).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut total = 0u64;
    let mut dirs = Vec::new();
    let seg = (mib * 1024 * 1024 * 8 / 26) as u64; // three segments + an index of 2/26
    for _ in 0..n {
        let id = Ulid::new();
        let d = dir.join(id.to_string());
        std::fs::create_dir_all(d.join("chunks")).unwrap();
        let mut meta = template.clone();
        meta.block.ulid = id;
        meta.write_to_dir(&d).unwrap();
        for (name, size) in [
            ("chunks/000001", seg),
            ("chunks/000002", seg),
            ("chunks/000003", seg),
            ("index", seg / 4),
        ] {
            let mut buf = vec![0u8; size as usize];
            rng.fill_bytes(&mut buf);
            std::fs::write(d.join(name), &buf).unwrap();
            total += size;
        }
        dirs.push(d);
    }
    (dirs, total)
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

async fn run(name: &str, b: &Bucket, dirs: &[PathBuf], total: u64, scratch: &Path) {
    let labels: BTreeMap<String, String> = [("bench".to_string(), "1".to_string())].into();
    let t = Instant::now();
    let mut ids = Vec::new();
    for d in dirs {
        ids.push(
            upload_block(b, d, &labels, "bench")
                .await
                .unwrap()
                .block
                .ulid,
        );
    }
    let up = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for id in &ids {
        let dst = scratch.join(format!("{name}-{id}"));
        download_block(b, *id, &dst).await.unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }
    let down = t.elapsed().as_secs_f64();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let seg = std::fs::metadata(dirs[0].join("chunks/000001"))
        .unwrap()
        .len();
    let t = Instant::now();
    let mut read = 0u64;
    for _ in 0..READS {
        let id = ids[rng.gen_range(0..ids.len())];
        let off = rng.gen_range(0..seg - RANGE);
        let r: Bytes = b
            .get_range(
                &format!("{id}/chunks/00000{}", rng.gen_range(1..=3)),
                off,
                RANGE,
            )
            .await
            .unwrap();
        read += r.len() as u64;
    }
    let ranged = t.elapsed().as_secs_f64();
    eprintln!(
        "{name:>10}: upload {:7.1} MiB/s ({up:.2}s) | download {:7.1} MiB/s ({down:.2}s) | \
         {READS} ranged reads of 16 KiB: {:6.1} MiB/s, {:7.0} reads/s",
        mib_s(total, up),
        mib_s(total, down),
        mib_s(read, ranged),
        READS as f64 / ranged
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(8);
    let mib = args.get(1).copied().unwrap_or(26);
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, total) = make_blocks(&tmp.path().join("blocks"), n, mib);
    eprintln!(
        "{n} blocks, {:.1} MiB in total",
        total as f64 / (1024.0 * 1024.0)
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scratch = tmp.path().join("scratch");
    let fs_yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        tmp.path().join("bucket").display()
    );
    let fs = Bucket::from_config(
        &BucketConfig::parse(&fs_yaml).unwrap(),
        &mut Registry::default(),
    )
    .unwrap();
    rt.block_on(run("FILESYSTEM", &fs, &dirs, total, &scratch));
    let garage = strata_testkit::GarageProcess::start();
    let s3 = Bucket::from_config(
        &BucketConfig::parse(&garage.objstore_yaml()).unwrap(),
        &mut Registry::default(),
    )
    .unwrap();
    rt.block_on(run("S3/Garage", &s3, &dirs, total, &scratch));
}
