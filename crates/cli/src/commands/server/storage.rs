//! The server's storage: the blocks of the data directory plus the head (rebuilt
//! from the WAL), queried together, and the maintenance that turns finished head
//! ranges into blocks, reloads blocks and applies retention.

use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_storage::{Fanout, Queryable};
use strata_tsdb::head::{Head, HeadOptions};
use strata_tsdb::Db;
use tracing::{error, info};

/// Blocks + head.
#[derive(Clone, Debug)]
pub struct Storage {
    /// The directory.
    pub dir: PathBuf,
    /// The persisted blocks.
    pub db: Arc<Db>,
    /// The in-memory head with its WAL.
    pub head: Head,
    /// Blocks and head merged.
    pub queryable: Arc<dyn Queryable>,
    /// Leveled compaction ranges (one range: no compaction of blocks).
    pub ranges: Vec<i64>,
    /// `--storage.tsdb.retention.size` (0: off).
    pub retention_bytes: u64,
    /// Counters of compactions, truncations and reloads.
    pub ops: TsdbOps,
}

/// Counters of the TSDB's operations under Prometheus' names, which its
/// dashboards and alerts (`PrometheusTSDBCompactionsFailing`,
/// `PrometheusTSDBReloadsFailing`) read.
#[derive(Clone, Debug, Default)]
pub struct TsdbOps {
    compactions: Counter,
    compactions_failed: Counter,
    truncations: Counter,
    truncations_failed: Counter,
    reloads: Counter,
    reloads_failed: Counter,
}

impl TsdbOps {
    /// Registers the counters.
    pub fn new(reg: &mut Registry) -> Self {
        let m = Self::default();
        for (name, help, c) in [
            (
                "prometheus_tsdb_compactions",
                "Total number of compactions that were executed for the partition.",
                &m.compactions,
            ),
            (
                "prometheus_tsdb_compactions_failed",
                "Total number of compactions that failed for the partition.",
                &m.compactions_failed,
            ),
            (
                "prometheus_tsdb_head_truncations",
                "Total number of head truncations attempted.",
                &m.truncations,
            ),
            (
                "prometheus_tsdb_head_truncations_failed",
                "Total number of head truncations that failed.",
                &m.truncations_failed,
            ),
            (
                "prometheus_tsdb_reloads",
                "Number of times the database reloaded block data from disk.",
                &m.reloads,
            ),
            (
                "prometheus_tsdb_reloads_failures",
                "Number of times the database failed to reloadBlocks block data from disk.",
                &m.reloads_failed,
            ),
        ] {
            reg.register(name, help, c.clone());
        }
        m
    }

    /// Counts one compaction and whether it failed.
    fn compaction(&self, ok: bool) {
        self.compactions.inc();
        if !ok {
            self.compactions_failed.inc();
        }
    }
}

impl Storage {
    /// Opens the blocks and replays the WAL.
    pub fn open(
        dir: PathBuf,
        db: Arc<Db>,
        opts: HeadOptions,
        max_block_ms: i64,
    ) -> anyhow::Result<Self> {
        let ranges = strata_tsdb::compact::block_ranges(opts.chunk_range_ms, max_block_ms);
        let head = Head::open(&dir, opts)?;
        info!(series = head.num_series(), "head opened from the WAL");
        let queryable: Arc<dyn Queryable> = Arc::new(Fanout::new(vec![
            db.clone() as Arc<dyn Queryable>,
            Arc::new(head.clone()),
        ]));
        Ok(Self {
            dir,
            db,
            head,
            queryable,
            ranges,
            retention_bytes: 0,
            ops: TsdbOps::default(),
        })
    }

    /// Reloads the blocks from disk, counting the reload.
    pub fn reload(&self) -> strata_tsdb::Result<()> {
        self.ops.reloads.inc();
        let r = self.db.reload();
        if r.is_err() {
            self.ops.reloads_failed.inc();
        }
        r
    }

    /// Leveled compaction of blocks (when max > min block duration): merges what
    /// the planner picks into one block, makes it visible, then deletes its inputs.
    pub fn compact_blocks(&self) {
        if self.ranges.len() < 2 {
            return;
        }
        loop {
            let blocks: Vec<_> = self.db.blocks().iter().cloned().collect();
            let picked = strata_tsdb::compact::plan(&blocks, &self.ranges);
            if picked.is_empty() {
                return;
            }
            let started = std::time::Instant::now();
            let res = futures::executor::block_on(strata_tsdb::compact::compact_blocks(
                &self.dir, &picked,
            ));
            self.ops.compaction(res.is_ok());
            if let Err(e) = res {
                error!(error = %e, "compacting blocks");
                return;
            }
            for b in &picked {
                let mut tmp = b.dir().as_os_str().to_os_string();
                tmp.push(".tmp-for-deletion");
                if let Err(e) = std::fs::rename(b.dir(), &tmp) {
                    error!(error = %e, block = %b.ulid(), "marking compacted block for deletion");
                    return;
                }
            }
            if let Err(e) = self.reload() {
                error!(error = %e, "reloading blocks after compaction");
                return;
            }
            for b in &picked {
                let mut tmp = b.dir().as_os_str().to_os_string();
                tmp.push(".tmp-for-deletion");
                let _ = std::fs::remove_dir_all(&tmp);
            }
            info!(blocks = picked.len(), elapsed = ?started.elapsed(), "compacted blocks");
        }
    }

    /// Persists every complete head range as a block (making it visible before
    /// dropping it from the head). Errors are logged.
    pub fn compact_head(&self) {
        while let Some((mint, maxt)) = self.head.compactable_range() {
            let started = std::time::Instant::now();
            let written = self.head.write_block(&self.dir, mint, maxt);
            self.ops.compaction(written.is_ok());
            if let Err(e) = written {
                error!(error = %e, mint, maxt, "writing head block");
                return;
            }
            if let Err(e) = self.reload() {
                error!(error = %e, "reloading blocks after head compaction");
                return;
            }
            self.ops.truncations.inc();
            if let Err(e) = self.head.truncate(maxt) {
                self.ops.truncations_failed.inc();
                error!(error = %e, "truncating the head");
                return;
            }
            info!(mint, maxt, elapsed = ?started.elapsed(), "head compacted into a block");
        }
    }

    /// Size retention (Prometheus' `BeyondSizeRetention`): the WAL plus blocks from
    /// the newest down; once the total passes the limit, that block and every older
    /// one are deleted.
    pub fn apply_size_retention(&self) {
        if self.retention_bytes == 0 {
            return;
        }
        let mut total = dir_size(&self.dir.join("wal"));
        let mut blocks: Vec<_> = self.db.blocks().iter().cloned().collect();
        blocks.sort_by_key(|b| std::cmp::Reverse(b.meta().max_time));
        let Some(cut) = blocks.iter().position(|b| {
            total += b.size();
            total > self.retention_bytes
        }) else {
            return;
        };
        let doomed: Vec<_> = blocks[cut..]
            .iter()
            .map(|b| b.dir().to_path_buf())
            .collect();
        let mut moved = Vec::new();
        for d in doomed {
            let mut tmp = d.as_os_str().to_os_string();
            tmp.push(".tmp-for-deletion");
            match std::fs::rename(&d, &tmp) {
                Ok(()) => {
                    info!(block = %d.display(), "deleting block beyond size retention");
                    moved.push(tmp);
                }
                Err(e) => error!(error = %e, block = %d.display(), "marking block for deletion"),
            }
        }
        if let Err(e) = self.reload() {
            error!(error = %e, "reloading blocks after size retention");
        }
        for t in moved {
            let _ = std::fs::remove_dir_all(&t);
        }
    }

    /// Flushes the WAL to disk (on shutdown).
    pub fn close(&self) {
        if let Err(e) = self.head.sync_wal() {
            error!(error = %e, "syncing the WAL on shutdown");
        }
    }
}

/// Head metrics under Prometheus' names.
#[derive(Clone, Debug)]
pub struct HeadMetrics {
    series: Gauge,
    min_time: Gauge,
    max_time: Gauge,
    appended: Counter,
    head: Head,
}

impl HeadMetrics {
    /// Registers the head gauges.
    pub fn new(reg: &mut Registry, head: Head) -> Self {
        let m = Self {
            series: Gauge::default(),
            min_time: Gauge::default(),
            max_time: Gauge::default(),
            appended: Counter::default(),
            head,
        };
        reg.register(
            "prometheus_tsdb_head_series",
            "Total number of series in the head block.",
            m.series.clone(),
        );
        reg.register(
            "prometheus_tsdb_head_min_time",
            "Minimum time bound of the head block.",
            m.min_time.clone(),
        );
        reg.register(
            "prometheus_tsdb_head_max_time",
            "Maximum timestamp of the head block.",
            m.max_time.clone(),
        );
        reg.register(
            "prometheus_tsdb_head_samples_appended",
            "Total number of appended samples.",
            m.appended.clone(),
        );
        m
    }

    /// Refreshes the gauges.
    pub fn update(&self) {
        self.series
            .set(i64::try_from(self.head.num_series()).unwrap_or(i64::MAX));
        self.min_time.set(self.head.min_time());
        self.max_time.set(self.head.max_time());
        let total = self.head.samples_appended();
        let seen = self.appended.get();
        if total > seen {
            self.appended.inc_by(total - seen);
        }
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
