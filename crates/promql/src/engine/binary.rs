//! Binary operators: arithmetic, comparisons, set operators and vector matching.

use std::collections::HashMap;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use strata_model::{Label, Labels, METRIC_NAME};

use super::{absent, is_absent, merge_same_labels, merge_same_labels_msg, Evaluator, Grid};
use super::{StepSeries, Val};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Result<Op> {
        Ok(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            other => {
                return Err(Error::Execution(format!(
                    "unsupported binary operator {other}"
                )))
            }
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Applies the operator: the value and whether to keep it (comparisons filter).
    #[inline]
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

/// The matching signature of a label set.
fn signature(l: &Labels, m: &Option<LabelModifier>) -> Labels {
    let keep = |x: &Label| -> bool {
        match m {
            Some(LabelModifier::Include(ls)) => ls.labels.contains(&x.name),
            Some(LabelModifier::Exclude(ls)) => {
                x.name != METRIC_NAME && !ls.labels.contains(&x.name)
            }
            None => x.name != METRIC_NAME,
        }
    };
    if l.iter().all(keep) {
        return l.clone();
    }
    Labels::from_sorted(l.iter().filter(|x| keep(x)).cloned().collect())
}

impl Evaluator<'_> {
    /// Evaluates a binary expression over all steps.
    pub(crate) fn eval_binary(&mut self, b: &BinaryExpr, grid: Grid) -> Result<Val> {
        let op = Op::parse(&b.op.to_string().to_ascii_lowercase())?;
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, grid)?;
        let rhs = self.eval(&b.rhs, grid)?;
        match (lhs, rhs) {
            (Val::Scalar(mut l), Val::Scalar(r)) => {
                for (x, y) in l.iter_mut().zip(r) {
                    let (v, keep) = op.apply(*x, y);
                    *x = if op.is_comparison() {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    };
                }
                Ok(Val::Scalar(l))
            }
            (Val::Vector(l), Val::Scalar(r)) => self.vector_scalar(op, l, &r, false, return_bool),
            (Val::Scalar(l), Val::Vector(r)) => self.vector_scalar(op, r, &l, true, return_bool),
            (Val::Vector(l), Val::Vector(r)) => match op {
                Op::And | Op::Or | Op::Unless => {
                    let m = b.modifier.as_ref().and_then(|m| m.matching.clone());
                    Ok(Val::Vector(set_op(op, l, r, &m, grid.n)?))
                }
                _ => {
                    let (card, m) = match &b.modifier {
                        Some(md) => (md.card.clone(), md.matching.clone()),
                        None => (VectorMatchCardinality::OneToOne, None),
                    };
                    self.vector_vector(op, l, r, &card, &m, return_bool, grid)
                }
            },
            _ => Err(Error::Execution(
                "binary operators are only defined on scalars and instant vectors".into(),
            )),
        }
    }

    fn vector_scalar(
        &mut self,
        op: Op,
        mut v: Vec<StepSeries>,
        s: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Result<Val> {
        let drop_name = !op.is_comparison() || return_bool;
        for ser in &mut v {
            if drop_name {
                ser.labels = ser.labels.without_metric_name();
            }
            for (i, x) in ser.vals.iter_mut().enumerate() {
                if is_absent(*x) {
                    continue;
                }
                let (l, r) = if swap { (s[i], *x) } else { (*x, s[i]) };
                let (val, keep) = op.apply(l, r);
                *x = if op.is_comparison() {
                    if return_bool {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else if keep {
                        *x
                    } else {
                        absent()
                    }
                } else {
                    val
                };
            }
        }
        v.retain(|s| !s.is_empty());
        Ok(Val::Vector(if drop_name {
            merge_same_labels(v)?
        } else {
            v
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_vector(
        &mut self,
        op: Op,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        card: &VectorMatchCardinality,
        m: &Option<LabelModifier>,
        return_bool: bool,
        grid: Grid,
    ) -> Result<Val> {
        let n = grid.n;
        let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let include: Vec<String> = match card {
            VectorMatchCardinality::ManyToOne(ls) | VectorMatchCardinality::OneToMany(ls) => {
                ls.labels.clone()
            }
            _ => Vec::new(),
        };
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        // Signatures, computed once per series.
        let one_sigs: Vec<Labels> = one.iter().map(|s| signature(&s.labels, m)).collect();
        let mut by_sig: HashMap<&Labels, Vec<usize>> = HashMap::new();
        for (i, sig) in one_sigs.iter().enumerate() {
            by_sig.entry(sig).or_default().push(i);
        }
        let many_sigs: Vec<Labels> = many.iter().map(|s| signature(&s.labels, m)).collect();
        // Which steps have any sample on the many side (duplicates only matter then).
        let mut many_present = vec![false; n];
        for s in &many {
            for (i, v) in s.vals.iter().enumerate() {
                if !is_absent(*v) {
                    many_present[i] = true;
                }
            }
        }
        // Duplicate check on the "one" side.
        for idxs in by_sig.values().filter(|v| v.len() > 1) {
            for (i, _) in many_present.iter().enumerate().filter(|(_, p)| **p) {
                let present: Vec<usize> = idxs
                    .iter()
                    .copied()
                    .filter(|&j| !is_absent(one[j].vals[i]))
                    .collect();
                if present.len() > 1 {
                    let side = if swapped { "left" } else { "right" };
                    return Err(Error::Execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        one_sigs[present[0]], one[present[0]].labels, one[present[1]].labels
                    )));
                }
            }
        }
        let drop_name = !op.is_comparison() || return_bool;
        let mut out: Vec<StepSeries> = Vec::new();
        let mut out_idx: HashMap<(usize, usize), usize> = HashMap::new();
        // For one-to-one: which many-side series matched each signature, per step.
        let mut matched: HashMap<&Labels, Vec<u32>> = HashMap::new();
        for (li, ls) in many.iter().enumerate() {
            self.check_deadline()?;
            let Some(cands) = by_sig.get(&many_sigs[li]) else {
                continue;
            };
            for i in 0..n {
                let lv = ls.vals[i];
                if is_absent(lv) {
                    continue;
                }
                let Some(&ri) = cands.iter().find(|&&j| !is_absent(one[j].vals[i])) else {
                    continue;
                };
                if one_to_one {
                    let mk = matched
                        .entry(&many_sigs[li])
                        .or_insert_with(|| vec![u32::MAX; n]);
                    if mk[i] != u32::MAX && mk[i] as usize != li {
                        return Err(Error::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()));
                    }
                    mk[i] = li as u32;
                }
                let rv = one[ri].vals[i];
                let (a, bv) = if swapped { (rv, lv) } else { (lv, rv) };
                let (val, keep) = op.apply(a, bv);
                let val = if op.is_comparison() {
                    if return_bool {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else if keep {
                        val
                    } else {
                        continue;
                    }
                } else {
                    val
                };
                let key = (li, if one_to_one { usize::MAX } else { ri });
                let oi = match out_idx.get(&key) {
                    Some(&oi) => oi,
                    None => {
                        self.reserve(n)?;
                        let labels = result_labels(
                            &ls.labels,
                            &one[ri].labels,
                            drop_name,
                            one_to_one,
                            m,
                            &include,
                        );
                        out.push(StepSeries::new(labels, n));
                        out_idx.insert(key, out.len() - 1);
                        out.len() - 1
                    }
                };
                out[oi].vals[i] = val;
            }
        }
        let msg = if one_to_one {
            "vector cannot contain metrics with the same labelset"
        } else {
            "multiple matches for labels: grouping labels must ensure unique matches"
        };
        Ok(Val::Vector(merge_same_labels_msg(out, msg)?))
    }
}

fn result_labels(
    l: &Labels,
    r: &Labels,
    drop_name: bool,
    one_to_one: bool,
    m: &Option<LabelModifier>,
    include: &[String],
) -> Labels {
    let mut b = l.builder();
    if drop_name {
        b.del(METRIC_NAME);
    }
    if one_to_one {
        match m {
            Some(LabelModifier::Include(ls)) => {
                b.retain(|x| ls.labels.contains(&x.name));
            }
            Some(LabelModifier::Exclude(ls)) => {
                b.retain(|x| !ls.labels.contains(&x.name));
            }
            None => {}
        }
    }
    for name in include {
        match r.get(name) {
            Some(v) => {
                b.set(name.clone(), v.to_string());
            }
            None => {
                b.del(name);
            }
        }
    }
    b.build()
}

/// `and`, `or`, `unless`.
fn set_op(
    op: Op,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &Option<LabelModifier>,
    n: usize,
) -> Result<Vec<StepSeries>> {
    let presence = |v: &[StepSeries]| -> HashMap<Labels, Vec<bool>> {
        let mut p: HashMap<Labels, Vec<bool>> = HashMap::new();
        for s in v {
            let e = p
                .entry(signature(&s.labels, m))
                .or_insert_with(|| vec![false; n]);
            for (i, x) in s.vals.iter().enumerate() {
                if !is_absent(*x) {
                    e[i] = true;
                }
            }
        }
        p
    };
    match op {
        Op::And | Op::Unless => {
            let rp = presence(&rhs);
            let mut out = Vec::with_capacity(lhs.len());
            for mut s in lhs {
                let sig = signature(&s.labels, m);
                let p = rp.get(&sig);
                for (i, x) in s.vals.iter_mut().enumerate() {
                    let has = p.is_some_and(|p| p[i]);
                    if (op == Op::And) != has {
                        *x = absent();
                    }
                }
                if !s.is_empty() {
                    out.push(s);
                }
            }
            Ok(out)
        }
        _ => {
            let lp = presence(&lhs);
            let mut out = lhs;
            for mut s in rhs {
                let sig = signature(&s.labels, m);
                if let Some(p) = lp.get(&sig) {
                    for (i, x) in s.vals.iter_mut().enumerate() {
                        if p[i] {
                            *x = absent();
                        }
                    }
                }
                if !s.is_empty() {
                    out.push(s);
                }
            }
            merge_same_labels(out)
        }
    }
}
