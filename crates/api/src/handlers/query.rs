//! `/query`, `/query_range`, `/query_exemplars` and `/format_query`.

use std::time::Duration;

use axum::response::Response;
use strata_promql::{QueryOptions, QueryResult, Value};

use super::{respond, ApiState};
use crate::error::{Error, ErrorType, Result};
use crate::json::{write_query_data, write_str};
use crate::params::{parse_duration_ns, parse_limit, parse_time, parse_time_param, Form};
use crate::response::Success;
use crate::{now_ms, Api};

/// Prometheus' cap on points per series of a range query.
const MAX_POINTS: i64 = 11_000;

pub(super) async fn instant(state: ApiState, form: Form) -> Response {
    respond(instant_query(&state.0, &form).await)
}

pub(super) async fn range(state: ApiState, form: Form) -> Response {
    respond(range_query(&state.0, &form).await)
}

pub(super) async fn exemplars(form: Form) -> Response {
    respond(query_exemplars(&form))
}

pub(super) async fn format_query(form: Form) -> Response {
    respond(format(&form))
}

/// The optional `timeout` and `lookback_delta` parameters.
fn query_options(form: &Form) -> Result<QueryOptions> {
    let mut opts = QueryOptions::default();
    let to = form.value("timeout");
    if !to.is_empty() {
        let ns = parse_duration_ns(to).map_err(|e| Error::invalid_param("timeout", e))?;
        opts.timeout = Some(Duration::from_nanos(ns.max(0).unsigned_abs()));
    }
    let lb = form.value("lookback_delta");
    if !lb.is_empty() {
        let ns = parse_duration_ns(lb)
            .map_err(|e| Error::bad_data(format!("error parsing lookback delta duration: {e}")))?;
        // The engine's default applies to zero or negative values, as in Prometheus.
        if ns > 0 {
            opts.lookback_delta_ms = Some(ns / 1_000_000);
        }
    }
    Ok(opts)
}

/// Parses the query up front so that syntax errors are `bad_data` with the
/// parser's message, as Prometheus' `NewInstantQuery` reports them.
fn check_query(q: &str) -> Result<()> {
    promql_parser::parser::parse(q)
        .map(|_| ())
        .map_err(|e| Error::invalid_param("query", e))
}

fn engine_error(e: strata_promql::Error) -> Error {
    let kind = ErrorType::from_engine(e.error_type());
    if kind == ErrorType::BadData {
        return Error::invalid_param("query", e);
    }
    Error::new(kind, e.to_string())
}

async fn instant_query(api: &Api, form: &Form) -> Result<Success> {
    let limit = parse_limit(form)?;
    let ts = parse_time_param(form, "time", now_ms())?;
    let mut opts = query_options(form)?;
    let q = form.value("query");
    check_query(q)?;
    let (source, lookback) = api.query_source_for(form, 0)?;
    opts.lookback_delta_ms = opts.lookback_delta_ms.or(lookback);
    let res = api
        .engine
        .instant_query(source, q, ts, &opts)
        .await
        .map_err(engine_error)?;
    Ok(query_success(res, limit))
}

async fn range_query(api: &Api, form: &Form) -> Result<Success> {
    let limit = parse_limit(form)?;
    let start = parse_time(form.value("start")).map_err(|e| Error::invalid_param("start", e))?;
    let end = parse_time(form.value("end")).map_err(|e| Error::invalid_param("end", e))?;
    if end < start {
        return Err(Error::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns =
        parse_duration_ns(form.value("step")).map_err(|e| Error::invalid_param("step", e))?;
    let step_ms = check_range(start, end, step_ns)?;
    let mut opts = query_options(form)?;
    let q = form.value("query");
    check_query(q)?;
    let (source, lookback) = api.query_source_for(form, step_ms)?;
    // The request's `lookback_delta` wins over the selector's (Thanos v1.go).
    opts.lookback_delta_ms = opts.lookback_delta_ms.or(lookback);
    let res = api
        .engine
        .range_query(source, q, start, end, step_ms, &opts)
        .await
        .map_err(engine_error)?;
    Ok(query_success(res, limit))
}

/// Prometheus' step checks: positive, and at most 11,000 points per series.
/// Returns the step in ms (a step under 1 ms counts as zero).
fn check_range(start: i64, end: i64, step_ns: i64) -> Result<i64> {
    let step_ms = step_ns / 1_000_000;
    if step_ns <= 0 || step_ms == 0 {
        return Err(Error::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Go divides durations in ns; the span is whole ms, so this is the same
    // quotient computed without overflow.
    let span_ns = (i128::from(end) - i128::from(start)) * 1_000_000;
    if span_ns / i128::from(step_ns) > i128::from(MAX_POINTS) {
        return Err(Error::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok(step_ms)
}

/// Truncates vectors and matrices to `limit` (0: none), with Prometheus' warning.
fn query_success(res: QueryResult, limit: usize) -> Success {
    let QueryResult {
        mut value,
        mut warnings,
        infos,
    } = res;
    if limit > 0 {
        let truncated = match &mut value {
            Value::Vector(v) if v.len() > limit => {
                v.truncate(limit);
                true
            }
            Value::Matrix(m) if m.len() > limit => {
                m.truncate(limit);
                true
            }
            _ => false,
        };
        if truncated {
            warnings.push("results truncated due to limit".into());
        }
    }
    let mut data = String::new();
    write_query_data(&mut data, &value);
    Success {
        data,
        warnings,
        infos,
    }
}

/// No exemplar storage yet: a valid query has no exemplars.
fn query_exemplars(form: &Form) -> Result<Success> {
    let start = parse_time_param(form, "start", crate::params::MIN_TIME_MS)?;
    let end = parse_time_param(form, "end", crate::params::MAX_TIME_MS)?;
    if end < start {
        return Err(Error::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    promql_parser::parser::parse(form.value("query")).map_err(Error::bad_data)?;
    Ok(Success::new("[]".into()))
}

fn format(form: &Form) -> Result<Success> {
    let expr = promql_parser::parser::parse(form.value("query"))
        .map_err(|e| Error::invalid_param("query", e))?;
    let mut data = String::new();
    write_str(&mut data, &expr.prettify(), true);
    Ok(Success::new(data))
}

#[cfg(test)]
mod tests {
    use strata_model::{Labels, Sample};
    use strata_promql::{Series, VectorSample};

    use super::*;

    fn vector(n: usize) -> Value {
        Value::Vector(
            (0..n)
                .map(|i| VectorSample {
                    metric: Labels::from_pairs([("i", i.to_string())]),
                    t: 0,
                    v: 1.0,
                })
                .collect(),
        )
    }

    #[test]
    fn limit_truncates_with_warning() {
        let r = QueryResult {
            value: vector(3),
            warnings: vec![],
            infos: vec![],
        };
        let s = query_success(r, 2);
        assert_eq!(s.warnings, ["results truncated due to limit"]);
        assert_eq!(s.data.matches("\"metric\"").count(), 2);
        let r = QueryResult {
            value: Value::Matrix(vec![
                Series {
                    metric: Labels::empty(),
                    samples: vec![Sample { t: 0, v: 1.0 }],
                };
                2
            ]),
            warnings: vec!["w".into()],
            infos: vec!["i".into()],
        };
        let s = query_success(r.clone(), 2);
        assert_eq!(s.warnings, ["w"]);
        assert_eq!(s.infos, ["i"]);
        let s = query_success(r, 1);
        assert_eq!(s.warnings, ["w", "results truncated due to limit"]);
        let s = query_success(
            QueryResult {
                value: Value::Scalar { t: 0, v: 1.0 },
                warnings: vec![],
                infos: vec![],
            },
            1,
        );
        assert!(s.warnings.is_empty());
        assert_eq!(s.data, r#"{"resultType":"scalar","result":[0,"1"]}"#);
    }

    #[test]
    fn range_checks() {
        assert_eq!(check_range(0, 11_000_000, 1_000_000_000).unwrap(), 1000);
        assert_eq!(check_range(0, 11_000_999, 1_000_000_000).unwrap(), 1000);
        let e = check_range(0, 11_001_000, 1_000_000_000).unwrap_err();
        assert!(e.message.starts_with("exceeded maximum resolution"));
        assert_eq!(check_range(5, 5, 1_000_000).unwrap(), 1);
        for bad in [0, -1, 999_999] {
            let e = check_range(0, 1, bad).unwrap_err();
            assert!(e.message.contains("zero or negative"), "{bad}");
        }
    }

    #[test]
    fn options() {
        let o = query_options(&Form::from_pairs([
            ("timeout", "5s"),
            ("lookback_delta", "1m"),
        ]))
        .unwrap();
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.lookback_delta_ms, Some(60_000));
        let o = query_options(&Form::from_pairs([("lookback_delta", "0")])).unwrap();
        assert_eq!(o.lookback_delta_ms, None);
        let e = query_options(&Form::from_pairs([("timeout", "x")])).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "timeout": cannot parse "x" to a valid duration"#
        );
        let e = query_options(&Form::from_pairs([("lookback_delta", "x")])).unwrap_err();
        assert_eq!(
            e.message,
            r#"error parsing lookback delta duration: cannot parse "x" to a valid duration"#
        );
    }

    #[test]
    fn format_query_prettifies() {
        let s = format(&Form::from_pairs([("query", "sum(rate(x[5m])) by (job)")])).unwrap();
        assert!(
            s.data.starts_with('"') && s.data.contains("sum"),
            "{}",
            s.data
        );
        let e = format(&Form::from_pairs([("query", "sum(")])).unwrap_err();
        assert_eq!(e.kind, ErrorType::BadData);
        assert!(
            e.message.starts_with("invalid parameter \"query\": "),
            "{}",
            e.message
        );
    }
}
