//! `mark`, `cleanup`, `retention` and `downsample`: the compactor's
//! maintenance steps, one at a time, through the compactor's own code.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use prometheus_client::registry::Registry;
use strata_block::markers::{
    reason, write_marker, DeletionMark, NoCompactMark, NoDownsampleMark, DELETION_MARK_FILENAME,
    NO_COMPACT_MARK_FILENAME, NO_DOWNSAMPLE_MARK_FILENAME,
};
use strata_block::meta::META_FILENAME;
use strata_compact::cleanup::{self, Retention};
use strata_compact::sync::{sync_metas, SyncOptions};
use strata_compact::{Compactor, CompactorOptions, Failure, Metrics, PassReport};
use strata_objstore::Bucket;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{parse_ids, SelectorRelabel};
use crate::commands::common::{duration_arg, wait_for_signal};

/// `mark` flags.
#[derive(Debug, Args)]
pub struct MarkConfig {
    /// ID (ULID) of the blocks to be marked (repeated flag).
    #[arg(long = "id", required = true)]
    ids: Vec<String>,
    /// Marker to be put.
    #[arg(long = "marker", required = true,
          value_parser = clap::builder::PossibleValuesParser::new(
              [DELETION_MARK_FILENAME, NO_COMPACT_MARK_FILENAME, NO_DOWNSAMPLE_MARK_FILENAME]))]
    marker: String,
    /// Human readable details to be put into marker (required unless `--remove`).
    #[arg(long = "details", default_value = "")]
    details: String,
    /// Remove the marker.
    #[arg(long = "remove", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    remove: bool,
}

/// Puts (or removes) a marker next to each block. Unknown blocks are an
/// error before anything is written.
pub async fn mark(bucket: Bucket, c: &MarkConfig) -> anyhow::Result<()> {
    let ids = parse_ids(&c.ids, "--id")?;
    if !c.remove && c.details.is_empty() {
        bail!("required flag --details not provided");
    }
    for id in &ids {
        let exists = bucket
            .exists(&format!("{id}/{META_FILENAME}"))
            .await
            .with_context(|| format!("checking block {id}"))?;
        if !exists {
            bail!(
                "block {id} not found in bucket {}: no {id}/{META_FILENAME}",
                bucket.name()
            );
        }
    }
    for &id in &ids {
        let key = format!("{id}/{}", c.marker);
        if c.remove {
            if bucket.exists(&key).await? {
                bucket
                    .delete(&key)
                    .await
                    .with_context(|| format!("remove mark {id} for {}", c.marker))?;
                info!(block = %id, marker = %c.marker, "removed marker");
            } else {
                warn!(block = %id, marker = %c.marker, "requested to remove marker, but file does not exist");
            }
            continue;
        }
        let written = match c.marker.as_str() {
            DELETION_MARK_FILENAME => {
                write_marker(&bucket, id, &DeletionMark::new(id, c.details.clone())).await
            }
            NO_COMPACT_MARK_FILENAME => {
                let m = NoCompactMark::new(id, reason::MANUAL, c.details.clone());
                write_marker(&bucket, id, &m).await
            }
            _ => {
                let m = NoDownsampleMark::new(id, reason::MANUAL, c.details.clone());
                write_marker(&bucket, id, &m).await
            }
        }
        .with_context(|| format!("mark {id} for {}", c.marker))?;
        if written {
            info!(block = %id, marker = %c.marker, "block has been marked");
        } else {
            warn!(block = %id, marker = %c.marker, "requested to mark, but the block is already marked");
        }
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    info!(marker = %c.marker, IDs = %ids.join(","), "marking done");
    Ok(())
}

/// Flags shared by `cleanup` and `retention`.
#[derive(Debug, Args)]
pub struct SyncFlags {
    /// Time before a block marked for deletion is deleted from bucket.
    #[arg(long = "delete-delay", value_parser = duration_arg, default_value = "48h")]
    delete_delay: Duration,
    /// Minimum age of fresh (non-compacted) blocks before they are being
    /// processed. Malformed blocks older than the maximum of consistency-delay
    /// and 48h will be removed.
    #[arg(long = "consistency-delay", value_parser = duration_arg, default_value = "30m")]
    consistency_delay: Duration,
    /// Number of block metadata files fetched at once.
    #[arg(long = "block-sync-concurrency", default_value_t = 20)]
    block_sync_concurrency: usize,
    #[command(flatten)]
    selector: SelectorRelabel,
}

impl SyncFlags {
    fn options(&self, consistency: bool) -> anyhow::Result<SyncOptions> {
        Ok(SyncOptions {
            consistency_delay: if consistency {
                self.consistency_delay
            } else {
                Duration::ZERO
            },
            delete_delay: self.delete_delay,
            replica_labels: Vec::new(),
            relabel: self.selector.configs()?,
            min_time: i64::MIN,
            max_time: i64::MAX,
            fetch_concurrency: self.block_sync_concurrency.max(1),
        })
    }

    fn metrics(&self) -> Metrics {
        Metrics::new(
            &mut Registry::default(),
            self.delete_delay.as_secs() as i64,
            self.consistency_delay.as_secs() as i64,
        )
    }
}

/// `cleanup` flags.
#[derive(Debug, Args)]
pub struct CleanupConfig {
    #[command(flatten)]
    sync: SyncFlags,
}

/// Deletes aborted partial uploads and blocks marked for deletion at least
/// `--delete-delay` ago (the compactor's cleaner).
pub async fn cleanup(bucket: Bucket, c: &CleanupConfig) -> anyhow::Result<()> {
    let opts = c.sync.options(false)?;
    let metrics = c.sync.metrics();
    let now = SystemTime::now();
    info!("syncing blocks metadata");
    let st = sync_metas(&bucket, &opts, now)
        .await
        .context("sync blocks")?;
    info!(
        blocks = st.metas.len(),
        partial = st.partial.len(),
        "synced blocks done"
    );
    info!("started cleaning of aborted partial uploads");
    // Blocks marked for deletion are the blocks cleaner's (as in Thanos).
    let partial: Vec<_> = st
        .partial
        .iter()
        .copied()
        .filter(|id| !st.deletion_marks.contains_key(id))
        .collect();
    let threshold = c
        .sync
        .consistency_delay
        .max(cleanup::PARTIAL_UPLOAD_THRESHOLD);
    let partial_deleted =
        cleanup::clean_partial_uploads(&bucket, &partial, threshold, &metrics, now).await;
    info!(
        deleted = partial_deleted.len(),
        "cleaning of aborted partial uploads done"
    );
    info!("started cleaning of blocks marked for deletion");
    let deleted =
        cleanup::delete_marked_blocks(&bucket, &st, c.sync.delete_delay, &metrics, now).await;
    info!(
        deleted = deleted.len(),
        "cleaning of blocks marked for deletion done"
    );
    let failures = metrics.block_cleanup_failures.get();
    if failures > 0 {
        bail!("{failures} blocks could not be deleted; see the log above");
    }
    info!("cleanup done");
    Ok(())
}

/// `retention` flags.
#[derive(Debug, Args)]
pub struct RetentionConfig {
    #[command(flatten)]
    sync: SyncFlags,
    /// How long to retain raw samples in bucket (0d: forever).
    #[arg(long = "retention.resolution-raw", value_parser = duration_arg, default_value = "0d")]
    retention_raw: Duration,
    /// How long to retain samples of resolution 1 (5 minutes) in bucket (0d: forever).
    #[arg(long = "retention.resolution-5m", value_parser = duration_arg, default_value = "0d")]
    retention_5m: Duration,
    /// How long to retain samples of resolution 2 (1 hour) in bucket (0d: forever).
    #[arg(long = "retention.resolution-1h", value_parser = duration_arg, default_value = "0d")]
    retention_1h: Duration,
}

/// Marks for deletion every block past its resolution's retention.
pub async fn retention(bucket: Bucket, c: &RetentionConfig) -> anyhow::Result<()> {
    let r = Retention {
        raw: c.retention_raw,
        five_m: c.retention_5m,
        one_h: c.retention_1h,
    };
    for (name, d) in [
        ("raw samples", r.raw),
        ("5 min aggregated samples", r.five_m),
        ("1 hour aggregated samples", r.one_h),
    ] {
        if !d.is_zero() {
            info!(duration = ?d, "retention policy of {name} is enabled");
        }
    }
    let opts = c.sync.options(true)?;
    let metrics = c.sync.metrics();
    let now = SystemTime::now();
    info!("syncing blocks metadata");
    let st = sync_metas(&bucket, &opts, now)
        .await
        .context("sync blocks")?;
    info!(blocks = st.metas.len(), "synced blocks done");
    warn!("GLOBAL COMPACTOR SHOULD __NOT__ BE RUNNING ON THE SAME BUCKET");
    let marked = cleanup::apply_retention(&bucket, st.metas.values(), &r, &metrics, now)
        .await
        .context("retention failed")?;
    info!(marked = marked.len(), "retention done");
    Ok(())
}

/// `downsample` flags.
#[derive(Debug, Args)]
pub struct DownsampleConfig {
    /// Wait interval between downsample runs (with `--wait`).
    #[arg(long = "wait-interval", value_parser = duration_arg, default_value = "5m")]
    wait_interval: Duration,
    /// Number of blocks downsampled at once.
    #[arg(long = "downsample.concurrency", default_value_t = 1)]
    downsample_concurrency: usize,
    /// Files of a block fetched or uploaded at once (accepted for
    /// compatibility; files go one after another).
    #[arg(long = "block-files-concurrency", default_value_t = 1)]
    block_files_concurrency: usize,
    /// Data directory in which to cache blocks and process downsamplings.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Hash function for the files of new blocks: "" or SHA256 (accepted for
    /// compatibility; no hashes are computed).
    #[arg(long = "hash-func", default_value = "",
          value_parser = clap::builder::PossibleValuesParser::new(["", "SHA256"]))]
    hash_func: String,
    /// Keep running, a pass every `--wait-interval`, until SIGTERM or SIGINT
    /// (Strata's addition: Thanos always does; Strata does one pass without it).
    #[arg(long = "wait", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    wait: bool,
}

/// Downsamples raw blocks of 40h or more to 5m and 5m blocks of 10 days or
/// more to 1h (two passes), as the compactor does.
pub async fn downsample(bucket: Bucket, c: &DownsampleConfig) -> anyhow::Result<()> {
    if c.wait && c.wait_interval.is_zero() {
        bail!("--wait-interval must be positive with --wait");
    }
    let mut opts = CompactorOptions {
        data_dir: c.data_dir.clone(),
        downsample_concurrency: c.downsample_concurrency.max(1),
        ..Default::default()
    };
    // Thanos' downsampler filters duplicates only: no consistency delay.
    opts.sync.consistency_delay = Duration::ZERO;
    let metrics = Metrics::new(
        &mut Registry::default(),
        opts.sync.delete_delay.as_secs() as i64,
        0,
    );
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let compactor = Compactor::new(bucket, opts, metrics, shutdown.clone())
        .with_context(|| format!("preparing --data-dir {}", c.data_dir.display()))?;
    let result = loop {
        let mut report = PassReport::default();
        let pass = async {
            info!("start first pass of downsampling");
            compactor.downsample_pass(&mut report).await?;
            info!("start second pass of downsampling");
            compactor.downsample_pass(&mut report).await
        }
        .await;
        match pass {
            Ok(()) => info!(
                downsampled = report.downsampled.len(),
                marked_unusable = report.marked_unusable.len(),
                "downsampling iterations done"
            ),
            Err(Failure::Retry(strata_compact::Error::Cancelled)) => break Ok(()),
            Err(f) if !c.wait => break Err(anyhow::anyhow!("downsampling failed: {f}")),
            Err(f) => warn!(error = %f, "downsampling failed; retrying after --wait-interval"),
        }
        if !c.wait {
            break Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(c.wait_interval) => {}
            () = shutdown.cancelled() => break Ok(()),
        }
    };
    signals.abort();
    result
}
