//! Functions over range vectors: `rate`, `increase`, `*_over_time`, …

use promql_parser::parser::{Call, Expr};
use strata_model::{Labels, Sample};

use super::labelfns::absent_labels;
use super::mathfns::{kahan_inc, linear_regression, quantile, Mean, Variance};
use super::selector::{for_each_window, RangeInput};
use super::{absent, merge_same_labels, Evaluator, Grid, StepSeries, Val};
use crate::{Error, Result};

/// Whether `name` is a function over a range vector that this module evaluates.
pub(crate) fn is_range_fn(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "changes"
            | "resets"
            | "deriv"
            | "predict_linear"
            | "avg_over_time"
            | "sum_over_time"
            | "min_over_time"
            | "max_over_time"
            | "count_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "last_over_time"
            | "first_over_time"
            | "present_over_time"
            | "quantile_over_time"
            | "mad_over_time"
            | "absent_over_time"
            | "double_exponential_smoothing"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
    )
}

pub(crate) fn strip_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

impl<'a> Evaluator<'a> {
    /// Evaluates a range-vector argument.
    pub(crate) fn range_input(&mut self, arg: &Expr, grid: &Grid) -> Result<RangeInput<'a>> {
        match strip_parens(arg) {
            Expr::MatrixSelector(ms) => self.matrix_input(ms),
            Expr::Subquery(sq) => self.subquery_input(sq, grid),
            _ => Err(Error::Execution(
                "expected range vector as function argument".into(),
            )),
        }
    }

    /// Evaluates a function over a range vector.
    pub(crate) fn eval_range_fn(&mut self, c: &Call, grid: Grid) -> Result<Val> {
        let name = c.func.name;
        let args = &c.args.args;
        let arg = |i: usize| -> Result<&Expr> {
            args.get(i)
                .map(|b| b.as_ref())
                .ok_or_else(|| Error::Execution(format!("missing argument {i} of {name}")))
        };
        // Scalar parameters, one value per step.
        let (matrix_arg, p1, p2) = match name {
            "quantile_over_time" => (arg(1)?, Some(self.eval_scalar(arg(0)?, grid)?), None),
            "predict_linear" => (arg(0)?, Some(self.eval_scalar(arg(1)?, grid)?), None),
            "double_exponential_smoothing" => (
                arg(0)?,
                Some(self.eval_scalar(arg(1)?, grid)?),
                Some(self.eval_scalar(arg(2)?, grid)?),
            ),
            _ => (arg(0)?, None, None),
        };
        let input = self.range_input(matrix_arg, &grid)?;
        if name == "absent_over_time" {
            return Ok(Val::Vector(
                self.absent_over_time(matrix_arg, &input, grid)?,
            ));
        }
        if name == "rate" || name == "increase" {
            let pos = self.pos(matrix_arg);
            self.counter_info(&input, &pos);
        }
        if let Some(q) = &p1 {
            if name == "quantile_over_time" {
                for q in q {
                    if !(0.0..=1.0).contains(q) {
                        let pos = self.pos(arg(0)?);
                        self.warn(format!(
                            "PromQL warning: quantile value should be between 0 and 1, got {}{pos}",
                            strata_model::gofmt::format_g(*q)
                        ));
                    }
                }
            }
        }
        if name == "double_exponential_smoothing" {
            if let (Some(sf), Some(tf)) = (&p1, &p2) {
                for (sf, tf) in sf.iter().zip(tf) {
                    if !(*sf > 0.0 && *sf < 1.0) {
                        return Err(Error::Execution(format!(
                            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                        )));
                    }
                    if !(*tf > 0.0 && *tf < 1.0) {
                        return Err(Error::Execution(format!(
                            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                        )));
                    }
                }
            }
        }
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        self.reserve(input.len().saturating_mul(grid.n))?;
        let mut out: Vec<StepSeries> = (0..input.len())
            .map(|i| StepSeries {
                labels: if keep_name {
                    input.labels(i).clone()
                } else {
                    input.labels(i).without_metric_name()
                },
                vals: vec![absent(); grid.n],
            })
            .collect();
        let range_ms = input.range_ms;
        let mut buf: Vec<f64> = Vec::new();
        for_each_window(&input, &grid, |si, i, w, end| {
            if w.is_empty() {
                return;
            }
            let p = |p: &Option<Vec<f64>>| p.as_ref().and_then(|v| v.get(i).copied());
            let r =
                match name {
                    "rate" => extrapolated(w, end, range_ms, true, true),
                    "increase" => extrapolated(w, end, range_ms, true, false),
                    "delta" => extrapolated(w, end, range_ms, false, false),
                    "irate" => instant_value(w, true),
                    "idelta" => instant_value(w, false),
                    "changes" => Some(
                        w.windows(2)
                            .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
                            .count() as f64,
                    ),
                    "resets" => Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
                    "deriv" => (w.len() >= 2).then(|| linear_regression(w, w[0].t).0),
                    "predict_linear" => {
                        if w.len() < 2 {
                            None
                        } else {
                            let d = p(&p1).unwrap_or(f64::NAN);
                            let (slope, icpt) = linear_regression(w, grid.ts(i));
                            Some(icpt + slope * d)
                        }
                    }
                    "avg_over_time" => {
                        let mut m = Mean::default();
                        w.iter().for_each(|s| m.add(s.v));
                        Some(m.value())
                    }
                    "sum_over_time" => {
                        let (mut s, mut c) = (0.0, 0.0);
                        for x in w {
                            (s, c) = kahan_inc(x.v, s, c);
                        }
                        Some(if s.is_infinite() { s } else { s + c })
                    }
                    "min_over_time" => Some(w.iter().skip(1).fold(w[0].v, |m, s| {
                        if s.v < m || m.is_nan() {
                            s.v
                        } else {
                            m
                        }
                    })),
                    "max_over_time" => Some(w.iter().skip(1).fold(w[0].v, |m, s| {
                        if s.v > m || m.is_nan() {
                            s.v
                        } else {
                            m
                        }
                    })),
                    "ts_of_min_over_time" | "ts_of_max_over_time" => {
                        let mut best = w[0];
                        for s in &w[1..] {
                            let better = if name == "ts_of_min_over_time" {
                                s.v <= best.v || best.v.is_nan()
                            } else {
                                s.v >= best.v || best.v.is_nan()
                            };
                            if better && !s.v.is_nan() {
                                best = *s;
                            }
                        }
                        Some(best.t as f64 / 1000.0)
                    }
                    "ts_of_last_over_time" => w.last().map(|s| s.t as f64 / 1000.0),
                    "ts_of_first_over_time" => Some(w[0].t as f64 / 1000.0),
                    "count_over_time" => Some(w.len() as f64),
                    "present_over_time" => Some(1.0),
                    "last_over_time" => w.last().map(|s| s.v),
                    "first_over_time" => Some(w[0].v),
                    "stddev_over_time" | "stdvar_over_time" => {
                        let mut v = Variance::default();
                        w.iter().for_each(|s| v.add(s.v));
                        let var = v.variance();
                        Some(if name == "stddev_over_time" {
                            var.sqrt()
                        } else {
                            var
                        })
                    }
                    "quantile_over_time" => {
                        buf.clear();
                        buf.extend(w.iter().map(|s| s.v));
                        Some(quantile(p(&p1).unwrap_or(f64::NAN), &mut buf))
                    }
                    "mad_over_time" if w.iter().any(|s| s.v.is_nan()) => Some(f64::NAN),
                    "mad_over_time" => {
                        buf.clear();
                        buf.extend(w.iter().map(|s| s.v));
                        let med = quantile(0.5, &mut buf);
                        for x in buf.iter_mut() {
                            *x = (*x - med).abs();
                        }
                        Some(quantile(0.5, &mut buf))
                    }
                    "double_exponential_smoothing" => {
                        des(w, p(&p1).unwrap_or(f64::NAN), p(&p2).unwrap_or(f64::NAN))
                    }
                    _ => None,
                };
            if let Some(v) = r {
                out[si].vals[i] = v;
            }
        })?;
        out.retain(|s| !s.is_empty());
        if keep_name {
            Ok(Val::Vector(out))
        } else {
            Ok(Val::Vector(merge_same_labels(out)?))
        }
    }

    fn absent_over_time(
        &mut self,
        arg: &Expr,
        input: &RangeInput<'_>,
        grid: Grid,
    ) -> Result<Vec<StepSeries>> {
        let mut present = vec![false; grid.n];
        for_each_window(input, &grid, |_, i, w, _| {
            if !w.is_empty() {
                present[i] = true;
            }
        })?;
        let labels = match strip_parens(arg) {
            Expr::MatrixSelector(ms) => absent_labels(&ms.vs),
            Expr::Subquery(_) => Labels::empty(),
            _ => Labels::empty(),
        };
        let mut s = StepSeries::new(labels, grid.n);
        for (i, p) in present.iter().enumerate() {
            if !p {
                s.vals[i] = 1.0;
            }
        }
        Ok(if s.is_empty() { Vec::new() } else { vec![s] })
    }

    fn counter_info(&mut self, input: &RangeInput<'_>, pos: &str) {
        let names: Vec<String> = (0..input.len())
            .filter_map(|i| input.labels(i).metric_name().map(str::to_string))
            .collect();
        for name in names {
            {
                let name = name.as_str();
                if !(name.ends_with("_total")
                    || name.ends_with("_sum")
                    || name.ends_with("_count")
                    || name.ends_with("_bucket"))
                {
                    self.info(format!(
                        "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}{pos}",
                        strata_model::gofmt::quote(name)
                    ));
                }
            }
        }
    }
}

/// `rate`, `increase` and `delta` with Prometheus 3.x extrapolation.
fn extrapolated(w: &[Sample], end: i64, range_ms: i64, counter: bool, rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let range_start = end - range_ms;
    let mut result = last.v - first.v;
    if counter {
        let mut prev = first.v;
        for s in &w[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` / `idelta`: from the last two samples.
fn instant_value(w: &[Sample], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut r = if rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let dt = last.t - prev.t;
    if dt == 0 {
        return None;
    }
    if rate {
        r /= dt as f64 / 1000.0;
    }
    Some(r)
}

/// `double_exponential_smoothing` (formerly `holt_winters`).
fn des(w: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].v);
    let mut b = w[1].v - w[0].v;
    for (i, s) in w.iter().enumerate().skip(1) {
        let x = sf * s.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}
