//! `ls` and `inspect`: what a bucket holds, one line or one table row per
//! block.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use strata_block::Meta;
use strata_compact::downsample::{
    RES_1H, RES_1H_DOWNSAMPLE_RANGE, RES_5M, RES_5M_DOWNSAMPLE_RANGE, RES_RAW,
};
use strata_objstore::Bucket;
use tracing::{info, warn};

use super::{
    fetch_metas, filter_deletion_marked, filter_relabel, parse_flag_labels, rfc3339,
    SelectorRelabel,
};
use crate::commands::common::{duration_arg, time_or_duration_arg};
use crate::gofmt::duration_ms;

/// `ls` flags.
#[derive(Debug, Args)]
pub struct LsConfig {
    /// Optional format in which to print each block's information: "" (the
    /// ULID), `json` or `wide`. Go templates are not supported.
    #[arg(short = 'o', long = "output", default_value = "")]
    output: String,
    /// Exclude blocks marked for deletion.
    #[arg(long = "exclude-delete", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    exclude_delete: bool,
    /// Start of time range limit to list blocks: RFC3339 or relative (`-2w`).
    /// Blocks that end before it are left out.
    #[arg(long = "min-time", value_parser = time_or_duration_arg,
          default_value = "0000-01-01T00:00:00Z", allow_hyphen_values = true)]
    min_time: i64,
    /// End of time range limit to list blocks: RFC3339 or relative (`-1d`).
    /// Blocks that start after it are left out.
    #[arg(long = "max-time", value_parser = time_or_duration_arg,
          default_value = "9999-12-31T23:59:59Z", allow_hyphen_values = true)]
    max_time: i64,
    /// Timeout to download metadata from remote storage.
    #[arg(long = "timeout", value_parser = duration_arg, default_value = "5m")]
    timeout: Duration,
    #[command(flatten)]
    selector: SelectorRelabel,
}

/// Prints every block that passes the filters, sorted by ULID.
pub async fn ls(bucket: Bucket, c: &LsConfig) -> anyhow::Result<()> {
    let output = c.output.as_str();
    if !matches!(output, "" | "json" | "wide") {
        bail!(
            "invalid --output {output:?}: want \"\", json or wide (Go templates are not supported)"
        );
    }
    if c.timeout < Duration::from_secs(60) {
        warn!("Timeout less than 1m could lead to frequent failures");
    }
    let rules = c.selector.configs()?;
    let metas = tokio::time::timeout(c.timeout, async {
        let (mut metas, _) = fetch_metas(&bucket).await?;
        filter_relabel(&mut metas, &rules);
        metas.retain(|m| m.block.max_time >= c.min_time && m.block.min_time <= c.max_time);
        if c.exclude_delete {
            filter_deletion_marked(&bucket, &mut metas).await?;
        }
        Ok::<_, anyhow::Error>(metas)
    })
    .await
    .with_context(|| format!("listing blocks: timed out after {:?}", c.timeout))??;
    let mut out = std::io::stdout().lock();
    for m in &metas {
        match output {
            "" => writeln!(out, "{}", m.block.ulid)?,
            "wide" => writeln!(out, "{}", wide_line(m))?,
            _ => {
                out.write_all(&m.to_json()?)?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    info!(objects = metas.len(), "ls done");
    Ok(())
}

/// `<ULID> -- <from> - <until> Diff: <range>, Compaction: <level>,
/// Downsample: <res>, Source: <source>` (times in UTC).
fn wide_line(m: &Meta) -> String {
    let (from, until) = (m.block.min_time / 1000, m.block.max_time / 1000);
    format!(
        "{} -- {} - {} Diff: {}, Compaction: {}, Downsample: {}, Source: {}",
        m.block.ulid,
        rfc3339(from),
        rfc3339(until),
        duration_ms((until - from) * 1000),
        m.block.compaction.level,
        m.thanos.downsample.resolution,
        m.thanos.source
    )
}

/// The inspect table's columns (Thanos' names, usable in `--sort-by`).
const COLUMNS: [&str; 13] = [
    "ULID",
    "FROM",
    "UNTIL",
    "RANGE",
    "UNTIL-DOWN",
    "#SERIES",
    "#SAMPLES",
    "#CHUNKS",
    "COMP-LEVEL",
    "COMP-FAILED",
    "LABELS",
    "RESOLUTION",
    "SOURCE",
];

/// `inspect` flags.
#[derive(Debug, Args)]
pub struct InspectConfig {
    /// Selects blocks based on label, e.g. `-l key1="value1" -l key2="value2"`.
    /// All key value pairs must match.
    #[arg(short = 'l', long = "selector")]
    selector: Vec<String>,
    /// Sort by columns, e.g. `--sort-by FROM --sort-by UNTIL`.
    #[arg(long = "sort-by", default_values = ["FROM", "UNTIL"],
          value_parser = clap::builder::PossibleValuesParser::new(COLUMNS))]
    sort_by: Vec<String>,
    /// Timeout to download metadata from remote storage.
    #[arg(long = "timeout", value_parser = duration_arg, default_value = "5m")]
    timeout: Duration,
    /// Output format for result: table, csv or tsv.
    #[arg(long = "output", default_value = "table",
          value_parser = clap::builder::PossibleValuesParser::new(["table", "csv", "tsv"]))]
    output: String,
}

/// Prints the table of blocks.
pub async fn inspect(bucket: Bucket, c: &InspectConfig) -> anyhow::Result<()> {
    let selector = parse_flag_labels(&c.selector).context("error parsing selector flag")?;
    let (metas, _) = tokio::time::timeout(c.timeout, fetch_metas(&bucket))
        .await
        .with_context(|| format!("listing blocks: timed out after {:?}", c.timeout))??;
    let mut rows: Vec<Vec<String>> = metas
        .iter()
        .filter(|m| matches_selector(m, &selector))
        .map(row)
        .collect();
    let idx: Vec<usize> = c
        .sort_by
        .iter()
        .filter_map(|s| COLUMNS.iter().position(|c| c == s))
        .collect();
    rows.sort_by(|a, b| {
        for &i in &idx {
            let (x, y) = (&a[i], &b[i]);
            if x != y {
                return compare(x, y);
            }
        }
        compare(&a[0], &b[0])
    });
    let header: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();
    let text = match c.output.as_str() {
        "csv" => delimited(&header, &rows, ','),
        "tsv" => delimited(&header, &rows, '\t'),
        _ => table(&header, &rows),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn matches_selector(m: &Meta, sel: &BTreeMap<String, String>) -> bool {
    sel.iter()
        .all(|(k, v)| m.thanos.labels.get(k).is_some_and(|x| x == v))
}

/// `1234567` → `1,234,567` (Go's `message.Printer` in English).
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn row(m: &Meta) -> Vec<String> {
    let range = m.block.max_time - m.block.min_time;
    let until_down = match m.thanos.downsample.resolution {
        RES_RAW => duration_ms(RES_5M_DOWNSAMPLE_RANGE - range),
        RES_5M => duration_ms(RES_1H_DOWNSAMPLE_RANGE - range),
        _ => "-".to_string(),
    };
    let labels: Vec<String> = m
        .thanos
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let s = &m.block.stats;
    let res = m.thanos.downsample.resolution;
    vec![
        m.block.ulid.to_string(),
        rfc3339(m.block.min_time / 1000),
        rfc3339(m.block.max_time / 1000),
        duration_ms(range),
        until_down,
        thousands(s.num_series),
        thousands(s.num_samples),
        thousands(s.num_chunks),
        m.block.compaction.level.to_string(),
        m.block.compaction.failed.to_string(),
        labels.join(","),
        if res == RES_1H || res == RES_5M || res == RES_RAW {
            duration_ms(res)
        } else {
            format!("{res}ms")
        },
        m.thanos.source.clone(),
    ]
}

/// Go's `time.ParseDuration` for the strings [`duration_ms`] writes.
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest == "0s" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest.get(..end)?.parse().ok()?;
        let tail = rest.get(end..)?;
        let (mult, len) = if tail.starts_with("ms") {
            (1.0, 2)
        } else if tail.starts_with('h') {
            (3_600_000.0, 1)
        } else if tail.starts_with('m') {
            (60_000.0, 1)
        } else if tail.starts_with('s') {
            (1000.0, 1)
        } else {
            return None;
        };
        total += n * mult;
        rest = tail.get(len..)?;
    }
    Some(if neg { -total as i64 } else { total as i64 })
}

/// Thanos' inspect ordering: times, then durations, then integers with
/// thousands separators, then strings.
fn compare(a: &str, b: &str) -> Ordering {
    let time = |s: &str| crate::commands::common::parse_rfc3339_ms(s);
    if let (Some(x), Some(y)) = (time(a), time(b)) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (parse_go_duration(a), parse_go_duration(b)) {
        return x.cmp(&y);
    }
    let int = |s: &str| s.replace(',', "").parse::<u64>().ok();
    if let (Some(x), Some(y)) = (int(a), int(b)) {
        return x.cmp(&y);
    }
    a.cmp(b)
}

/// RFC 4180 CSV (Go's `encoding/csv`), or TSV with `sep = '\t'`.
fn delimited(header: &[String], rows: &[Vec<String>], sep: char) -> String {
    let field = |f: &str| -> String {
        let needs = f.contains(sep)
            || f.contains('"')
            || f.contains('\n')
            || f.contains('\r')
            || f.starts_with(' ')
            || f.starts_with('\t');
        if needs {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let fields: Vec<String> = r.iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(&sep.to_string()));
        out.push('\n');
    }
    out
}

/// olekukonko/tablewriter as Thanos configures it: left and right borders,
/// no top or bottom line, `|` separators, centred header, left-aligned cells.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(c));
        }
    }
    let mut out = String::new();
    out.push('|');
    for (h, &w) in header.iter().zip(&widths) {
        let pad = w - width(h);
        let (l, r) = (pad / 2, pad - pad / 2);
        out.push_str(&format!(" {}{h}{} |", " ".repeat(l), " ".repeat(r)));
    }
    out.push('\n');
    out.push('|');
    for &w in &widths {
        out.push_str(&"-".repeat(w + 2));
        out.push('|');
    }
    out.push('\n');
    for r in rows {
        out.push('|');
        for (c, &w) in r.iter().zip(&widths) {
            out.push_str(&format!(" {c}{} |", " ".repeat(w - width(c))));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(parse_go_duration("1h0m0s"), Some(3_600_000));
        assert_eq!(parse_go_duration("-2h30m0s"), Some(-9_000_000));
        assert_eq!(compare("10", "9"), Ordering::Greater);
        assert_eq!(compare("1,000", "999"), Ordering::Greater);
        assert_eq!(compare("5m0s", "1h0m0s"), Ordering::Less);
        let t = table(
            &["A".into(), "LONGER".into()],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(t, "|  A  | LONGER |\n|-----|--------|\n| xyz | 1      |\n");
        let d = delimited(&["A".into()], &[vec!["a,b".into()]], ',');
        assert_eq!(d, "A\n\"a,b\"\n");
    }
}
