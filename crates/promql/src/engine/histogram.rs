//! `histogram_quantile` over classic (`le`-labelled) buckets.

use std::collections::HashMap;

use strata_model::Labels;

use super::{absent, is_absent, Evaluator, Grid, StepSeries};
use crate::Result;

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

impl Evaluator<'_> {
    /// `histogram_quantile(q, v)` for float buckets.
    pub(crate) fn histogram_quantile(
        &mut self,
        q: &[f64],
        input: Vec<StepSeries>,
        grid: Grid,
        qpos: &str,
        vpos: &str,
    ) -> Result<Vec<StepSeries>> {
        for q in q {
            if !(0.0..=1.0).contains(q) {
                self.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}{qpos}",
                    strata_model::gofmt::format_g(*q)
                ));
            }
        }
        // Group series by their labels without `le` and `__name__`.
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let le = s.labels.get("le");
            let upper = le.and_then(parse_go_float);
            let Some(upper) = upper else {
                self.warn(format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of {} for metric name {}{vpos}",
                    strata_model::gofmt::quote(le.unwrap_or("")),
                    strata_model::gofmt::quote(s.labels.metric_name().unwrap_or(""))
                ));
                continue;
            };
            let mut b = s.labels.builder();
            b.del("le");
            let key = b.build();
            let g = *groups.entry(key.clone()).or_insert_with(|| {
                members.push((key, Vec::new()));
                members.len() - 1
            });
            members[g].1.push((upper, i));
        }
        let mut out = Vec::with_capacity(members.len());
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut fixed = false;
        let mut fixed_name = String::new();
        for (labels, ms) in members {
            let mut o = StepSeries::new(labels, grid.n);
            for step in 0..grid.n {
                buckets.clear();
                for (upper, si) in &ms {
                    let v = input[*si].vals[step];
                    if !is_absent(v) {
                        buckets.push(Bucket {
                            upper: *upper,
                            count: v,
                        });
                    }
                }
                if buckets.is_empty() {
                    continue;
                }
                let (v, f) =
                    bucket_quantile(q.get(step).copied().unwrap_or(f64::NAN), &mut buckets);
                if f && !fixed {
                    fixed_name = ms
                        .first()
                        .and_then(|(_, si)| input[*si].labels.metric_name())
                        .unwrap_or("")
                        .to_string();
                }
                fixed |= f;
                o.vals[step] = v;
            }
            if !o.is_empty() {
                out.push(o);
            } else {
                o.vals.fill(absent());
            }
        }
        for s in &mut out {
            s.labels = s.labels.without_metric_name();
        }
        let out = super::merge_same_labels(out)?;
        if fixed {
            self.info(format!("PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {}{vpos}", strata_model::gofmt::quote(&fixed_name)));
        }
        Ok(out)
    }
}

/// Parses a float the way Go's `strconv.ParseFloat` accepts bucket bounds.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t != s || t.is_empty() {
        return None;
    }
    match t.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    if let Some(hex) = clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    clean.parse::<f64>().ok()
}

/// The quantile from cumulative buckets; the flag says whether counts had to be
/// forced monotonic.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    *buckets = merged;
    // Force monotonicity, ignoring tiny float deltas.
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let n = buckets.len();
    let observations = buckets[n - 1].count;
    if observations == 0.0 || observations.is_nan() {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = buckets[..n - 1].partition_point(|x| x.count < rank);
    if b == n - 1 {
        return (buckets[n - 2].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Relative float comparison (Prometheus `util/almost`).
pub(crate) fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}
