//! `strata sidecar`: runs beside a Prometheus (or `strata server`), ships its
//! blocks to object storage and serves its recent data (mirrors `thanos
//! sidecar`, flag names and defaults included).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args};
use prometheus_client::registry::Registry;
use strata_objstore::BucketConfig;
use strata_sidecar::{Sidecar, SidecarOptions};
use tokio_util::sync::CancellationToken;

use super::common::{duration_arg, local, time_or_duration_arg, wait_for_signal};
use tracing::{info, warn};

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
    /// Most series one Series request may return (0: no limit).
    #[arg(long = "store.limits.request-series", default_value_t = 0)]
    request_series: usize,
    /// Most samples one Series request may return, as announced by the chunks
    /// (0: no limit).
    #[arg(long = "store.limits.request-samples", default_value_t = 0)]
    request_samples: usize,
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
    let mut opts = strata_storeapi::ServerOptions::new(strata_storeapi::ComponentType::Sidecar);
    opts.max_series_per_request = c.request_series;
    opts.max_samples_per_request = c.request_samples;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = Wrap::parse_from([
            "strata",
            "--store.limits.request-series=7",
            "--store.limits.request-samples=9",
        ])
        .c;
        assert_eq!((c.request_series, c.request_samples), (7, 9));
        assert!(Wrap::try_parse_from([
            "strata",
            "--objstore.config=a",
            "--objstore.config-file=b"
        ])
        .is_err());
    }
}
