//! One `eval` case: its parsed form and how a result is checked against it.

use std::collections::BTreeMap;

use strata_model::Labels;
use strata_promql::{QueryResult, Value};

use super::script::{
    self, parse_duration_ms, parse_number, parse_series, unquote_prefix, SeriesDesc,
};

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Fail,
    Warn,
    Info,
    NoWarn,
    NoInfo,
    Ordered,
}

#[derive(Clone, Debug)]
pub enum MsgMatch {
    Any,
    Exact(String),
    Regex(String),
}

impl MsgMatch {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            MsgMatch::Any => true,
            MsgMatch::Exact(m) => s == m,
            MsgMatch::Regex(r) => regex::Regex::new(&format!("^(?:{r})$"))
                .map(|re| re.is_match(s))
                .unwrap_or(false),
        }
    }
}

pub enum EvalAt {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

pub struct EvalCmd {
    pub line: usize,
    pub at: EvalAt,
    pub expr: String,
    pub expects: Vec<(Kind, MsgMatch)>,
    pub legacy_warn: bool,
    pub legacy_info: bool,
    pub expect_string: Option<String>,
    pub range_vector: Option<(i64, i64, i64)>,
    pub scalar: Option<f64>,
    pub series: Vec<SeriesDesc>,
    pub raw_histograms: bool,
}

pub fn parse_eval(head: &str, line: usize, body: &[&str]) -> Result<EvalCmd, String> {
    let (cmd, rest) = head.split_once(' ').ok_or("bad eval")?;
    let mut c = EvalCmd {
        line,
        at: EvalAt::Instant(0),
        expr: String::new(),
        expects: Vec::new(),
        legacy_warn: cmd == "eval_warn",
        legacy_info: cmd == "eval_info",
        expect_string: None,
        range_vector: None,
        scalar: None,
        series: Vec::new(),
        raw_histograms: false,
    };
    match cmd {
        "eval_fail" => c.expects.push((Kind::Fail, MsgMatch::Any)),
        "eval_ordered" => c.expects.push((Kind::Ordered, MsgMatch::Any)),
        _ => {}
    }
    let rest = rest.trim();
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, e) = r.trim().split_once(' ').ok_or("bad instant")?;
        c.at = EvalAt::Instant(parse_duration_ms(t).ok_or("bad time")?);
        c.expr = e.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.trim().splitn(6, ' ').collect();
        if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
            return Err(format!("bad range eval: {r}"));
        }
        c.at = EvalAt::Range {
            start: parse_duration_ms(parts[0]).ok_or("bad start")?,
            end: parse_duration_ms(parts[2]).ok_or("bad end")?,
            step: parse_duration_ms(parts[4]).ok_or("bad step")?,
        };
        c.expr = parts[5].trim().to_string();
    } else {
        return Err(format!("unknown eval form: {rest}"));
    }
    for l in body {
        let l = l.trim();
        if let Some(e) = l.strip_prefix("expect ") {
            let e = e.trim();
            let (kind_s, tail) = e.split_once(' ').unwrap_or((e, ""));
            let tail = tail.trim();
            match kind_s {
                "string" => {
                    c.expect_string = Some(
                        unquote_prefix(tail)
                            .map(|(s, _)| s)
                            .ok_or("bad expect string")?,
                    );
                    continue;
                }
                "range" => {
                    // expect range vector from A to B step C
                    let p: Vec<&str> = tail.split_whitespace().collect();
                    if p.len() != 7 {
                        return Err(format!("bad expect range: {tail}"));
                    }
                    c.range_vector = Some((
                        parse_duration_ms(p[2]).ok_or("bad from")?,
                        parse_duration_ms(p[4]).ok_or("bad to")?,
                        parse_duration_ms(p[6]).ok_or("bad step")?,
                    ));
                    continue;
                }
                _ => {}
            }
            let kind = match kind_s {
                "fail" => Kind::Fail,
                "warn" => Kind::Warn,
                "info" => Kind::Info,
                "no_warn" => Kind::NoWarn,
                "no_info" => Kind::NoInfo,
                "ordered" => Kind::Ordered,
                other => return Err(format!("unknown expect {other}")),
            };
            let m = if let Some(m) = tail.strip_prefix("msg:") {
                MsgMatch::Exact(strip_quotes(m.trim()))
            } else if let Some(r) = tail.strip_prefix("regex:") {
                MsgMatch::Regex(strip_quotes(r.trim()))
            } else {
                MsgMatch::Any
            };
            c.expects.push((kind, m));
        } else if let Some(m) = l.strip_prefix("expected_fail_message") {
            set_fail_msg(&mut c, MsgMatch::Exact(m.trim().to_string()));
        } else if let Some(r) = l.strip_prefix("expected_fail_regexp") {
            set_fail_msg(&mut c, MsgMatch::Regex(r.trim().to_string()));
        } else if let Some(v) = parse_number(l) {
            c.scalar = Some(v);
        } else {
            if l.contains("{{") {
                c.raw_histograms = true;
                continue;
            }
            c.series
                .push(parse_series(l).ok_or_else(|| format!("bad series line: {l}"))?);
        }
    }
    Ok(c)
}

pub fn strip_quotes(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return s[1..s.len() - 1].to_string();
    }
    s.to_string()
}

pub fn set_fail_msg(c: &mut EvalCmd, m: MsgMatch) {
    for e in &mut c.expects {
        if e.0 == Kind::Fail {
            e.1 = m.clone();
        }
    }
}

pub fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let eps = 1e-6;
    let min_normal = f64::MIN_POSITIVE;
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < eps * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

pub fn check_annotations(
    c: &EvalCmd,
    got: &[String],
    kind: Kind,
    no: Kind,
    legacy: bool,
) -> Result<(), String> {
    let exps: Vec<&MsgMatch> = c
        .expects
        .iter()
        .filter(|e| e.0 == kind)
        .map(|e| &e.1)
        .collect();
    if c.expects.iter().any(|e| e.0 == no) && !got.is_empty() {
        return Err(format!("unexpected {kind:?} annotations: {got:?}"));
    }
    if legacy && got.is_empty() {
        return Err(format!("expected {kind:?} annotations, got none"));
    }
    if exps.is_empty() {
        return Ok(());
    }
    for e in &exps {
        if !got.iter().any(|g| e.matches(g)) {
            return Err(format!("expected {kind:?} annotation {e:?}, got {got:?}"));
        }
    }
    for g in got {
        if !exps.iter().any(|e| e.matches(g)) {
            return Err(format!("unexpected {kind:?} annotation {g:?}"));
        }
    }
    Ok(())
}

pub fn compare_matrix(
    got: &[strata_promql::Series],
    exp: &[SeriesDesc],
    start: i64,
    step: i64,
) -> Result<(), String> {
    let mut want: BTreeMap<Labels, Vec<strata_model::Sample>> = BTreeMap::new();
    for s in exp {
        let samples = s.samples(start, step);
        if !samples.is_empty() || exp.len() == 1 {
            want.insert(s.labels.clone(), samples);
        }
    }
    want.retain(|_, v| !v.is_empty());
    if got.len() != want.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            want.len(),
            got.len(),
            got.iter().map(|s| s.metric.to_string()).collect::<Vec<_>>()
        ));
    }
    for g in got {
        let w = want
            .get(&g.metric)
            .ok_or_else(|| format!("unexpected series {}", g.metric))?;
        if w.len() != g.samples.len()
            || w.iter()
                .zip(&g.samples)
                .any(|(a, b)| a.t != b.t || !almost_equal(a.v, b.v))
        {
            return Err(format!(
                "series {}: expected {:?}, got {:?}",
                g.metric, w, g.samples
            ));
        }
    }
    Ok(())
}

pub fn check_result(c: &EvalCmd, r: &QueryResult) -> Result<(), String> {
    check_annotations(c, &r.warnings, Kind::Warn, Kind::NoWarn, c.legacy_warn)?;
    check_annotations(c, &r.infos, Kind::Info, Kind::NoInfo, c.legacy_info)?;
    if let Some(s) = &c.expect_string {
        return match &r.value {
            Value::String { s: g, .. } if g == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    if let Some(v) = c.scalar {
        return match &r.value {
            Value::Scalar { v: g, .. } if almost_equal(*g, v) => Ok(()),
            other => Err(format!("expected scalar {v}, got {other:?}")),
        };
    }
    match (&c.at, &r.value) {
        (EvalAt::Range { start, step, .. }, Value::Matrix(m)) => {
            compare_matrix(m, &c.series, *start, *step)
        }
        (EvalAt::Instant(_), Value::Matrix(m)) => match c.range_vector {
            Some((from, _, step)) => compare_matrix(m, &c.series, from, step),
            None if m.is_empty() && c.series.is_empty() => Ok(()),
            None => Err("got a range vector without `expect range vector`".into()),
        },
        (EvalAt::Instant(_), Value::Vector(v)) => {
            let ordered = c.expects.iter().any(|e| e.0 == Kind::Ordered);
            let mut want: Vec<(Labels, f64)> = Vec::new();
            for s in &c.series {
                match s.points.first() {
                    Some(script::Point::Value(x)) => want.push((s.labels.clone(), *x)),
                    _ => return Err("expected series without value".into()),
                }
            }
            if want.len() != v.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    want.len(),
                    v.len(),
                    v.iter()
                        .map(|s| format!("{} {}", s.metric, s.v))
                        .collect::<Vec<_>>()
                ));
            }
            for (i, g) in v.iter().enumerate() {
                let w = if ordered {
                    want.get(i).filter(|w| w.0 == g.metric)
                } else {
                    want.iter().find(|w| w.0 == g.metric)
                };
                match w {
                    Some(w) if almost_equal(w.1, g.v) => {}
                    Some(w) => return Err(format!("{}: expected {}, got {}", g.metric, w.1, g.v)),
                    None => {
                        return Err(format!(
                            "unexpected sample {} {} (position {i})",
                            g.metric, g.v
                        ))
                    }
                }
            }
            Ok(())
        }
        (_, Value::Scalar { v, .. }) if c.series.is_empty() => {
            Err(format!("got scalar {v}, expected nothing"))
        }
        (_, other) => Err(format!("unexpected result type {}", other.type_name())),
    }
}
