//! End-to-end compatibility of `strata tools tsdb ...` with Prometheus 2.42.
//!
//! Every test runs the real `strata` binary and checks it against the real
//! `promtool` and `prometheus` (Debian's `prometheus` package, installed by
//! `.ci/run`; a missing binary fails the test, it never skips):
//!
//! - the shared fixture blocks dump and list exactly as promtool did;
//! - blocks written by promtool dump exactly as promtool dumps them, with and
//!   without `--match`, `--min-time` and `--max-time`;
//! - blocks written by strata hold exactly the samples, and have the block
//!   ranges, that promtool's backfill of the same input has, and promtool
//!   and prometheus read them;
//! - data at the Unix epoch works;
//! - bad input and corrupt blocks give an error that names the line or the
//!   file, never a panic.
//!
//! The inputs come from `strata_testkit::openmetrics::generate`, whose
//! timestamps are multiples of 0.125 s so both parsers agree on every ms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use strata_testkit::openmetrics::{self, Options};
use strata_testkit::promtool::{self, BlockRow};
use strata_testkit::{assert_same_text, copy_dir, fixtures_dir, read_gz, run_output};

/// 2024-01-01T00:00:00Z, in seconds.
const JAN_2024: i64 = 1_704_067_200;
const HOUR: i64 = 3600;

// ---------------------------------------------------------------- helpers

/// Runs `strata tools tsdb <args...>`; its output, whatever the exit status.
///
/// Whatever the input, strata must not panic: every run is checked for that.
fn tsdb<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["tools", "tsdb"]).args(args);
    let out = run_output(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && out.status.code().is_some(),
        "strata panicked or was killed ({}) running {cmd:?}\n--- stderr ---\n{stderr}",
        out.status
    );
    out
}

/// [`tsdb`] that must exit 0; its stdout as text.
fn tsdb_ok<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = tsdb(&args);
    assert!(
        out.status.success(),
        "strata tools tsdb {args:?} failed with {}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("strata prints UTF-8")
}

/// `strata tools tsdb dump [flags...] <dir>`.
fn strata_dump(dir: &Path, flags: &[&str]) -> String {
    let mut args: Vec<&OsStr> = vec![OsStr::new("dump")];
    args.extend(flags.iter().map(OsStr::new));
    args.push(dir.as_os_str());
    tsdb_ok(args)
}

/// `strata tools tsdb create-blocks-from openmetrics [--max-block-duration=D] <input> <out>`.
fn strata_create_blocks(input: &Path, out: &Path, max_block_duration: Option<&str>) -> Output {
    let mut args: Vec<PathBuf> = vec!["create-blocks-from".into(), "openmetrics".into()];
    if let Some(d) = max_block_duration {
        args.push(format!("--max-block-duration={d}").into());
    }
    args.extend([input.to_owned(), out.to_owned()]);
    tsdb(args)
}

/// A temporary directory holding `input.om.txt` generated from `opts`.
struct Input {
    dir: tempfile::TempDir,
    text: String,
}

impl Input {
    fn generate(opts: &Options) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let text = openmetrics::generate(opts);
        std::fs::write(dir.path().join("input.om.txt"), &text).expect("write input");
        Self { dir, text }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("input.om.txt")
    }

    /// `<tmp>/<name>`: an output directory that does not exist yet.
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Backfills with promtool into `<tmp>/<name>`.
    fn promtool_blocks(&self, name: &str, max_block_duration: Option<&str>) -> PathBuf {
        let out = self.out(name);
        promtool::create_blocks(&self.path(), &out, max_block_duration);
        out
    }

    /// Backfills with strata into `<tmp>/<name>`; it must succeed.
    fn strata_blocks(&self, name: &str, max_block_duration: Option<&str>) -> PathBuf {
        let out = self.out(name);
        let run = strata_create_blocks(&self.path(), &out, max_block_duration);
        assert!(
            run.status.success(),
            "strata create-blocks-from failed with {}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        let blocks = std::fs::read_dir(&out)
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.path().join("meta.json").is_file())
                    .count()
            })
            .unwrap_or(0);
        assert!(
            blocks > 0,
            "strata create-blocks-from wrote no block into {}",
            out.display()
        );
        out
    }
}

/// A copy of the fixture blocks (tools must never write into `shared/`).
fn fixture_blocks() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let blocks = tmp.path().join("blocks");
    copy_dir(&fixtures_dir().join("backfill-6h/blocks"), &blocks);
    (tmp, blocks)
}

/// Whitespace-separated fields of each line.
fn fields(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// `tsdb list` rows without what legitimately differs between two backfills
/// of the same input (ULID, chunks, size), in time order.
fn ranges(list: &str) -> Vec<(i64, i64, String, u64, u64)> {
    let mut rows: Vec<(i64, i64, String, u64, u64)> = promtool::parse_list(list)
        .into_iter()
        .map(|r: BlockRow| {
            (
                r.min_time_ms,
                r.max_time_ms,
                r.duration,
                r.samples,
                r.series,
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Asserts that strata's blocks in `a` hold what promtool's blocks in `b` hold,
/// as promtool sees them: the same dump, the same block ranges and counts, and
/// `promtool tsdb analyze` accepts every block.
fn assert_same_blocks(a: &Path, b: &Path) {
    assert_same_text(
        "promtool dump of strata's blocks",
        promtool::dump(a),
        "promtool dump of promtool's blocks",
        promtool::dump(b),
    );
    let list_a = promtool::list(a);
    assert_eq!(
        ranges(&list_a),
        ranges(&promtool::list(b)),
        "block ranges (min, max, duration, samples, series)"
    );
    for row in promtool::parse_list(&list_a) {
        let (status, out) = promtool::analyze_block(a, Some(&row.ulid));
        assert!(
            status.success(),
            "promtool tsdb analyze of strata's block {}:\n{out}",
            row.ulid
        );
    }
    let (status, _) = promtool::analyze(a);
    assert!(status.success(), "promtool tsdb analyze {}", a.display());
}

/// Whether an error message points at line `n` (`line 23`, `:23:`, `:23 `...).
fn mentions_line(stderr: &str, n: usize) -> bool {
    let lower = stderr.to_lowercase();
    if lower.contains(&format!("line {n}")) {
        return true;
    }
    let needle = format!(":{n}");
    lower
        .match_indices(&needle)
        .any(|(i, _)| !lower[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

// ------------------------------------------------- 1. the fixture blocks

#[test]
fn fixture_dump_is_byte_identical_to_promtool() {
    let (_tmp, blocks) = fixture_blocks();
    let expected = read_gz(&fixtures_dir().join("backfill-6h/dump.txt.gz"));
    assert_same_text(
        "strata dump",
        strata_dump(&blocks, &[]),
        "dump.txt.gz",
        expected,
    );
}

#[test]
fn fixture_list_matches_promtool() {
    let (_tmp, blocks) = fixture_blocks();
    let expected =
        std::fs::read_to_string(fixtures_dir().join("backfill-6h/list.txt")).expect("list.txt");
    let got = tsdb_ok([OsStr::new("list"), blocks.as_os_str()]);
    // Same columns, same values, SIZE included: they are the same files.
    assert_eq!(
        fields(&got),
        fields(&expected),
        "strata list:\n{got}\nlist.txt:\n{expected}"
    );
}

#[test]
fn fixture_list_human_readable_matches_promtool() {
    let (_tmp, blocks) = fixture_blocks();
    let expected = promtool::list_with(&blocks, &["--human-readable"]);
    for flag in ["-r", "--human-readable"] {
        let got = tsdb_ok([OsStr::new("list"), OsStr::new(flag), blocks.as_os_str()]);
        assert_eq!(
            fields(&got),
            fields(&expected),
            "strata list {flag}:\n{got}\npromtool:\n{expected}"
        );
    }
}

#[test]
fn fixture_analyze_agrees_with_promtool() {
    let (_tmp, blocks) = fixture_blocks();
    // The summary at the top is deterministic; the "most involved" lists
    // below it order ties arbitrarily in promtool, so only it is compared.
    let header = |s: &str| {
        s.lines()
            .take_while(|l| !l.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (status, expected) = promtool::analyze(&blocks);
    assert!(status.success());
    let got = tsdb_ok([OsStr::new("analyze"), blocks.as_os_str()]);
    assert_eq!(
        header(&got),
        header(&expected),
        "strata analyze (last block)"
    );
    let ulid = "01M89M4019TEQQXC7RBVCP8DEY";
    let (_, expected) = promtool::analyze_block(&blocks, Some(ulid));
    let got = tsdb_ok([OsStr::new("analyze"), blocks.as_os_str(), OsStr::new(ulid)]);
    assert_eq!(header(&got), header(&expected), "strata analyze {ulid}");
}

// ---------------------------------------- 2. promtool writes, strata reads

#[test]
fn promtool_blocks_dump_identically() {
    // 01:00 to 06:00: a partial first block, then aligned 2h blocks.
    let input = Input::generate(&Options {
        start_secs: JAN_2024 + HOUR,
        duration_secs: 5 * HOUR,
        step_ms: 30_000,
        series: 300,
        seed: 2,
    });
    let blocks = input.promtool_blocks("blocks", None);
    let expected = promtool::dump(&blocks);
    assert_eq!(
        expected.lines().count(),
        openmetrics::sample_lines(&input.text)
    );
    assert_same_text(
        "strata dump",
        strata_dump(&blocks, &[]),
        "promtool dump",
        expected,
    );

    // Flags that promtool 2.42's dump has too: --match, --min-time, --max-time.
    let two_am = (JAN_2024 + 2 * HOUR) * 1000;
    let (min, max) = (
        format!("--min-time={}", two_am - 1),
        format!("--max-time={}", two_am + 3 * 3_600_000 + 7),
    );
    // One millisecond that holds samples: min == max, both inclusive.
    let all = openmetrics::samples(&input.text);
    let one_ms = all[all.len() / 2].timestamp_ms;
    let (min_one, max_one) = (
        format!("--min-time={one_ms}"),
        format!("--max-time={one_ms}"),
    );
    let flag_sets: Vec<Vec<&str>> = vec![
        vec!["--match=up"],
        vec![r#"--match=requests_total{code="500"}"#],
        vec![r#"--match={__name__=~"special_value|build_info"}"#],
        vec![r#"--match={location="東京"}"#],
        vec![r#"--match={job!="bulk",__name__=~".*_seconds.*"}"#],
        vec!["--match=no_such_metric"],
        vec![&min],
        vec![&max],
        vec![&min, &max],
        vec![&min_one, &max_one],
        vec![&min, &max, r#"--match={instance="host-c:9100"}"#],
    ];
    for flags in flag_sets {
        assert_same_text(
            &format!("strata dump {flags:?}"),
            strata_dump(&blocks, &flags),
            &format!("promtool dump {flags:?}"),
            promtool::dump_with(&blocks, &flags),
        );
    }
}

// ---------------------------------------- 3. strata writes, promtool reads

/// 03:00 to 08:00 on 2024-01-01, 2000 bulk series: three 2h blocks (the first
/// partial) or two 6h blocks.
fn many_series() -> Options {
    Options {
        start_secs: JAN_2024 + 3 * HOUR,
        duration_secs: 5 * HOUR,
        step_ms: 120_000,
        series: 2000,
        seed: 3,
    }
}

#[test]
fn strata_blocks_hold_what_promtool_blocks_hold() {
    let input = Input::generate(&many_series());
    let ours = input.strata_blocks("strata", None);
    let theirs = input.promtool_blocks("promtool", None);
    assert_eq!(promtool::parse_list(&promtool::list(&theirs)).len(), 3);
    assert_same_blocks(&ours, &theirs);
}

#[test]
fn strata_blocks_with_6h_max_block_duration() {
    // promtool 2.42 accepts --max-block-duration although --help hides it.
    let input = Input::generate(&many_series());
    let ours = input.strata_blocks("strata", Some("6h"));
    let theirs = input.promtool_blocks("promtool", Some("6h"));
    assert_eq!(promtool::parse_list(&promtool::list(&theirs)).len(), 2);
    assert_same_blocks(&ours, &theirs);
}

// ---------------------------------------- 4. prometheus reads strata's blocks

#[test]
fn prometheus_serves_strata_blocks() {
    let input = Input::generate(&Options {
        start_secs: JAN_2024,
        duration_secs: 5 * HOUR,
        step_ms: 60_000,
        series: 100,
        seed: 4,
    });
    // Blocks straight in the data directory, as prometheus keeps them.
    let data = input.strata_blocks("data", None);
    // 2024 is beyond the default 15d retention: start() keeps it with 100y.
    let prom = strata_testkit::PrometheusProcess::start(&data, &[]);
    strata_testkit::prometheus::assert_serves(&prom, &input.text);
}

// ------------------------------------------------------------- 5. epoch

#[test]
fn backfill_at_the_epoch_matches_promtool() {
    let input = Input::generate(&Options {
        start_secs: 0,
        duration_secs: 7 * HOUR,
        step_ms: 60_000,
        series: 50,
        seed: 5,
    });
    let theirs = input.promtool_blocks("promtool", None);
    let rows = promtool::parse_list(&promtool::list(&theirs));
    assert_eq!((rows.len(), rows[0].min_time_ms), (4, 0), "{rows:?}");
    assert_same_text(
        "strata dump",
        strata_dump(&theirs, &[]),
        "promtool dump",
        promtool::dump(&theirs),
    );
    let ours = input.strata_blocks("strata", None);
    assert_same_blocks(&ours, &theirs);
}

// --------------------------------------------------------- 6. bad input

#[test]
fn malformed_openmetrics_is_an_error_naming_the_line() {
    let text = openmetrics::generate(&Options {
        duration_secs: 600,
        series: 4,
        ..Options::default()
    });
    let line_no = 23; // 1-based; in the `up` family
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[line_no - 1].starts_with("up{"),
        "{}",
        lines[line_no - 1]
    );
    let tmp = tempfile::tempdir().expect("temporary directory");
    let bad_lines = [
        r#"up{instance="host-a:9100",job="node" 1 1704067200"#, // unterminated labels
        r#"up{instance="host-a:9100",job="node"} five 1704067200"#, // bad value
        r#"up{instance="host-a:9100",job="node"} 1 17040672x"#, // bad timestamp
        r#"up{instance=host-a,job="node"} 1 1704067200"#,       // unquoted label value
    ];
    for (n, bad) in bad_lines.iter().enumerate() {
        let mut broken = lines.clone();
        broken[line_no - 1] = bad;
        let input = tmp.path().join(format!("bad-{n}.om.txt"));
        std::fs::write(&input, broken.join("\n") + "\n").expect("write input");

        let promtool_out = run_output(
            Command::new(strata_testkit::peer_binary("promtool"))
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&input)
                .arg(tmp.path().join(format!("promtool-{n}"))),
        );
        assert!(
            !promtool_out.status.success(),
            "promtool accepted {bad:?}: the test input is wrong"
        );

        let out = strata_create_blocks(&input, &tmp.path().join(format!("strata-{n}")), None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "strata accepted {bad:?}");
        assert!(
            mentions_line(&stderr, line_no),
            "error for {bad:?} does not name line {line_no}:\n{stderr}"
        );
    }

    // Without `# EOF` the input is truncated: an error too, with or without a line.
    let input = tmp.path().join("no-eof.om.txt");
    std::fs::write(&input, text.trim_end_matches("# EOF\n")).expect("write input");
    let out = strata_create_blocks(&input, &tmp.path().join("strata-no-eof"), None);
    assert!(!out.status.success(), "strata accepted input without # EOF");
}

/// Copies the fixture, damages one file of the middle block with `damage`,
/// and requires `strata tools tsdb dump` to fail naming that file.
fn assert_dump_reports_damage(file: &str, damage: impl FnOnce(&Path)) {
    let ulid = "01M89M40EWCFM4WRABFH5YD4RY";
    let (_tmp, blocks) = fixture_blocks();
    let path = blocks.join(ulid).join(file);
    damage(&path);
    let out = tsdb([OsStr::new("dump"), blocks.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "strata dump succeeded on a damaged {file}"
    );
    let name = Path::new(file)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or(file);
    assert!(
        stderr.contains(name) && stderr.contains(ulid),
        "error does not name {ulid}/{file}:\n{stderr}"
    );
}

fn truncate_to_half(path: &Path) {
    let len = std::fs::metadata(path).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
}

fn xor_bytes(path: &Path, range: std::ops::Range<usize>) {
    let mut data = std::fs::read(path).expect("read");
    for b in &mut data[range] {
        *b ^= 0xff;
    }
    std::fs::write(path, data).expect("write");
}

#[test]
fn truncated_index_is_an_error_naming_the_file() {
    assert_dump_reports_damage("index", truncate_to_half);
}

#[test]
fn corrupt_index_symbols_are_an_error_naming_the_file() {
    // Inside the symbol table, right after the 5-byte header: CRC mismatch.
    assert_dump_reports_damage("index", |p| xor_bytes(p, 20..24));
}

#[test]
fn corrupt_chunk_data_is_an_error_naming_the_file() {
    // Inside the first chunk's data. promtool 2.42 does not check chunk
    // CRCs and prints a short dump with exit status 0; strata must not.
    assert_dump_reports_damage("chunks/000001", |p| xor_bytes(p, 100..104));
}

#[test]
fn truncated_chunks_file_is_an_error_naming_the_file() {
    // promtool 2.42 silently drops the chunks past the end; strata must not.
    assert_dump_reports_damage("chunks/000001", truncate_to_half);
}

#[test]
fn bad_chunks_magic_is_an_error_naming_the_file() {
    assert_dump_reports_damage("chunks/000001", |p| xor_bytes(p, 0..4));
}
