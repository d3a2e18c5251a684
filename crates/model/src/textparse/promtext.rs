//! Line parser for the Prometheus text format 0.0.4 (`model/textparse/promparse.go`).
//!
//! Tokens are separated by spaces or tabs, which may also surround the tokens of a
//! label set; leading and trailing whitespace is ignored and blank lines are
//! skipped. `#` lines are comments unless they are `# HELP` or `# TYPE`.

use super::labelset::series_head;
use super::lex::{self, is_ws, Cursor, Escapes};
use super::{Line, LineState, MetricType, Parsed};
use crate::error::Result;

/// Parses one line (without its `\n`).
pub(crate) fn parse_line<'a>(
    bytes: &'a [u8],
    line_no: usize,
    st: &mut LineState,
) -> Result<Line<'a>> {
    let indent = bytes.iter().take_while(|&&b| is_ws(b)).count();
    let body = bytes.get(indent..).unwrap_or_default();
    match body.first() {
        None => return Ok(Line::Blank),
        Some(b'#') if !is_metadata(body) => return Ok(Line::Comment(body)),
        _ => {}
    }
    let line = lex::validate_utf8(bytes, line_no)?;
    let mut cur = Cursor::new(line, line_no);
    cur.pos = indent;
    let parsed = if body.first() == Some(&b'#') {
        metadata(&mut cur, st)?
    } else {
        sample(&mut cur, st)?
    };
    Ok(Line::Parsed(line, parsed))
}

/// Whether a `#` line is `#[ \t]+(HELP|TYPE)[ \t]...`.
fn is_metadata(body: &[u8]) -> bool {
    let after = body.get(1..).unwrap_or_default();
    let ws = after.iter().take_while(|&&b| is_ws(b)).count();
    if ws == 0 {
        return false;
    }
    let kw = after.get(ws..).unwrap_or_default();
    (kw.starts_with(b"HELP") || kw.starts_with(b"TYPE")) && kw.get(4).is_some_and(|&b| is_ws(b))
}

fn metadata(cur: &mut Cursor<'_>, st: &mut LineState) -> Result<Parsed> {
    cur.eat(b'#');
    cur.skip_ws();
    let help = cur.eat_str("HELP");
    if !help {
        cur.eat_str("TYPE");
    }
    let keyword = if help { "HELP" } else { "TYPE" };
    cur.skip_ws();
    let family = cur.family_name(keyword, &mut st.scratch)?;
    if !cur.at_end() && !cur.peek().is_some_and(is_ws) {
        return Err(cur.expected("whitespace after metric name"));
    }
    if help {
        // The text starts after exactly one separator; trailing whitespace is kept.
        cur.pos = (cur.pos + 1).min(cur.b.len());
        let text = lex::text_span(
            cur.line,
            cur.pos,
            cur.b.len(),
            Escapes::PromHelp,
            &mut st.scratch,
        );
        return Ok(Parsed::Help { family, text });
    }
    cur.skip_ws();
    let word = cur.rest().trim_end_matches([' ', '\t']);
    let ty = match word {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        "untyped" => MetricType::Unknown,
        _ => return Err(cur.err(format!("invalid metric type {word:?}"))),
    };
    Ok(Parsed::Type { family, ty })
}

fn sample(cur: &mut Cursor<'_>, st: &mut LineState) -> Result<Parsed> {
    let (raw, name) = series_head(cur, true, &mut st.labels, &mut st.scratch, &mut st.idx)?;
    cur.skip_ws();
    if cur.at_end() {
        return Err(cur.expected("value after metric"));
    }
    let at = cur.pos;
    let token = cur.token(true);
    let text = cur.text(token);
    let value = lex::parse_value(text)
        .ok_or_else(|| cur.err_at(at, format!("expected a float value, got {text:?}")))?;
    let mut ts = None;
    if cur.skip_ws() > 0 && !cur.at_end() {
        let at = cur.pos;
        let token = cur.token(true);
        let text = cur.text(token);
        ts = Some(lex::parse_ms(text).ok_or_else(|| {
            cur.err_at(
                at,
                format!("expected an integer timestamp in milliseconds, got {text:?}"),
            )
        })?);
        cur.skip_ws();
        if !cur.at_end() {
            return Err(cur.expected("end of line after timestamp"));
        }
    }
    Ok(Parsed::Series {
        raw,
        name,
        value,
        ts,
        exemplar: None,
    })
}
