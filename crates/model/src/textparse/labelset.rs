//! The `{name="value",...}` part of a sample or exemplar, shared by both formats.

use super::lex::{Cursor, Escapes, Span};
use crate::error::Result;
use crate::METRIC_NAME;

/// One parsed label: name and value spans, and where the name starts in the line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LabelSpan {
    pub(crate) name: Span,
    pub(crate) value: Span,
    pub(crate) at: usize,
}

/// How a label set is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SetRules {
    /// Spaces and tabs may surround tokens (Prometheus text format).
    pub(crate) lenient_ws: bool,
    /// A bare quoted string may name the metric (`{"my.metric", a="b"}`).
    pub(crate) allow_metric_name: bool,
}

/// Parses labels after the opening `{` up to and including the closing `}`.
/// A quoted metric name, if allowed and present, is stored in `metric_name`.
pub(crate) fn parse_label_set(
    cur: &mut Cursor<'_>,
    rules: SetRules,
    metric_name: &mut Option<Span>,
    out: &mut Vec<LabelSpan>,
    scratch: &mut String,
) -> Result<()> {
    let ws = |cur: &mut Cursor<'_>| {
        if rules.lenient_ws {
            cur.skip_ws();
        }
    };
    loop {
        ws(cur);
        if cur.eat(b'}') {
            return Ok(());
        }
        let at = cur.pos;
        let (name, quoted) = match cur.peek() {
            Some(b'"') => (cur.quoted(Escapes::Quoted, scratch)?, true),
            _ => match cur.label_name() {
                Some(s) => (s, false),
                None => return Err(cur.expected("label name")),
            },
        };
        ws(cur);
        if quoted && matches!(cur.peek(), Some(b',' | b'}')) {
            // A quoted string on its own is the metric name.
            if !rules.allow_metric_name {
                return Err(cur.err_at(at, "expected label name, got a bare quoted string"));
            }
            if metric_name.is_some() {
                return Err(cur.err_at(at, "metric name already set"));
            }
            if name.start == name.end {
                return Err(cur.err_at(at, "empty metric name"));
            }
            *metric_name = Some(name);
            cur.eat(b',');
            continue;
        }
        if quoted && name.start == name.end {
            return Err(cur.err_at(at, "empty label name"));
        }
        if !cur.eat(b'=') {
            return Err(cur.expected("'=' after label name"));
        }
        ws(cur);
        if cur.peek() != Some(b'"') {
            return Err(cur.expected("label value"));
        }
        let value = cur.quoted(Escapes::Quoted, scratch)?;
        out.push(LabelSpan { name, value, at });
        ws(cur);
        match cur.peek() {
            Some(b',') => cur.pos += 1,
            Some(b'}') => {}
            _ => return Err(cur.expected("',' or '}' after label value")),
        }
    }
}

/// Rejects a label name that appears twice, or `__name__` given as a label when
/// `forbid_metric_name` is set (the metric name is written outside the pairs).
pub(crate) fn check_unique(
    cur: &Cursor<'_>,
    scratch: &str,
    labels: &[LabelSpan],
    forbid_metric_name: bool,
    idx: &mut Vec<usize>,
) -> Result<()> {
    let name = |l: &LabelSpan| l.name.resolve(cur.line, scratch);
    let dup = |l: &LabelSpan| cur.err_at(l.at, format!("duplicate label name {:?}", name(l)));
    if forbid_metric_name {
        if let Some(l) = labels.iter().find(|l| name(l) == METRIC_NAME) {
            return Err(dup(l));
        }
    }
    if labels.len() <= 16 {
        for (i, a) in labels.iter().enumerate() {
            if labels.iter().take(i).any(|b| name(a) == name(b)) {
                return Err(dup(a));
            }
        }
        return Ok(());
    }
    idx.clear();
    idx.extend(0..labels.len());
    idx.sort_by(|&a, &b| {
        let (la, lb) = (&labels[a], &labels[b]);
        name(la).cmp(name(lb)).then(la.at.cmp(&lb.at))
    });
    for w in idx.windows(2) {
        let (a, b) = (&labels[w[0]], &labels[w[1]]);
        if name(a) == name(b) {
            return Err(dup(b));
        }
    }
    Ok(())
}

/// Parses the series part of a sample line at the cursor: a metric name, a label
/// set, or both. Fills `labels` and returns the spans of the whole series text and
/// of the metric name.
pub(crate) fn series_head(
    cur: &mut Cursor<'_>,
    lenient_ws: bool,
    labels: &mut Vec<LabelSpan>,
    scratch: &mut String,
    idx: &mut Vec<usize>,
) -> Result<(Span, Span)> {
    let start = cur.pos;
    let mut name = None;
    if cur.peek() != Some(b'{') {
        name = Some(
            cur.metric_name()
                .ok_or_else(|| cur.expected("metric name"))?,
        );
    }
    let mut end = cur.pos;
    if lenient_ws {
        cur.skip_ws();
    }
    if cur.eat(b'{') {
        let rules = SetRules {
            lenient_ws,
            allow_metric_name: true,
        };
        parse_label_set(cur, rules, &mut name, labels, scratch)?;
        end = cur.pos;
    }
    let name = name.ok_or_else(|| cur.err_at(start, "metric name not set"))?;
    check_unique(cur, scratch, labels, true, idx)?;
    Ok((Span::line(start, end), name))
}
