//! `strata sidecar`: runs beside a Prometheus (or `strata server`), ships its
//! blocks to object storage and serves its recent data (mirrors `thanos
//! sidecar`, flag names and defaults included).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{ArgAction, Args};
use prometheus_client::registry::Registry;
use strata_config::parse_duration_ms;
use strata_objstore::BucketConfig;
use strata_sidecar::{Sidecar, SidecarOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

fn duration_arg(s: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(s).map_err(|e| e.to_string())?;
    Ok(Duration::from_millis(ms.max(0).unsigned_abs()))
}

/// `--min-time`: RFC3339 (`2024-01-01T00:00:00Z`) or a duration relative to
/// now (`-2w`, `-30m`), as Thanos' `TimeOrDuration`; milliseconds.
fn time_or_duration_arg(s: &str) -> Result<i64, String> {
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
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
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

/// `strata sidecar` flags (Thanos' names and defaults).
#[derive(Debug, Args)]
pub struct Config {
    /// Data directory of the TSDB (the Prometheus `--storage.tsdb.path`).
    #[arg(long = "tsdb.path", default_value = "./data")]
    tsdb_path: PathBuf,
    /// URL at which to reach the Prometheus server's HTTP API.
    #[arg(long = "prometheus.url", default_value = "http://localhost:9090")]
    prometheus_url: String,
    /// Maximum time to wait for the Prometheus instance to start up.
    #[arg(long = "prometheus.ready_timeout", value_parser = duration_arg, default_value = "10m")]
    ready_timeout: Duration,
    /// How often to get the Prometheus config (external labels, lowest timestamp).
    #[arg(long = "prometheus.get_config_interval", value_parser = duration_arg, default_value = "30s")]
    get_config_interval: Duration,
    /// Timeout for getting the Prometheus config.
    #[arg(long = "prometheus.get_config_timeout", value_parser = duration_arg, default_value = "30s")]
    get_config_timeout: Duration,
    /// Listen ip:port address for the gRPC StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: String,
    /// Time to wait after an interrupt for in-flight gRPC requests.
    #[arg(long = "grpc-grace-period", value_parser = duration_arg, default_value = "2m")]
    grpc_grace_period: Duration,
    /// Listen host:port for HTTP endpoints (`/metrics`, `/-/healthy`, `/-/ready`).
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    /// Time to wait after an interrupt for in-flight HTTP requests.
    #[arg(long = "http-grace-period", value_parser = duration_arg, default_value = "2m")]
    http_grace_period: Duration,
    /// Path to the YAML file that contains the object store configuration.
    #[arg(long = "objstore.config-file", conflicts_with = "objstore_config")]
    objstore_config_file: Option<PathBuf>,
    /// Alternative to `--objstore.config-file`: the YAML itself.
    #[arg(long = "objstore.config")]
    objstore_config: Option<String>,
    /// Also upload compacted blocks (level > 1). Turn it on only once, when
    /// moving an existing Prometheus to Thanos; `--no-shipper.upload-compacted`
    /// turns it off.
    #[arg(long = "shipper.upload-compacted", action = ArgAction::SetTrue,
          overrides_with = "no_upload_compacted")]
    upload_compacted: bool,
    /// Turns `--shipper.upload-compacted` off.
    #[arg(long = "no-shipper.upload-compacted", action = ArgAction::SetTrue, hide = true)]
    no_upload_compacted: bool,
    /// File in the TSDB directory that records the uploaded blocks.
    #[arg(long = "shipper.meta-file-name", default_value = strata_block::DEFAULT_META_FILE_NAME)]
    meta_file_name: String,
    /// Only warn when Prometheus' min and max block durations differ.
    #[arg(long = "shipper.ignore-unequal-block-size", hide = true)]
    ignore_unequal_block_size: bool,
    /// Pause between shipper passes (Thanos: fixed 30s).
    #[arg(long = "shipper.sync-interval", value_parser = duration_arg, default_value = "30s", hide = true)]
    sync_interval: Duration,
    /// Start of the time range served: RFC3339 or relative to now (`-2w`).
    #[arg(long = "min-time", value_parser = time_or_duration_arg,
          default_value = "0000-01-01T00:00:00Z")]
    min_time: i64,
}

impl Config {
    fn bucket(&self) -> anyhow::Result<Option<BucketConfig>> {
        if let Some(p) = &self.objstore_config_file {
            return Ok(Some(BucketConfig::from_file(p).with_context(|| {
                format!("loading --objstore.config-file {}", p.display())
            })?));
        }
        if let Some(y) = &self.objstore_config {
            return Ok(Some(
                BucketConfig::parse(y).context("parsing --objstore.config")?,
            ));
        }
        Ok(None)
    }
}

/// Runs the sidecar until SIGTERM or SIGINT.
pub async fn run(c: Config) -> anyhow::Result<()> {
    let bucket = c.bucket()?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let opts = SidecarOptions {
        prometheus_url: c.prometheus_url.clone(),
        tsdb_path: c.tsdb_path.clone(),
        ready_timeout: c.ready_timeout,
        get_config_interval: c.get_config_interval,
        get_config_timeout: c.get_config_timeout,
        bucket,
        upload_compacted: c.upload_compacted && !c.no_upload_compacted,
        meta_file_name: c.meta_file_name.clone(),
        ignore_unequal_block_size: c.ignore_unequal_block_size,
        min_time_ms: c.min_time,
        sync_interval: c.sync_interval,
        ..SidecarOptions::default()
    };
    let mut registry = Registry::default();

    // HTTP first, so that /-/healthy answers while Prometheus is awaited.
    let http_listener = tokio::net::TcpListener::bind(&c.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", c.http_address))?;
    info!(address = %local(&http_listener), "listening for HTTP");
    let metrics = Arc::new(std::sync::OnceLock::new());
    let ready = strata_sidecar::Readiness::default();
    let router = strata_sidecar::http::router(metrics.clone(), ready.clone());
    let graceful = shutdown.clone();
    let mut http = tokio::spawn(async move {
        axum::serve(http_listener, router)
            .with_graceful_shutdown(async move { graceful.cancelled().await })
            .await
    });

    let sidecar = match Sidecar::start(opts, &mut registry, ready, &shutdown).await {
        Ok(s) => s,
        Err(e) => {
            shutdown.cancel();
            signals.abort();
            let _ = http.await;
            return match e {
                strata_sidecar::Error::Canceled => Ok(()),
                e => Err(e).context("starting the sidecar"),
            };
        }
    };
    let _ = metrics.set(registry);

    let grpc = serve_store_api(&c, sidecar.queryable(), shutdown.clone()).await?;

    let loops = tokio::spawn(sidecar.run(shutdown.clone()));
    info!("sidecar is ready");
    let finished = tokio::select! {
        r = &mut http => Some(r),
        () = shutdown.cancelled() => None,
    };
    shutdown.cancel();
    let served = match finished {
        Some(r) => r,
        None => match tokio::time::timeout(c.http_grace_period, &mut http).await {
            Ok(r) => r,
            Err(_) => {
                warn!("in-flight HTTP requests did not finish in time; stopping anyway");
                http.abort();
                Ok(Ok(()))
            }
        },
    };
    let mut grpc = grpc;
    if tokio::time::timeout(c.grpc_grace_period, &mut grpc)
        .await
        .is_err()
    {
        warn!("in-flight gRPC requests did not finish in time; stopping anyway");
        grpc.abort();
    }
    let _ = loops.await;
    signals.abort();
    served
        .context("HTTP server task")?
        .context("serving HTTP")?;
    info!("exiting");
    Ok(())
}

/// Serves the StoreAPI (`thanos.Store`, `thanos.info.Info`) over `source` on
/// `--grpc-address` until `shutdown`.
async fn serve_store_api(
    c: &Config,
    source: Arc<strata_remote::ReadClient>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(&c.grpc_address)
        .await
        .with_context(|| format!("listening on --grpc-address {}", c.grpc_address))?;
    info!(address = %local(&listener), "listening for StoreAPI gRPC");
    let opts = strata_storeapi::ServerOptions::new(strata_storeapi::ComponentType::Sidecar);
    let source: Arc<dyn strata_storage::Queryable> = source;
    let stop = shutdown.clone();
    Ok(tokio::spawn(async move {
        let res = strata_storeapi::serve(
            listener,
            source,
            opts,
            async move { stop.cancelled().await },
        )
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "StoreAPI gRPC server failed");
            shutdown.cancel();
        }
    }))
}

fn local(l: &tokio::net::TcpListener) -> String {
    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
}

async fn wait_for_signal(shutdown: CancellationToken) {
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
        _ = term.recv() => warn!("received SIGTERM, exiting gracefully..."),
        _ = int.recv() => warn!("received SIGINT, exiting gracefully..."),
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

    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        c: Config,
    }

    #[test]
    fn defaults_and_flag_names_match_thanos() {
        let c = Wrap::parse_from(["strata"]).c;
        assert_eq!(c.grpc_address, "0.0.0.0:10901");
        assert_eq!(c.http_address, "0.0.0.0:10902");
        assert_eq!(c.prometheus_url, "http://localhost:9090");
        assert_eq!(c.tsdb_path, PathBuf::from("./data"));
        assert_eq!(c.ready_timeout, Duration::from_secs(600));
        assert_eq!(c.meta_file_name, "thanos.shipper.json");
        assert!(!c.upload_compacted);
        assert!(c.bucket().unwrap().is_none());
        let c = Wrap::parse_from([
            "strata",
            "--shipper.upload-compacted",
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n",
        ])
        .c;
        assert!(c.upload_compacted);
        assert!(c.bucket().unwrap().is_some());
        assert!(Wrap::try_parse_from([
            "strata",
            "--objstore.config=a",
            "--objstore.config-file=b"
        ])
        .is_err());
    }
}
