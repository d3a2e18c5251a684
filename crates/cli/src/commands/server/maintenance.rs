//! Server maintenance: TSDB metrics, build info, time retention, and the loop that
//! persists head blocks, compacts, reloads and applies retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_api::BuildInfo;
use strata_tsdb::Db;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::storage::{HeadMetrics, Storage};

/// How often new blocks are picked up and retention is applied.
pub(super) const RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// The TSDB gauges Prometheus exposes that Strata can compute.
#[derive(Clone, Debug)]
pub(super) struct TsdbMetrics {
    pub(super) blocks_loaded: Gauge,
    pub(super) lowest_timestamp_seconds: Gauge,
    pub(super) lowest_timestamp: Gauge,
    pub(super) retention_limit_seconds: Gauge,
    pub(super) blocks_bytes: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub(super) branch: String,
    pub(super) goversion: String,
    pub(super) revision: String,
    pub(super) version: String,
}

impl TsdbMetrics {
    pub(super) fn new(reg: &mut Registry) -> Self {
        let m = Self {
            blocks_loaded: Gauge::default(),
            lowest_timestamp_seconds: Gauge::default(),
            lowest_timestamp: Gauge::default(),
            retention_limit_seconds: Gauge::default(),
            blocks_bytes: Gauge::default(),
        };
        reg.register(
            "prometheus_tsdb_blocks_loaded",
            "Number of currently loaded data blocks",
            m.blocks_loaded.clone(),
        );
        reg.register(
            "prometheus_tsdb_lowest_timestamp_seconds",
            "Lowest timestamp value stored in the database.",
            m.lowest_timestamp_seconds.clone(),
        );
        reg.register(
            "prometheus_tsdb_lowest_timestamp",
            "Lowest timestamp value stored in the database. The unit is decided by the library consumer.",
            m.lowest_timestamp.clone(),
        );
        reg.register(
            "prometheus_tsdb_retention_limit_seconds",
            "Max age in seconds blocks should be kept before being deleted.",
            m.retention_limit_seconds.clone(),
        );
        reg.register(
            "prometheus_tsdb_storage_blocks_bytes",
            "The number of bytes that are currently used for local storage by all blocks.",
            m.blocks_bytes.clone(),
        );
        m
    }

    fn update(&self, db: &Db, head_min: i64) {
        let blocks = db.blocks();
        self.blocks_loaded
            .set(i64::try_from(blocks.len()).unwrap_or(i64::MAX));
        let bytes: u64 = blocks.iter().map(|b| b.size()).sum();
        self.blocks_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        // As Prometheus: the oldest block's min time, or the empty head's (MaxInt64).
        let lowest = blocks
            .iter()
            .map(|b| b.meta().min_time)
            .min()
            .unwrap_or(i64::MAX)
            .min(head_min);
        self.lowest_timestamp.set(lowest);
        self.lowest_timestamp_seconds.set(lowest / 1000);
    }
}

pub(super) fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: option_env!("STRATA_REVISION")
            .unwrap_or("unknown")
            .to_owned(),
        branch: option_env!("STRATA_BRANCH").unwrap_or("unknown").to_owned(),
        build_user: option_env!("STRATA_BUILD_USER")
            .unwrap_or("unknown")
            .to_owned(),
        build_date: option_env!("STRATA_BUILD_DATE")
            .unwrap_or("unknown")
            .to_owned(),
        go_version: "rust".to_owned(),
    }
}

/// Deletes blocks beyond time retention, as Prometheus' `BeyondTimeRetention`
/// does: relative to the newest block's max time (not the wall clock, so data
/// backfilled long ago stays), a block goes once the newest block's max time is at
/// least `retention_ms` past its own max time; every older block goes with it.
/// Returns how many blocks were deleted.
fn apply_retention(storage: &Storage, retention_ms: i64) -> anyhow::Result<usize> {
    let db = &storage.db;
    let mut blocks: Vec<_> = db.blocks().iter().cloned().collect();
    if blocks.len() < 2 || retention_ms <= 0 {
        return Ok(0);
    }
    blocks.sort_by_key(|b| std::cmp::Reverse(b.meta().max_time));
    let newest = blocks[0].meta().max_time;
    let Some(cut) = blocks
        .iter()
        .skip(1)
        .position(|b| newest - b.meta().max_time >= retention_ms)
    else {
        return Ok(0);
    };
    let doomed: Vec<PathBuf> = blocks[cut + 1..]
        .iter()
        .map(|b| b.dir().to_path_buf())
        .collect();
    let mut moved = Vec::new();
    for dir in &doomed {
        let tmp = deletion_path(dir);
        std::fs::rename(dir, &tmp)
            .with_context(|| format!("marking {} for deletion", dir.display()))?;
        info!(block = %dir.display(), "deleting block beyond retention");
        moved.push(tmp);
    }
    storage
        .reload()
        .context("reloading blocks after retention")?;
    for tmp in moved {
        if let Err(e) = std::fs::remove_dir_all(&tmp) {
            warn!(dir = %tmp.display(), error = %e, "removing deleted block");
        }
    }
    Ok(doomed.len())
}

pub(super) fn deletion_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp-for-deletion");
    dir.with_file_name(name)
}

/// Persists finished head ranges, reloads blocks and applies retention; errors
/// are logged, not fatal.
pub(super) fn maintain(
    storage: &Storage,
    retention_ms: i64,
    metrics: &TsdbMetrics,
    head_metrics: &HeadMetrics,
    compact: bool,
) {
    if compact {
        storage.compact_head();
        storage.compact_blocks();
    }
    storage.apply_size_retention();
    let db = &storage.db;
    if let Err(e) = storage.reload() {
        error!(error = %e, "reloading blocks");
    }
    if let Err(e) = apply_retention(storage, retention_ms) {
        error!(error = %format!("{e:#}"), "applying retention");
    }
    metrics.update(db, storage.head.min_time());
    head_metrics.update();
}

pub(super) async fn maintenance_loop(
    storage: Storage,
    retention_ms: i64,
    metrics: TsdbMetrics,
    head_metrics: HeadMetrics,
    stop: CancellationToken,
) {
    // The first tick fires at once: compaction starts right after the server is
    // ready, then runs every RELOAD_INTERVAL.
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let st = storage.clone();
        let m = metrics.clone();
        let hm = head_metrics.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || maintain(&st, retention_ms, &m, &hm, true)).await
        {
            error!(error = %e, "block maintenance task failed");
        }
    }
}
