//! Helpers of `tools_bucket.rs`: `strata tools bucket` runs, FILESYSTEM
//! bucket configs, blocks made by backfill or `BlockWriter`, promtool dumps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use strata_chunkenc::{RawChunk, XorChunk};
use strata_model::Labels;
use strata_storage::ChunkMeta;
use strata_tsdb::block::{BlockWriter, BlockWriterOptions};

use super::strata;

/// A FILESYSTEM bucket in `dir`.
pub fn fs_yaml(dir: &Path) -> String {
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    )
}

/// `strata tools bucket <args>`.
pub fn run(args: &[&str]) -> Output {
    Command::new(strata())
        .args(["tools", "bucket"])
        .args(args)
        .output()
        .unwrap()
}

/// Runs a subcommand that must succeed; returns (stdout, stderr).
pub fn ok(args: &[&str]) -> (String, String) {
    let out = run(args);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?} failed:\n{se}");
    (so, se)
}

/// Runs a subcommand that must fail cleanly; returns stderr.
pub fn fail(args: &[&str]) -> String {
    let out = run(args);
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!se.contains("panicked"), "{args:?} panicked:\n{se}");
    assert!(se.contains("error:"), "{args:?}: no error message:\n{se}");
    se
}

/// Backfills OpenMetrics `text` into `<dir>/blocks`.
pub fn backfill(dir: &Path, text: &str, max_block: &str) -> PathBuf {
    let input = dir.join("input.om");
    std::fs::write(&input, text).unwrap();
    let blocks = dir.join("blocks");
    let out = Command::new(strata())
        .args(["tools", "tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(format!("--max-block-duration={max_block}"))
        .arg(&input)
        .arg(&blocks)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    blocks
}

/// One sample per `step` seconds of `name{labels}` over `[start, start+secs)`.
pub fn series_text(name: &str, labels: &str, start: i64, secs: i64, step: i64) -> String {
    let mut s = String::new();
    let mut t = start;
    while t < start + secs {
        s.push_str(&format!("{name}{{{labels}}} {} {t}\n", t % 97));
        t += step;
    }
    s
}

/// `upload-blocks` of `blocks` with one `--label`.
pub fn upload(blocks: &Path, obj: &str, label: &str) {
    let (_, se) = ok(&[
        "upload-blocks",
        "--objstore.config",
        obj,
        "--path",
        blocks.to_str().unwrap(),
        "--label",
        label,
    ]);
    assert!(se.contains("synced blocks"), "{se}");
}

/// `ls`: the block ULIDs.
pub fn ls(obj: &str) -> Vec<String> {
    ok(&["ls", "--objstore.config", obj])
        .0
        .lines()
        .map(str::to_string)
        .collect()
}

/// A block's meta.json in a FILESYSTEM bucket.
pub fn meta(bucket: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(bucket.join(id).join("meta.json")).unwrap()).unwrap()
}

/// ULID-named entries of a directory, sorted.
pub fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 26)
        .collect();
    v.sort();
    v
}

/// A block written with `BlockWriter`: one XOR chunk per timestamp list,
/// series in label order, the given meta range.
pub fn write_block(parent: &Path, series: &[(&str, Vec<Vec<i64>>)], range: (i64, i64)) -> String {
    let mut w = BlockWriter::create(parent, BlockWriterOptions::default()).unwrap();
    let labels: Vec<Labels> = series
        .iter()
        .map(|(n, _)| Labels::from_pairs([("__name__", *n)]))
        .collect();
    let mut syms: Vec<&str> = vec!["__name__"];
    syms.extend(series.iter().map(|(n, _)| *n));
    syms.sort();
    w.add_symbols(syms).unwrap();
    for (l, (_, chunks)) in labels.iter().zip(series) {
        let cms: Vec<ChunkMeta> = chunks
            .iter()
            .map(|ts| {
                let mut a = XorChunk::new().appender();
                for &t in ts {
                    a.append(t, 1.0).unwrap();
                }
                ChunkMeta {
                    min_time: ts[0],
                    max_time: *ts.last().unwrap(),
                    chunk: RawChunk::from_xor(a.finish()),
                }
            })
            .collect();
        w.add_series(l, &cms).unwrap();
    }
    w.finish(Some(range)).unwrap().unwrap().ulid.to_string()
}

/// `promtool tsdb dump` of one block directory (copied under `db`, which
/// testkit's dump copies again with the `wal/` promtool 2.42 needs).
pub fn promtool_dump(block_dir: &Path, db: &Path) -> String {
    let dst = db.join(block_dir.file_name().unwrap());
    strata_testkit::copy_dir(block_dir, &dst);
    strata_testkit::promtool_dump(db)
}
