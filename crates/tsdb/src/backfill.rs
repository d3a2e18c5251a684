//! Backfill: blocks from OpenMetrics text, with `promtool tsdb
//! create-blocks-from openmetrics` rules: block windows aligned to multiples of the
//! block duration (2h, or the largest of 2h·3ⁿ not above `--max-block-duration`),
//! block ranges from the first sample to the last sample + 1 ms, chunks cut like the
//! head does.
//!
//! Memory stays bounded for large inputs: a first pass counts samples per window;
//! later passes each collect a group of consecutive windows that fits
//! [`BackfillOptions::max_samples_in_memory`], and write their blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use strata_model::textparse::{Entry, Format, Parser};
use strata_model::Labels;

use crate::block::{BlockWriter, BlockWriterOptions};
use crate::cut::ChunkCutter;
use crate::error::{Error, Result};
use crate::meta::BlockMeta;
use crate::{exponential_block_ranges, DEFAULT_BLOCK_DURATION_MS};

/// A series' samples split by block window start.
type WindowedSeries = (Labels, BTreeMap<i64, Vec<(i64, f64)>>);

/// Options of [`create_blocks_from_openmetrics`].
#[derive(Clone, Debug)]
pub struct BackfillOptions {
    /// Upper bound for the block duration, ms.
    pub max_block_duration_ms: i64,
    /// Samples held in memory at most before a pass writes its blocks.
    pub max_samples_in_memory: usize,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            max_block_duration_ms: DEFAULT_BLOCK_DURATION_MS,
            max_samples_in_memory: 20_000_000,
        }
    }
}

/// The block duration promtool picks for a maximum: 2h, or the largest of the
/// exponential ranges (2h, 6h, 18h, …) not above it.
pub fn compatible_block_duration(max_block_duration_ms: i64) -> i64 {
    if max_block_duration_ms <= DEFAULT_BLOCK_DURATION_MS {
        return DEFAULT_BLOCK_DURATION_MS;
    }
    let ranges = exponential_block_ranges(DEFAULT_BLOCK_DURATION_MS, 10, 3);
    let mut idx = ranges.len() - 1;
    for (i, v) in ranges.iter().enumerate() {
        if *v > max_block_duration_ms {
            idx = i.saturating_sub(1);
            break;
        }
    }
    ranges[idx]
}

/// Start of the block window holding `t` (floor division, so pre-epoch times work).
fn window_of(t: i64, d: i64) -> i64 {
    t.div_euclid(d) * d
}

/// Parses `input` as OpenMetrics and writes blocks into `out_dir`. `progress` is
/// called after each block with (blocks written, windows in total). Returns the
/// metas of the blocks written, in time order.
pub fn create_blocks_from_openmetrics(
    input: &[u8],
    out_dir: &Path,
    opts: &BackfillOptions,
    mut progress: impl FnMut(&BlockMeta, usize, usize),
) -> Result<Vec<BlockMeta>> {
    let d = compatible_block_duration(opts.max_block_duration_ms);
    // Pass 1: validate everything and count samples per window.
    let mut per_window: BTreeMap<i64, usize> = BTreeMap::new();
    for_each_sample(input, |_, _, t, _| {
        *per_window.entry(window_of(t, d)).or_default() += 1;
        Ok(())
    })?;
    if per_window.is_empty() {
        return Err(Error::Input("no samples found in the input".into()));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;

    // Group consecutive windows into passes that fit the memory budget.
    let mut groups: Vec<(i64, i64)> = Vec::new();
    let mut acc = 0usize;
    for (&w, &n) in &per_window {
        match groups.last_mut() {
            Some(g) if acc + n <= opts.max_samples_in_memory => {
                g.1 = w + d;
                acc += n;
            }
            _ => {
                groups.push((w, w + d));
                acc = n;
            }
        }
    }
    let total = per_window.len();
    let mut metas = Vec::new();
    for (lo, hi) in groups {
        // series index by the raw text of name+labels, per window.
        let mut keys: HashMap<&str, usize> = HashMap::new();
        let mut series: Vec<WindowedSeries> = Vec::new();
        for_each_sample(input, |raw, labels, t, v| {
            if t < lo || t >= hi {
                return Ok(());
            }
            let idx = match keys.get(raw) {
                Some(i) => *i,
                None => {
                    series.push((labels(), BTreeMap::new()));
                    keys.insert(raw, series.len() - 1);
                    series.len() - 1
                }
            };
            series[idx]
                .1
                .entry(window_of(t, d))
                .or_default()
                .push((t, v));
            Ok(())
        })?;
        // The same label set may be written differently (label order, spaces).
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<WindowedSeries> = Vec::with_capacity(series.len());
        for (l, m) in series {
            match merged.last_mut() {
                Some(last) if last.0 == l => {
                    for (w, s) in m {
                        last.1.entry(w).or_default().extend(s);
                    }
                }
                _ => merged.push((l, m)),
            }
        }
        let windows: BTreeSet<i64> = merged.iter().flat_map(|s| s.1.keys().copied()).collect();
        for w in windows {
            if let Some(meta) = write_window(out_dir, &mut merged, w, d)? {
                metas.push(meta);
                if let Some(m) = metas.last() {
                    progress(m, metas.len(), total);
                }
                tracing::debug!(block = %metas[metas.len() - 1].ulid, window_start = w, "wrote block");
            }
        }
    }
    Ok(metas)
}

fn write_window(
    out_dir: &Path,
    series: &mut [WindowedSeries],
    w: i64,
    d: i64,
) -> Result<Option<BlockMeta>> {
    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    for (l, m) in series.iter() {
        if m.contains_key(&w) {
            for lb in l {
                symbols.insert(&lb.name);
                symbols.insert(&lb.value);
            }
        }
    }
    let mut bw = BlockWriter::create(out_dir, BlockWriterOptions::default())?;
    bw.add_symbols(symbols.iter().copied())?;
    for (l, m) in series.iter_mut() {
        let Some(mut samples) = m.remove(&w) else {
            continue;
        };
        samples.sort_by_key(|s| s.0);
        let mut cutter = ChunkCutter::new(d);
        let mut prev: Option<(i64, f64)> = None;
        for (t, v) in samples {
            if let Some((pt, pv)) = prev {
                if pt == t {
                    if pv.to_bits() == v.to_bits() {
                        continue;
                    }
                    return Err(Error::Input(format!(
                        "series {l}: two different values for timestamp {t} ({pv} and {v})"
                    )));
                }
            }
            cutter.append(t, v)?;
            prev = Some((t, v));
        }
        bw.add_series(l, &cutter.finish())?;
    }
    bw.finish(None)
}

/// Parses every sample, calling `f(raw key, labels builder, t, v)`. Errors name the
/// input line.
fn for_each_sample<'a>(
    input: &'a [u8],
    mut f: impl FnMut(&'a str, &dyn Fn() -> Labels, i64, f64) -> Result<()>,
) -> Result<()> {
    let mut p = Parser::new(input, Format::OpenMetrics);
    loop {
        let line = p.line() + 1;
        let e = p
            .next()
            .map_err(|e| Error::Input(format!("parsing OpenMetrics input: {e}")))?;
        let Some(e) = e else { break };
        if let Entry::Series(s) = e {
            let Some(t) = s.timestamp_ms else {
                return Err(Error::Input(format!(
                    "line {line}: sample of {} has no timestamp; backfill needs timestamps",
                    s.raw
                )));
            };
            let raw = s.raw;
            let v = s.value;
            let lb = || s.to_labels();
            f(raw, &lb, t, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_duration_like_promtool() {
        let h = 3_600_000;
        assert_eq!(compatible_block_duration(h), 2 * h);
        assert_eq!(compatible_block_duration(2 * h), 2 * h);
        assert_eq!(compatible_block_duration(5 * h), 2 * h);
        assert_eq!(compatible_block_duration(6 * h), 6 * h);
        assert_eq!(compatible_block_duration(24 * h), 18 * h);
    }

    #[test]
    fn writes_aligned_blocks_and_names_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let input =
            b"# TYPE a gauge\na{x=\"1\"} 1 0\na{x=\"1\"} 2 7199.999\na{x=\"1\"} 3 7200\n# EOF\n";
        let metas = create_blocks_from_openmetrics(
            input,
            d.path(),
            &BackfillOptions::default(),
            |_, _, _| {},
        )
        .unwrap();
        assert_eq!(metas.len(), 2);
        assert_eq!((metas[0].min_time, metas[0].max_time), (0, 7_199_999 + 1));
        assert_eq!(
            (metas[1].min_time, metas[1].max_time),
            (7_200_000, 7_200_001)
        );
        let bad = b"# TYPE a gauge\na 1 0\na{ 2 1\n# EOF\n";
        let e = create_blocks_from_openmetrics(
            bad,
            d.path(),
            &BackfillOptions::default(),
            |_, _, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn small_memory_budget_gives_same_blocks() {
        let mut s = String::from("# TYPE a gauge\n");
        for i in 0..2000 {
            s.push_str(&format!("a{{x=\"{}\"}} {} {}\n", i % 3, i, i * 60));
        }
        s.push_str("# EOF\n");
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let m1 = create_blocks_from_openmetrics(
            s.as_bytes(),
            d1.path(),
            &BackfillOptions::default(),
            |_, _, _| {},
        )
        .unwrap();
        let opts = BackfillOptions {
            max_samples_in_memory: 100,
            ..Default::default()
        };
        let m2 =
            create_blocks_from_openmetrics(s.as_bytes(), d2.path(), &opts, |_, _, _| {}).unwrap();
        let key = |m: &BlockMeta| (m.min_time, m.max_time, m.stats.clone());
        assert_eq!(
            m1.iter().map(key).collect::<Vec<_>>(),
            m2.iter().map(key).collect::<Vec<_>>()
        );
    }
}
