//! `strata store`: the store gateway (mirrors `thanos store`, flag names and
//! defaults included). It serves every block of a bucket over the StoreAPI
//! without downloading blocks: index-headers are built in `--data-dir`, and
//! postings, series and chunks are read with ranged GETs.
//!
//! As Thanos, it syncs the bucket once at start (a failure to list the bucket
//! then ends the process with an error naming the bucket), answers gRPC only
//! after that first sync, and then syncs again every `--sync-block-duration`,
//! where failures are only logged. `/-/ready` turns 200 after the first sync.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use prometheus_client::registry::Registry;
use strata_model::relabel::RelabelConfig;
use strata_objstore::{Bucket, BucketConfig};
use strata_store::{BucketStore, IndexCacheConfig, Limits, StoreOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::common::{duration_arg, local, probes_router, time_or_duration_arg, wait_for_signal};

/// `strata store` flags (Thanos' names and defaults).
#[derive(Debug, Args)]
pub struct Config {
    /// Local directory for index-headers and other cached data.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Path to the YAML file that contains the object store configuration.
    #[arg(long = "objstore.config-file", conflicts_with = "objstore_config")]
    objstore_config_file: Option<PathBuf>,
    /// Alternative to `--objstore.config-file`: the YAML itself.
    #[arg(long = "objstore.config")]
    objstore_config: Option<String>,
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
    /// Repeat interval for syncing the blocks between local and remote view.
    #[arg(long = "sync-block-duration", value_parser = duration_arg, default_value = "15m")]
    sync_block_duration: Duration,
    /// Start of the time range served: RFC3339 or relative to now (`-2w`).
    #[arg(long = "min-time", value_parser = time_or_duration_arg,
          default_value = "0000-01-01T00:00:00Z", allow_hyphen_values = true)]
    min_time: i64,
    /// End of the time range served: RFC3339 or relative to now (`-1d`).
    #[arg(long = "max-time", value_parser = time_or_duration_arg,
          default_value = "9999-12-31T23:59:59Z", allow_hyphen_values = true)]
    max_time: i64,
    /// Path to a YAML file with a list of relabel configs over each block's
    /// external labels (and `__block_id`) that select the blocks to serve.
    #[arg(
        long = "selector.relabel-config-file",
        conflicts_with = "relabel_config"
    )]
    relabel_config_file: Option<PathBuf>,
    /// Alternative to `--selector.relabel-config-file`: the YAML itself.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
    /// Path to a YAML file with the index cache configuration
    /// (`type: IN-MEMORY` or `MEMCACHED`).
    #[arg(
        long = "index-cache.config-file",
        conflicts_with = "index_cache_config"
    )]
    index_cache_config_file: Option<PathBuf>,
    /// Alternative to `--index-cache.config-file`: the YAML itself.
    #[arg(long = "index-cache.config")]
    index_cache_config: Option<String>,
    /// Size of the in-memory index cache (legacy; used when no index cache
    /// config is given).
    #[arg(long = "index-cache-size", default_value = "250MB")]
    index_cache_size: String,
    /// Most series one Series request may return (0: no limit).
    #[arg(long = "store.limits.request-series", default_value_t = 0)]
    request_series: u64,
    /// Most samples one Series request may touch, estimated as chunks × 120
    /// (0: no limit).
    #[arg(long = "store.limits.request-samples", default_value_t = 0)]
    request_samples: u64,
    /// Series requests served at once; more wait.
    #[arg(long = "store.grpc.series-max-concurrency", default_value_t = 20)]
    series_max_concurrency: usize,
    /// Blocks whose index-header is built at once during a sync.
    #[arg(long = "block-sync-concurrency", default_value_t = 20)]
    block_sync_concurrency: usize,
    /// meta.json files fetched at once during a sync.
    #[arg(long = "block-meta-fetch-concurrency", default_value_t = 32)]
    block_meta_fetch_concurrency: usize,
    /// Blocks marked for deletion longer ago than this are no longer served.
    #[arg(long = "ignore-deletion-marks-delay", value_parser = duration_arg, default_value = "24h")]
    ignore_deletion_marks_delay: Duration,
    /// Loaded index-headers unused this long are dropped (0: never).
    #[arg(long = "store.index-header-lazy-reader-idle-timeout", value_parser = duration_arg,
          default_value = "5m")]
    index_header_idle_timeout: Duration,
    /// Postings expanded per batch when selecting a block's series: series
    /// entries and chunks are read a batch at a time (memory grows with it).
    #[arg(long = "debug.series-batch-size", default_value_t = strata_store::DEFAULT_SERIES_BATCH_SIZE, hide = true)]
    series_batch_size: usize,
}

impl Config {
    fn bucket(&self) -> anyhow::Result<BucketConfig> {
        if let Some(p) = &self.objstore_config_file {
            return BucketConfig::from_file(p)
                .with_context(|| format!("loading --objstore.config-file {}", p.display()));
        }
        if let Some(y) = &self.objstore_config {
            return BucketConfig::parse(y).context("parsing --objstore.config");
        }
        bail!(
            "no object storage configured: --objstore.config-file or --objstore.config is required"
        )
    }

    fn relabel(&self) -> anyhow::Result<Vec<RelabelConfig>> {
        let (text, what) = match (&self.relabel_config_file, &self.relabel_config) {
            (Some(p), _) => (
                std::fs::read_to_string(p).with_context(|| {
                    format!("reading --selector.relabel-config-file {}", p.display())
                })?,
                format!("--selector.relabel-config-file {}", p.display()),
            ),
            (None, Some(y)) => (y.clone(), "--selector.relabel-config".to_string()),
            (None, None) => return Ok(Vec::new()),
        };
        strata_config::parse_relabel_configs(&text).with_context(|| format!("parsing {what}"))
    }

    fn index_cache(&self) -> anyhow::Result<IndexCacheConfig> {
        let (text, what) = match (&self.index_cache_config_file, &self.index_cache_config) {
            (Some(p), _) => (
                std::fs::read_to_string(p).with_context(|| {
                    format!("reading --index-cache.config-file {}", p.display())
                })?,
                format!("--index-cache.config-file {}", p.display()),
            ),
            (None, Some(y)) => (y.clone(), "--index-cache.config".to_string()),
            (None, None) => {
                let v = serde_yaml::Value::String(self.index_cache_size.clone());
                let size = strata_config::parse_size(&v).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid --index-cache-size {:?}: {e}",
                        self.index_cache_size
                    )
                })?;
                return Ok(IndexCacheConfig::in_memory(size));
            }
        };
        IndexCacheConfig::from_yaml(&text).with_context(|| format!("parsing {what}"))
    }

    /// Everything the flags describe, checked before anything starts.
    fn store_options(&self) -> anyhow::Result<StoreOptions> {
        if self.min_time > self.max_time {
            bail!(
                "invalid time range: --min-time ({} ms) is after --max-time ({} ms)",
                self.min_time,
                self.max_time
            );
        }
        if self.sync_block_duration.is_zero() {
            bail!("--sync-block-duration must be positive");
        }
        let mut o = StoreOptions::new(&self.data_dir);
        o.min_time = self.min_time;
        o.max_time = self.max_time;
        o.relabel = self.relabel()?;
        o.index_cache = self.index_cache()?;
        o.limits = Limits {
            max_series: self.request_series,
            max_samples: self.request_samples,
            max_concurrency: self.series_max_concurrency.max(1),
        };
        o.block_sync_concurrency = self.block_sync_concurrency.max(1);
        o.meta_fetch_concurrency = self.block_meta_fetch_concurrency.max(1);
        o.ignore_deletion_marks_delay = self.ignore_deletion_marks_delay;
        o.index_header_idle_timeout = self.index_header_idle_timeout;
        o.series_batch_size = self.series_batch_size.max(1);
        Ok(o)
    }
}

/// One sync, logged; blocks that fail to load are warned about by name.
async fn sync_once(store: &BucketStore) -> anyhow::Result<()> {
    let r = store.sync().await.context("syncing blocks")?;
    info!(
        blocks = r.loaded,
        added = r.added,
        dropped = r.dropped,
        partial = r.partial,
        marked_for_deletion = r.marked_for_deletion,
        outside_time_range = r.outside_time_range,
        relabeled_away = r.relabeled_away,
        failed = r.failed,
        "synced blocks"
    );
    for (id, e) in store.failed_blocks() {
        warn!(block = %id, error = %e, "block could not be loaded; serving the others");
    }
    Ok(())
}

/// Runs the store gateway until SIGTERM or SIGINT.
pub async fn run(c: Config) -> anyhow::Result<()> {
    let bucket_cfg = c.bucket()?;
    let opts = c.store_options()?;
    let mut registry = Registry::default();
    let bucket = Bucket::from_config(&bucket_cfg, &mut registry)
        .with_context(|| format!("opening bucket {}", bucket_cfg.name()))?;
    let store = Arc::new(
        BucketStore::new(bucket, opts, &mut registry).context("creating the bucket store")?,
    );
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));

    let http_listener = tokio::net::TcpListener::bind(&c.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", c.http_address))?;
    info!(address = %local(&http_listener), "listening for HTTP");
    let ready = Arc::new(AtomicBool::new(false));
    let app = probes_router(Arc::new(registry), ready.clone());
    let graceful = shutdown.clone();
    let mut http = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move { graceful.cancelled().await })
            .await
    });
    let grpc_listener = tokio::net::TcpListener::bind(&c.grpc_address)
        .await
        .with_context(|| format!("listening on --grpc-address {}", c.grpc_address))?;

    info!(bucket = %bucket_cfg.name(), "initializing bucket store");
    let begin = std::time::Instant::now();
    let initial = tokio::select! {
        r = sync_once(&store) => Some(r),
        () = shutdown.cancelled() => None,
    };
    match initial {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            shutdown.cancel();
            signals.abort();
            let _ = http.await;
            return Err(e).context("bucket store initial sync");
        }
        None => {
            signals.abort();
            let _ = http.await;
            return Ok(());
        }
    }
    info!(init_duration = ?begin.elapsed(), "bucket store ready");
    ready.store(true, Ordering::Relaxed);

    info!(address = %local(&grpc_listener), "listening for StoreAPI gRPC");
    let source: Arc<dyn strata_storage::Queryable> = store.clone();
    let stop = shutdown.clone();
    let failed = shutdown.clone();
    let mut grpc = tokio::spawn(async move {
        let opts = strata_storeapi::ServerOptions::new(strata_storeapi::ComponentType::Store);
        let res = strata_storeapi::serve(grpc_listener, source, opts, async move {
            stop.cancelled().await
        })
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "StoreAPI gRPC server failed");
            failed.cancel();
        }
    });

    let sync_loop = {
        let store = store.clone();
        let shutdown = shutdown.clone();
        let every = c.sync_block_duration;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                if let Err(e) = sync_once(&store).await {
                    warn!(error = format!("{e:#}"), "syncing blocks failed");
                }
                let unloaded = store.unload_idle_index_headers();
                if unloaded > 0 {
                    info!(unloaded, "dropped idle index-headers");
                }
            }
        })
    };

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
    if tokio::time::timeout(c.grpc_grace_period, &mut grpc)
        .await
        .is_err()
    {
        warn!("in-flight gRPC requests did not finish in time; stopping anyway");
        grpc.abort();
    }
    let _ = sync_loop.await;
    signals.abort();
    served
        .context("HTTP server task")?
        .context("serving HTTP")?;
    info!("exiting");
    Ok(())
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
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.sync_block_duration, Duration::from_secs(900));
        assert_eq!(c.ignore_deletion_marks_delay, Duration::from_secs(86_400));
        assert_eq!(
            (c.block_sync_concurrency, c.series_max_concurrency),
            (20, 20)
        );
        assert!(c.bucket().is_err(), "no objstore config is an error");
        let o = c.store_options().unwrap();
        assert!(o.min_time < -62_000_000_000_000 && o.max_time > 253_000_000_000_000);
        assert!(o.relabel.is_empty());
        assert_eq!(o.index_cache, IndexCacheConfig::in_memory(250 << 20));
        assert_eq!(o.series_batch_size, 1_000);
        let c = Wrap::parse_from(["strata", "--debug.series-batch-size=2"]).c;
        assert_eq!(c.store_options().unwrap().series_batch_size, 2);
    }

    #[test]
    fn parses_every_group_of_flags() {
        let c = Wrap::parse_from([
            "strata",
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n",
            "--min-time=-2w",
            "--max-time=2030-01-01T00:00:00Z",
            "--selector.relabel-config=- action: keep\n  source_labels: [cluster]\n  regex: a\n",
            "--index-cache-size=1MB",
            "--store.limits.request-series=7",
            "--store.limits.request-samples=9",
            "--sync-block-duration=1s",
        ])
        .c;
        assert!(c.bucket().is_ok());
        let o = c.store_options().unwrap();
        assert_eq!(o.relabel.len(), 1);
        assert_eq!(o.max_time, 1_893_456_000_000);
        assert_eq!((o.limits.max_series, o.limits.max_samples), (7, 9));
        assert_eq!(o.index_cache, IndexCacheConfig::in_memory(1 << 20));
        assert_eq!(c.sync_block_duration, Duration::from_secs(1));

        let bad = Wrap::parse_from(["strata", "--selector.relabel-config=- action: nope\n"]).c;
        let e = format!("{:#}", bad.store_options().unwrap_err());
        assert!(
            e.contains("--selector.relabel-config") && e.contains("nope"),
            "{e}"
        );
        let bad = Wrap::parse_from([
            "strata",
            "--min-time=2030-01-01T00:00:00Z",
            "--max-time=2020-01-01T00:00:00Z",
        ])
        .c;
        assert!(format!("{:#}", bad.store_options().unwrap_err()).contains("--min-time"));
        assert!(Wrap::try_parse_from(["strata", "--min-time=yesterday"]).is_err());
    }
}
