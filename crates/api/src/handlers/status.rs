//! `/status/*`, `/metadata`, and the empty answers of endpoints whose
//! subsystems do not exist yet (targets, rules, alerts, alertmanagers).

use std::fmt::Write as _;

use axum::response::Response;

use super::{respond, ApiState};
use crate::error::{Error, Result};
use crate::json::write_str;
use crate::params::Form;
use crate::response::Success;
use crate::timefmt::format_rfc3339_ms;
use crate::{now_ms, system_time_ms, Api};

pub(super) async fn buildinfo(state: ApiState) -> Response {
    let b = &state.0.info.build;
    let fields = [
        ("version", &b.version),
        ("revision", &b.revision),
        ("branch", &b.branch),
        ("buildUser", &b.build_user),
        ("buildDate", &b.build_date),
        ("goVersion", &b.go_version),
    ];
    respond(Ok(Success::new(string_object(
        fields.iter().map(|(k, v)| (*k, v.as_str())),
    ))))
}

/// A JSON object of string members, in the given order.
fn string_object<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, k, true);
        out.push(':');
        write_str(&mut out, v, true);
    }
    out.push('}');
    out
}

pub(super) async fn flags(state: ApiState) -> Response {
    let pairs = state
        .0
        .info
        .flags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    respond(Ok(Success::new(string_object(pairs))))
}

pub(super) async fn config(state: ApiState) -> Response {
    let (yaml, _, _) = state.0.config_state();
    let mut out = String::from("{\"yaml\":");
    write_str(&mut out, &yaml, true);
    out.push('}');
    respond(Ok(Success::new(out)))
}

pub(super) async fn runtimeinfo(state: ApiState) -> Response {
    respond(Ok(Success::new(runtime_info_json(&state.0))))
}

fn runtime_info_json(api: &Api) -> String {
    let (_, reload_ok, last_config_ms) = api.config_state();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("<error retrieving current working directory: {e}>"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let (tasks, workers) = match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            let m = h.metrics();
            (m.num_alive_tasks(), m.num_workers())
        }
        Err(_) => (0, 1),
    };
    let mut out = String::from("{\"startTime\":");
    write_str(
        &mut out,
        &format_rfc3339_ms(system_time_ms(api.info.start_time)),
        true,
    );
    out.push_str(",\"CWD\":");
    write_str(&mut out, &cwd, true);
    out.push_str(",\"hostname\":");
    write_str(&mut out, &hostname, true);
    out.push_str(",\"serverTime\":");
    write_str(&mut out, &format_rfc3339_ms(now_ms()), true);
    let _ = write!(out, ",\"reloadConfigSuccess\":{reload_ok}");
    out.push_str(",\"lastConfigTime\":");
    write_str(
        &mut out,
        &format_rfc3339_ms(last_config_ms - last_config_ms.rem_euclid(1000)),
        true,
    );
    let _ = write!(
        out,
        ",\"corruptionCount\":0,\"goroutineCount\":{tasks},\"GOMAXPROCS\":{workers},\
         \"GOMEMLIMIT\":{},\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":",
        i64::MAX
    );
    write_str(&mut out, &api.info.storage_retention, true);
    out.push('}');
    out
}

pub(super) async fn metadata(state: ApiState, form: Form) -> Response {
    respond(
        metadata_impl(&form).map(|empty| match state.0.targets_source() {
            Some(t) => {
                let limit = form.value("limit").parse::<i64>().unwrap_or(0).max(0) as usize;
                Success::new(t.metadata_json(form.value("metric"), limit))
            }
            None => empty,
        }),
    )
}

/// No scraping yet, so no metadata; the parameters are still checked.
fn metadata_impl(form: &crate::params::Form) -> Result<Success> {
    for (name, msg) in [
        ("limit", "limit must be a number"),
        ("limit_per_metric", "limit_per_metric must be a number"),
    ] {
        let v = form.value(name);
        if !v.is_empty() && v.parse::<i64>().is_err() {
            return Err(Error::bad_data(msg));
        }
    }
    Ok(Success::new("{}".into()))
}

pub(super) async fn targets(state: ApiState, form: Form) -> Response {
    let data = match state.0.targets_source() {
        Some(t) => t.targets_json(form.value("state"), form.value("scrapePool")),
        None => r#"{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}"#.into(),
    };
    respond(Ok(Success::new(data)))
}

pub(super) async fn targets_metadata(state: ApiState, form: Form) -> Response {
    let limit = match form.value("limit") {
        "" => 0,
        l => match l.parse::<i64>() {
            Ok(n) if n > 0 => n as usize,
            Ok(_) => 0,
            Err(_) => return respond(Err(Error::bad_data("limit must be a number"))),
        },
    };
    respond(match state.0.targets_source() {
        Some(t) => t
            .targets_metadata_json(form.value("match_target"), form.value("metric"), limit)
            .map(Success::new),
        None => Ok(Success::new("[]".into())),
    })
}

pub(super) async fn rules() -> Response {
    respond(Ok(Success::new(r#"{"groups":[]}"#.into())))
}

pub(super) async fn alerts() -> Response {
    respond(Ok(Success::new(r#"{"alerts":[]}"#.into())))
}

pub(super) async fn alertmanagers() -> Response {
    respond(Ok(Success::new(
        r#"{"activeAlertmanagers":[],"droppedAlertmanagers":[]}"#.into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Form;

    #[test]
    fn metadata_checks_limits() {
        assert_eq!(metadata_impl(&Form::default()).unwrap().data, "{}");
        let e = metadata_impl(&Form::from_pairs([("limit", "x")])).unwrap_err();
        assert_eq!(e.message, "limit must be a number");
        assert!(metadata_impl(&Form::from_pairs([("limit", "-1")])).is_ok());
    }
}
