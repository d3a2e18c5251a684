//! Function calls (mirrors Prometheus `promql/functions.go`): dispatch and the
//! functions over instant vectors.

use promql_parser::parser::{Call, Expr};
use strata_model::Labels;

use super::labelfns::{absent_labels, label_join, label_replace, sort_by_label};
use super::mathfns::{civil_from_days, days_in_month};
use super::range_fns::{is_range_fn, strip_parens};
use super::{absent, is_absent, merge_same_labels, Evaluator, Grid, StepSeries, Val};
use crate::{Error, Result};

impl Evaluator<'_> {
    fn arg<'c>(&self, c: &'c Call, i: usize) -> Result<&'c Expr> {
        c.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
            Error::Execution(format!("missing argument {} of {}", i + 1, c.func.name))
        })
    }

    /// Evaluates a function call over all steps.
    pub(crate) fn eval_call(&mut self, c: &Call, grid: Grid) -> Result<Val> {
        let name = c.func.name;
        if is_range_fn(name) {
            return self.eval_range_fn(c, grid);
        }
        match name {
            "time" => Ok(Val::Scalar(
                (0..grid.n).map(|i| grid.ts(i) as f64 / 1000.0).collect(),
            )),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; grid.n])),
            "start" | "end" | "step" | "range" => {
                let st = &self.settings;
                let v = match name {
                    "start" => st.query_start as f64 / 1000.0,
                    "end" => st.query_end as f64 / 1000.0,
                    "step" => st.query_step as f64 / 1000.0,
                    _ => (st.query_end - st.query_start) as f64 / 1000.0,
                };
                Ok(Val::Scalar(vec![v; grid.n]))
            }
            "min_of" | "max_of" => {
                let mut a = self.eval_scalar(self.arg(c, 0)?, grid)?;
                let b = self.eval_scalar(self.arg(c, 1)?, grid)?;
                for (x, y) in a.iter_mut().zip(b) {
                    *x = if name == "min_of" {
                        go_min(*x, y)
                    } else {
                        go_max(*x, y)
                    };
                }
                Ok(Val::Scalar(a))
            }
            "histogram_quantiles" => {
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let label = self.eval_string(self.arg(c, 1)?, grid)?;
                let mut out = Vec::new();
                for qi in 2..c.args.args.len() {
                    let qarg = self.arg(c, qi)?;
                    let q = self.eval_scalar(qarg, grid)?;
                    let qpos = self.pos(qarg);
                    let vpos = self.pos(self.arg(c, 0)?);
                    let res = self.histogram_quantile(&q, v.clone(), grid, &qpos, &vpos)?;
                    for mut s in res {
                        let mut b = s.labels.builder();
                        b.set(
                            label.clone(),
                            format_quantile_label(q.first().copied().unwrap_or(f64::NAN)),
                        );
                        s.labels = b.build();
                        out.push(s);
                    }
                }
                Ok(Val::Vector(merge_same_labels(out)?))
            }
            "vector" => {
                let v = self.eval_scalar(self.arg(c, 0)?, grid)?;
                Ok(Val::Vector(vec![StepSeries {
                    labels: Labels::empty(),
                    vals: v,
                }]))
            }
            "scalar" => {
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let mut out = vec![f64::NAN; grid.n];
                let mut counts = vec![0u32; grid.n];
                for s in &v {
                    for (i, x) in s.vals.iter().enumerate() {
                        if !is_absent(*x) {
                            counts[i] += 1;
                            out[i] = *x;
                        }
                    }
                }
                for (o, c) in out.iter_mut().zip(counts) {
                    if c != 1 {
                        *o = f64::NAN;
                    }
                }
                Ok(Val::Scalar(out))
            }
            "timestamp" => {
                let v = match strip_parens(self.arg(c, 0)?) {
                    Expr::VectorSelector(vs) => self.eval_vector_selector(vs, grid, true)?,
                    other => {
                        let mut v = self.eval_vector(other, grid)?;
                        for s in &mut v {
                            for (i, x) in s.vals.iter_mut().enumerate() {
                                if !is_absent(*x) {
                                    *x = grid.ts(i) as f64 / 1000.0;
                                }
                            }
                        }
                        v
                    }
                };
                self.map_vector(v, true, |x| x)
            }
            "absent" => {
                let arg = self.arg(c, 0)?;
                let v = self.eval_vector(arg, grid)?;
                let labels = match strip_parens(arg) {
                    Expr::VectorSelector(vs) => absent_labels(vs),
                    _ => Labels::empty(),
                };
                let mut s = StepSeries::new(labels, grid.n);
                for i in 0..grid.n {
                    if v.iter().all(|x| is_absent(x.vals[i])) {
                        s.vals[i] = 1.0;
                    }
                }
                Ok(Val::Vector(if s.is_empty() { vec![] } else { vec![s] }))
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(self.arg(c, 0)?, grid)?;
                if grid.n == 1 {
                    let desc = name == "sort_desc";
                    v.sort_by(|a, b| {
                        let (x, y) = (a.vals[0], b.vals[0]);
                        // NaN sorts last in both directions.
                        match (x.is_nan(), y.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if desc => y.total_cmp(&x),
                            _ => x.total_cmp(&y),
                        }
                    });
                } else {
                    self.sort_warning(c);
                }
                Ok(Val::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let mut names = Vec::new();
                for i in 1..c.args.args.len() {
                    names.push(self.eval_string(self.arg(c, i)?, grid)?);
                }
                sort_by_label(&mut v, &names, name == "sort_by_label_desc");
                if grid.n > 1 {
                    self.sort_warning(c);
                }
                Ok(Val::Vector(v))
            }
            "label_replace" => {
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let dst = self.eval_string(self.arg(c, 1)?, grid)?;
                let repl = self.eval_string(self.arg(c, 2)?, grid)?;
                let src = self.eval_string(self.arg(c, 3)?, grid)?;
                let re = self.eval_string(self.arg(c, 4)?, grid)?;
                Ok(Val::Vector(label_replace(v, &dst, &repl, &src, &re)?))
            }
            "label_join" => {
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let dst = self.eval_string(self.arg(c, 1)?, grid)?;
                let sep = self.eval_string(self.arg(c, 2)?, grid)?;
                let mut srcs = Vec::new();
                for i in 3..c.args.args.len() {
                    srcs.push(self.eval_string(self.arg(c, i)?, grid)?);
                }
                Ok(Val::Vector(label_join(v, &dst, &sep, &srcs)?))
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(self.arg(c, 0)?, grid)?;
                let v = self.eval_vector(self.arg(c, 1)?, grid)?;
                let qpos = self.pos(self.arg(c, 0)?);
                let vpos = self.pos(self.arg(c, 1)?);
                Ok(Val::Vector(
                    self.histogram_quantile(&q, v, grid, &qpos, &vpos)?,
                ))
            }
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                // These act on native histograms only; float samples yield nothing.
                self.eval_vector(self.arg(c, 0)?, grid)?;
                Ok(Val::Vector(Vec::new()))
            }
            "histogram_fraction" => {
                self.eval_vector(self.arg(c, 2)?, grid)?;
                Ok(Val::Vector(Vec::new()))
            }
            "round" => {
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let to = if c.args.args.len() > 1 {
                    self.eval_scalar(self.arg(c, 1)?, grid)?
                } else {
                    vec![1.0; grid.n]
                };
                self.map_vector_steps(v, |x, i| {
                    let inv = 1.0 / to[i];
                    // Round half up, as Go's math.Floor(x*inv+0.5)/inv.
                    (x * inv + 0.5).floor() / inv
                })
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                let p1 = self.eval_scalar(self.arg(c, 1)?, grid)?;
                let p2 = if name == "clamp" {
                    self.eval_scalar(self.arg(c, 2)?, grid)?
                } else {
                    Vec::new()
                };
                let mut out = Vec::with_capacity(v.len());
                for mut s in v {
                    s.labels = s.labels.without_metric_name();
                    for (i, x) in s.vals.iter_mut().enumerate() {
                        if is_absent(*x) {
                            continue;
                        }
                        *x = match name {
                            "clamp" => {
                                let (lo, hi) = (p1[i], p2[i]);
                                if hi < lo {
                                    absent()
                                } else {
                                    go_max(lo, go_min(hi, *x))
                                }
                            }
                            "clamp_min" => go_max(p1[i], *x),
                            _ => go_min(p1[i], *x),
                        };
                    }
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
                Ok(Val::Vector(merge_same_labels(out)?))
            }
            "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour"
            | "minute" | "month" | "year" => {
                let v = if c.args.args.is_empty() {
                    vec![StepSeries {
                        labels: Labels::empty(),
                        vals: (0..grid.n).map(|i| grid.ts(i) as f64 / 1000.0).collect(),
                    }]
                } else {
                    self.eval_vector(self.arg(c, 0)?, grid)?
                };
                self.map_vector(v, true, |x| date_fn(name, x))
            }
            "info" => Err(Error::Unsupported(
                "the info() function is not supported yet".into(),
            )),
            _ => {
                let f = simple_fn(name).ok_or_else(|| {
                    Error::Unsupported(format!("function {name}() is not supported"))
                })?;
                let v = self.eval_vector(self.arg(c, 0)?, grid)?;
                self.map_vector(v, true, f)
            }
        }
    }

    fn sort_warning(&mut self, c: &Call) {
        let needle = format!("{}(", c.func.name);
        let q = &*self.settings.query;
        let pos = q
            .find(&needle)
            .map(|off| {
                let before = &q[..off];
                let line = before.matches('\n').count() + 1;
                let col = off - before.rfind('\n').map_or(0, |p| p + 1) + 1;
                format!(" ({line}:{col})")
            })
            .unwrap_or_default();
        self.warn(format!("PromQL warning: sort is ineffective for range queries since results are always ordered by labels{pos}"));
    }

    fn map_vector(
        &mut self,
        v: Vec<StepSeries>,
        drop_name: bool,
        f: impl Fn(f64) -> f64,
    ) -> Result<Val> {
        let mut v = v;
        for s in &mut v {
            if drop_name {
                s.labels = s.labels.without_metric_name();
            }
            for x in &mut s.vals {
                if !is_absent(*x) {
                    *x = f(*x);
                }
            }
        }
        Ok(Val::Vector(if drop_name {
            merge_same_labels(v)?
        } else {
            v
        }))
    }

    fn map_vector_steps(
        &mut self,
        mut v: Vec<StepSeries>,
        f: impl Fn(f64, usize) -> f64,
    ) -> Result<Val> {
        for s in &mut v {
            s.labels = s.labels.without_metric_name();
            for (i, x) in s.vals.iter_mut().enumerate() {
                if !is_absent(*x) {
                    *x = f(*x, i);
                }
            }
        }
        Ok(Val::Vector(merge_same_labels(v)?))
    }
}

/// Formats a quantile as a label value the way 3.x normalises `le`/`quantile`
/// values: shortest form, always with a decimal point (`1.0`, `0.25`).
fn format_quantile_label(q: f64) -> String {
    if q.is_nan() {
        return "NaN".into();
    }
    if q.is_infinite() {
        return if q > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{q}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Go's `math.Max` (NaN wins).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min` (NaN wins).
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

fn date_fn(name: &str, x: f64) -> f64 {
    if x.is_nan() || x.is_infinite() {
        return x;
    }
    let secs = x as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "days_in_month" => days_in_month(y, m) as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let (jan1, _, _) = (civil_from_days(days).0, 0, 0);
            let _ = jan1;
            let mut doy = d;
            for mm in 1..m {
                doy += days_in_month(y, mm);
            }
            doy as f64
        }
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}
