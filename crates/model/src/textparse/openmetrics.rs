//! Line parser for OpenMetrics 1.0 text (`model/textparse/openmetricsparse.go`).
//!
//! The grammar is strict: tokens are separated by exactly one space, there is no
//! leading or trailing whitespace, no blank lines and no comments other than the
//! `# HELP`, `# TYPE`, `# UNIT` descriptors and the final `# EOF`. Every line ends
//! in `\n`, except that `# EOF` may end the input.

use super::labelset::{check_unique, parse_label_set, series_head, SetRules};
use super::lex::{self, Cursor, Escapes, Span};
use super::{Line, LineState, MetricType, Parsed};
use crate::error::Result;

/// Parses one line (without its `\n`; `has_newline` says whether it had one).
pub(crate) fn parse_line<'a>(
    bytes: &'a [u8],
    has_newline: bool,
    line_no: usize,
    st: &mut LineState,
) -> Result<Line<'a>> {
    if bytes == b"# EOF" {
        return Ok(Line::Eof);
    }
    let line = lex::validate_utf8(bytes, line_no)?;
    let mut cur = Cursor::new(line, line_no);
    let parsed = match bytes.first() {
        None => return Err(cur.err("unexpected blank line (not allowed in OpenMetrics)")),
        Some(b'#') => descriptor(&mut cur, st)?,
        Some(_) => sample(&mut cur, st)?,
    };
    if !has_newline {
        return Err(cur.err_at(bytes.len(), "data does not end with # EOF"));
    }
    Ok(Line::Parsed(line, parsed))
}

fn descriptor(cur: &mut Cursor<'_>, st: &mut LineState) -> Result<Parsed> {
    let keyword = if cur.eat_str("# HELP ") {
        "HELP"
    } else if cur.eat_str("# TYPE ") {
        "TYPE"
    } else if cur.eat_str("# UNIT ") {
        "UNIT"
    } else {
        return Err(cur.err(format!(
            "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got {} \
             (OpenMetrics has no comments)",
            cur.got()
        )));
    };
    let family = cur.family_name(keyword, &mut st.scratch)?;
    if !cur.eat(b' ') {
        return Err(cur.expected(&format!("a space and text after metric name in {keyword}")));
    }
    let start = cur.pos;
    let end = cur.b.len();
    match keyword {
        "HELP" => {
            let text = lex::text_span(cur.line, start, end, Escapes::Quoted, &mut st.scratch);
            Ok(Parsed::Help { family, text })
        }
        "TYPE" => {
            let word = cur.rest();
            let ty = match word {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                "gaugehistogram" => MetricType::GaugeHistogram,
                "summary" => MetricType::Summary,
                "info" => MetricType::Info,
                "stateset" => MetricType::Stateset,
                "unknown" => MetricType::Unknown,
                _ => return Err(cur.err(format!("invalid metric type {word:?}"))),
            };
            Ok(Parsed::Type { family, ty })
        }
        _ => {
            let unit = cur.rest();
            let name = family.resolve(cur.line, &st.scratch);
            let suffix_ok = name
                .strip_suffix(unit)
                .is_some_and(|head| head.ends_with('_'));
            if !unit.is_empty() && !suffix_ok {
                return Err(cur.err(format!("unit {unit:?} is not a suffix of metric {name:?}")));
            }
            Ok(Parsed::Unit {
                family,
                unit: Span::line(start, end),
            })
        }
    }
}

fn sample(cur: &mut Cursor<'_>, st: &mut LineState) -> Result<Parsed> {
    let (raw, name) = series_head(cur, false, &mut st.labels, &mut st.scratch, &mut st.idx)?;
    let value = value(cur, "value after metric")?;
    let mut ts = None;
    let mut exemplar = None;
    if cur.eat(b' ') {
        if cur.peek() == Some(b'#') {
            exemplar = Some(parse_exemplar(cur, st)?);
        } else {
            ts = Some(timestamp(cur)?);
            if cur.eat(b' ') {
                exemplar = Some(parse_exemplar(cur, st)?);
            }
        }
    }
    if !cur.at_end() {
        return Err(cur.expected("end of line"));
    }
    Ok(Parsed::Series {
        raw,
        name,
        value,
        ts,
        exemplar,
    })
}

/// ` # {labels} value [timestamp]`, after the leading space.
fn parse_exemplar(cur: &mut Cursor<'_>, st: &mut LineState) -> Result<(f64, Option<i64>)> {
    if !cur.eat_str("# {") {
        return Err(cur.expected("timestamp or exemplar (\"# {\")"));
    }
    let rules = SetRules {
        lenient_ws: false,
        allow_metric_name: false,
    };
    let mut no_name = None;
    parse_label_set(cur, rules, &mut no_name, &mut st.exemplar, &mut st.scratch)?;
    check_unique(cur, &st.scratch, &st.exemplar, false, &mut st.idx)?;
    let value = value(cur, "exemplar value")?;
    let mut ts = None;
    if cur.eat(b' ') {
        ts = Some(timestamp(cur)?);
    }
    Ok((value, ts))
}

/// A space, then a float.
fn value(cur: &mut Cursor<'_>, what: &str) -> Result<f64> {
    if !cur.eat(b' ') {
        return Err(cur.expected(&format!("a space and {what}")));
    }
    let at = cur.pos;
    let token = cur.token(false);
    let text = cur.text(token);
    lex::parse_value(text)
        .ok_or_else(|| cur.err_at(at, format!("expected a float value, got {text:?}")))
}

/// A timestamp in seconds, as milliseconds.
fn timestamp(cur: &mut Cursor<'_>) -> Result<i64> {
    let at = cur.pos;
    let token = cur.token(false);
    let text = cur.text(token);
    lex::seconds_to_ms(text)
        .ok_or_else(|| cur.err_at(at, format!("expected a timestamp in seconds, got {text:?}")))
}
