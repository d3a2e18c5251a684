//! `/series`, `/labels` and `/label/<name>/values`.

use axum::extract::Path;
use axum::response::Response;
use futures::StreamExt;
use strata_model::{Labels, Matcher};
use strata_storage::{merge::merge_streams, Frame, LabelRequest, SelectHints, SelectRequest};

use super::{respond, ApiState};
use crate::error::{Error, Result};
use crate::json::{write_labels, write_str_array};
use crate::params::{
    parse_limit, parse_matchers, parse_time_param, Form, MAX_TIME_MS, MIN_TIME_MS,
};
use crate::response::Success;
use crate::Api;

const TRUNCATED: &str = "results truncated due to limit";

pub(super) async fn series(state: ApiState, form: Form) -> Response {
    respond(series_impl(&state.0, &form).await)
}

/// `/api/v1/stores` (Thanos querier): the selector's endpoints by component type.
pub(super) async fn stores(state: ApiState) -> Response {
    respond(match state.0.selector().and_then(|s| s.stores_json()) {
        Some(data) => Ok(Success::new(data)),
        None => Err(Error::new(
            crate::error::ErrorType::NotFound,
            "this server has no StoreAPI endpoints",
        )),
    })
}

pub(super) async fn label_names(state: ApiState, form: Form) -> Response {
    respond(label_names_impl(&state.0, &form).await)
}

pub(super) async fn label_values(
    state: ApiState,
    Path(name): Path<String>,
    form: Form,
) -> Response {
    respond(label_values_impl(&state.0, &name, &form).await)
}

/// `start`, `end` (whole range by default) and `limit`.
fn range_and_limit(form: &Form) -> Result<(i64, i64, usize)> {
    let limit = parse_limit(form)?;
    let start = parse_time_param(form, "start", MIN_TIME_MS)?;
    let end = parse_time_param(form, "end", MAX_TIME_MS)?;
    Ok((start, end, limit))
}

async fn series_impl(api: &Api, form: &Form) -> Result<Success> {
    let selectors = form.values("match[]");
    if selectors.is_empty() {
        return Err(Error::bad_data("no match[] parameter provided"));
    }
    let (start, end, limit) = range_and_limit(form)?;
    let sets = parse_matchers(&selectors).map_err(|e| Error::invalid_param("match[]", e))?;
    let source = api.source_for(form, 0)?;
    let mut streams = Vec::with_capacity(sets.len());
    for matchers in sets {
        let mut req = SelectRequest::new(start, end, matchers);
        req.skip_chunks = true;
        req.hints = SelectHints {
            start_ms: start,
            end_ms: end,
            func: Some("series".into()),
            ..SelectHints::default()
        };
        streams.push(source.select(&req).await.map_err(Error::storage)?);
    }
    let mut stream = if streams.len() == 1 {
        streams.pop().unwrap_or_else(|| merge_streams(Vec::new()))
    } else {
        merge_streams(streams)
    };
    let mut out = String::from("[");
    let mut warnings = Vec::new();
    let mut n = 0usize;
    let mut last: Option<Labels> = None;
    while let Some(frame) = stream.next().await {
        match frame.map_err(Error::storage)? {
            Frame::Warning(w) => {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            Frame::Series(s) => {
                if last.as_ref() == Some(&s.labels) {
                    continue;
                }
                if limit > 0 && n >= limit {
                    warnings.push(TRUNCATED.into());
                    break;
                }
                if n > 0 {
                    out.push(',');
                }
                write_labels(&mut out, &s.labels);
                n += 1;
                last = Some(s.labels);
            }
        }
    }
    out.push(']');
    Ok(Success::new(out).with_warnings(warnings))
}

/// One request per matcher set (or one without matchers), merged and sorted.
async fn label_lists(
    api: &Api,
    form: &Form,
    name: Option<&str>,
) -> Result<(Vec<String>, Vec<String>, usize)> {
    let (start, end, limit) = range_and_limit(form)?;
    let selectors = form.values("match[]");
    let sets: Vec<Vec<Matcher>> = if selectors.is_empty() {
        vec![Vec::new()]
    } else {
        parse_matchers(&selectors).map_err(Error::bad_data)?
    };
    let source = api.source_for(form, 0)?;
    let mut all = Vec::new();
    let mut warnings = Vec::new();
    for matchers in sets {
        let req = LabelRequest {
            min_time: start,
            max_time: end,
            matchers,
            // One more than asked, so that truncation can be reported.
            limit: if limit > 0 {
                limit.saturating_add(1)
            } else {
                0
            },
        };
        let r = match name {
            Some(n) => source.label_values(n, &req).await,
            None => source.label_names(&req).await,
        }
        .map_err(Error::storage)?;
        all.extend(r.value);
        warnings.extend(r.warnings);
    }
    all.sort_unstable();
    all.dedup();
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    Ok((all, warnings, limit))
}

fn list_success(mut items: Vec<String>, mut warnings: Vec<String>, limit: usize) -> Success {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        warnings.push(TRUNCATED.into());
    }
    let mut data = String::new();
    write_str_array(&mut data, &items);
    Success::new(data).with_warnings(warnings)
}

async fn label_names_impl(api: &Api, form: &Form) -> Result<Success> {
    let (names, warnings, limit) = label_lists(api, form, None).await?;
    Ok(list_success(names, warnings, limit))
}

async fn label_values_impl(api: &Api, name: &str, form: &Form) -> Result<Success> {
    let name = if name.starts_with("U__") {
        unescape_name(name)
    } else {
        name.to_owned()
    };
    if name.is_empty() {
        return Err(Error::bad_data(format!(
            "invalid label name: {}",
            strata_model::gofmt::quote(&name)
        )));
    }
    let (values, warnings, limit) = label_lists(api, form, Some(&name)).await?;
    Ok(list_success(values, warnings, limit))
}

/// `model.UnescapeName(name, ValueEncodingEscaping)`: after the `U__` prefix, `__`
/// is `_` and `_<hex>_` is the code point; anything malformed returns `name` as is.
pub(crate) fn unescape_name(name: &str) -> String {
    let Some(body) = name.strip_prefix("U__") else {
        return name.to_owned();
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() && hex.len() < 8 => hex.push(h),
                _ => return name.to_owned(),
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return name.to_owned(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_u_names() {
        assert_eq!(unescape_name("U__my_2e_metric"), "my.metric");
        assert_eq!(unescape_name("U__a__b"), "a_b");
        assert_eq!(unescape_name("U__caf_e9_"), "café");
        assert_eq!(unescape_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_name("U__trailing_"), "U__trailing_");
        assert_eq!(unescape_name("plain"), "plain");
    }

    #[test]
    fn list_limit() {
        let s = list_success(vec!["a".into(), "b".into()], vec![], 1);
        assert_eq!(s.data, r#"["a"]"#);
        assert_eq!(s.warnings, [TRUNCATED]);
        let s = list_success(vec!["a".into()], vec![], 1);
        assert!(s.warnings.is_empty());
        let s = list_success(vec![], vec![], 0);
        assert_eq!(s.data, "[]");
    }
}
