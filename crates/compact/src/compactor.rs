//! The compactor's passes over a bucket (thanos `cmd/thanos/compact.go`'s
//! `compactMainFn` and `pkg/compact.BucketCompactor`):
//!
//! 1. compact every group until no group has a plan;
//! 2. downsample in two passes (raw → 5m, then 5m → 1h), unless disabled;
//! 3. apply retention;
//! 4. delete blocks marked long enough ago and aborted partial uploads.
//!
//! A problem with one block never stops the others: a block that cannot be
//! read is given a `no-compact-mark.json` (or `no-downsample-mark.json`)
//! naming the reason, the error is logged and counted, and every other group
//! goes on. Thanos halts instead; [`CompactorOptions::halt_on_error`] does
//! that too.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use strata_block::markers::{
    write_marker, NoCompactMark, NoDownsampleMark, NO_COMPACT_MARK_FILENAME,
    NO_DOWNSAMPLE_MARK_FILENAME,
};
use strata_block::meta::source;
use strata_block::{download_block, upload_block, Meta};
use strata_objstore::Bucket;
use strata_tsdb::block::Block;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use ulid::Ulid;

use crate::cleanup::{self, InFlight, Retention};
use crate::downsample::{self, RES_1H, RES_5M, RES_RAW};
use crate::error::{Error, Result};
use crate::group::{self, Group};
use crate::merge::{compact_blocks, Input, MergeFunc};
use crate::metrics::{Metrics, Resolution, State};
use crate::planner;
use crate::sync::{sync_metas, unix_secs, SyncOptions, SyncState};

/// The time source: the wall clock, or a fixed one in tests of retention and
/// delays.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Everything `strata compact` is configured with.
#[derive(Clone)]
pub struct CompactorOptions {
    /// `--data-dir`: scratch space for downloads and new blocks.
    pub data_dir: PathBuf,
    /// Filters of the block view.
    pub sync: SyncOptions,
    /// Compaction ranges, ms (from `--debug.max-compaction-level`).
    pub ranges: Vec<i64>,
    /// `--retention.resolution-*`.
    pub retention: Retention,
    /// `--downsampling.disable`.
    pub downsampling_disabled: bool,
    /// `--compact.concurrency`.
    pub compact_concurrency: usize,
    /// `--downsample.concurrency`.
    pub downsample_concurrency: usize,
    /// `--deduplication.func`.
    pub merge_func: MergeFunc,
    /// `--compact.enable-vertical-compaction` (on when replica labels are set).
    pub vertical: bool,
    /// `--compact.block-max-index-size`, bytes.
    pub block_max_index_size: u64,
    /// `--debug.halt-on-error`: halt on a bad block instead of marking it.
    pub halt_on_error: bool,
    /// The time source.
    pub clock: Clock,
}

impl std::fmt::Debug for CompactorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactorOptions")
            .field("data_dir", &self.data_dir)
            .field("sync", &self.sync)
            .field("ranges", &self.ranges)
            .field("retention", &self.retention)
            .field("downsampling_disabled", &self.downsampling_disabled)
            .field("merge_func", &self.merge_func)
            .field("vertical", &self.vertical)
            .finish_non_exhaustive()
    }
}

impl Default for CompactorOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            sync: SyncOptions {
                consistency_delay: Duration::from_secs(30 * 60),
                delete_delay: Duration::from_secs(48 * 3600),
                replica_labels: Vec::new(),
                relabel: Vec::new(),
                min_time: i64::MIN,
                max_time: i64::MAX,
                fetch_concurrency: 32,
            },
            ranges: planner::DEFAULT_RANGES.to_vec(),
            retention: Retention::default(),
            downsampling_disabled: false,
            compact_concurrency: 1,
            downsample_concurrency: 1,
            merge_func: MergeFunc::Union,
            vertical: false,
            block_max_index_size: 64 << 30,
            halt_on_error: false,
            clock: Arc::new(SystemTime::now),
        }
    }
}

/// How a failed step is handled.
#[derive(Debug)]
pub enum Failure {
    /// A transient problem (bucket, local disk): the pass ends, the next retries.
    Retry(Error),
    /// A block that cannot be used; it is marked (or the compactor halts).
    BadBlock {
        /// The blocks at fault.
        ids: Vec<Ulid>,
        /// Why.
        error: Error,
    },
    /// A critical inconsistency: Thanos halts here (`thanos_compact_halted`).
    Halt(Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retry(e) => write!(f, "retriable error: {e}"),
            Failure::BadBlock { ids, error } => {
                let ids: Vec<String> = ids.iter().map(Ulid::to_string).collect();
                write!(f, "unusable block {}: {error}", ids.join(","))
            }
            Failure::Halt(e) => write!(f, "critical error: {e}"),
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// New blocks from compaction.
    pub compacted: Vec<Ulid>,
    /// New blocks from downsampling.
    pub downsampled: Vec<Ulid>,
    /// Blocks marked for deletion (sources, duplicates, retention).
    pub marked_for_deletion: Vec<Ulid>,
    /// Blocks given a no-compact or no-downsample mark for being unusable.
    pub marked_unusable: Vec<Ulid>,
    /// Blocks deleted from the bucket.
    pub deleted: Vec<Ulid>,
}

/// The compactor of one bucket.
pub struct Compactor {
    bucket: Bucket,
    opts: CompactorOptions,
    metrics: Metrics,
    inflight: InFlight,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn ulids_in(msg: &str) -> Vec<Ulid> {
    msg.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 26)
        .filter_map(|w| w.parse().ok())
        .collect()
}

impl Compactor {
    /// A compactor over `bucket`. Validates the options (retention against
    /// downsampling, the merge function against the replica labels).
    pub fn new(
        bucket: Bucket,
        opts: CompactorOptions,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Self> {
        opts.retention.validate(!opts.downsampling_disabled)?;
        if opts.merge_func == MergeFunc::Penalty && opts.sync.replica_labels.is_empty() {
            return Err(Error::Config(
                "penalty based deduplication needs at least one replica label specified".into(),
            ));
        }
        if opts.ranges.is_empty() {
            return Err(Error::Config("no compaction ranges".into()));
        }
        std::fs::create_dir_all(&opts.data_dir).map_err(|e| Error::io(&opts.data_dir, e))?;
        let inflight = InFlight::new(&opts.data_dir);
        Ok(Self {
            bucket,
            opts,
            metrics,
            inflight,
            cancel,
        })
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn now(&self) -> SystemTime {
        (self.opts.clock)()
    }

    fn vertical(&self) -> bool {
        self.opts.vertical || !self.opts.sync.replica_labels.is_empty()
    }

    /// Reads the bucket's blocks through the filters and updates the sync metrics.
    pub async fn sync(&self) -> Result<SyncState> {
        self.metrics.meta_syncs.inc();
        let st = match sync_metas(&self.bucket, &self.opts.sync, self.now()).await {
            Ok(st) => st,
            Err(e) => {
                self.metrics.meta_sync_failures.inc();
                return Err(e);
            }
        };
        self.metrics.meta_synced.clear();
        let set = |state: &str, n: usize| {
            self.metrics
                .meta_synced
                .get_or_create(&State {
                    state: state.into(),
                })
                .set(n as i64);
        };
        set("loaded", st.metas.len());
        set("partial", st.partial.len());
        set("corrupted-meta-json", st.corrupt.len());
        set("marked-for-no-compact", st.no_compact.len());
        set("marked-for-no-downsample", st.no_downsample.len());
        for (state, n) in &st.filtered {
            set(state, *n as usize);
        }
        Ok(st)
    }

    /// One whole pass: compaction, downsampling, retention, cleanup.
    pub async fn run_once(&self) -> std::result::Result<PassReport, Failure> {
        let mut report = PassReport::default();
        let recovered = self
            .inflight
            .recover(&self.bucket, &self.metrics)
            .await
            .map_err(Failure::Retry)?;
        report.deleted.extend(recovered);
        self.compact_all(&mut report).await?;
        if !self.opts.downsampling_disabled {
            info!("start first pass of downsampling");
            self.downsample_pass(&mut report).await?;
            info!("start second pass of downsampling");
            self.downsample_pass(&mut report).await?;
            info!("downsampling iterations done");
        }
        let st = self.sync().await.map_err(Failure::Retry)?;
        let marked = cleanup::apply_retention(
            &self.bucket,
            st.metas.values(),
            &self.opts.retention,
            &self.metrics,
            self.now(),
        )
        .await
        .map_err(Failure::Retry)?;
        report.marked_for_deletion.extend(marked);
        self.cleanup(&mut report).await?;
        Ok(report)
    }

    /// Deletes blocks marked at least `--delete-delay` ago and partial uploads
    /// older than max(consistency delay, 48h) (`--compact.cleanup-interval`).
    pub async fn cleanup(&self, report: &mut PassReport) -> std::result::Result<(), Failure> {
        let st = self.sync().await.map_err(Failure::Retry)?;
        let now = self.now();
        let deleted = cleanup::delete_marked_blocks(
            &self.bucket,
            &st,
            self.opts.sync.delete_delay,
            &self.metrics,
            now,
        )
        .await;
        report.deleted.extend(deleted);
        let threshold = self
            .opts
            .sync
            .consistency_delay
            .max(cleanup::PARTIAL_UPLOAD_THRESHOLD);
        let deleted = cleanup::clean_partial_uploads(
            &self.bucket,
            &st.partial,
            threshold,
            &self.metrics,
            now,
        )
        .await;
        report.deleted.extend(deleted);
        Ok(())
    }

    /// Handles a failure of one step: a bad block is marked (unless halting
    /// on errors); everything else is returned.
    async fn absorb(
        &self,
        f: Failure,
        marker: &'static str,
        report: &mut PassReport,
    ) -> std::result::Result<(), Failure> {
        match f {
            Failure::BadBlock { ids, error: e } if !self.opts.halt_on_error && !ids.is_empty() => {
                for id in ids {
                    error!(block = %id, error = %e, marker, "unusable block: marking it and going on with the others");
                    let details = e.to_string();
                    let written = if marker == NO_COMPACT_MARK_FILENAME {
                        let mut m = NoCompactMark::new(id, STRATA_UNUSABLE_REASON, details);
                        m.no_compact_time = unix_secs(self.now());
                        write_marker(&self.bucket, id, &m).await
                    } else {
                        let mut m = NoDownsampleMark::new(id, STRATA_UNUSABLE_REASON, details);
                        m.no_downsample_time = unix_secs(self.now());
                        write_marker(&self.bucket, id, &m).await
                    };
                    match written {
                        Ok(true) => {
                            self.metrics.marked(marker, STRATA_UNUSABLE_REASON);
                            report.marked_unusable.push(id);
                        }
                        Ok(false) => {}
                        Err(e) => return Err(Failure::Retry(e.into())),
                    }
                }
                Ok(())
            }
            Failure::BadBlock { error: e, .. } => Err(Failure::Halt(e)),
            other => Err(other),
        }
    }

    /// Compacts every group until none has a plan (Thanos'
    /// `BucketCompactor.Compact`).
    pub async fn compact_all(&self, report: &mut PassReport) -> std::result::Result<(), Failure> {
        loop {
            if self.cancel.is_cancelled() {
                return Err(Failure::Retry(Error::Cancelled));
            }
            let st = self.sync().await.map_err(Failure::Retry)?;
            let deleted = cleanup::delete_marked_blocks(
                &self.bucket,
                &st,
                self.opts.sync.delete_delay,
                &self.metrics,
                self.now(),
            )
            .await;
            report.deleted.extend(deleted.iter().copied());
            // Garbage collection: blocks whose data another block holds.
            for id in &st.duplicates {
                if st.deletion_marks.contains_key(id) || deleted.contains(id) {
                    continue;
                }
                info!(block = %id, "marking outdated block for deletion");
                cleanup::mark_for_deletion(
                    &self.bucket,
                    *id,
                    "outdated block",
                    &self.metrics,
                    self.now(),
                )
                .await
                .map_err(Failure::Retry)?;
                self.metrics.garbage_collected.inc();
                report.marked_for_deletion.push(*id);
            }
            let groups = group::groups(st.metas.values());
            self.update_todo(&groups, &st);
            self.clean_work_dir(&groups);
            let no_compact: HashSet<Ulid> = st.no_compact.keys().copied().collect();
            let results: Vec<std::result::Result<GroupOutcome, Failure>> =
                futures::stream::iter(groups.into_iter().filter(|g| g.metas.len() > 1))
                    .map(|g| {
                        let nc = &no_compact;
                        async move { self.compact_group(g, nc).await }
                    })
                    .buffer_unordered(self.opts.compact_concurrency.max(1))
                    .collect()
                    .await;
            let mut rerun = false;
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(GroupOutcome::Nothing) => {}
                    Ok(GroupOutcome::Compacted(ids)) => {
                        rerun = true;
                        report.compacted.extend(ids.new);
                        report.marked_for_deletion.extend(ids.marked);
                    }
                    Ok(GroupOutcome::Changed) => rerun = true,
                    Err(f) => match self.absorb(f, NO_COMPACT_MARK_FILENAME, report).await {
                        Ok(()) => rerun = true,
                        Err(f) => {
                            if first_err.is_none() {
                                first_err = Some(f);
                            }
                        }
                    },
                }
            }
            if let Some(f) = first_err {
                return Err(f);
            }
            if !rerun {
                info!("compaction iterations done");
                return Ok(());
            }
        }
    }

    fn work_dir(&self) -> PathBuf {
        self.opts.data_dir.join("compact")
    }

    /// Removes leftovers of earlier runs that belong to no current group.
    fn clean_work_dir(&self, groups: &[Group]) {
        let dir = self.work_dir();
        let keep: HashSet<String> = groups.iter().map(|g| g.key.clone()).collect();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    let _ = std::fs::remove_dir_all(ent.path());
                }
            }
        }
    }

    fn update_todo(&self, groups: &[Group], st: &SyncState) {
        self.metrics.todo_compactions.clear();
        self.metrics.todo_compaction_blocks.clear();
        self.metrics.todo_downsample_blocks.clear();
        let no_compact: HashSet<Ulid> = st.no_compact.keys().copied().collect();
        let sources5m: HashSet<Ulid> = sources_at(st, RES_5M);
        let sources1h: HashSet<Ulid> = sources_at(st, RES_1H);
        for g in groups {
            let label = crate::metrics::GroupLabel { group: g.name() };
            let (plans, blocks) = simulate_plans(&g.metas, &self.opts.ranges, &no_compact);
            self.metrics
                .todo_compactions
                .get_or_create(&label)
                .set(plans as i64);
            self.metrics
                .todo_compaction_blocks
                .get_or_create(&label)
                .set(blocks as i64);
            let todo = g
                .metas
                .iter()
                .filter(|m| !st.no_downsample.contains_key(&m.block.ulid))
                .filter(|m| needs_downsampling(m, &sources5m, &sources1h).is_some())
                .count();
            self.metrics
                .todo_downsample_blocks
                .get_or_create(&label)
                .set(todo as i64);
        }
    }

    async fn compact_group(
        &self,
        g: Group,
        no_compact: &HashSet<Ulid>,
    ) -> std::result::Result<GroupOutcome, Failure> {
        let res = Resolution::of(g.resolution);
        self.metrics.runs_started.get_or_create(&res).inc();
        let out = self.compact_group_inner(&g, no_compact).await;
        match &out {
            Ok(_) => {
                self.metrics.runs_completed.get_or_create(&res).inc();
            }
            Err(f) => {
                self.metrics.compaction_failures.get_or_create(&res).inc();
                warn!(group = %g.name(), error = %f, "group compaction failed");
            }
        }
        out
    }

    async fn compact_group_inner(
        &self,
        g: &Group,
        no_compact: &HashSet<Ulid>,
    ) -> std::result::Result<GroupOutcome, Failure> {
        let candidates: Vec<Meta> = g
            .metas
            .iter()
            .filter(|m| !no_compact.contains(&m.block.ulid))
            .cloned()
            .collect();
        let overlaps = group::overlaps(&candidates);
        let overlapping = !overlaps.is_empty();
        if overlapping && !self.vertical() {
            // Thanos halts here. Strata keeps the older block of each pair
            // compacting and sets the newer one aside; the querier still merges
            // both at read time, so nothing is lost.
            let pairs: Vec<String> = overlaps
                .iter()
                .map(|(a, b)| format!("{a} and {b}"))
                .collect();
            let err = Error::Config(format!(
                "group {}: overlapping blocks ({}) and vertical compaction is off: set --deduplication.replica-label if they are replicas, or --compact.enable-vertical-compaction",
                g.name(),
                pairs.join(", ")
            ));
            let ids: Vec<Ulid> = overlaps
                .iter()
                .map(|(_, b)| *b)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            return Err(Failure::BadBlock { ids, error: err });
        }
        let sizes = self.index_sizes(&candidates).await?;
        let size_of = |m: &Meta| -> std::result::Result<u64, Error> {
            planner::index_size_from_meta(m)
                .or_else(|| sizes.get(&m.block.ulid).copied())
                .ok_or_else(|| Error::block(m.block.ulid, "index size unknown"))
        };
        let outcome = if self.vertical() {
            planner::plan_for_vertical_compaction(
                &candidates,
                &self.opts.ranges,
                no_compact,
                self.opts.block_max_index_size,
                size_of,
            )
        } else {
            planner::plan_with_index_limit(
                &candidates,
                &self.opts.ranges,
                no_compact,
                self.opts.block_max_index_size,
                size_of,
            )
        }
        .map_err(Failure::Retry)?;
        for d in &outcome.mark_no_compact {
            let mut m = d.to_mark();
            m.no_compact_time = unix_secs(self.now());
            warn!(block = %d.id, reason = d.reason, details = %d.details, "marking block no-compact");
            if write_marker(&self.bucket, d.id, &m)
                .await
                .map_err(|e| Failure::Retry(e.into()))?
            {
                self.metrics.marked(NO_COMPACT_MARK_FILENAME, d.reason);
            }
        }
        let plan = outcome.compact;
        if plan.is_empty() {
            return Ok(if outcome.mark_no_compact.is_empty() {
                GroupOutcome::Nothing
            } else {
                GroupOutcome::Changed
            });
        }
        let ids: Vec<String> = plan.iter().map(|m| m.block.ulid.to_string()).collect();
        info!(group = %g.name(), plan = %ids.join(","), "compaction available and planned");
        let dir = self.work_dir().join(&g.key);
        std::fs::create_dir_all(&dir).map_err(|e| Failure::Retry(Error::io(&dir, e)))?;
        let started = std::time::Instant::now();
        let mut inputs = Vec::with_capacity(plan.len());
        for m in &plan {
            inputs.push(self.fetch_input(&dir, m).await?);
        }
        let cancel = self.cancel.clone();
        let func = self.opts.merge_func;
        let out_dir = dir.clone();
        let merge_began = std::time::Instant::now();
        let merged =
            tokio::task::spawn_blocking(move || compact_blocks(&out_dir, &inputs, func, &cancel))
                .await
                .map_err(|e| {
                    Failure::Retry(Error::Config(format!("compaction task failed: {e}")))
                })?;
        let merged = match merged {
            Ok(m) => m,
            Err(Error::Cancelled) => return Err(Failure::Retry(Error::Cancelled)),
            Err(e @ (Error::Block { .. } | Error::OverlappingChunks { .. } | Error::Chunk(_))) => {
                let msg = e.to_string();
                let mut bad = ulids_in(&msg);
                bad.retain(|id| plan.iter().any(|m| m.block.ulid == *id));
                bad.dedup();
                return Err(Failure::BadBlock { ids: bad, error: e });
            }
            Err(e) => return Err(Failure::Retry(e)),
        };
        let res = Resolution::of(g.resolution);
        let mut outcome = CompactedIds::default();
        match merged {
            None => {
                info!(group = %g.name(), "no compacted blocks, deleting source blocks");
                for m in &plan {
                    if m.block.stats.num_samples == 0 {
                        cleanup::mark_for_deletion(
                            &self.bucket,
                            m.block.ulid,
                            "source of compacted block",
                            &self.metrics,
                            self.now(),
                        )
                        .await
                        .map_err(Failure::Retry)?;
                        outcome.marked.push(m.block.ulid);
                    }
                }
            }
            Some((bm, stats)) => {
                self.metrics.compactions.get_or_create(&res).inc();
                if overlapping {
                    self.metrics.vertical_compactions.get_or_create(&res).inc();
                }
                self.metrics.samples_written.inc_by(stats.samples);
                self.metrics
                    .merge_seconds
                    .inc_by(merge_began.elapsed().as_secs_f64());
                self.metrics.chunks_copied.inc_by(stats.chunks_copied);
                self.metrics.chunks_reencoded.inc_by(stats.chunks_reencoded);
                let new_id = bm.ulid;
                let bdir = dir.join(new_id.to_string());
                let _ = std::fs::remove_file(bdir.join("tombstones"));
                let mut meta = Meta::from_block_meta(bm).map_err(|e| Failure::Retry(e.into()))?;
                meta.thanos.labels = g.labels.clone();
                meta.thanos.downsample.resolution = g.resolution;
                meta.thanos.source = source::COMPACTOR.into();
                meta.write_to_dir(&bdir)
                    .map_err(|e| Failure::Retry(e.into()))?;
                let secs = started.elapsed().as_secs_f64();
                info!(group = %g.name(), new = %new_id, series = stats.series, samples = stats.samples,
                    chunks_copied = stats.chunks_copied, chunks_reencoded = stats.chunks_reencoded,
                    duration_s = secs, overlapping, "compacted blocks");
                self.upload(&bdir, new_id, &g.labels).await?;
                outcome.new.push(new_id);
                for m in &plan {
                    cleanup::mark_for_deletion(
                        &self.bucket,
                        m.block.ulid,
                        "source of compacted block",
                        &self.metrics,
                        self.now(),
                    )
                    .await
                    .map_err(Failure::Retry)?;
                    self.metrics.garbage_collected.inc();
                    outcome.marked.push(m.block.ulid);
                }
            }
        }
        for m in &plan {
            let _ = std::fs::remove_dir_all(dir.join(m.block.ulid.to_string()));
        }
        for id in &outcome.new {
            let _ = std::fs::remove_dir_all(dir.join(id.to_string()));
        }
        Ok(GroupOutcome::Compacted(outcome))
    }

    /// Index sizes from the bucket of the blocks whose meta.json lists none.
    async fn index_sizes(
        &self,
        metas: &[Meta],
    ) -> std::result::Result<std::collections::HashMap<Ulid, u64>, Failure> {
        let mut out = std::collections::HashMap::new();
        for m in metas
            .iter()
            .filter(|m| planner::index_size_from_meta(m).is_none())
        {
            let id = m.block.ulid;
            let a = self
                .bucket
                .attributes(&format!("{id}/index"))
                .await
                .map_err(|e| Failure::Retry(e.into()))?;
            out.insert(id, a.size);
        }
        Ok(out)
    }

    /// Downloads a block into `dir` and opens it; a block that does not open
    /// is a bad block.
    async fn fetch_input(&self, dir: &Path, m: &Meta) -> std::result::Result<Input, Failure> {
        let id = m.block.ulid;
        let bdir = dir.join(id.to_string());
        if bdir.exists() {
            let _ = std::fs::remove_dir_all(&bdir);
        }
        download_block(&self.bucket, id, &bdir)
            .await
            .map_err(|e| Failure::Retry(Error::from(e)))?;
        let block = tokio::task::spawn_blocking({
            let bdir = bdir.clone();
            move || Block::open(&bdir)
        })
        .await
        .map_err(|e| Failure::Retry(Error::Config(format!("open task failed: {e}"))))?;
        match block {
            Ok(block) => Ok(Input {
                meta: m.clone(),
                block,
            }),
            Err(e) => Err(Failure::BadBlock {
                ids: vec![id],
                error: Error::block(id, format!("cannot open the block: {e}")),
            }),
        }
    }

    /// Uploads a finished block, recording it in flight until `meta.json` is up.
    async fn upload(
        &self,
        bdir: &Path,
        id: Ulid,
        labels: &BTreeMap<String, String>,
    ) -> std::result::Result<(), Failure> {
        self.inflight.begin(id).map_err(Failure::Retry)?;
        let began = std::time::Instant::now();
        upload_block(&self.bucket, bdir, labels, source::COMPACTOR)
            .await
            .map_err(|e| Failure::Retry(Error::from(e)))?;
        self.inflight.end(id).map_err(Failure::Retry)?;
        info!(block = %id, duration_s = began.elapsed().as_secs_f64(), "uploaded block");
        Ok(())
    }

    /// One downsampling pass over the current view (Thanos' `downsampleBucket`).
    pub async fn downsample_pass(
        &self,
        report: &mut PassReport,
    ) -> std::result::Result<(), Failure> {
        let st = self.sync().await.map_err(Failure::Retry)?;
        let sources5m = sources_at(&st, RES_5M);
        let sources1h = sources_at(&st, RES_1H);
        let todo: Vec<(Meta, i64)> = st
            .metas
            .values()
            .filter(|m| !st.no_downsample.contains_key(&m.block.ulid))
            .filter_map(|m| needs_downsampling(m, &sources5m, &sources1h).map(|r| (m.clone(), r)))
            .collect();
        for (m, _) in &todo {
            let r = Resolution::of(m.thanos.downsample.resolution);
            let _ = self.metrics.downsamples.get_or_create(&r);
            let _ = self.metrics.downsample_failures.get_or_create(&r);
        }
        let results: Vec<(Ulid, std::result::Result<Ulid, Failure>)> = futures::stream::iter(todo)
            .map(|(m, res)| async move { (m.block.ulid, self.downsample_one(&m, res).await) })
            .buffer_unordered(self.opts.downsample_concurrency.max(1))
            .collect()
            .await;
        let mut first_err = None;
        for (_, r) in results {
            match r {
                Ok(id) => report.downsampled.push(id),
                Err(f) => {
                    if let Err(f) = self.absorb(f, NO_DOWNSAMPLE_MARK_FILENAME, report).await {
                        first_err.get_or_insert(f);
                    }
                }
            }
        }
        match first_err {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    async fn downsample_one(
        &self,
        m: &Meta,
        resolution: i64,
    ) -> std::result::Result<Ulid, Failure> {
        let res_label = Resolution::of(m.thanos.downsample.resolution);
        let began = std::time::Instant::now();
        let out = self.downsample_inner(m, resolution).await;
        self.metrics.downsamples.get_or_create(&res_label).inc();
        match &out {
            Ok(_) => self
                .metrics
                .downsample_duration
                .get_or_create(&res_label)
                .observe(began.elapsed().as_secs_f64()),
            Err(_) => {
                self.metrics
                    .downsample_failures
                    .get_or_create(&res_label)
                    .inc();
            }
        }
        out
    }

    async fn downsample_inner(
        &self,
        m: &Meta,
        resolution: i64,
    ) -> std::result::Result<Ulid, Failure> {
        let dir = self.opts.data_dir.join("downsample");
        std::fs::create_dir_all(&dir).map_err(|e| Failure::Retry(Error::io(&dir, e)))?;
        let input = self.fetch_input(&dir, m).await?;
        let id = m.block.ulid;
        let meta = m.clone();
        let out_dir = dir.clone();
        let began = std::time::Instant::now();
        let block = input.block.clone();
        let new_meta = tokio::task::spawn_blocking(move || {
            downsample::downsample_block(&block, &meta, &out_dir, resolution)
        })
        .await
        .map_err(|e| Failure::Retry(Error::Config(format!("downsampling task failed: {e}"))))?;
        let new_meta = match new_meta {
            Ok(nm) => nm,
            Err(
                e @ (Error::Block { .. }
                | Error::OverlappingChunks { .. }
                | Error::Chunk(_)
                | Error::InvalidAggrRange { .. }),
            ) => {
                let _ = std::fs::remove_dir_all(dir.join(id.to_string()));
                return Err(Failure::BadBlock {
                    ids: vec![id],
                    error: Error::block(id, format!("downsampling to {resolution} ms: {e}")),
                });
            }
            Err(e) => return Err(Failure::Retry(e)),
        };
        let new_id = new_meta.block.ulid;
        info!(from = %id, to = %new_id, duration_s = began.elapsed().as_secs_f64(), "downsampled block");
        let bdir = dir.join(new_id.to_string());
        let _ = std::fs::remove_file(bdir.join("tombstones"));
        self.upload(&bdir, new_id, &m.thanos.labels).await?;
        let _ = std::fs::remove_dir_all(dir.join(id.to_string()));
        let _ = std::fs::remove_dir_all(&bdir);
        Ok(new_id)
    }
}

/// Strata's reason in the marks it writes for unusable blocks.
pub const STRATA_UNUSABLE_REASON: &str = "block-unusable";

#[derive(Debug, Default)]
struct CompactedIds {
    new: Vec<Ulid>,
    marked: Vec<Ulid>,
}

#[derive(Debug)]
enum GroupOutcome {
    Nothing,
    Changed,
    Compacted(CompactedIds),
}

/// How many compactions (and of how many blocks) the group needs, planning
/// again after each as if it had run (Thanos' `CompactionProgressCalculator`).
fn simulate_plans(metas: &[Meta], ranges: &[i64], no_compact: &HashSet<Ulid>) -> (usize, usize) {
    let mut ms: Vec<Meta> = metas.to_vec();
    let (mut plans, mut blocks) = (0, 0);
    // A group shrinks by at least one block per plan.
    for _ in 0..metas.len() {
        let p = planner::plan(&ms, ranges, no_compact);
        if p.is_empty() {
            break;
        }
        plans += 1;
        blocks += p.len();
        let mut merged = p[0].clone();
        merged.block.ulid = Ulid::new();
        merged.block.min_time = p.iter().map(|m| m.block.min_time).min().unwrap_or(0);
        merged.block.max_time = p.iter().map(|m| m.block.max_time).max().unwrap_or(0);
        merged.block.stats = Default::default();
        merged.block.compaction.level = p
            .iter()
            .map(|m| m.block.compaction.level)
            .max()
            .unwrap_or(1)
            + 1;
        merged.block.compaction.sources = p
            .iter()
            .flat_map(|m| m.block.compaction.sources.iter().copied())
            .collect();
        ms.retain(|m| !p.iter().any(|x| x.block.ulid == m.block.ulid));
        ms.push(merged);
    }
    (plans, blocks)
}

fn sources_at(st: &SyncState, res: i64) -> HashSet<Ulid> {
    st.metas
        .values()
        .filter(|m| m.thanos.downsample.resolution == res)
        .flat_map(|m| m.block.compaction.sources.iter().copied())
        .collect()
}

/// The resolution `m` is to be downsampled to now, if any: raw blocks of 40h
/// or more whose sources are not all in 5m blocks yet, 5m blocks of 10 days
/// or more whose sources are not all in 1h blocks.
pub fn needs_downsampling(
    m: &Meta,
    sources5m: &HashSet<Ulid>,
    sources1h: &HashSet<Ulid>,
) -> Option<i64> {
    let span = m.block.max_time - m.block.min_time;
    let srcs = &m.block.compaction.sources;
    match m.thanos.downsample.resolution {
        RES_RAW => {
            let missing = srcs.iter().any(|s| !sources5m.contains(s));
            (missing && span >= downsample::RES_5M_DOWNSAMPLE_RANGE).then_some(RES_5M)
        }
        RES_5M => {
            let missing = srcs.iter().any(|s| !sources1h.contains(s));
            (missing && span >= downsample::RES_1H_DOWNSAMPLE_RANGE).then_some(RES_1H)
        }
        _ => None,
    }
}
