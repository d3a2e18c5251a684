//! `strata compact`: the compactor (mirrors `thanos compact`, flag names and
//! defaults included). It compacts, deduplicates, downsamples and applies
//! retention to the blocks of a bucket; one pass without `--wait`, a loop
//! every `--wait-interval` with it.
//!
//! Where Strata differs from Thanos (documented in `--help`): a block that
//! cannot be read gets a no-compact (or no-downsample) mark and every other
//! group keeps compacting; `--debug.halt-on-error=true` halts as Thanos does
//! by default. `--deduplication.func=strata` merges replicas with the
//! querier's counter-exact algorithm.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use clap::Args;
use prometheus_client::registry::Registry;
use strata_compact::cleanup::Retention;
use strata_compact::merge::MergeFunc;
use strata_compact::sync::SyncOptions;
use strata_compact::{Compactor, CompactorOptions, Failure, Metrics};
use strata_model::relabel::RelabelConfig;
use strata_objstore::{Bucket, BucketConfig};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::common::{
    bucket_config, duration_arg, local, probes_router, relabel_configs, time_or_duration_arg,
    wait_for_signal,
};

/// `strata compact` flags (Thanos' names and defaults).
#[derive(Debug, Args)]
pub struct Config {
    /// Data directory in which to cache blocks and process compactions.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Path to the YAML file that contains the object store configuration.
    #[arg(long = "objstore.config-file", conflicts_with = "objstore_config")]
    objstore_config_file: Option<PathBuf>,
    /// Alternative to `--objstore.config-file`: the YAML itself.
    #[arg(long = "objstore.config")]
    objstore_config: Option<String>,
    /// Listen host:port for HTTP endpoints (`/metrics`, probes, `/api/v1/blocks`).
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    /// Do not exit after all compactions have been processed; wait for new work.
    #[arg(long = "wait", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    wait: bool,
    /// Wait interval between consecutive compaction runs and bucket refreshes
    /// (only with `--wait`).
    #[arg(long = "wait-interval", value_parser = duration_arg, default_value = "5m")]
    wait_interval: Duration,
    /// Minimum age of fresh (non-compacted) blocks before they are processed.
    /// Blocks the compactor wrote are exempt.
    #[arg(long = "consistency-delay", value_parser = duration_arg, default_value = "30m")]
    consistency_delay: Duration,
    /// How long to retain raw samples in the bucket (0d: forever).
    #[arg(long = "retention.resolution-raw", value_parser = duration_arg, default_value = "0d")]
    retention_raw: Duration,
    /// How long to retain samples of resolution 1 (5 minutes) (0d: forever).
    #[arg(long = "retention.resolution-5m", value_parser = duration_arg, default_value = "0d")]
    retention_5m: Duration,
    /// How long to retain samples of resolution 2 (1 hour) (0d: forever).
    #[arg(long = "retention.resolution-1h", value_parser = duration_arg, default_value = "0d")]
    retention_1h: Duration,
    /// Disables downsampling.
    #[arg(long = "downsampling.disable", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    downsampling_disable: bool,
    /// Number of goroutines (here: groups) compacted at once.
    #[arg(long = "compact.concurrency", default_value_t = 1)]
    compact_concurrency: usize,
    /// Number of blocks downloaded at once per compaction (accepted for
    /// compatibility; blocks are downloaded one after another).
    #[arg(long = "compact.blocks-fetch-concurrency", default_value_t = 1)]
    blocks_fetch_concurrency: usize,
    /// Number of blocks downsampled at once.
    #[arg(long = "downsample.concurrency", default_value_t = 1)]
    downsample_concurrency: usize,
    /// Files of one block fetched at once (accepted for compatibility).
    #[arg(long = "block-files-concurrency", default_value_t = 1)]
    block_files_concurrency: usize,
    /// meta.json files fetched at once during a sync.
    #[arg(long = "block-meta-fetch-concurrency", default_value_t = 32)]
    block_meta_fetch_concurrency: usize,
    /// How blocks are discovered (`concurrent` or `recursive`; both list the
    /// bucket's top level here).
    #[arg(long = "block-discovery-strategy", default_value = "concurrent")]
    block_discovery_strategy: String,
    /// How often blocks marked for deletion and aborted partial uploads are
    /// removed while waiting (with `--wait`; 0s: off).
    #[arg(long = "compact.cleanup-interval", value_parser = duration_arg, default_value = "5m")]
    cleanup_interval: Duration,
    /// How often the todo metrics (`thanos_compact_todo_*`) are refreshed while
    /// waiting (with `--wait`; 0s: off).
    #[arg(long = "compact.progress-interval", value_parser = duration_arg, default_value = "5m")]
    progress_interval: Duration,
    /// Time before a block marked for deletion is deleted from the bucket (0: at once).
    #[arg(long = "delete-delay", value_parser = duration_arg, default_value = "48h")]
    delete_delay: Duration,
    /// External label that identifies a replica; repeatable. Turns vertical
    /// compaction on: replicas of a group are merged into one block.
    #[arg(long = "deduplication.replica-label")]
    replica_labels: Vec<String>,
    /// How replicas are merged: "" (the union of samples, Thanos' default),
    /// `penalty` (Thanos' penalty algorithm), or `strata` (Strata's own: the
    /// querier's counter-exact replica merge).
    #[arg(long = "deduplication.func", default_value = "")]
    dedup_func: String,
    /// Merge overlapping blocks of a group (vertical compaction).
    #[arg(long = "compact.enable-vertical-compaction", num_args = 0..=1, default_missing_value = "true", default_value = "false", hide = true)]
    enable_vertical_compaction: bool,
    /// A planned compaction whose index would exceed this gets its largest
    /// block marked no-compact instead.
    #[arg(
        long = "compact.block-max-index-size",
        default_value = "64GB",
        hide = true
    )]
    block_max_index_size: String,
    /// Halt on an unusable block as Thanos does (`thanos_compact_halted` = 1).
    /// Strata's default marks the block no-compact and goes on.
    #[arg(long = "debug.halt-on-error", num_args = 0..=1, default_missing_value = "true", default_value = "false", hide = true)]
    halt_on_error: bool,
    /// Highest compaction level over the ranges 1h, 2h, 8h, 2d, 14d (4: up to 14d).
    #[arg(long = "debug.max-compaction-level", default_value_t = 4, hide = true)]
    max_compaction_level: usize,
    /// Start of the time range of blocks to process: RFC3339 or relative (`-2w`).
    #[arg(long = "min-time", value_parser = time_or_duration_arg,
          default_value = "0000-01-01T00:00:00Z", allow_hyphen_values = true)]
    min_time: i64,
    /// End of the time range of blocks to process: RFC3339 or relative (`-1d`).
    #[arg(long = "max-time", value_parser = time_or_duration_arg,
          default_value = "9999-12-31T23:59:59Z", allow_hyphen_values = true)]
    max_time: i64,
    /// YAML file with relabel configs over each block's external labels (and
    /// `__block_id`) selecting the blocks this compactor owns.
    #[arg(
        long = "selector.relabel-config-file",
        conflicts_with = "relabel_config"
    )]
    relabel_config_file: Option<PathBuf>,
    /// Alternative to `--selector.relabel-config-file`: the YAML itself.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
    /// Interval of the block viewer's refresh of the whole bucket (`/api/v1/blocks`).
    #[arg(long = "block-viewer.global.sync-block-interval", value_parser = duration_arg, default_value = "1m")]
    block_viewer_interval: Duration,
    /// Timeout of that refresh.
    #[arg(long = "block-viewer.global.sync-block-timeout", value_parser = duration_arg, default_value = "5m")]
    block_viewer_timeout: Duration,
}

impl Config {
    fn bucket(&self) -> anyhow::Result<BucketConfig> {
        bucket_config(
            self.objstore_config_file.as_deref(),
            self.objstore_config.as_deref(),
            "objstore.config",
        )?
        .context(
            "no object storage configured: --objstore.config-file or --objstore.config is required",
        )
    }

    fn relabel(&self) -> anyhow::Result<Vec<RelabelConfig>> {
        relabel_configs(
            self.relabel_config_file.as_deref(),
            self.relabel_config.as_deref(),
            "selector.relabel-config",
        )
    }

    /// Everything the flags describe, checked before anything starts.
    fn options(&self) -> anyhow::Result<CompactorOptions> {
        if self.min_time > self.max_time {
            bail!(
                "invalid time range: --min-time ({} ms) is after --max-time ({} ms)",
                self.min_time,
                self.max_time
            );
        }
        if !matches!(
            self.block_discovery_strategy.as_str(),
            "concurrent" | "recursive"
        ) {
            bail!(
                "invalid --block-discovery-strategy {:?}: want concurrent or recursive",
                self.block_discovery_strategy
            );
        }
        let ranges = strata_compact::planner::ranges_for_max_level(self.max_compaction_level)
            .map_err(anyhow::Error::msg)?;
        if self.wait && self.wait_interval.is_zero() {
            bail!("--wait-interval must be positive with --wait");
        }
        let v = serde_yaml::Value::String(self.block_max_index_size.clone());
        let max_index = strata_config::parse_size(&v).map_err(|e| {
            anyhow::anyhow!(
                "invalid --compact.block-max-index-size {:?}: {e}",
                self.block_max_index_size
            )
        })?;
        let opts = CompactorOptions {
            data_dir: self.data_dir.clone(),
            sync: SyncOptions {
                consistency_delay: self.consistency_delay,
                delete_delay: self.delete_delay,
                replica_labels: self.replica_labels.clone(),
                relabel: self.relabel()?,
                min_time: self.min_time,
                max_time: self.max_time,
                fetch_concurrency: self.block_meta_fetch_concurrency.max(1),
            },
            ranges,
            retention: Retention {
                raw: self.retention_raw,
                five_m: self.retention_5m,
                one_h: self.retention_1h,
            },
            downsampling_disabled: self.downsampling_disable,
            compact_concurrency: self.compact_concurrency.max(1),
            downsample_concurrency: self.downsample_concurrency.max(1),
            merge_func: MergeFunc::parse(&self.dedup_func).map_err(anyhow::Error::msg)?,
            vertical: self.enable_vertical_compaction || !self.replica_labels.is_empty(),
            block_max_index_size: max_index,
            halt_on_error: self.halt_on_error,
            clock: Arc::new(SystemTime::now),
        };
        opts.retention
            .validate(!opts.downsampling_disabled)
            .map_err(anyhow::Error::msg)?;
        Ok(opts)
    }
}

/// What `/api/v1/blocks` serves: the last sync's view and the whole bucket.
#[derive(Debug, Default)]
struct BlocksView {
    loaded: Option<serde_json::Value>,
    global: Option<serde_json::Value>,
}

fn blocks_info(metas: Vec<serde_json::Value>, err: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "label": "",
        "blocks": metas,
        "refreshedAt": strata_block::meta::format_time(SystemTime::now()),
        "err": err,
    })
}

fn meta_values<'a>(
    metas: impl IntoIterator<Item = &'a strata_block::Meta>,
) -> Vec<serde_json::Value> {
    metas
        .into_iter()
        .filter_map(|m| m.to_json().ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

fn router(
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    blocks: Arc<Mutex<BlocksView>>,
) -> Router {
    probes_router(registry, ready).route(
        "/api/v1/blocks",
        get(move |RawQuery(q): RawQuery| {
            let blocks = blocks.clone();
            async move {
                let view = blocks.lock().map(|v| {
                    let loaded = q
                        .as_deref()
                        .unwrap_or("")
                        .split('&')
                        .any(|kv| kv == "view=loaded");
                    if loaded {
                        v.loaded.clone()
                    } else {
                        v.global.clone()
                    }
                });
                let data = view
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| blocks_info(Vec::new(), None));
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({"status": "success", "data": data}).to_string(),
                )
            }
        }),
    )
}

/// Refreshes the block viewer's whole-bucket view.
async fn refresh_global(bucket: &Bucket, blocks: &Mutex<BlocksView>, timeout: Duration) {
    let fetched = tokio::time::timeout(timeout, async {
        let list = strata_block::list_blocks(bucket).await?;
        let mut metas = Vec::new();
        for id in list.complete {
            if let Ok(m) = strata_block::download_meta(bucket, id).await {
                metas.push(m);
            }
        }
        Ok::<_, strata_block::Error>(metas)
    })
    .await;
    let info = match fetched {
        Ok(Ok(metas)) => blocks_info(meta_values(&metas), None),
        Ok(Err(e)) => blocks_info(Vec::new(), Some(e.to_string())),
        Err(_) => blocks_info(Vec::new(), Some("timed out listing the bucket".into())),
    };
    if let Ok(mut v) = blocks.lock() {
        v.global = Some(info);
    }
}

/// Runs one pass, or passes every `--wait-interval` until SIGTERM or SIGINT.
pub async fn run(c: Config) -> anyhow::Result<()> {
    let bucket_cfg = c.bucket()?;
    let opts = c.options()?;
    let mut registry = Registry::default();
    let bucket = Bucket::from_config(&bucket_cfg, &mut registry)
        .with_context(|| format!("opening bucket {}", bucket_cfg.name()))?;
    let metrics = Metrics::new(
        &mut registry,
        opts.sync.delete_delay.as_secs() as i64,
        opts.sync.consistency_delay.as_secs() as i64,
    );
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    if !opts.sync.replica_labels.is_empty() {
        info!(labels = %opts.sync.replica_labels.join(","), "deduplication.replica-label specified, enabling vertical compaction");
    }
    let compactor = Arc::new(
        Compactor::new(bucket.clone(), opts, metrics.clone(), shutdown.clone())
            .map_err(anyhow::Error::msg)?,
    );

    let ready = Arc::new(AtomicBool::new(false));
    let blocks = Arc::new(Mutex::new(BlocksView::default()));
    let listener = tokio::net::TcpListener::bind(&c.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", c.http_address))?;
    info!(address = %local(&listener), "listening for HTTP");
    let app = router(Arc::new(registry), ready.clone(), blocks.clone());
    let graceful = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { graceful.cancelled().await })
            .await
    });
    ready.store(true, Ordering::Relaxed);

    let result = if c.wait {
        run_waiting(&c, compactor, bucket, blocks, shutdown.clone()).await
    } else {
        let pass = tokio::select! {
            r = compactor.run_once() => r,
            () = shutdown.cancelled() => Err(Failure::Retry(strata_compact::Error::Cancelled)),
        };
        match pass {
            Ok(r) => {
                info!(
                    compacted = r.compacted.len(),
                    downsampled = r.downsampled.len(),
                    marked = r.marked_for_deletion.len(),
                    deleted = r.deleted.len(),
                    unusable = r.marked_unusable.len(),
                    "compaction pass done"
                );
                Ok(())
            }
            Err(Failure::Retry(strata_compact::Error::Cancelled)) => Ok(()),
            Err(f) => Err(anyhow::anyhow!("{f}")),
        }
    };
    shutdown.cancel();
    let _ = http.await;
    signals.abort();
    result
}

async fn run_waiting(
    c: &Config,
    compactor: Arc<Compactor>,
    bucket: Bucket,
    blocks: Arc<Mutex<BlocksView>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The block viewer's whole-bucket view.
    let viewer = {
        let (bucket, blocks, shutdown) = (bucket.clone(), blocks.clone(), shutdown.clone());
        let (every, timeout) = (
            c.block_viewer_interval.max(Duration::from_secs(1)),
            c.block_viewer_timeout,
        );
        tokio::spawn(async move {
            loop {
                refresh_global(&bucket, &blocks, timeout).await;
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        })
    };
    // Cleanup of marked blocks and partial uploads between passes.
    let cleaner = (!c.cleanup_interval.is_zero()).then(|| {
        let (compactor, shutdown, every) =
            (compactor.clone(), shutdown.clone(), c.cleanup_interval);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = shutdown.cancelled() => return,
                }
                let mut report = strata_compact::PassReport::default();
                if let Err(e) = compactor.cleanup(&mut report).await {
                    compactor.metrics().retries.inc();
                    error!(error = %e, "retriable error in cleanup");
                }
            }
        })
    });
    let mut halted = false;
    loop {
        if !halted {
            let pass = tokio::select! {
                r = compactor.run_once() => r,
                () = shutdown.cancelled() => break,
            };
            match pass {
                Ok(r) => {
                    compactor.metrics().iterations.inc();
                    info!(
                        compacted = r.compacted.len(),
                        downsampled = r.downsampled.len(),
                        marked = r.marked_for_deletion.len(),
                        deleted = r.deleted.len(),
                        unusable = r.marked_unusable.len(),
                        "compaction pass done"
                    );
                }
                Err(Failure::Retry(strata_compact::Error::Cancelled)) => break,
                Err(Failure::Halt(e)) => {
                    error!(error = %e, "critical error detected; halting");
                    compactor.metrics().halted.set(1);
                    halted = true;
                }
                Err(f) => {
                    compactor.metrics().retries.inc();
                    error!(error = %f, "retriable error");
                }
            }
            if let Ok(st) = compactor.sync().await {
                if let Ok(mut v) = blocks.lock() {
                    v.loaded = Some(blocks_info(meta_values(st.metas.values()), None));
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(c.wait_interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
    viewer.abort();
    if let Some(h) = cleaner {
        h.abort();
    }
    warn!("compactor stopped");
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
        assert!(c.bucket().is_err(), "no objstore config is an error");
        assert_eq!(c.http_address, "0.0.0.0:10902");
        assert!(!c.wait && !c.downsampling_disable && !c.halt_on_error);
        let o = c.options().unwrap();
        assert_eq!(o.sync.consistency_delay, Duration::from_secs(1800));
        assert_eq!(o.sync.delete_delay, Duration::from_secs(48 * 3600));
        assert_eq!(o.retention, Retention::default());
        assert_eq!(o.ranges.len(), 5);
        assert_eq!(o.block_max_index_size, 64 << 30);
        assert_eq!(o.merge_func, MergeFunc::Union);
        assert!(!o.vertical);
    }

    #[test]
    fn parses_every_group_of_flags_and_refuses_contradictions() {
        let c = Wrap::parse_from([
            "strata",
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n",
            "--wait",
            "--wait-interval=1m",
            "--retention.resolution-raw=30d",
            "--retention.resolution-5m=90d",
            "--retention.resolution-1h=180d",
            "--deduplication.replica-label=prometheus_replica",
            "--deduplication.func=penalty",
            "--debug.max-compaction-level=2",
            "--selector.relabel-config=- action: keep\n  source_labels: [cluster]\n  regex: a\n",
        ])
        .c;
        assert!(c.bucket().is_ok());
        let o = c.options().unwrap();
        assert!(o.vertical);
        assert_eq!(o.merge_func, MergeFunc::Penalty);
        assert_eq!(o.retention.five_m, Duration::from_secs(90 * 86_400));
        assert_eq!(o.ranges, vec![3_600_000, 7_200_000, 28_800_000]);
        assert_eq!(o.sync.relabel.len(), 1);

        let short = Wrap::parse_from(["strata", "--retention.resolution-raw=1d"]).c;
        let e = format!("{:#}", short.options().unwrap_err());
        assert!(e.contains("40h"), "{e}");
        let off = Wrap::parse_from([
            "strata",
            "--retention.resolution-raw=1d",
            "--downsampling.disable",
        ])
        .c;
        assert!(off.options().is_ok());
        let bad = Wrap::parse_from(["strata", "--deduplication.func=median"]).c;
        assert!(format!("{:#}", bad.options().unwrap_err()).contains("median"));
        let bad = Wrap::parse_from(["strata", "--debug.max-compaction-level=9"]).c;
        assert!(bad.options().is_err());
    }
}
