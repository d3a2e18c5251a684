//! Runs Prometheus' own PromQL test scripts (`promql/promqltest/testdata/*.test`,
//! latest and v2.42) against the engine, over an in-memory Queryable.
//!
//! Every `eval` is one case, identified as `<set>/<file>:<line>`. The test fails if a
//! case fails that is not listed in `promqltest-known-failures.txt`, or if a listed
//! case passes (so the list stays honest). Set `PROMQLTEST_UPDATE=1` to rewrite the
//! list from the current results.
//!
//! Skipped (counted, not run):
//! - whole files exercising experimental or unsupported features:
//!   `native_histograms`, `info` (the `info()` function), `fill-modifier`,
//!   `duration_expression`, `extended_vectors` (`anchored`/`smoothed` ranges),
//!   `type_and_unit` (type-and-unit labels), `start_timestamps`;
//! - cases over series loaded with native histograms (`{{…}}` samples or
//!   `load_with_nhcb`), cases expecting histogram samples, and cases using the
//!   native-histogram functions (`histogram_count`, `histogram_sum`, `histogram_avg`,
//!   `histogram_stddev`, `histogram_stdvar`, `histogram_fraction`);
//! - cases using experimental syntax: `info()`, `fill*` modifiers, `anchored`,
//!   `smoothed`, `start_timestamp()`, `step()`/`start()`/`end()` functions and
//!   duration arithmetic (delayed name removal is never enabled by these scripts'
//!   float cases we run);
//! - cases that fail only with the engine's "native histograms are not supported
//!   yet" error.

#[path = "promqltest/case.rs"]
mod case;
#[path = "promqltest/script.rs"]
mod script;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use case::{check_result, parse_eval, EvalAt, EvalCmd, Kind, MsgMatch};
use script::{parse_duration_ms, parse_series, SeriesDesc};
use strata_promql::{Engine, EngineOptions, QueryOptions};
use strata_testkit::MemQueryable;

const SKIP_FILES: &[&str] = &[
    "native_histograms.test",
    "info.test",
    "fill-modifier.test",
    "duration_expression.test",
    "extended_vectors.test",
    "type_and_unit.test",
    "start_timestamps.test",
];

const NH_FUNCTIONS: &[&str] = &[
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_fraction",
];

const EXPERIMENTAL_SYNTAX: &[&str] = &[
    "info(",
    "fill(",
    "fill_left",
    "fill_right",
    " anchored",
    " smoothed",
    "start_timestamp(",
];

/// Cases that need delayed `__name__` removal (an experimental 3.x engine option).
const DELAYED_NAME_REMOVAL: &[&str] = &[
    "latest/name_label_dropping.test:59",
    "latest/name_label_dropping.test:64",
    "latest/name_label_dropping.test:69",
    "latest/name_label_dropping.test:74",
    "latest/name_label_dropping.test:89",
    "latest/name_label_dropping.test:115",
    "latest/name_label_dropping.test:119",
    "latest/name_label_dropping.test:123",
];

enum Outcome {
    Pass,
    Fail(String),
    Skip,
}

fn mentions(expr: &str, name: &str) -> bool {
    let mut from = 0;
    while let Some(p) = expr[from..].find(name) {
        let s = from + p;
        let e = s + name.len();
        let before = expr[..s].chars().next_back();
        let after = expr[e..].chars().next();
        let ok =
            |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if ok(before) && ok(after) {
            return true;
        }
        from = e;
    }
    false
}

fn run_case(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    store: &Arc<MemQueryable>,
    c: &EvalCmd,
    hist: &HashSet<String>,
) -> Outcome {
    if c.raw_histograms
        || c.series.iter().any(SeriesDesc::has_histogram)
        || hist.iter().any(|h| mentions(&c.expr, h))
        || NH_FUNCTIONS.iter().any(|f| c.expr.contains(f))
        || EXPERIMENTAL_SYNTAX.iter().any(|f| c.expr.contains(f))
    {
        return Outcome::Skip;
    }
    let q: Arc<dyn strata_storage::Queryable> = store.clone();
    let res = rt.block_on(async {
        match c.at {
            EvalAt::Instant(t) => {
                engine
                    .instant_query(q, &c.expr, t, &QueryOptions::default())
                    .await
            }
            EvalAt::Range { start, end, step } => {
                engine
                    .range_query(q, &c.expr, start, end, step, &QueryOptions::default())
                    .await
            }
        }
    });
    let fails: Vec<&MsgMatch> = c
        .expects
        .iter()
        .filter(|e| e.0 == Kind::Fail)
        .map(|e| &e.1)
        .collect();
    match res {
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("native histograms are not supported") {
                return Outcome::Skip;
            }
            if fails.is_empty() {
                return Outcome::Fail(format!("unexpected error: {msg}"));
            }
            if fails.iter().all(|m| m.matches(&msg)) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("error message mismatch: {msg}"))
            }
        }
        Ok(r) => {
            if !fails.is_empty() {
                return Outcome::Fail("expected an error, query succeeded".into());
            }
            match check_result(c, &r) {
                Ok(()) => Outcome::Pass,
                Err(e) => Outcome::Fail(e),
            }
        }
    }
}

/// Runs one script; returns `(case id, outcome)` per eval.
fn run_file(
    rt: &tokio::runtime::Runtime,
    set: &str,
    path: &Path,
) -> Vec<(String, String, Outcome)> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("?")
        .to_string();
    let text = std::fs::read_to_string(path).expect("read script");
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect();
    let engine = Engine::new(EngineOptions::default());
    let mut store = MemQueryable::new();
    let mut shared = Arc::new(store.clone());
    let mut dirty = false;
    let mut hist: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let skip_file = SKIP_FILES.contains(&file.as_str());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let lineno = i + 1;
        i += 1;
        if line.is_empty() {
            continue;
        }
        let mut body = Vec::new();
        let is_clear = line == "clear";
        while !is_clear && i < lines.len() && !lines[i].trim().is_empty() {
            body.push(lines[i]);
            i += 1;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        match word {
            "clear" => {
                store.clear();
                hist.clear();
                dirty = true;
            }
            "load" | "load_with_nhcb" if skip_file => {}
            "load" | "load_with_nhcb" => {
                let interval = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(parse_duration_ms)
                    .expect("load interval");
                for l in &body {
                    let Some(s) = parse_series(l.trim()) else {
                        match script::parse_metric(l.trim()) {
                            Some((labels, _)) if l.contains("{{") => {
                                hist.insert(labels.metric_name().unwrap_or("").to_string());
                                continue;
                            }
                            _ => panic!("{file}:{lineno}: bad series {l}"),
                        }
                    };
                    let name = s.labels.metric_name().unwrap_or("").to_string();
                    if s.has_histogram() {
                        hist.insert(name.clone());
                    }
                    if word == "load_with_nhcb" {
                        for suf in ["_bucket", "_count", "_sum"] {
                            if let Some(base) = name.strip_suffix(suf) {
                                hist.insert(base.to_string());
                            }
                        }
                    }
                    store.add(s.labels.clone(), s.samples(0, interval));
                }
                dirty = true;
            }
            w if w.starts_with("eval") => {
                let id = format!("{set}/{file}:{lineno}");
                let expr_text = line
                    .split_whitespace()
                    .skip(3)
                    .collect::<Vec<_>>()
                    .join(" ");
                if skip_file || DELAYED_NAME_REMOVAL.contains(&id.as_str()) {
                    out.push((id, expr_text, Outcome::Skip));
                    continue;
                }
                let cmd = match parse_eval(line, lineno, &body) {
                    Ok(c) => c,
                    Err(e) => {
                        out.push((
                            id,
                            expr_text,
                            Outcome::Fail(format!("runner cannot parse case: {e}")),
                        ));
                        continue;
                    }
                };
                if dirty {
                    shared = Arc::new(store.clone());
                    dirty = false;
                }
                let o = run_case(rt, &engine, &shared, &cmd, &hist);
                if std::env::var("PROMQLTEST_DEBUG").is_ok_and(|d| d == id) {
                    for (l, s) in shared.series() {
                        eprintln!("DEBUG store {l} {s:?}");
                    }
                    if let Outcome::Fail(r) = &o {
                        eprintln!("DEBUG {id}: {r}");
                    }
                }
                let _ = cmd.line;
                out.push((id, cmd.expr.clone(), o));
            }
            other => panic!("{file}:{lineno}: unknown command {other}"),
        }
    }
    out
}

fn known_failures_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promqltest-known-failures.txt")
}

#[test]
fn promqltest_scripts() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base = strata_testkit::shared_dir().join("promql-conformance");
    // (file key, case id, query, outcome)
    let mut results: Vec<(String, String, String, Outcome)> = Vec::new();
    for set in ["latest", "v2.42"] {
        let dir = base.join(format!("promqltest-{set}"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "test"))
            .collect();
        files.sort();
        for f in files {
            let key = format!(
                "{set}/{}",
                f.file_name().and_then(|x| x.to_str()).unwrap_or("?")
            );
            for (id, q, o) in run_file(&rt, set, &f) {
                results.push((key.clone(), id, q, o));
            }
        }
    }
    // Summary table.
    let mut table: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (k, _, _, o) in &results {
        let e = table.entry(k.as_str()).or_default();
        match o {
            Outcome::Pass => e.0 += 1,
            Outcome::Fail(_) => e.1 += 1,
            Outcome::Skip => e.2 += 1,
        }
    }
    eprintln!(
        "{:<40} {:>7} {:>7} {:>8}",
        "file", "passed", "failed", "skipped"
    );
    let mut tot = (0, 0, 0);
    for (k, (p, f, s)) in &table {
        eprintln!("{k:<40} {p:>7} {f:>7} {s:>8}");
        tot = (tot.0 + p, tot.1 + f, tot.2 + s);
    }
    eprintln!("{:<40} {:>7} {:>7} {:>8}", "TOTAL", tot.0, tot.1, tot.2);

    let known_text = std::fs::read_to_string(known_failures_path()).unwrap_or_default();
    let known: HashSet<&str> = known_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();

    if std::env::var_os("PROMQLTEST_UPDATE").is_some() {
        write_known_failures(&results, &known_text);
        return;
    }
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for (_, id, _, o) in &results {
        match o {
            Outcome::Fail(r) if !known.contains(id.as_str()) => {
                unexpected.push(format!("{id} {r}"))
            }
            Outcome::Pass | Outcome::Skip if known.contains(id.as_str()) => fixed.push(id.clone()),
            _ => {}
        }
    }
    for u in &unexpected {
        eprintln!("NEW FAILURE: {u}");
    }
    for f in &fixed {
        eprintln!("NOW PASSING (remove from known failures): {f}");
    }
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{} new failures, {} known failures now pass (PROMQLTEST_UPDATE=1 rewrites the list)",
        unexpected.len(),
        fixed.len()
    );
}

fn write_known_failures(results: &[(String, String, String, Outcome)], old: &str) {
    let latest_pass: HashSet<&str> = results
        .iter()
        .filter(|r| r.1.starts_with("latest/") && matches!(r.3, Outcome::Pass))
        .map(|r| r.2.as_str())
        .collect();
    // Keep hand-written reasons of cases still failing.
    let old_reasons: BTreeMap<&str, &str> = old
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let mut out = String::from(
        "# PromQL test-script cases known to fail: `<set>/<file>:<line> <reason>`.\n\
         # Checked by tests/promqltest.rs: a case failing off this list, or passing on it,\n\
         # fails the test. Regenerate with PROMQLTEST_UPDATE=1 (keeps existing reasons).\n",
    );
    for (_, id, q, o) in results {
        if let Outcome::Fail(r) = o {
            let reason = match old_reasons.get(id.as_str()) {
                Some(r) => r.to_string(),
                None if id.starts_with("v2.42/") && q.contains("holt_winters") => {
                    "3.x change: holt_winters was renamed double_exponential_smoothing".into()
                }
                None if id.starts_with("v2.42/") && latest_pass.contains(q.as_str()) => {
                    "3.x change: the latest script expects other output for this query (left-open windows, 3.x extrapolation)".into()
                }
                None => {
                    let mut r: String = r.replace('\n', " ");
                    if r.len() > 160 {
                        let mut cut = 160;
                        while !r.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        r.truncate(cut);
                        r.push('…');
                    }
                    r
                }
            };
            out.push_str(&format!("{id} {reason}\n"));
        }
    }
    std::fs::write(known_failures_path(), out).expect("write known failures");
}
