//! Label manipulation: `label_replace`, `label_join`, `absent` labels, sorting by
//! label.

use promql_parser::parser::VectorSelector;
use strata_model::{Labels, MatchType, METRIC_NAME};

use super::mathfns::natural_cmp;
use super::prepare::selector_matchers;
use super::{merge_same_labels, StepSeries};
use crate::{Error, Result};

/// Whether `s` is a valid label name (UTF-8 names are allowed in 3.x, but must be
/// non-empty valid UTF-8; the legacy charset is checked for destination labels).
pub(crate) fn is_valid_label_name(s: &str) -> bool {
    !s.is_empty()
}

fn is_legacy_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Labels of `absent(sel)`: the selector's equality matchers, except `__name__` and
/// names matched more than once.
pub(crate) fn absent_labels(vs: &VectorSelector) -> Labels {
    let Ok(ms) = selector_matchers(vs) else {
        return Labels::empty();
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut dup: Vec<String> = Vec::new();
    for m in &ms {
        if m.name == METRIC_NAME {
            continue;
        }
        let count = ms.iter().filter(|x| x.name == m.name).count();
        if m.kind == MatchType::Equal && count == 1 {
            pairs.push((m.name.clone(), m.value.clone()));
        } else if count > 1 {
            dup.push(m.name.clone());
        }
    }
    Labels::from_pairs(pairs.into_iter().filter(|(n, _)| !dup.contains(n)))
}

/// Compiles a Prometheus regex (RE2 syntax), fully anchored, `.` matching newlines.
pub(crate) fn compile_anchored(re: &str) -> std::result::Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?s:{re})$"))
}

/// `label_replace(v, dst, replacement, src, regex)`.
pub(crate) fn label_replace(
    series: Vec<StepSeries>,
    dst: &str,
    repl: &str,
    src: &str,
    re: &str,
) -> Result<Vec<StepSeries>> {
    let rx = compile_anchored(re).map_err(|_| {
        Error::Execution(format!(
            "invalid regular expression in label_replace(): {re}"
        ))
    })?;
    if dst.is_empty() || dst.contains('\u{fffd}') {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    if !is_legacy_label_name(dst) && !dst.chars().all(|c| !c.is_control()) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(series.len());
    for mut s in series {
        let val = s.labels.get(src).unwrap_or("");
        if let Some(caps) = rx.captures(val) {
            let mut res = String::new();
            caps.expand(&go_template(repl), &mut res);
            let mut b = s.labels.builder();
            b.set(dst, res);
            s.labels = b.build();
        }
        out.push(s);
    }
    merge_same_labels(out)
}

/// Go's `Expand` treats `$name` greedily like Rust's, but `${1}x` style is the same;
/// the one difference: Rust treats `$1x` as the group named `1x`, as does Go.
fn go_template(repl: &str) -> String {
    repl.to_string()
}

/// `label_join(v, dst, sep, src...)`.
pub(crate) fn label_join(
    series: Vec<StepSeries>,
    dst: &str,
    sep: &str,
    srcs: &[String],
) -> Result<Vec<StepSeries>> {
    if dst.is_empty() {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    for s in srcs {
        if !is_valid_label_name(s) {
            return Err(Error::Execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
    }
    let mut out = Vec::with_capacity(series.len());
    for mut s in series {
        let joined = srcs
            .iter()
            .map(|n| s.labels.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(sep);
        let mut b = s.labels.builder();
        b.set(dst, joined);
        s.labels = b.build();
        out.push(s);
    }
    merge_same_labels(out)
}

/// Sorts by the values of `names` (natural order), then by the full label set.
pub(crate) fn sort_by_label(series: &mut [StepSeries], names: &[String], desc: bool) {
    series.sort_by(|a, b| {
        let mut o = std::cmp::Ordering::Equal;
        for n in names {
            o = natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
            if o != std::cmp::Ordering::Equal {
                break;
            }
        }
        if o == std::cmp::Ordering::Equal {
            o = a.labels.cmp(&b.labels);
        }
        if desc {
            o.reverse()
        } else {
            o
        }
    });
}
