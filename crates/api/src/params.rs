//! Request parameters as Prometheus reads them (`r.FormValue`, `parseTime`,
//! `parseDuration`, `parseLimitParam`, `parseMatchersParam`).

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method};
use strata_model::gofmt::quote;
use strata_model::{MatchType, Matcher};

use crate::error::{Error, Result};
use crate::timefmt::parse_rfc3339_ns;

/// Prometheus' `MinTime` (`v1.MinTime`), ms: the default start of optional ranges.
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// Prometheus' `MaxTime` (`v1.MaxTime`), ms: the default end of optional ranges.
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;
/// `MinTime.Format(time.RFC3339Nano)`, accepted as a time although its year has
/// more than four digits.
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
/// `MaxTime.Format(time.RFC3339Nano)`.
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// The form values of a request: a POST `application/x-www-form-urlencoded` body's
/// values first, then the URL query's (Go's `r.Form`).
#[derive(Clone, Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Reads the URL query and, for POST/PUT/PATCH with a form content type, the
    /// body.
    pub fn from_parts(
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        let mut pairs = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if is_form && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Self { pairs }
    }

    /// A form of the given pairs (for tests and callers that parse elsewhere).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The first value of `name`, or `""` (Go's `FormValue`).
    pub fn value(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Assembles a form from request parts; convenience for handlers.
    pub(crate) fn read(
        method: &Method,
        uri_query: Option<&str>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Self {
        Self::from_parts(method, uri_query, headers, body)
    }
}

/// Prometheus' `parseTime`: Unix seconds as a float (rounded to ms) or RFC 3339;
/// returns ms.
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            let int = f.trunc();
            let frac_ms = ((f - int) * 1000.0).round();
            let ns = ((frac_ms / 1000.0) * 1e9) as i128;
            let total_ns = (int as i128) * 1_000_000_000 + ns;
            return Ok(ns_to_ms(total_ns));
        }
    }
    if let Some(ns) = parse_rfc3339_ns(s) {
        return Ok(ns_to_ms(ns));
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {} to a valid timestamp", quote(s))),
    }
}

/// ms of a nanosecond time (Go's `timestamp.FromTime`: floor), clamped to i64.
fn ns_to_ms(ns: i128) -> i64 {
    let ms = ns.div_euclid(1_000_000);
    ms.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Prometheus' `parseTimeParam`: `default` when empty.
pub fn parse_time_param(form: &Form, name: &str, default: i64) -> Result<i64> {
    let v = form.value(name);
    if v.is_empty() {
        return Ok(default);
    }
    parse_time(v)
        .map_err(|e| Error::invalid_param(name, format!("invalid time value for '{name}': {e}")))
}

/// Prometheus' `parseDuration`: float seconds or a Prometheus duration; returns
/// nanoseconds (may be negative for float input).
pub fn parse_duration_ns(s: &str) -> std::result::Result<i64, String> {
    if let Ok(d) = s.parse::<f64>() {
        let ns = d * 1e9;
        if ns.is_nan() || ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                quote(s)
            ));
        }
        return Ok(ns as i64);
    }
    if let Ok(ms) = strata_config::parse_duration_ms(s) {
        return Ok(ms.saturating_mul(1_000_000));
    }
    Err(format!("cannot parse {} to a valid duration", quote(s)))
}

/// Prometheus' `parseLimitParam`: 0 (no limit) when empty; negative is an error.
pub fn parse_limit(form: &Form) -> Result<usize> {
    let s = form.value("limit");
    if s.is_empty() {
        return Ok(0);
    }
    let n: i64 = s.parse().map_err(|_| {
        Error::invalid_param(
            "limit",
            format!("strconv.Atoi: parsing {}: invalid syntax", quote(s)),
        )
    })?;
    if n < 0 {
        return Err(Error::invalid_param("limit", "limit must be non-negative"));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Parses one series selector (`match[]`) into matcher sets: one set normally,
/// one per `or` alternative of `{a="1" or b="2"}`.
pub fn parse_selector(s: &str) -> std::result::Result<Vec<Vec<Matcher>>, String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::Expr;
    let expr = promql_parser::parser::parse(s)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "1:1: parse error: unexpected expression, expected a series selector: {s}"
        ));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(format!(
            "1:1: parse error: a series selector may not have an offset or @ modifier: {s}"
        ));
    }
    let mut groups: Vec<Vec<&promql_parser::label::Matcher>> = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        groups.push(vs.matchers.matchers.iter().collect());
    } else {
        for g in &vs.matchers.or_matchers {
            groups.push(g.iter().chain(vs.matchers.matchers.iter()).collect());
        }
    }
    let mut sets = Vec::new();
    for g in groups {
        let mut set = Vec::new();
        if let Some(name) = &vs.name {
            if !g.iter().any(|m| m.name == strata_model::METRIC_NAME) {
                set.push(Matcher::equal(strata_model::METRIC_NAME, name.clone()));
            }
        }
        for m in g {
            let kind = match m.op {
                MatchOp::Equal => MatchType::Equal,
                MatchOp::NotEqual => MatchType::NotEqual,
                MatchOp::Re(_) => MatchType::Regex,
                MatchOp::NotRe(_) => MatchType::NotRegex,
            };
            set.push(
                Matcher::new(kind, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())?,
            );
        }
        sets.push(set);
    }
    Ok(sets)
}

/// Prometheus' `parseMatchersParam`: every selector parsed, and each matcher set
/// must have a matcher that does not match the empty string.
pub fn parse_matchers(selectors: &[&str]) -> std::result::Result<Vec<Vec<Matcher>>, String> {
    let mut out = Vec::new();
    for s in selectors {
        out.extend(parse_selector(s)?);
    }
    for set in &out {
        if !set.iter().any(|m| !m.matches("")) {
            return Err("match[] must contain at least one non-empty matcher".into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_times_round_to_ms() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1").unwrap(), 1000);
        assert_eq!(parse_time("1.5").unwrap(), 1500);
        // As in Go, 1.0005 is just below 1.0005 in binary and rounds down.
        assert_eq!(parse_time("1.0005").unwrap(), 1000);
        assert_eq!(parse_time("1.0006").unwrap(), 1001);
        assert_eq!(parse_time("1.0004").unwrap(), 1000);
        assert_eq!(parse_time("1704067205.125").unwrap(), 1_704_067_205_125);
        assert_eq!(parse_time("1704067205.1251").unwrap(), 1_704_067_205_125);
        assert_eq!(parse_time("-1.5").unwrap(), -1500);
        assert_eq!(parse_time("-0.001").unwrap(), -1);
        assert_eq!(parse_time("1e3").unwrap(), 1_000_000);
        assert_eq!(parse_time(".5").unwrap(), 500);
        assert_eq!(parse_time("0.001").unwrap(), 1);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2024-01-01T00:00:05.125Z").unwrap(),
            1_704_067_205_125
        );
        assert_eq!(
            parse_time("2024-01-01T00:00:05.1259Z").unwrap(),
            1_704_067_205_125
        );
        assert_eq!(parse_time("1969-12-31T23:59:59.9995Z").unwrap(), -1);
        assert_eq!(parse_time(MIN_TIME_FORMATTED).unwrap(), MIN_TIME_MS);
        assert_eq!(parse_time(MAX_TIME_FORMATTED).unwrap(), MAX_TIME_MS);
    }

    #[test]
    fn min_max_time_match_prometheus() {
        assert_eq!(MIN_TIME_MS, -9_223_309_901_257_974_000);
        assert_eq!(MAX_TIME_MS, 9_223_309_901_257_974_999);
    }

    #[test]
    fn bad_times() {
        assert_eq!(
            parse_time("abc").unwrap_err(),
            r#"cannot parse "abc" to a valid timestamp"#
        );
        assert!(parse_time("").is_err());
        assert!(parse_time("NaN").is_err());
        assert!(parse_time("inf").is_err());
        let form = Form::from_pairs([("time", "x")]);
        let e = parse_time_param(&form, "time", 7).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "time": invalid time value for 'time': cannot parse "x" to a valid timestamp"#
        );
        assert_eq!(parse_time_param(&Form::default(), "time", 7).unwrap(), 7);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("15").unwrap(), 15_000_000_000);
        assert_eq!(parse_duration_ns("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_duration_ns("-1").unwrap(), -1_000_000_000);
        assert_eq!(parse_duration_ns("5m").unwrap(), 300_000_000_000);
        assert_eq!(parse_duration_ns("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration_ns("1ms").unwrap(), 1_000_000);
        assert_eq!(
            parse_duration_ns("5x").unwrap_err(),
            r#"cannot parse "5x" to a valid duration"#
        );
        assert_eq!(
            parse_duration_ns("1e10").unwrap_err(),
            r#"cannot parse "1e10" to a valid duration. It overflows int64"#
        );
        assert!(parse_duration_ns("").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(&Form::default()).unwrap(), 0);
        assert_eq!(parse_limit(&Form::from_pairs([("limit", "5")])).unwrap(), 5);
        assert_eq!(parse_limit(&Form::from_pairs([("limit", "0")])).unwrap(), 0);
        let e = parse_limit(&Form::from_pairs([("limit", "-1")])).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "limit": limit must be non-negative"#
        );
        let e = parse_limit(&Form::from_pairs([("limit", "x")])).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax"#
        );
    }

    #[test]
    fn form_merges_body_before_query() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        let f = Form::from_parts(
            &Method::POST,
            Some("query=b&match%5B%5D=q"),
            &h,
            b"query=a+b%7B&match[]=p",
        );
        assert_eq!(f.value("query"), "a b{");
        assert_eq!(f.values("match[]"), ["p", "q"]);
        assert_eq!(f.value("missing"), "");
        // GET ignores a body; a POST without the form content type too.
        let f = Form::from_parts(&Method::GET, Some("query=b"), &h, b"query=a");
        assert_eq!(f.value("query"), "b");
        let f = Form::from_parts(&Method::POST, None, &HeaderMap::new(), b"query=a");
        assert_eq!(f.value("query"), "");
    }

    #[test]
    fn selectors() {
        let sets = parse_matchers(&["up", r#"{job=~"a.*",instance!="x"}"#]).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0], vec![Matcher::equal("__name__", "up")]);
        assert_eq!(sets[1].len(), 2);
        assert_eq!(sets[1][0].kind, MatchType::Regex);
        let sets = parse_matchers(&[r#"up{job="a"}"#]).unwrap();
        assert_eq!(
            sets[0],
            vec![Matcher::equal("__name__", "up"), Matcher::equal("job", "a")]
        );
        assert!(parse_matchers(&["up{"]).is_err());
        assert!(parse_matchers(&["sum(up)"]).is_err());
        assert!(parse_matchers(&["up offset 5m"]).is_err());
        assert!(parse_matchers(&[r#"{job=~".*"}"#]).is_err());
        let e = parse_matchers(&[r#"{job=""}"#]).unwrap_err();
        assert!(e.contains("non-empty matcher"), "{e}");
    }
}
