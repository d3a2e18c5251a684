//! [`BucketStore`]: the block set, its synchronisation with the bucket, and
//! what it reports about itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use prometheus_client::registry::Registry;
use strata_block::markers::{read_marker, DeletionMark};
use strata_block::{download_meta, list_blocks, Meta};
use strata_model::{relabel::relabel, Label, Labels};
use strata_objstore::Bucket;
use strata_storage::SourceInfo;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};
use ulid::Ulid;

use crate::block::{BucketBlock, Ctx};
use crate::cache::Instrumented;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::options::StoreOptions;

/// Blocks of one external label set, by resolution.
#[derive(Debug)]
pub(crate) struct Group {
    pub labels: Labels,
    /// Resolutions present, highest first.
    pub resolutions: Vec<i64>,
    /// Blocks per resolution (same order), sorted by min time.
    pub blocks: Vec<Vec<Arc<BucketBlock>>>,
}

/// A block that is not served, and why.
#[derive(Clone, Debug)]
pub(crate) struct Broken {
    pub id: Ulid,
    /// Its meta when it could be read.
    pub meta: Option<Meta>,
    pub error: String,
}

/// A consistent snapshot of the served blocks.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub blocks: Vec<Arc<BucketBlock>>,
    pub groups: Vec<Group>,
    pub broken: Vec<Broken>,
}

/// What one [`BucketStore::sync`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks served after the sync.
    pub loaded: usize,
    /// Blocks newly loaded by this sync.
    pub added: usize,
    /// Blocks no longer served (gone from the bucket or filtered out).
    pub dropped: usize,
    /// Prefixes without meta.json (uploads in progress or aborted).
    pub partial: usize,
    /// Blocks skipped for their deletion mark.
    pub marked_for_deletion: usize,
    /// Blocks outside `--min-time`/`--max-time`.
    pub outside_time_range: usize,
    /// Blocks dropped by the relabel selector.
    pub relabeled_away: usize,
    /// Blocks that could not be loaded (bad meta.json, unreadable index).
    pub failed: usize,
}

/// Memory and size figures of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Blocks served.
    pub blocks: usize,
    /// Series in those blocks (from meta.json).
    pub series: u64,
    /// Index-headers currently loaded.
    pub loaded_index_headers: usize,
    /// Heap bytes of the loaded index-headers.
    pub index_header_bytes: usize,
}

/// The store gateway's view of a bucket: every block that passes the filters,
/// served through [`strata_storage::Queryable`].
#[derive(Debug)]
pub struct BucketStore {
    pub(crate) bucket: Bucket,
    pub(crate) opts: StoreOptions,
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) state: RwLock<Arc<State>>,
    pub(crate) sem: Arc<Semaphore>,
    pub(crate) cache: Arc<Instrumented>,
    pub(crate) metrics: Metrics,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl BucketStore {
    /// A store over `bucket`; nothing is read until [`BucketStore::sync`].
    /// Registers the store's and the index cache's metrics in `registry`.
    pub fn new(bucket: Bucket, opts: StoreOptions, registry: &mut Registry) -> Result<Self> {
        let metrics = Metrics::new(registry);
        let cache = opts.index_cache.build(registry)?;
        std::fs::create_dir_all(&opts.data_dir).map_err(|e| crate::Error::io(&opts.data_dir, e))?;
        let ctx = Arc::new(Ctx {
            bucket: bucket.clone(),
            cache: cache.clone(),
            metrics: metrics.clone(),
            max_gap: opts.max_gap_bytes,
        });
        Ok(Self {
            bucket,
            sem: Arc::new(Semaphore::new(opts.limits.max_concurrency.max(1))),
            opts,
            ctx,
            state: RwLock::new(Arc::new(State::default())),
            cache,
            metrics,
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<State> {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Bytes read from the bucket so far (index-headers, postings, series,
    /// chunks), for measuring bytes per query.
    pub fn bytes_fetched(&self) -> u64 {
        self.metrics.total_fetched()
    }

    /// The index cache (with its request and hit counts).
    pub fn index_cache(&self) -> &Arc<Instrumented> {
        &self.cache
    }

    /// ULIDs of the blocks served, sorted.
    pub fn block_ids(&self) -> Vec<Ulid> {
        let mut v: Vec<Ulid> = self.snapshot().blocks.iter().map(|b| b.id).collect();
        v.sort();
        v
    }

    /// Blocks that could not be loaded at the last sync, with the reason.
    pub fn failed_blocks(&self) -> Vec<(Ulid, String)> {
        self.snapshot()
            .broken
            .iter()
            .map(|b| (b.id, b.error.clone()))
            .collect()
    }

    /// Sizes and memory figures.
    pub fn stats(&self) -> StoreStats {
        let st = self.snapshot();
        let mut s = StoreStats {
            blocks: st.blocks.len(),
            ..Default::default()
        };
        for b in &st.blocks {
            s.series += b.meta.block.stats.num_series;
            let m = b.header_memory();
            if m > 0 {
                s.loaded_index_headers += 1;
                s.index_header_bytes += m;
            }
        }
        s
    }

    /// Drops index-headers unused for the idle timeout; returns how many.
    pub fn unload_idle_index_headers(&self) -> usize {
        if self.opts.index_header_idle_timeout.is_zero() {
            return 0;
        }
        self.snapshot()
            .blocks
            .iter()
            .filter(|b| b.unload_if_idle(self.opts.index_header_idle_timeout))
            .count()
    }

    /// External label sets and time range of the served blocks.
    pub fn source_info(&self) -> SourceInfo {
        let st = self.snapshot();
        let mut info = SourceInfo {
            label_sets: st.groups.iter().map(|g| g.labels.clone()).collect(),
            ..SourceInfo::default()
        };
        for b in &st.blocks {
            info.min_time = info.min_time.min(b.min_time());
            info.max_time = info.max_time.max(b.max_time() - 1);
        }
        info
    }

    /// Reads the bucket's block list and metas and updates the served set:
    /// partial uploads, blocks marked for deletion (longer than the delay),
    /// blocks outside the time range and blocks the relabel selector drops are
    /// skipped; new blocks get their index-header built in the data dir; blocks
    /// gone from the bucket are dropped. A block that cannot be loaded is logged,
    /// reported as a warning to queries, and retried at the next sync. Only a
    /// failure to list the bucket is an error.
    pub async fn sync(&self) -> Result<SyncReport> {
        let list = list_blocks(&self.bucket).await?;
        let mut report = SyncReport {
            partial: list.partial.len(),
            ..Default::default()
        };
        for id in &list.partial {
            debug!(block = %id, "skipping block without meta.json (partial upload)");
        }
        let current = self.snapshot();
        let known: HashMap<Ulid, Arc<BucketBlock>> =
            current.blocks.iter().map(|b| (b.id, b.clone())).collect();
        let bucket = &self.bucket;
        let known_ref = &known;
        let fetched: Vec<_> = futures::stream::iter(list.complete.iter().copied())
            .map(|id| async move {
                let mark = read_marker::<DeletionMark>(bucket, id).await;
                let meta = match known_ref.get(&id) {
                    Some(b) => Ok(b.meta.clone()),
                    None => download_meta(bucket, id).await,
                };
                (id, mark, meta)
            })
            .buffer_unordered(self.opts.meta_fetch_concurrency.max(1))
            .collect()
            .await;

        let mut broken = Vec::new();
        let mut keep: Vec<Arc<BucketBlock>> = Vec::new();
        let mut fresh: Vec<Arc<BucketBlock>> = Vec::new();
        let delay = self.opts.ignore_deletion_marks_delay.as_secs() as i64;
        for (id, mark, meta) in fetched {
            match mark {
                Ok(Some(m)) if now_secs() - m.deletion_time >= delay => {
                    debug!(block = %id, "skipping block marked for deletion");
                    report.marked_for_deletion += 1;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(block = %id, error = %e, "reading deletion mark failed; serving the block")
                }
            }
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    let error = format!("block {id}: reading meta.json: {e}");
                    warn!(block = %id, error = %e, "cannot read meta.json; block not served");
                    broken.push(Broken {
                        id,
                        meta: None,
                        error,
                    });
                    continue;
                }
            };
            if meta.block.ulid != id {
                let error = format!(
                    "block {id}: meta.json names block {}, not the directory it is in",
                    meta.block.ulid
                );
                warn!(block = %id, meta_ulid = %meta.block.ulid, "meta.json ULID does not match its directory; block not served");
                broken.push(Broken {
                    id,
                    meta: None,
                    error,
                });
                continue;
            }
            if meta.block.min_time >= meta.block.max_time {
                let error = format!(
                    "block {id}: meta.json time range [{}, {}) is empty",
                    meta.block.min_time, meta.block.max_time
                );
                warn!(block = %id, min_time = meta.block.min_time, max_time = meta.block.max_time, "meta.json time range is empty; block not served");
                broken.push(Broken {
                    id,
                    meta: Some(meta),
                    error,
                });
                continue;
            }
            if !(meta.block.max_time >= self.opts.min_time
                && meta.block.min_time <= self.opts.max_time)
            {
                report.outside_time_range += 1;
                continue;
            }
            if !self.opts.relabel.is_empty() {
                let mut ls: Vec<Label> = meta
                    .thanos
                    .labels
                    .iter()
                    .map(|(k, v)| Label::new(k.clone(), v.clone()))
                    .collect();
                ls.push(Label::new("__block_id", id.to_string()));
                if relabel(&Labels::from_vec(ls), &self.opts.relabel).is_none() {
                    report.relabeled_away += 1;
                    continue;
                }
            }
            match known.get(&id) {
                Some(b) => keep.push(b.clone()),
                None => fresh.push(Arc::new(BucketBlock::new(
                    meta,
                    self.opts.data_dir.join(id.to_string()),
                    self.ctx.clone(),
                ))),
            }
        }

        let built: Vec<_> = futures::stream::iter(fresh)
            .map(|b| async move {
                self.metrics.block_loads.inc();
                let r = b.ensure_header_file().await;
                (b, r)
            })
            .buffer_unordered(self.opts.block_sync_concurrency.max(1))
            .collect()
            .await;
        for (b, r) in built {
            match r {
                Ok(_) => {
                    info!(block = %b.id, "loaded new block");
                    report.added += 1;
                    keep.push(b);
                }
                Err(e) => {
                    self.metrics.block_load_failures.inc();
                    warn!(block = %b.id, error = %e, "building the index-header failed; block not served");
                    broken.push(Broken {
                        id: b.id,
                        meta: Some(b.meta.clone()),
                        error: e.to_string(),
                    });
                }
            }
        }
        let kept: std::collections::HashSet<Ulid> = keep.iter().map(|b| b.id).collect();
        for id in known.keys().filter(|id| !kept.contains(id)) {
            report.dropped += 1;
            self.metrics.block_drops.inc();
            info!(block = %id, "dropped block");
        }
        self.clean_data_dir(&kept);

        keep.sort_by_key(|b| (b.min_time(), b.id));
        broken.sort_by_key(|b| b.id);
        report.loaded = keep.len();
        report.failed = broken.len();
        self.metrics.blocks_loaded.set(keep.len() as i64);
        let state = Arc::new(State {
            groups: group(&keep),
            blocks: keep,
            broken,
        });
        match self.state.write() {
            Ok(mut s) => *s = state,
            Err(p) => *p.into_inner() = state,
        }
        self.unload_idle_index_headers();
        Ok(report)
    }

    /// Removes index-header directories of blocks no longer served.
    fn clean_data_dir(&self, kept: &std::collections::HashSet<Ulid>) {
        let Ok(rd) = std::fs::read_dir(&self.opts.data_dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<Ulid>().ok()) else {
                continue;
            };
            if !kept.contains(&id) {
                if let Err(err) = std::fs::remove_dir_all(e.path()) {
                    warn!(block = %id, error = %err, path = %e.path().display(), "removing stale index-header directory failed");
                }
            }
        }
    }
}

fn group(blocks: &[Arc<BucketBlock>]) -> Vec<Group> {
    let mut by: BTreeMap<Labels, BTreeMap<std::cmp::Reverse<i64>, Vec<Arc<BucketBlock>>>> =
        BTreeMap::new();
    for b in blocks {
        by.entry(b.ext.clone())
            .or_default()
            .entry(std::cmp::Reverse(b.resolution()))
            .or_default()
            .push(b.clone());
    }
    by.into_iter()
        .map(|(labels, res)| {
            let mut g = Group {
                labels,
                resolutions: Vec::new(),
                blocks: Vec::new(),
            };
            for (r, mut bs) in res {
                bs.sort_by_key(|b| (b.min_time(), b.id));
                g.resolutions.push(r.0);
                g.blocks.push(bs);
            }
            g
        })
        .collect()
}
