//! Aggregation operators (`sum`, `topk`, `count_values`, …), evaluated for all
//! steps at once with each series' group computed once.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use strata_model::{Labels, METRIC_NAME};

use super::mathfns::{kahan_inc, quantile, Mean, Variance};
use super::{absent, is_absent, Evaluator, Grid, StepSeries, Val};
use crate::{Error, Result};

/// Group labels of `l` under `by`/`without`.
pub(crate) fn group_labels(l: &Labels, m: &Option<LabelModifier>) -> Labels {
    match m {
        None => Labels::empty(),
        Some(LabelModifier::Include(ls)) => {
            let pairs: Vec<strata_model::Label> = l
                .iter()
                .filter(|x| ls.labels.contains(&x.name))
                .cloned()
                .collect();
            Labels::from_sorted(pairs)
        }
        Some(LabelModifier::Exclude(ls)) => {
            let pairs: Vec<strata_model::Label> = l
                .iter()
                .filter(|x| x.name != METRIC_NAME && !ls.labels.contains(&x.name))
                .cloned()
                .collect();
            Labels::from_sorted(pairs)
        }
    }
}

/// Groups of a vector: each series' group index and each group's labels and members.
struct Groups {
    of: Vec<usize>,
    labels: Vec<Labels>,
    members: Vec<Vec<usize>>,
}

fn grouping(v: &[StepSeries], m: &Option<LabelModifier>) -> Groups {
    let mut idx: HashMap<Labels, usize> = HashMap::new();
    let mut g = Groups {
        of: Vec::with_capacity(v.len()),
        labels: Vec::new(),
        members: Vec::new(),
    };
    for (si, s) in v.iter().enumerate() {
        let gl = group_labels(&s.labels, m);
        let gi = match idx.get(&gl) {
            Some(&i) => i,
            None => {
                idx.insert(gl.clone(), g.labels.len());
                g.labels.push(gl);
                g.members.push(Vec::new());
                g.labels.len() - 1
            }
        };
        g.of.push(gi);
        g.members[gi].push(si);
    }
    g
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl Evaluator<'_> {
    /// Evaluates an aggregation over all steps.
    pub(crate) fn eval_aggregate(&mut self, a: &AggregateExpr, grid: Grid) -> Result<Val> {
        let op = a.op.to_string().to_ascii_lowercase();
        let mut sparam: Option<String> = None;
        let mut fparam: Option<Vec<f64>> = None;
        if let Some(p) = &a.param {
            if op == "count_values" {
                sparam = Some(self.eval_string(p, grid)?);
            } else {
                fparam = Some(self.eval_scalar(p, grid)?);
            }
        }
        let v = self.eval_vector(&a.expr, grid)?;
        let n = grid.n;
        match op.as_str() {
            "topk" | "bottomk" | "limitk" | "limit_ratio" => {
                let p = fparam.unwrap_or_default();
                if op == "limit_ratio" {
                    let pos = a.param.as_ref().map(|p| self.pos(p)).unwrap_or_default();
                    for r in &p {
                        if *r > 1.0 || *r < -1.0 {
                            let cap = if *r > 1.0 { 1 } else { -1 };
                            self.warn(format!(
                                "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {cap}{pos}",
                                strata_model::gofmt::format_g(*r)
                            ));
                        }
                    }
                }
                return self.select_series(&op, &p, v, &a.modifier, grid);
            }
            "count_values" => {
                let label = sparam.unwrap_or_default();
                return self.count_values(&label, v, &a.modifier, grid);
            }
            _ => {}
        }
        if op == "quantile" {
            if let Some(q) = &fparam {
                let pos = a.param.as_ref().map(|p| self.pos(p)).unwrap_or_default();
                for q in q {
                    if !(0.0..=1.0).contains(q) {
                        self.warn(format!(
                            "PromQL warning: quantile value should be between 0 and 1, got {}{pos}",
                            strata_model::gofmt::format_g(*q)
                        ));
                    }
                }
            }
        }
        let g = grouping(&v, &a.modifier);
        let ng = g.labels.len();
        self.reserve(ng.saturating_mul(n))?;
        let mut out: Vec<StepSeries> = g
            .labels
            .iter()
            .map(|l| StepSeries::new(l.clone(), n))
            .collect();
        match op.as_str() {
            "sum" => {
                let mut comp = vec![0.0f64; ng * n];
                for (si, s) in v.iter().enumerate() {
                    let gi = g.of[si];
                    let o = &mut out[gi].vals;
                    let c = &mut comp[gi * n..(gi + 1) * n];
                    for i in 0..n {
                        let x = s.vals[i];
                        if is_absent(x) {
                            continue;
                        }
                        if is_absent(o[i]) {
                            o[i] = x;
                        } else {
                            (o[i], c[i]) = kahan_inc(x, o[i], c[i]);
                        }
                    }
                }
                for (gi, s) in out.iter_mut().enumerate() {
                    for i in 0..n {
                        let c = comp[gi * n + i];
                        if !is_absent(s.vals[i]) && !s.vals[i].is_infinite() {
                            s.vals[i] += c;
                        }
                    }
                }
            }
            "count" | "group" => {
                for (si, s) in v.iter().enumerate() {
                    let o = &mut out[g.of[si]].vals;
                    for (slot, x) in o.iter_mut().zip(&s.vals) {
                        if is_absent(*x) {
                            continue;
                        }
                        *slot = if op == "group" || is_absent(*slot) {
                            1.0
                        } else {
                            *slot + 1.0
                        };
                    }
                }
            }
            "min" | "max" => {
                let max = op == "max";
                for (si, s) in v.iter().enumerate() {
                    let o = &mut out[g.of[si]].vals;
                    for (slot, &x) in o.iter_mut().zip(&s.vals) {
                        if is_absent(x) {
                            continue;
                        }
                        let cur = *slot;
                        if is_absent(cur) || cur.is_nan() || (max && x > cur) || (!max && x < cur) {
                            *slot = x;
                        }
                    }
                }
            }
            "avg" => accumulate::<Mean>(&v, &g.of, &mut out, ng, n, &op),
            "stddev" | "stdvar" => accumulate::<Variance>(&v, &g.of, &mut out, ng, n, &op),
            "quantile" => {
                let q = fparam.unwrap_or_default();
                let mut buf = Vec::new();
                for (gi, s) in out.iter_mut().enumerate() {
                    for i in 0..n {
                        buf.clear();
                        for &si in &g.members[gi] {
                            let x = v[si].vals[i];
                            if !is_absent(x) {
                                buf.push(x);
                            }
                        }
                        if !buf.is_empty() {
                            s.vals[i] = quantile(q.get(i).copied().unwrap_or(f64::NAN), &mut buf);
                        }
                    }
                }
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "aggregation {other} is not supported"
                )))
            }
        }
        out.retain(|s| !s.is_empty());
        Ok(Val::Vector(out))
    }

    /// `topk`, `bottomk`, `limitk`, `limit_ratio`: keep input series at the steps
    /// where they are selected.
    fn select_series(
        &mut self,
        op: &str,
        p: &[f64],
        v: Vec<StepSeries>,
        m: &Option<LabelModifier>,
        grid: Grid,
    ) -> Result<Val> {
        let n = grid.n;
        // Validate the parameter at every step.
        let mut ks: Vec<i64> = Vec::with_capacity(n);
        for &x in p {
            if x.is_nan() {
                return Err(Error::Execution(if op == "limit_ratio" {
                    "Ratio value is NaN".into()
                } else {
                    "Parameter value is NaN".into()
                }));
            }
            if op != "limit_ratio" {
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x) {
                    return Err(Error::Execution(format!(
                        "Scalar value {} overflows int64",
                        strata_model::gofmt::format_g(x)
                    )));
                }
                ks.push(x as i64);
            }
        }
        let g = grouping(&v, m);
        let mut keep = vec![false; v.len() * n];
        let mut order: Vec<usize> = Vec::new(); // selection order at step 0
        let mut cand: Vec<usize> = Vec::new();
        for i in 0..n {
            for (gi, members) in g.members.iter().enumerate() {
                cand.clear();
                cand.extend(
                    members
                        .iter()
                        .copied()
                        .filter(|&si| !is_absent(v[si].vals[i])),
                );
                if cand.is_empty() {
                    continue;
                }
                match op {
                    "topk" | "bottomk" => {
                        let k = ks[i];
                        if k < 1 {
                            continue;
                        }
                        let top = op == "topk";
                        cand.sort_by(|&a, &b| {
                            let (x, y) = (v[a].vals[i], v[b].vals[i]);
                            match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if top => y.total_cmp(&x),
                                _ => x.total_cmp(&y),
                            }
                        });
                        let k = (k as usize).min(cand.len());
                        cand.truncate(k);
                    }
                    "limitk" => {
                        let k = ks[i];
                        if k < 1 {
                            continue;
                        }
                        cand.truncate((k as usize).min(cand.len()));
                    }
                    _ => {
                        let r = p[i].clamp(-1.0, 1.0);
                        cand.retain(|&si| {
                            let off = ratio_offset(&v[si].labels);
                            if r >= 0.0 {
                                off < r
                            } else {
                                off >= 1.0 + r
                            }
                        });
                    }
                }
                for &si in cand.iter() {
                    keep[si * n + i] = true;
                    if n == 1 {
                        order.push(si);
                    }
                }
                let _ = gi;
            }
        }
        if n == 1 && op != "limit_ratio" {
            let mut out = Vec::with_capacity(order.len());
            let mut vv: Vec<Option<StepSeries>> = v.into_iter().map(Some).collect();
            for si in order {
                if let Some(s) = vv.get_mut(si).and_then(Option::take) {
                    out.push(s);
                }
            }
            return Ok(Val::Vector(out));
        }
        let mut out = Vec::new();
        for (si, mut s) in v.into_iter().enumerate() {
            for i in 0..n {
                if !keep[si * n + i] {
                    s.vals[i] = absent();
                }
            }
            if !s.is_empty() {
                out.push(s);
            }
        }
        Ok(Val::Vector(out))
    }

    fn count_values(
        &mut self,
        label: &str,
        v: Vec<StepSeries>,
        m: &Option<LabelModifier>,
        grid: Grid,
    ) -> Result<Val> {
        if label.is_empty() {
            return Err(Error::Execution(format!(
                "invalid label name {}",
                strata_model::gofmt::quote(label)
            )));
        }
        let n = grid.n;
        let mut idx: HashMap<(Labels, String), usize> = HashMap::new();
        let mut out: Vec<StepSeries> = Vec::new();
        // The value label always takes part in the grouping (and overwrites an
        // existing label of that name).
        let m2 = match m {
            None => None,
            Some(LabelModifier::Include(ls)) => {
                let mut ls = ls.clone();
                ls.labels.retain(|n| n != label);
                Some(LabelModifier::Include(ls))
            }
            Some(LabelModifier::Exclude(ls)) => {
                let mut ls = ls.clone();
                ls.labels.push(label.to_string());
                Some(LabelModifier::Exclude(ls))
            }
        };
        let glabels: Vec<Labels> = v
            .iter()
            .map(|s| {
                let mut g = group_labels(&s.labels, &m2);
                if g.has(label) {
                    let mut b = g.builder();
                    b.del(label);
                    g = b.build();
                }
                g
            })
            .collect();
        for (si, s) in v.iter().enumerate() {
            self.check_deadline()?;
            for i in 0..n {
                let x = s.vals[i];
                if is_absent(x) {
                    continue;
                }
                let key = (glabels[si].clone(), format_value(x));
                let oi = match idx.get(&key) {
                    Some(&oi) => oi,
                    None => {
                        self.reserve(n.saturating_mul(out.len() + 1))?;
                        let mut b = key.0.builder();
                        b.set(label, key.1.clone());
                        out.push(StepSeries::new(b.build(), n));
                        idx.insert(key, out.len() - 1);
                        out.len() - 1
                    }
                };
                let o = &mut out[oi].vals[i];
                *o = if is_absent(*o) { 1.0 } else { *o + 1.0 };
            }
        }
        Ok(Val::Vector(out))
    }
}

/// Where a series falls in `[0, 1)` for `limit_ratio` sampling.
fn ratio_offset(l: &Labels) -> f64 {
    l.stable_hash() as f64 / u64::MAX as f64
}

/// A per-group, per-step running aggregate.
trait Accumulator: Copy + Default {
    fn push(&mut self, v: f64);
    fn result(&self, op: &str) -> f64;
}

impl Accumulator for Mean {
    fn push(&mut self, v: f64) {
        self.add(v);
    }
    fn result(&self, _: &str) -> f64 {
        self.value()
    }
}

impl Accumulator for Variance {
    fn push(&mut self, v: f64) {
        self.add(v);
    }
    fn result(&self, op: &str) -> f64 {
        let var = self.variance();
        if op == "stddev" {
            var.sqrt()
        } else {
            var
        }
    }
}

/// Folds every series' present values into its group's accumulator, step by step,
/// and writes the results where a group saw any value.
fn accumulate<A: Accumulator>(
    v: &[StepSeries],
    of: &[usize],
    out: &mut [StepSeries],
    ng: usize,
    n: usize,
    op: &str,
) {
    let mut acc = vec![A::default(); ng * n];
    let mut seen = vec![false; ng * n];
    for (si, s) in v.iter().enumerate() {
        let gi = of[si];
        for (i, &x) in s.vals.iter().enumerate().take(n) {
            if !is_absent(x) {
                acc[gi * n + i].push(x);
                seen[gi * n + i] = true;
            }
        }
    }
    for (gi, s) in out.iter_mut().enumerate() {
        for i in 0..n {
            if seen[gi * n + i] {
                s.vals[i] = acc[gi * n + i].result(op);
            }
        }
    }
}
