//! Phase one: work out each selector's time range and fetch its series once.

use std::collections::HashMap;

use futures::StreamExt;
use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{Expr, VectorSelector};
use strata_model::{MatchType, Matcher, Sample, METRIC_NAME};
use strata_storage::{Frame, Queryable, SelectHints, SelectRequest};

use super::{absent, at_ms, duration_ms, offset_ms, ABSENT_BITS};
use crate::{Error, Result};

/// Key of a selector node: its address in the (immutable, pinned for the query) AST.
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Series fetched for each selector of a query, kept as chunks (about 1-2 bytes
/// per sample) and decoded one series at a time during evaluation.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub by_selector: HashMap<usize, Vec<FetchedSeries>>,
    pub warnings: Vec<String>,
}

/// One fetched series: its chunks and the time range the selector needs.
#[derive(Debug)]
pub(crate) struct FetchedSeries {
    pub labels: strata_model::Labels,
    data: strata_storage::ChunkSeries,
    min_t: i64,
    max_t: i64,
    /// How downsampled aggregate chunks are read (from the surrounding function).
    view: strata_storage::AggrView,
    /// Samples the chunks announce (an upper bound of what `decode` yields).
    pub approx_samples: usize,
}

impl FetchedSeries {
    /// Decodes the samples in the selector's range into `buf` (cleared first),
    /// dropping staleness markers when `drop_stale`.
    pub fn decode(&self, buf: &mut Vec<Sample>, drop_stale: bool) -> Result<()> {
        buf.clear();
        let mut it = self.data.samples_for(self.view);
        while let Some(mut s) = it.next_sample().map_err(map_chunk_err)? {
            if s.t < self.min_t {
                continue;
            }
            if s.t > self.max_t {
                break;
            }
            if drop_stale && strata_model::is_stale_nan(s.v) {
                continue;
            }
            if s.v.to_bits() == ABSENT_BITS {
                s.v = f64::NAN;
            }
            buf.push(Sample::new(s.t, s.v));
        }
        Ok(())
    }
}

/// One selector to fetch.
struct Want<'e> {
    vs: &'e VectorSelector,
    min_t: i64,
    max_t: i64,
    hints: SelectHints,
}

/// Converts a selector's matchers (including its metric name) to Strata matchers.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::Unsupported(
            "'or' inside label matchers is not supported".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    convert(&vs.matchers, &mut out)?;
    Ok(out)
}

fn convert(ms: &Matchers, out: &mut Vec<Matcher>) -> Result<()> {
    for m in &ms.matchers {
        let kind = match m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::Regex,
            MatchOp::NotRe(_) => MatchType::NotRegex,
        };
        let nm = Matcher::new(kind, m.name.clone(), m.value.clone())
            .map_err(|e| Error::Parse(e.to_string()))?;
        if !out.contains(&nm) {
            out.push(nm);
        }
    }
    Ok(())
}

/// Collects the selectors of `e`. `func` is the innermost function or
/// aggregation above the selector, as Prometheus' `extractFuncFromPath` finds
/// it for the select hints: parentheses, unary minus and subqueries pass it
/// through, a binary operator clears it (it decides which aggregate of
/// downsampled data is read).
#[allow(clippy::too_many_arguments)]
fn walk<'e>(
    e: &'e Expr,
    start: i64,
    end: i64,
    lookback: i64,
    qs: i64,
    qe: i64,
    func: Option<&str>,
    out: &mut Vec<Want<'e>>,
) -> Result<()> {
    match e {
        Expr::VectorSelector(vs) => {
            let (s, en) = window(vs, start, end, qs, qe)?;
            out.push(Want {
                vs,
                min_t: s - lookback + 1,
                max_t: en,
                hints: SelectHints {
                    start_ms: s - lookback + 1,
                    end_ms: en,
                    func: func.map(str::to_string),
                    ..Default::default()
                },
            });
        }
        Expr::MatrixSelector(ms) => {
            let (s, en) = window(&ms.vs, start, end, qs, qe)?;
            let r = duration_ms(&ms.range)?;
            out.push(Want {
                vs: &ms.vs,
                min_t: s - r + 1,
                max_t: en,
                hints: SelectHints {
                    start_ms: s - r + 1,
                    end_ms: en,
                    func: func.map(str::to_string),
                    range_ms: r,
                    ..Default::default()
                },
            });
        }
        Expr::Subquery(sq) => {
            let off = offset_ms(&sq.offset)?;
            let (s, en) = match at_ms(&sq.at, qs, qe)? {
                Some(t) => (t - off, t - off),
                None => (start - off, end - off),
            };
            let r = duration_ms(&sq.range)?;
            walk(&sq.expr, s - r, en, lookback, qs, qe, func, out)?;
        }
        Expr::Paren(p) => walk(&p.expr, start, end, lookback, qs, qe, func, out)?,
        Expr::Unary(u) => walk(&u.expr, start, end, lookback, qs, qe, func, out)?,
        Expr::Binary(b) => {
            walk(&b.lhs, start, end, lookback, qs, qe, None, out)?;
            walk(&b.rhs, start, end, lookback, qs, qe, None, out)?;
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if let Some(p) = &a.param {
                walk(p, start, end, lookback, qs, qe, Some(&op), out)?;
            }
            walk(&a.expr, start, end, lookback, qs, qe, Some(&op), out)?;
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, start, end, lookback, qs, qe, Some(c.func.name), out)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

fn window(vs: &VectorSelector, start: i64, end: i64, qs: i64, qe: i64) -> Result<(i64, i64)> {
    let off = offset_ms(&vs.offset)?;
    Ok(match at_ms(&vs.at, qs, qe)? {
        Some(t) => (t - off, t - off),
        None => (start - off, end - off),
    })
}

/// Fetches every selector of `e` for evaluation between `start` and `end`.
pub(crate) async fn prepare(
    q: &dyn Queryable,
    e: &Expr,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
) -> Result<Fetched> {
    let mut wants = Vec::new();
    walk(e, start, end, lookback, start, end, None, &mut wants)?;
    let mut fetched = Fetched::default();
    for w in wants {
        let matchers = selector_matchers(w.vs)?;
        let mut req = SelectRequest::new(w.min_t, w.max_t, matchers);
        req.hints = w.hints;
        req.hints.step_ms = step;
        let view = strata_storage::AggrView::for_func(req.hints.func.as_deref());
        let mut stream = q.select(&req).await?;
        let mut series = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame? {
                Frame::Warning(w) => {
                    if !fetched.warnings.contains(&w) {
                        fetched.warnings.push(w);
                    }
                }
                Frame::Series(cs) => {
                    let mut approx = 0usize;
                    for c in cs.chunks() {
                        if c.max_time < w.min_t || c.min_time > w.max_t {
                            continue;
                        }
                        // Refuse what cannot be decoded now, with the clear error.
                        if !matches!(
                            c.chunk.encoding,
                            strata_chunkenc::Encoding::Xor | strata_chunkenc::Encoding::Aggr
                        ) {
                            return Err(map_chunk_err(strata_storage::Error::Chunk(
                                strata_chunkenc::Error::Unsupported(c.chunk.encoding),
                            )));
                        }
                        approx += c.chunk.num_samples().unwrap_or(0);
                    }
                    if let strata_storage::SeriesData::Samples(s) = &cs.data {
                        approx += s.len();
                    }
                    series.push(FetchedSeries {
                        labels: cs.labels.clone(),
                        data: cs,
                        min_t: w.min_t,
                        max_t: w.max_t,
                        view,
                        approx_samples: approx,
                    });
                }
            }
        }
        let _ = absent;
        fetched.by_selector.insert(selector_key(w.vs), series);
    }
    Ok(fetched)
}

fn map_chunk_err(e: strata_storage::Error) -> Error {
    match e {
        strata_storage::Error::Chunk(strata_chunkenc::Error::Unsupported(enc)) => {
            Error::Unsupported(format!(
                "native histograms are not supported yet (chunk encoding {})",
                enc.name()
            ))
        }
        other => Error::Storage(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hint function of each selector, as Prometheus'
    /// `extractFuncFromPath` gives it.
    fn funcs(q: &str) -> Vec<Option<String>> {
        let e = promql_parser::parser::parse(q).unwrap();
        let mut out = Vec::new();
        walk(&e, 0, 0, 1, 0, 0, None, &mut out).unwrap();
        out.into_iter().map(|w| w.hints.func).collect()
    }

    #[test]
    fn hint_function_follows_prometheus() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(funcs("x"), [None]);
        assert_eq!(funcs("max_over_time(x[1h])"), [some("max_over_time")]);
        assert_eq!(funcs("sum(rate(x[5m]))"), [some("rate")]);
        assert_eq!(funcs("max(x)"), [some("max")]);
        assert_eq!(funcs("count_values(\"v\", x)"), [some("count_values")]);
        assert_eq!(funcs("min_over_time(x[1h:5m])"), [some("min_over_time")]);
        assert_eq!(funcs("abs(-(x))"), [some("abs")]);
        assert_eq!(funcs("max(x + y)"), [None, None]);
        assert_eq!(funcs("topk(scalar(y), x)"), [some("scalar"), some("topk")]);
    }
}
