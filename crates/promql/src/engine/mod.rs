//! Evaluation (mirrors Prometheus `promql/engine.go`).
//!
//! A query runs in two phases. [`prepare`] walks the AST, works out the time range
//! every selector needs (honouring `offset`, `@` and subqueries) and fetches each
//! selector's series once through the [`Queryable`]. [`Evaluator`] then evaluates the
//! whole step range at once, bottom-up: every node yields all its steps, and every
//! per-series decision (grouping keys, matching signatures, output labels) is made
//! once per series rather than once per step.

mod aggregations;
mod binary;
mod functions;
mod histogram;
mod labelfns;
mod mathfns;
mod prepare;
mod range_fns;
mod selector;
mod subquery;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, Offset, UnaryExpr};
use strata_model::{Labels, Sample};

use crate::{Error, Result};

pub(crate) use prepare::{prepare, Fetched};

/// Maximum evaluation depth (AST nesting) before the query is refused.
const MAX_DEPTH: usize = 2000;

/// Bit pattern marking "no value at this step" in dense step arrays. Input samples
/// with this exact NaN payload are canonicalised to an ordinary NaN when loaded.
const ABSENT_BITS: u64 = 0x7ff4_a85e_0b5e_0001;

/// The "no value" marker for dense step arrays.
#[inline]
pub(crate) fn absent() -> f64 {
    f64::from_bits(ABSENT_BITS)
}

/// Whether a step value is the "no value" marker.
#[inline]
pub(crate) fn is_absent(v: f64) -> bool {
    v.to_bits() == ABSENT_BITS
}

/// Evaluation times: `start + i * step` for `i` in `0..n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    /// The time of step `i`.
    #[inline]
    pub fn ts(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }

    /// The last evaluation time.
    pub fn end(&self) -> i64 {
        self.ts(self.n.saturating_sub(1))
    }
}

/// One series of an instant vector over all steps: one value per step, with
/// [`absent`] where the series has no value.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub vals: Vec<f64>,
}

impl StepSeries {
    pub fn new(labels: Labels, n: usize) -> Self {
        Self {
            labels,
            vals: vec![absent(); n],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.vals.iter().all(|v| is_absent(*v))
    }
}

/// A series of a range vector (samples in time order).
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// An evaluated expression.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    /// A string.
    Str(String),
    /// An instant vector over all steps.
    Vector(Vec<StepSeries>),
    /// A range vector (only as an instant query's result).
    Matrix(Vec<RangeSeries>),
}

impl Val {
    fn count(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Str(_) => 1,
            Val::Vector(s) => s.iter().map(|s| s.vals.len()).sum(),
            Val::Matrix(s) => s.iter().map(|s| s.samples.len()).sum(),
        }
    }
}

/// Limits and settings of one evaluation.
#[derive(Clone, Debug)]
pub(crate) struct EvalSettings {
    pub lookback_ms: i64,
    pub max_samples: usize,
    pub deadline: Instant,
    /// The query text, for annotation positions.
    pub query: std::sync::Arc<str>,
    /// The query's step, ms (0 for instant queries).
    pub query_step: i64,
    /// The query's start and end, for `@ start()` / `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    /// Step of subqueries without one, ms.
    pub default_subquery_step: i64,
}

/// Evaluates an AST over a grid of steps, reading prefetched series.
pub(crate) struct Evaluator<'a> {
    pub(crate) settings: EvalSettings,
    data: &'a Fetched,
    cur_samples: usize,
    depth: usize,
    ticks: u32,
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
}

impl<'a> Evaluator<'a> {
    pub fn new(settings: EvalSettings, data: &'a Fetched) -> Self {
        Self {
            settings,
            data,
            cur_samples: 0,
            depth: 0,
            ticks: 0,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    /// Fails when the deadline has passed (checked cheaply, every few calls).
    pub(crate) fn check_deadline(&mut self) -> Result<()> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks & 63 == 0 && Instant::now() > self.settings.deadline {
            return Err(Error::Timeout("query execution"));
        }
        Ok(())
    }

    /// Accounts for `n` more samples held; fails past `max_samples`.
    pub(crate) fn reserve(&mut self, n: usize) -> Result<()> {
        if self.cur_samples.saturating_add(n) > self.settings.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// ` (line:col)` of `e`'s text in the query, or "" if it cannot be found.
    pub(crate) fn pos(&self, e: &Expr) -> String {
        let q = &*self.settings.query;
        let needle = e.to_string();
        let found = q.find(&needle).or_else(|| match e {
            Expr::VectorSelector(vs) => vs.name.as_deref().and_then(|n| q.find(n)),
            Expr::MatrixSelector(ms) => ms.vs.name.as_deref().and_then(|n| q.find(n)),
            _ => None,
        });
        match found {
            Some(off) => {
                let before = &q[..off];
                let line = before.matches('\n').count() + 1;
                let col = off - before.rfind('\n').map_or(0, |p| p + 1) + 1;
                format!(" ({line}:{col})")
            }
            None => String::new(),
        }
    }

    pub(crate) fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub(crate) fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// Evaluates `e` at every step of `grid`.
    pub fn eval(&mut self, e: &Expr, grid: Grid) -> Result<Val> {
        if Instant::now() > self.settings.deadline {
            return Err(Error::Timeout("query execution"));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::Execution(format!(
                "query is too deeply nested (more than {MAX_DEPTH} levels)"
            )));
        }
        let before = self.cur_samples;
        let r = self.eval_inner(e, grid);
        self.depth -= 1;
        let v = r?;
        let n = v.count();
        self.cur_samples = before.saturating_add(n);
        if self.cur_samples > self.settings.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(v)
    }

    fn eval_inner(&mut self, e: &Expr, grid: Grid) -> Result<Val> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; grid.n])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, grid),
            Expr::Unary(u) => self.eval_unary(u, grid),
            Expr::VectorSelector(vs) => {
                let s = self.eval_vector_selector(vs, grid, false)?;
                Ok(Val::Vector(s))
            }
            Expr::MatrixSelector(ms) => {
                if grid.n != 1 {
                    return Err(range_type_error("range vector"));
                }
                Ok(Val::Matrix(self.eval_matrix_selector(ms, grid.ts(0))?))
            }
            Expr::Subquery(sq) => {
                if grid.n != 1 {
                    return Err(range_type_error("range vector"));
                }
                self.eval_subquery_matrix(sq, grid.ts(0))
            }
            Expr::Call(c) => self.eval_call(c, grid),
            Expr::Aggregate(a) => self.eval_aggregate(a, grid),
            Expr::Binary(b) => self.eval_binary(b, grid),
            Expr::Extension(_) => Err(Error::Unsupported(
                "extension expressions are not supported".into(),
            )),
        }
    }

    fn eval_unary(&mut self, u: &UnaryExpr, grid: Grid) -> Result<Val> {
        match self.eval(&u.expr, grid)? {
            Val::Scalar(mut v) => {
                for x in &mut v {
                    *x = -*x;
                }
                Ok(Val::Scalar(v))
            }
            Val::Vector(mut ss) => {
                for s in &mut ss {
                    s.labels = s.labels.without_metric_name();
                    for x in &mut s.vals {
                        if !is_absent(*x) {
                            *x = -*x;
                        }
                    }
                }
                Ok(Val::Vector(merge_same_labels(ss)?))
            }
            _ => Err(Error::Execution(
                "unary expression only allowed on expressions of type scalar or instant vector"
                    .into(),
            )),
        }
    }

    /// Evaluates an expression that must yield a scalar, returning one value per step.
    pub(crate) fn eval_scalar(&mut self, e: &Expr, grid: Grid) -> Result<Vec<f64>> {
        match self.eval(e, grid)? {
            Val::Scalar(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected scalar, got {}",
                type_name(&other)
            ))),
        }
    }

    /// Evaluates an expression that must yield an instant vector.
    pub(crate) fn eval_vector(&mut self, e: &Expr, grid: Grid) -> Result<Vec<StepSeries>> {
        match self.eval(e, grid)? {
            Val::Vector(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected instant vector, got {}",
                type_name(&other)
            ))),
        }
    }

    /// Evaluates an expression that must yield a string.
    pub(crate) fn eval_string(&mut self, e: &Expr, grid: Grid) -> Result<String> {
        match self.eval(e, grid)? {
            Val::Str(s) => Ok(s),
            other => Err(Error::Execution(format!(
                "expected string, got {}",
                type_name(&other)
            ))),
        }
    }
}

pub(crate) fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    }
}

fn range_type_error(t: &str) -> Error {
    Error::Execution(format!(
        "invalid expression type \"{t}\" for range query, must be Scalar or instant Vector"
    ))
}

/// Merges series with equal label sets (after name dropping or relabelling). Two
/// series with a value at the same step are an error, as in Prometheus.
pub(crate) fn merge_same_labels(ss: Vec<StepSeries>) -> Result<Vec<StepSeries>> {
    merge_same_labels_msg(ss, "vector cannot contain metrics with the same labelset")
}

/// [`merge_same_labels`] with a custom collision message.
pub(crate) fn merge_same_labels_msg(ss: Vec<StepSeries>, msg: &str) -> Result<Vec<StepSeries>> {
    if ss.len() < 2 {
        return Ok(ss);
    }
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(ss.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(ss.len());
    for s in ss {
        match index.get(&s.labels) {
            Some(&i) => {
                let dst = &mut out[i];
                for (d, v) in dst.vals.iter_mut().zip(s.vals.iter()) {
                    if is_absent(*v) {
                        continue;
                    }
                    if !is_absent(*d) {
                        return Err(Error::Execution(msg.to_string()));
                    }
                    *d = *v;
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Milliseconds of a duration, refusing absurd values.
pub(crate) fn duration_ms(d: &Duration) -> Result<i64> {
    i64::try_from(d.as_millis())
        .ok()
        .filter(|v| *v < i64::MAX / 4)
        .ok_or_else(|| Error::Execution("duration out of range".into()))
}

/// Offset in ms (positive looks back).
pub(crate) fn offset_ms(o: &Option<Offset>) -> Result<i64> {
    match o {
        None => Ok(0),
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => Ok(-duration_ms(d)?),
    }
}

/// The fixed evaluation time of an `@` modifier.
pub(crate) fn at_ms(at: &Option<AtModifier>, start: i64, end: i64) -> Result<Option<i64>> {
    Ok(match at {
        None => None,
        Some(AtModifier::Start) => Some(start),
        Some(AtModifier::End) => Some(end),
        Some(AtModifier::At(t)) => Some(system_time_ms(*t)?),
    })
}

fn system_time_ms(t: SystemTime) -> Result<i64> {
    let r = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|v| -v),
    };
    r.ok_or_else(|| Error::Execution("timestamp out of range".into()))
}
