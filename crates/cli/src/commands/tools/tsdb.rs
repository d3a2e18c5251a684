//! `strata tools tsdb …`: promtool-compatible block tools.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strata_model::selector::parse_selector;
use strata_tsdb::backfill::{create_blocks_from_openmetrics, BackfillOptions};
use strata_tsdb::block::Block;
use strata_tsdb::meta::BlockMeta;
use strata_tsdb::Db;

use crate::gofmt::{base2_bytes, duration_ms, tabwrite, utc_time_ms};

/// `strata tools tsdb` flags.
#[derive(Debug, Args)]
pub struct Config {
    #[command(subcommand)]
    cmd: TsdbCommand,
}

#[derive(Debug, Subcommand)]
enum TsdbCommand {
    /// Create blocks from other formats.
    #[command(name = "create-blocks-from", subcommand)]
    CreateBlocksFrom(CreateBlocksFrom),
    /// List the blocks of a data directory.
    List(ListArgs),
    /// Analyze churn, label pair cardinality and compaction efficiency of a block.
    Analyze(AnalyzeArgs),
    /// Dump samples of a data directory, like `promtool tsdb dump`.
    Dump(DumpArgs),
}

#[derive(Debug, Subcommand)]
enum CreateBlocksFrom {
    /// Import samples from OpenMetrics text and write TSDB blocks.
    Openmetrics(OpenMetricsArgs),
}

#[derive(Debug, Args)]
struct OpenMetricsArgs {
    /// Maximum duration created blocks may span; anything less than 2h is ignored.
    #[arg(long = "max-block-duration", value_parser = parse_duration_ms, default_value = "2h")]
    max_block_duration: i64,
    /// Print human readable values.
    #[arg(short = 'r', long = "human-readable")]
    human_readable: bool,
    /// Do not print created blocks.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// OpenMetrics file to read samples from.
    input: PathBuf,
    /// Output directory for generated blocks.
    #[arg(default_value = "data/")]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Print human readable values.
    #[arg(short = 'r', long = "human-readable")]
    human_readable: bool,
    /// Database path.
    #[arg(default_value = "data/")]
    db_path: PathBuf,
}

#[derive(Debug, Args)]
struct AnalyzeArgs {
    /// How many items to show in each list.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Run extended analysis (chunk statistics).
    #[arg(long)]
    extended: bool,
    /// Database path.
    #[arg(default_value = "data/")]
    db_path: PathBuf,
    /// Block to analyze (default is the last block).
    block_id: Option<String>,
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// Minimum timestamp to dump, ms.
    #[arg(long = "min-time", default_value_t = i64::MIN, allow_hyphen_values = true)]
    min_time: i64,
    /// Maximum timestamp to dump, ms.
    #[arg(long = "max-time", default_value_t = i64::MAX, allow_hyphen_values = true)]
    max_time: i64,
    /// Series selector.
    #[arg(long = "match", default_value = "{__name__=~'(?s:.*)'}")]
    matcher: String,
    /// Database path.
    #[arg(default_value = "data/")]
    db_path: PathBuf,
}

/// Runs a `tools tsdb` subcommand.
pub async fn run(c: Config) -> anyhow::Result<()> {
    match c.cmd {
        TsdbCommand::CreateBlocksFrom(CreateBlocksFrom::Openmetrics(a)) => create_blocks(a).await,
        TsdbCommand::List(a) => list(a),
        TsdbCommand::Analyze(a) => analyze(a),
        TsdbCommand::Dump(a) => dump(a).await,
    }
}

/// Parses a Prometheus duration (`1h30m`, `2h`, `90s`, `1d`, `1w`, `1y`, `500ms`)
/// into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?} (examples: 2h, 90m, 1h30m, 1d)");
    if s == "0" {
        return Ok(0);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    if b.is_empty() {
        return Err(bad());
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: i64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult: i64 = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(mult)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn block_row(m: &BlockMeta, size: u64, human: bool) -> Vec<String> {
    let t = |ms: i64| {
        if human {
            utc_time_ms(ms)
        } else {
            ms.to_string()
        }
    };
    vec![
        m.ulid.to_string(),
        t(m.min_time),
        t(m.max_time),
        duration_ms(m.max_time - m.min_time),
        m.stats.num_samples.to_string(),
        m.stats.num_chunks.to_string(),
        m.stats.num_series.to_string(),
        if human {
            base2_bytes(size)
        } else {
            size.to_string()
        },
    ]
}

fn print_blocks(rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut all = vec![[
        "BLOCK ULID",
        "MIN TIME",
        "MAX TIME",
        "DURATION",
        "NUM SAMPLES",
        "NUM CHUNKS",
        "NUM SERIES",
        "SIZE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    all.extend(rows);
    let mut out = std::io::stdout().lock();
    out.write_all(tabwrite(&all, 13, 2).as_bytes())?;
    Ok(())
}

async fn create_blocks(a: OpenMetricsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let input = std::fs::read(&a.input)
        .with_context(|| format!("reading input file {}", a.input.display()))?;
    let out = a.output.clone();
    let opts = BackfillOptions {
        max_block_duration_ms: a.max_block_duration,
        ..Default::default()
    };
    let metas = tokio::task::spawn_blocking(move || {
        create_blocks_from_openmetrics(&input, &out, &opts, |m, done, total| {
            eprintln!(
                "progress: block {done}/{total} {} [{}, {}) {} samples",
                m.ulid, m.min_time, m.max_time, m.stats.num_samples
            );
        })
    })
    .await?
    .with_context(|| format!("backfilling from {}", a.input.display()))?;
    let samples: u64 = metas.iter().map(|m| m.stats.num_samples).sum();
    eprintln!(
        "wrote {} blocks, {samples} samples in {:.2?}",
        metas.len(),
        started.elapsed()
    );
    if !a.quiet {
        let mut rows = Vec::new();
        for m in &metas {
            let b = Block::open(&a.output.join(m.ulid.to_string()))?;
            rows.push(block_row(m, b.size(), a.human_readable));
        }
        print_blocks(rows)?;
    }
    Ok(())
}

fn open_blocks(dir: &Path) -> anyhow::Result<Vec<std::sync::Arc<Block>>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut blocks = Vec::new();
    for d in Db::block_dirs(dir)? {
        blocks.push(Block::open(&d)?);
    }
    blocks.sort_by_key(|b| (b.meta().min_time, b.ulid()));
    Ok(blocks)
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let blocks = open_blocks(&a.db_path)?;
    let rows = blocks
        .iter()
        .map(|b| block_row(b.meta(), b.size(), a.human_readable))
        .collect();
    print_blocks(rows)
}

async fn dump(a: DumpArgs) -> anyhow::Result<()> {
    let matchers = parse_selector(&a.matcher)?;
    if !a.db_path.is_dir() {
        bail!("{} is not a directory", a.db_path.display());
    }
    let db = Db::open(&a.db_path)?;
    // Like promtool, the head (rebuilt from the WAL) is dumped together with blocks.
    let (head, warnings) = strata_tsdb::head::Head::replay_read_only(&a.db_path)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let q = strata_storage::Fanout::new(vec![
        std::sync::Arc::new(db) as std::sync::Arc<dyn strata_storage::Queryable>,
        std::sync::Arc::new(head),
    ]);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    strata_tsdb::dump(&q, matchers, a.min_time, a.max_time, &mut out).await?;
    out.flush()?;
    Ok(())
}

fn analyze(a: AnalyzeArgs) -> anyhow::Result<()> {
    let blocks = open_blocks(&a.db_path)?;
    let block = match &a.block_id {
        Some(id) => blocks
            .iter()
            .find(|b| b.ulid().to_string() == *id)
            .with_context(|| format!("block {id} not found in {}", a.db_path.display()))?,
        None => blocks
            .last()
            .with_context(|| format!("no blocks found in {}", a.db_path.display()))?,
    };
    let text = analyze_block(block, a.limit, a.extended)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn top(title: &str, mut items: Vec<(String, u64)>, limit: usize, out: &mut String) {
    items.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    out.push_str(&format!("\n{title}:\n"));
    for (k, v) in items.into_iter().take(limit) {
        out.push_str(&format!("{v} {k}\n"));
    }
}

fn analyze_block(b: &Block, limit: usize, extended: bool) -> anyhow::Result<String> {
    let meta = b.meta();
    let ix = b.index();
    let span = (meta.max_time - meta.min_time) as u64;
    let mut out = String::new();
    out.push_str(&format!("Block ID: {}\n", meta.ulid));
    out.push_str(&format!(
        "Duration: {}\n",
        duration_ms(meta.max_time - meta.min_time)
    ));
    out.push_str(&format!("Series: {}\n", meta.stats.num_series));
    let names = ix.label_names();
    out.push_str(&format!("Label names: {}\n", names.len()));

    let mut uncovered_names: HashMap<String, u64> = HashMap::new();
    let mut uncovered_pairs: HashMap<String, u64> = HashMap::new();
    let mut pair_count: HashMap<String, u64> = HashMap::new();
    let mut entries = 0u64;
    let (mut chunk_count, mut chunk_bytes, mut chunk_samples) = (0u64, 0u64, 0u64);
    let mut p = ix.all_postings()?;
    while let Some(r) = p.next() {
        let s = ix.series(r)?;
        let (Some(first), Some(last)) = (s.chunks.first(), s.chunks.last()) else {
            continue;
        };
        let uncovered = span.wrapping_sub((last.max_time - first.min_time) as u64);
        for l in &s.labels {
            let key = format!("{}={}", l.name, l.value);
            *uncovered_names.entry(l.name.clone()).or_default() = uncovered_names
                .get(&l.name)
                .copied()
                .unwrap_or(0)
                .wrapping_add(uncovered);
            let e = uncovered_pairs.entry(key.clone()).or_default();
            *e = e.wrapping_add(uncovered);
            *pair_count.entry(key).or_default() += 1;
            entries += 1;
        }
        if extended {
            for c in &s.chunks {
                let raw = b.chunk_reader().chunk(c.chunk_ref)?;
                chunk_count += 1;
                chunk_bytes += raw.data.len() as u64;
                chunk_samples += raw.num_samples().unwrap_or(0) as u64;
            }
        }
    }
    out.push_str(&format!(
        "Postings (unique label pairs): {}\n",
        uncovered_pairs.len()
    ));
    out.push_str(&format!(
        "Postings entries (total label pairs): {entries}\n"
    ));
    let frac = |m: u64| {
        if span == 0 {
            0
        } else {
            (m as f64 / span as f64) as u64
        }
    };
    top(
        "Label pairs most involved in churning",
        uncovered_pairs
            .into_iter()
            .map(|(k, m)| (k, frac(m)))
            .collect(),
        limit,
        &mut out,
    );
    top(
        "Label names most involved in churning",
        uncovered_names
            .into_iter()
            .map(|(k, m)| (k, frac(m)))
            .collect(),
        limit,
        &mut out,
    );
    top(
        "Most common label pairs",
        pair_count.into_iter().collect(),
        limit,
        &mut out,
    );
    let mut lengths = Vec::new();
    let mut cards = Vec::new();
    for n in &names {
        let vals = ix.label_values(n)?;
        lengths.push((n.clone(), vals.iter().map(|v| v.len() as u64).sum()));
        cards.push((n.clone(), vals.len() as u64));
    }
    top(
        "Label names with highest cumulative label value length",
        lengths,
        limit,
        &mut out,
    );
    top("Highest cardinality labels", cards, limit, &mut out);
    let mut metrics = Vec::new();
    for v in ix.label_values("__name__")? {
        let mut p = ix.postings("__name__", &[v.to_string()])?;
        let mut n = 0u64;
        while p.next().is_some() {
            n += 1;
        }
        metrics.push((v.to_string(), n));
    }
    top("Highest cardinality metric names", metrics, limit, &mut out);
    if extended {
        out.push_str("\nChunk statistics:\n");
        out.push_str(&format!("Chunks: {chunk_count}\n"));
        if chunk_count > 0 {
            out.push_str(&format!(
                "Average samples per chunk: {:.1}\n",
                chunk_samples as f64 / chunk_count as f64
            ));
            out.push_str(&format!(
                "Average bytes per chunk: {:.1}\n",
                chunk_bytes as f64 / chunk_count as f64
            ));
        }
        if chunk_samples > 0 {
            out.push_str(&format!(
                "Bytes per sample: {:.3}\n",
                chunk_bytes as f64 / chunk_samples as f64
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert!(parse_duration_ms("2x").is_err());
        assert!(parse_duration_ms("").is_err());
    }
}
