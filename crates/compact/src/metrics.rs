//! The compactor's metrics, under Thanos' names (its dashboards and the
//! mixin's alerts read `thanos_compact_halted`,
//! `thanos_compact_group_compactions_failures_total`,
//! `thanos_compact_iterations_total`, `thanos_compact_blocks_marked_total`, …),
//! plus `strata_compact_*` figures of the work done.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `resolution` label (Thanos' `ResolutionString`: ms as a decimal).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Resolution {
    /// The resolution in ms.
    pub resolution: String,
}

impl Resolution {
    /// The label for `res` ms.
    pub fn of(res: i64) -> Self {
        Self {
            resolution: res.to_string(),
        }
    }
}

/// `marker` and `reason` labels of `thanos_compact_blocks_marked_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Marked {
    /// The marker file name.
    pub marker: String,
    /// The reason (empty for deletion marks).
    pub reason: String,
}

/// `group` label of the progress gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// `<resolution>@<labels>`.
    pub group: String,
}

/// `state` label of `thanos_blocks_meta_synced`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    /// Thanos' state name (`loaded`, `partial`, `too-fresh`, …).
    pub state: String,
}

/// Metric handles; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `thanos_compact_halted`.
    pub halted: Gauge,
    /// `thanos_compact_retries_total`.
    pub retries: Counter,
    /// `thanos_compact_iterations_total`.
    pub iterations: Counter,
    /// `thanos_compact_blocks_cleaned_total`.
    pub blocks_cleaned: Counter,
    /// `thanos_compact_block_cleanup_failures_total`.
    pub block_cleanup_failures: Counter,
    /// `thanos_compact_blocks_marked_total`.
    pub blocks_marked: Family<Marked, Counter>,
    /// `thanos_compact_aborted_partial_uploads_deletion_attempts_total`.
    pub partial_deletion_attempts: Counter,
    /// `thanos_compact_garbage_collected_blocks_total`.
    pub garbage_collected: Counter,
    /// `thanos_compact_group_compactions_total`.
    pub compactions: Family<Resolution, Counter>,
    /// `thanos_compact_group_compaction_runs_started_total`.
    pub runs_started: Family<Resolution, Counter>,
    /// `thanos_compact_group_compaction_runs_completed_total`.
    pub runs_completed: Family<Resolution, Counter>,
    /// `thanos_compact_group_compactions_failures_total`.
    pub compaction_failures: Family<Resolution, Counter>,
    /// `thanos_compact_group_vertical_compactions_total`.
    pub vertical_compactions: Family<Resolution, Counter>,
    /// `thanos_compact_downsample_total`.
    pub downsamples: Family<Resolution, Counter>,
    /// `thanos_compact_downsample_failures_total`.
    pub downsample_failures: Family<Resolution, Counter>,
    /// `thanos_compact_downsample_duration_seconds`.
    pub downsample_duration: Family<Resolution, Histogram>,
    /// `thanos_compact_todo_compactions`.
    pub todo_compactions: Family<GroupLabel, Gauge>,
    /// `thanos_compact_todo_compaction_blocks`.
    pub todo_compaction_blocks: Family<GroupLabel, Gauge>,
    /// `thanos_compact_todo_downsample_blocks`.
    pub todo_downsample_blocks: Family<GroupLabel, Gauge>,
    /// `thanos_compact_todo_deletion_blocks`.
    pub todo_deletion_blocks: Family<GroupLabel, Gauge>,
    /// `thanos_blocks_meta_synced`.
    pub meta_synced: Family<State, Gauge>,
    /// `thanos_blocks_meta_syncs_total`.
    pub meta_syncs: Counter,
    /// `thanos_blocks_meta_sync_failures_total`.
    pub meta_sync_failures: Counter,
    /// `strata_compact_samples_written_total`.
    pub samples_written: Counter,
    /// `strata_compact_chunks_copied_total`: chunks moved without decoding.
    pub chunks_copied: Counter,
    /// `strata_compact_chunks_reencoded_total`: chunks re-cut from merged samples.
    pub chunks_reencoded: Counter,
    /// `strata_compact_merge_seconds_total`: time spent merging blocks (not
    /// downloading or uploading them).
    pub merge_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
}

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

impl Metrics {
    /// Registers every metric in `registry`. `delete_delay_secs` and
    /// `consistency_delay_secs` become the constant gauges Thanos exports.
    pub fn new(
        registry: &mut Registry,
        delete_delay_secs: i64,
        consistency_delay_secs: i64,
    ) -> Self {
        let m = Self {
            halted: Gauge::default(),
            retries: Counter::default(),
            iterations: Counter::default(),
            blocks_cleaned: Counter::default(),
            block_cleanup_failures: Counter::default(),
            blocks_marked: Family::default(),
            partial_deletion_attempts: Counter::default(),
            garbage_collected: Counter::default(),
            compactions: Family::default(),
            runs_started: Family::default(),
            runs_completed: Family::default(),
            compaction_failures: Family::default(),
            vertical_compactions: Family::default(),
            downsamples: Family::default(),
            downsample_failures: Family::default(),
            downsample_duration: Family::new_with_constructor(histogram),
            todo_compactions: Family::default(),
            todo_compaction_blocks: Family::default(),
            todo_downsample_blocks: Family::default(),
            todo_deletion_blocks: Family::default(),
            meta_synced: Family::default(),
            meta_syncs: Counter::default(),
            meta_sync_failures: Counter::default(),
            samples_written: Counter::default(),
            chunks_copied: Counter::default(),
            chunks_reencoded: Counter::default(),
            merge_seconds: Counter::default(),
        };
        let r = registry;
        r.register(
            "thanos_compact_halted",
            "Set to 1 if the compactor halted due to an unexpected error.",
            m.halted.clone(),
        );
        r.register(
            "thanos_compact_retries",
            "Total number of retries after retriable compactor error.",
            m.retries.clone(),
        );
        r.register(
            "thanos_compact_iterations",
            "Total number of iterations that were executed successfully.",
            m.iterations.clone(),
        );
        r.register(
            "thanos_compact_blocks_cleaned",
            "Total number of blocks deleted in compactor.",
            m.blocks_cleaned.clone(),
        );
        r.register(
            "thanos_compact_block_cleanup_failures",
            "Failures encountered while deleting blocks in compactor.",
            m.block_cleanup_failures.clone(),
        );
        r.register(
            "thanos_compact_blocks_marked",
            "Total number of blocks marked in compactor.",
            m.blocks_marked.clone(),
        );
        r.register("thanos_compact_aborted_partial_uploads_deletion_attempts", "Total number of started deletions of blocks that are assumed aborted and only partially uploaded.", m.partial_deletion_attempts.clone());
        r.register(
            "thanos_compact_garbage_collected_blocks",
            "Total number of blocks marked for deletion by compactor.",
            m.garbage_collected.clone(),
        );
        r.register(
            "thanos_compact_group_compactions",
            "Total number of group compaction attempts that resulted in a new block.",
            m.compactions.clone(),
        );
        r.register(
            "thanos_compact_group_compaction_runs_started",
            "Total number of group compaction attempts.",
            m.runs_started.clone(),
        );
        r.register("thanos_compact_group_compaction_runs_completed", "Total number of group completed compaction runs. This also includes compactor group runs that resulted with no compaction.", m.runs_completed.clone());
        r.register(
            "thanos_compact_group_compactions_failures",
            "Total number of failed group compactions.",
            m.compaction_failures.clone(),
        );
        r.register("thanos_compact_group_vertical_compactions", "Total number of group compaction attempts that resulted in a new block based on overlapping blocks.", m.vertical_compactions.clone());
        r.register(
            "thanos_compact_downsample",
            "Total number of downsampling attempts.",
            m.downsamples.clone(),
        );
        r.register(
            "thanos_compact_downsample_failures",
            "Total number of failed downsampling attempts.",
            m.downsample_failures.clone(),
        );
        r.register(
            "thanos_compact_downsample_duration_seconds",
            "Duration of downsample runs",
            m.downsample_duration.clone(),
        );
        r.register(
            "thanos_compact_todo_compactions",
            "number of compactions to be done",
            m.todo_compactions.clone(),
        );
        r.register(
            "thanos_compact_todo_compaction_blocks",
            "number of blocks planned to be compacted",
            m.todo_compaction_blocks.clone(),
        );
        r.register(
            "thanos_compact_todo_downsample_blocks",
            "number of blocks to be downsampled",
            m.todo_downsample_blocks.clone(),
        );
        r.register(
            "thanos_compact_todo_deletion_blocks",
            "number of blocks that have crossed their retention period",
            m.todo_deletion_blocks.clone(),
        );
        r.register(
            "thanos_blocks_meta_synced",
            "Number of block metadata synced",
            m.meta_synced.clone(),
        );
        r.register(
            "thanos_blocks_meta_syncs",
            "Total blocks metadata synchronization attempts",
            m.meta_syncs.clone(),
        );
        r.register(
            "thanos_blocks_meta_sync_failures",
            "Total blocks metadata synchronization failures",
            m.meta_sync_failures.clone(),
        );
        let dd = Gauge::<i64>::default();
        dd.set(delete_delay_secs);
        r.register(
            "thanos_delete_delay_seconds",
            "Configured delete delay in seconds.",
            dd,
        );
        let cd = Gauge::<i64>::default();
        cd.set(consistency_delay_secs);
        r.register(
            "thanos_consistency_delay_seconds",
            "Configured consistency delay in seconds.",
            cd,
        );
        r.register(
            "strata_compact_samples_written",
            "Samples written into compacted blocks.",
            m.samples_written.clone(),
        );
        r.register(
            "strata_compact_chunks_copied",
            "Chunks copied into compacted blocks without decoding.",
            m.chunks_copied.clone(),
        );
        r.register(
            "strata_compact_chunks_reencoded",
            "Chunks re-encoded from overlapping data during vertical compaction.",
            m.chunks_reencoded.clone(),
        );
        m
    }

    /// Counts a marker written.
    pub fn marked(&self, marker: &str, reason: &str) {
        self.blocks_marked
            .get_or_create(&Marked {
                marker: marker.into(),
                reason: reason.into(),
            })
            .inc();
    }
}
