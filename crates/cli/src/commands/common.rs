//! Flag value parsers and process plumbing shared by several subcommands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use strata_config::parse_duration_ms;
use tokio_util::sync::CancellationToken;

/// A Prometheus duration (`30s`, `15m`, `2w`); negative values are zero.
pub(crate) fn duration_arg(s: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(s).map_err(|e| e.to_string())?;
    Ok(Duration::from_millis(ms.max(0).unsigned_abs()))
}

/// `--min-time`: RFC3339 (`2024-01-01T00:00:00Z`) or a duration relative to
/// now (`-2w`, `-30m`), as Thanos' `TimeOrDuration`; milliseconds.
pub(crate) fn time_or_duration_arg(s: &str) -> Result<i64, String> {
    if let Some(d) = s.strip_prefix('-') {
        let ms = parse_duration_ms(d).map_err(|e| e.to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis();
        let now = i64::try_from(now).map_err(|e| e.to_string())?;
        return Ok(now.saturating_sub(ms));
    }
    parse_rfc3339_ms(s).ok_or_else(|| {
        format!("invalid time {s:?}: expected RFC3339 or a negative duration like -2w")
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` to ms since the epoch.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let t = s.get(a..b)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = s.get(start..i)?;
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        frac_ms = padded.parse().ok()?;
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        tz => {
            let sign = match tz.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if tz.len() != 6 || tz.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let oh: i64 = tz.get(1..3)?.parse().ok()?;
            let om: i64 = tz.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days =
        strata_model::civil::days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    secs.checked_mul(1000)?.checked_add(frac_ms)
}

/// The object storage configuration of a `--<flag>-file` / `--<flag>` pair
/// (e.g. `objstore.config`); `None` when neither is set.
pub(crate) fn bucket_config(
    file: Option<&std::path::Path>,
    inline: Option<&str>,
    flag: &str,
) -> anyhow::Result<Option<strata_objstore::BucketConfig>> {
    use anyhow::Context;
    if let Some(p) = file {
        return strata_objstore::BucketConfig::from_file(p)
            .map(Some)
            .with_context(|| format!("loading --{flag}-file {}", p.display()));
    }
    match inline {
        Some(y) => strata_objstore::BucketConfig::parse(y)
            .map(Some)
            .with_context(|| format!("parsing --{flag}")),
        None => Ok(None),
    }
}

/// Relabel configs of a `--<flag>-file` / `--<flag>` pair (e.g.
/// `selector.relabel-config`); empty when neither is set.
pub(crate) fn relabel_configs(
    file: Option<&std::path::Path>,
    inline: Option<&str>,
    flag: &str,
) -> anyhow::Result<Vec<strata_model::relabel::RelabelConfig>> {
    use anyhow::Context;
    let (text, what) = match (file, inline) {
        (Some(p), _) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("reading --{flag}-file {}", p.display()))?,
            format!("--{flag}-file {}", p.display()),
        ),
        (None, Some(y)) => (y.to_string(), format!("--{flag}")),
        (None, None) => return Ok(Vec::new()),
    };
    strata_config::parse_relabel_configs(&text).with_context(|| format!("parsing {what}"))
}

/// `/metrics` of `registry`, `/-/healthy` (200 while serving) and `/-/ready`
/// (200 once `ready` is set, 503 before): the HTTP surface every component
/// serves; components add their own routes to it.
pub(crate) fn probes_router(registry: Arc<Registry>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut out = String::new();
                    match prometheus_client::encoding::text::encode(&mut out, &registry) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            out,
                        ),
                        Err(e) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            format!("encoding metrics: {e}\n"),
                        ),
                    }
                }
            }),
        )
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route(
            "/-/ready",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "OK\n").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "NOT OK\n").into_response()
                    }
                }
            }),
        )
}

/// The bound address of `l`, for logs.
pub(crate) fn local(l: &tokio::net::TcpListener) -> String {
    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// Cancels `shutdown` on SIGTERM or SIGINT (returns early if it is cancelled).
pub(crate) async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "installing signal handlers");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::warn!("received SIGTERM, exiting gracefully..."),
        _ = int.recv() => tracing::warn!("received SIGINT, exiting gracefully..."),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_time_forms() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T00:00:00.5+01:00"),
            Some(1_704_063_600_500)
        );
        assert!(parse_rfc3339_ms("0000-01-01T00:00:00Z").is_some_and(|t| t < -62_000_000_000_000));
        assert_eq!(parse_rfc3339_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        let rel = time_or_duration_arg("-1h").unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - 3_600_000 - rel).abs() < 60_000);
        assert!(time_or_duration_arg("-x").is_err());
    }
}
