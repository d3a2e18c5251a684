//! Wrappers around Prometheus 2.42's `promtool tsdb ...` commands.
//!
//! They are the reference that `strata tools tsdb ...` must match. Each wrapper
//! finds `promtool` with [`peer_binary`] (so a missing binary fails loudly) and
//! panics with promtool's stderr when it fails, unless the function returns the
//! exit status.

use std::path::Path;
use std::process::{Command, ExitStatus};

use crate::fs::copy_dir;
use crate::peer::{peer_binary, run_output, run_stdout};

fn promtool() -> Command {
    Command::new(peer_binary("promtool"))
}

/// `promtool tsdb dump <copy of blocks_dir>`: every sample, one per line.
///
/// Dumps a copy, because promtool 2.42 fails on a directory without `wal/`
/// ("read WAL: find last checkpoint") and creates `chunks_head/` in the
/// directory it reads. The copy gets an empty `wal/` when it has none.
///
/// # Panics
///
/// If promtool fails; the message holds its stderr.
pub fn dump(blocks_dir: &Path) -> String {
    dump_with(blocks_dir, &[])
}

/// [`dump`] with extra flags, e.g. `["--match={job=\"web\"}", "--min-time=5"]`.
///
/// promtool 2.42's dump has `--match`, `--min-time` and `--max-time` (both in
/// milliseconds, inclusive).
///
/// # Panics
///
/// If promtool fails; the message holds its stderr.
pub fn dump_with(blocks_dir: &Path, flags: &[&str]) -> String {
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let copy = tmp.path().join("db");
    copy_dir(blocks_dir, &copy);
    let wal = copy.join("wal");
    if !wal.exists() {
        std::fs::create_dir(&wal).unwrap_or_else(|e| panic!("create {}: {e}", wal.display()));
    }
    run_stdout(promtool().args(["tsdb", "dump"]).args(flags).arg(&copy))
}

/// `promtool tsdb create-blocks-from openmetrics [--max-block-duration=D] <input> <out_dir>`.
///
/// `max_block_duration` is a Go duration such as `"6h"`; promtool 2.42 accepts
/// the flag although its `--help` hides it. Without it blocks are 2h, aligned
/// to multiples of 2h since the epoch. Returns promtool's stdout (it lists the
/// blocks it wrote).
///
/// # Panics
///
/// If promtool fails; the message holds its stderr.
pub fn create_blocks(
    input_file: &Path,
    out_dir: &Path,
    max_block_duration: Option<&str>,
) -> String {
    let mut cmd = promtool();
    cmd.args(["tsdb", "create-blocks-from", "openmetrics"]);
    if let Some(d) = max_block_duration {
        cmd.arg(format!("--max-block-duration={d}"));
    }
    run_stdout(cmd.arg(input_file).arg(out_dir))
}

/// `promtool tsdb analyze <dir>`: its exit status and stdout.
///
/// It analyses the last block. On failure promtool's stderr is printed to the
/// test's stderr, so the test output shows why. promtool 2.42 neither needs
/// `wal/` here nor writes into `dir`.
pub fn analyze(dir: &Path) -> (ExitStatus, String) {
    analyze_block(dir, None)
}

/// [`analyze`] of one block, by ULID (`None`: the last block).
pub fn analyze_block(dir: &Path, block: Option<&str>) -> (ExitStatus, String) {
    let mut cmd = promtool();
    cmd.args(["tsdb", "analyze"]).arg(dir);
    if let Some(b) = block {
        cmd.arg(b);
    }
    let out = run_output(&mut cmd);
    if !out.status.success() {
        eprintln!(
            "promtool tsdb analyze {} failed: {}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `promtool tsdb list <dir>` (machine-readable: times in ms, size in bytes).
///
/// # Panics
///
/// If promtool fails; the message holds its stderr.
pub fn list(dir: &Path) -> String {
    list_with(dir, &[])
}

/// [`list`] with flags, e.g. `["--human-readable"]`.
///
/// # Panics
///
/// If promtool fails; the message holds its stderr.
pub fn list_with(dir: &Path, flags: &[&str]) -> String {
    run_stdout(promtool().args(["tsdb", "list"]).args(flags).arg(dir))
}

/// One row of `tsdb list` output (without `--human-readable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    /// Block ULID.
    pub ulid: String,
    /// First sample, ms since the epoch.
    pub min_time_ms: i64,
    /// Last sample plus 1 ms (exclusive end, as in `meta.json`).
    pub max_time_ms: i64,
    /// Go duration of `max - min`, e.g. `1h59m52.876s`.
    pub duration: String,
    /// Number of samples.
    pub samples: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Number of series.
    pub series: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// Parses `tsdb list` output (without `--human-readable`), in its order.
///
/// # Panics
///
/// If the header is missing or a row does not have the eight columns.
pub fn parse_list(text: &str) -> Vec<BlockRow> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("BLOCK ULID"),
        "not `tsdb list` output:\n{text}"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> i64 {
                f.get(i)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("column {i} of list row is not a number: {line:?}"))
            };
            assert_eq!(f.len(), 8, "list row does not have 8 columns: {line:?}");
            BlockRow {
                ulid: f[0].to_owned(),
                min_time_ms: num(1),
                max_time_ms: num(2),
                duration: f[3].to_owned(),
                samples: num(4) as u64,
                chunks: num(5) as u64,
                series: num(6) as u64,
                size_bytes: num(7) as u64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::fixtures_dir;

    #[test]
    fn parses_fixture_list() {
        let text = std::fs::read_to_string(fixtures_dir().join("backfill-6h/list.txt")).unwrap();
        let rows = parse_list(&text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].ulid, "01M89M4019TEQQXC7RBVCP8DEY");
        assert_eq!(rows[0].min_time_ms, 1704067200000);
        assert_eq!(rows[0].max_time_ms, 1704074392876);
        assert_eq!(rows[1].duration, "1h59m52.751s");
        assert_eq!(rows.iter().map(|r| r.samples).sum::<u64>(), 308_509);
        assert_eq!(rows[2].size_bytes, 229135);
    }

    #[test]
    fn promtool_list_matches_fixture() {
        let blocks = fixtures_dir().join("backfill-6h/blocks");
        let expected =
            std::fs::read_to_string(fixtures_dir().join("backfill-6h/list.txt")).unwrap();
        assert_eq!(parse_list(&list(&blocks)), parse_list(&expected));
    }

    #[test]
    fn promtool_dump_matches_fixture() {
        let blocks = fixtures_dir().join("backfill-6h/blocks");
        let expected = crate::fs::read_gz(&fixtures_dir().join("backfill-6h/dump.txt.gz"));
        crate::assert_same_text("promtool dump", dump(&blocks), "dump.txt.gz", expected);
    }

    #[test]
    fn promtool_analyze_succeeds_on_fixture() {
        let blocks = fixtures_dir().join("backfill-6h/blocks");
        let (status, out) = analyze_block(&blocks, Some("01M89M4019TEQQXC7RBVCP8DEY"));
        assert!(status.success());
        assert!(
            out.starts_with("Block ID: 01M89M4019TEQQXC7RBVCP8DEY\n"),
            "{out}"
        );
    }
}
