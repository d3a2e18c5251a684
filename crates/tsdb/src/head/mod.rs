//! The in-memory head block (mirrors `tsdb/head*.go`): series with their recent
//! chunks, an inverted index, a WAL for durability, replay on open, and cutting of
//! finished time ranges into blocks.
//!
//! Appends go through [`Head::appender`] ([`strata_storage::Appender`]): samples are
//! staged, then on commit validated (out-of-order, out-of-bounds, duplicate errors
//! as Prometheus names them), logged to the WAL (written to the file before commit
//! returns, so a killed process loses nothing acknowledged), and applied.

mod append;
mod checkpoint;
mod query;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strata_model::Labels;
use tracing::{info, warn};

pub use append::HeadAppender;

use crate::cut::ChunkCutter;
use crate::error::{Error, Result};
use crate::wal::{decode, Record, WalReader, WalWriter, DEFAULT_SEGMENT_SIZE};
use crate::DEFAULT_BLOCK_DURATION_MS;

/// Head settings (defaults follow Prometheus).
#[derive(Clone, Debug)]
pub struct HeadOptions {
    /// Chunk range = block duration, ms.
    pub chunk_range_ms: i64,
    /// WAL segment size.
    pub wal_segment_size: usize,
    /// Snappy-compress WAL records.
    pub wal_compression: bool,
    /// Write a WAL at all (tests and read-only uses turn it off).
    pub wal: bool,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            chunk_range_ms: DEFAULT_BLOCK_DURATION_MS,
            wal_segment_size: DEFAULT_SEGMENT_SIZE,
            wal_compression: true,
            wal: true,
        }
    }
}

/// One series in memory.
#[derive(Debug)]
pub(crate) struct MemSeries {
    pub(crate) labels: Labels,
    pub(crate) cutter: ChunkCutter,
    pub(crate) last: Option<(i64, f64)>,
}

/// A hasher for keys that are already well-spread `u64`s (series refs and label
/// hashes): one multiply instead of SipHash on the ingest path.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing spreads sequential refs over the high bits hashbrown uses.
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// `BuildHasher` for [`U64Hasher`].
pub(crate) type U64Build = std::hash::BuildHasherDefault<U64Hasher>;

/// The series index: refs, lookup by label hash, postings.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) series: HashMap<u64, Arc<Mutex<MemSeries>>, U64Build>,
    /// Label hash → (ref, labels): lookups compare labels without locking series.
    pub(crate) by_hash: HashMap<u64, HashRefs, U64Build>,
    pub(crate) postings: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
}

/// The series of one label hash: almost always one, kept inline.
#[derive(Debug)]
pub(crate) enum HashRefs {
    One(u64, Labels),
    Many(Vec<(u64, Labels)>),
}

impl HashRefs {
    fn find(&self, l: &Labels) -> Option<u64> {
        match self {
            HashRefs::One(r, ls) => (ls == l).then_some(*r),
            HashRefs::Many(v) => v.iter().find(|(_, ls)| ls == l).map(|(r, _)| *r),
        }
    }
}

impl Index {
    pub(crate) fn lookup(&self, l: &Labels) -> Option<u64> {
        self.lookup_hashed(l, l.stable_hash())
    }

    pub(crate) fn lookup_hashed(&self, l: &Labels, hash: u64) -> Option<u64> {
        self.by_hash.get(&hash)?.find(l)
    }

    pub(crate) fn insert(&mut self, r: u64, labels: Labels, chunk_range: i64) {
        match self.by_hash.entry(labels.stable_hash()) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(HashRefs::One(r, labels.clone()));
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let v = e.get_mut();
                let prev = std::mem::replace(v, HashRefs::Many(Vec::new()));
                let mut all = match prev {
                    HashRefs::One(pr, pl) => vec![(pr, pl)],
                    HashRefs::Many(all) => all,
                };
                all.push((r, labels.clone()));
                *v = HashRefs::Many(all);
            }
        }
        for l in &labels {
            // Look up before inserting so that existing names and values are not
            // cloned just to be dropped.
            if !self.postings.contains_key(&l.name) {
                self.postings.insert(l.name.clone(), BTreeMap::new());
            }
            let Some(vals) = self.postings.get_mut(&l.name) else {
                continue;
            };
            if !vals.contains_key(&l.value) {
                vals.insert(l.value.clone(), Vec::new());
            }
            let Some(v) = vals.get_mut(&l.value) else {
                continue;
            };
            // Refs only grow, except on replay of out-of-order refs: keep sorted.
            match v.last() {
                Some(last) if *last > r => {
                    let i = v.partition_point(|x| *x < r);
                    v.insert(i, r);
                }
                _ => v.push(r),
            }
        }
        self.series.insert(
            r,
            Arc::new(Mutex::new(MemSeries {
                labels,
                cutter: ChunkCutter::new(chunk_range),
                last: None,
            })),
        );
    }

    fn remove(&mut self, r: u64) {
        let Some(s) = self.series.remove(&r) else {
            return;
        };
        let labels = match s.lock() {
            Ok(g) => g.labels.clone(),
            Err(p) => p.into_inner().labels.clone(),
        };
        let hash = labels.stable_hash();
        let empty = match self.by_hash.get_mut(&hash) {
            Some(HashRefs::One(pr, _)) => *pr == r,
            Some(HashRefs::Many(v)) => {
                v.retain(|x| x.0 != r);
                v.is_empty()
            }
            None => false,
        };
        if empty {
            self.by_hash.remove(&hash);
        }
        for l in &labels {
            if let Some(vals) = self.postings.get_mut(&l.name) {
                if let Some(refs) = vals.get_mut(&l.value) {
                    refs.retain(|x| *x != r);
                    if refs.is_empty() {
                        vals.remove(&l.value);
                    }
                }
                if vals.is_empty() {
                    self.postings.remove(&l.name);
                }
            }
        }
    }
}

/// Locks a series, recovering from a poisoned lock (the data stays consistent:
/// appends never leave a series half-updated).
fn lock_series(s: &Mutex<MemSeries>) -> std::sync::MutexGuard<'_, MemSeries> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Shared head state.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) opts: HeadOptions,
    pub(crate) dir: PathBuf,
    pub(crate) index: RwLock<Index>,
    /// The WAL, also serialising commits.
    pub(crate) wal: Mutex<Option<WalWriter>>,
    pub(crate) next_ref: AtomicU64,
    pub(crate) min_time: AtomicI64,
    pub(crate) max_time: AtomicI64,
    /// Samples before this are out of bounds.
    pub(crate) min_valid_time: AtomicI64,
    /// Samples appended since start (for `prometheus_tsdb_head_samples_appended_total`).
    pub(crate) samples_appended: AtomicU64,
}

/// The head. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Head {
    pub(crate) inner: Arc<Inner>,
}

impl Head {
    /// Opens the head of `data_dir`: replays `wal/` (newest checkpoint, then later
    /// segments) and, unless `opts.wal` is off, continues the WAL in a new segment.
    /// Samples of unknown series and out-of-order samples in the WAL are skipped with
    /// a warning (as Prometheus does); corrupt segments are errors naming the file.
    pub fn open(data_dir: &Path, opts: HeadOptions) -> Result<Self> {
        let head = Self::empty(data_dir, opts);
        let warnings = head.replay()?;
        for w in &warnings {
            warn!(dir = %data_dir.display(), "{w}");
        }
        if head.inner.opts.wal {
            let w = WalWriter::open(
                &data_dir.join("wal"),
                head.inner.opts.wal_segment_size,
                head.inner.opts.wal_compression,
            )?;
            *head.lock_wal() = Some(w);
        }
        Ok(head)
    }

    fn empty(data_dir: &Path, opts: HeadOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: data_dir.to_path_buf(),
                index: RwLock::new(Index::default()),
                wal: Mutex::new(None),
                next_ref: AtomicU64::new(1),
                min_time: AtomicI64::new(i64::MAX),
                max_time: AtomicI64::new(i64::MIN),
                min_valid_time: AtomicI64::new(i64::MIN),
                samples_appended: AtomicU64::new(0),
                opts,
            }),
        }
    }

    /// Replays the WAL without opening it for writing (read-only use, e.g. dump).
    pub fn replay_read_only(data_dir: &Path) -> Result<(Self, Vec<String>)> {
        let head = Self::empty(
            data_dir,
            HeadOptions {
                wal: false,
                ..HeadOptions::default()
            },
        );
        let w = head.replay()?;
        Ok((head, w))
    }

    pub(crate) fn lock_wal(&self) -> std::sync::MutexGuard<'_, Option<WalWriter>> {
        match self.inner.wal.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        match self.inner.index.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        match self.inner.index.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn replay(&self) -> Result<Vec<String>> {
        let wal = self.inner.dir.join("wal");
        let mut r = WalReader::open(&wal)?;
        let (mut unknown, mut ooo, mut unsupported, mut records) = (0u64, 0u64, 0u64, 0u64);
        let started = std::time::Instant::now();
        while let Some(rec) = r.next_record()? {
            records += 1;
            match decode(&rec).map_err(|m| Error::corrupt(&wal, 0, m))? {
                Record::Series(ss) => {
                    let mut idx = self.write_index();
                    for s in ss {
                        if !idx.series.contains_key(&s.series_ref) {
                            idx.insert(s.series_ref, s.labels, self.inner.opts.chunk_range_ms);
                        }
                        self.inner
                            .next_ref
                            .fetch_max(s.series_ref + 1, Ordering::Relaxed);
                    }
                }
                Record::Samples(smps) => {
                    let idx = self.read_index();
                    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
                    for s in smps {
                        let Some(ser) = idx.series.get(&s.series_ref) else {
                            unknown += 1;
                            continue;
                        };
                        let mut ser = match ser.lock() {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        if ser.last.is_some_and(|l| l.0 >= s.t) {
                            ooo += 1;
                            continue;
                        }
                        ser.cutter.append(s.t, s.v)?;
                        ser.last = Some((s.t, s.v));
                        lo = lo.min(s.t);
                        hi = hi.max(s.t);
                    }
                    self.inner.min_time.fetch_min(lo, Ordering::Relaxed);
                    self.inner.max_time.fetch_max(hi, Ordering::Relaxed);
                }
                Record::Tombstones(_) => {
                    // Deletion through the head is not offered yet; Prometheus writes
                    // these only through the admin API.
                    unsupported += 1;
                }
                Record::Skipped(_) => {}
                Record::Unsupported(_) => unsupported += 1,
            }
        }
        // Series without samples (e.g. only in a checkpoint) are kept, like Prometheus.
        let mut warnings = Vec::new();
        if unknown > 0 {
            warnings.push(format!(
                "WAL replay: {unknown} samples for unknown series skipped"
            ));
        }
        if ooo > 0 {
            warnings.push(format!("WAL replay: {ooo} out-of-order samples skipped"));
        }
        if unsupported > 0 {
            warnings.push(format!(
                "WAL replay: {unsupported} records of unsupported types (native histograms, tombstones) skipped"
            ));
        }
        if records > 0 {
            info!(records, elapsed = ?started.elapsed(), series = self.num_series(), "WAL replay finished");
        }
        Ok(warnings)
    }

    /// Number of series in memory.
    pub fn num_series(&self) -> usize {
        self.read_index().series.len()
    }

    /// Earliest sample time in the head (i64::MAX when empty).
    pub fn min_time(&self) -> i64 {
        self.inner.min_time.load(Ordering::Relaxed)
    }

    /// Latest sample time in the head (i64::MIN when empty).
    pub fn max_time(&self) -> i64 {
        self.inner.max_time.load(Ordering::Relaxed)
    }

    /// Writes buffered WAL data to disk and fsyncs it.
    pub fn sync_wal(&self) -> Result<()> {
        if let Some(w) = self.lock_wal().as_mut() {
            w.sync()?;
        }
        Ok(())
    }

    /// The oldest chunk-range-aligned window that is complete and should become a
    /// block: when the head spans more than 1.5 chunk ranges (Prometheus'
    /// `compactable`).
    pub fn compactable_range(&self) -> Option<(i64, i64)> {
        let (min, max) = (self.min_time(), self.max_time());
        let r = self.inner.opts.chunk_range_ms;
        if min == i64::MAX || max - min <= r / 2 * 3 {
            return None;
        }
        let mint = min.div_euclid(r) * r;
        Some((mint, mint + r))
    }

    /// Writes the samples in `[mint, maxt)` as a block under `dest`, then drops them
    /// from memory, makes `mint..maxt` out of bounds, and truncates the WAL with a
    /// checkpoint. Returns the block's meta (None if there were no samples).
    pub fn persist_block(
        &self,
        dest: &Path,
        mint: i64,
        maxt: i64,
    ) -> Result<Option<crate::meta::BlockMeta>> {
        let meta = self.write_block(dest, mint, maxt)?;
        self.truncate(maxt)?;
        Ok(meta)
    }

    /// Samples appended since the head was opened.
    pub fn samples_appended(&self) -> u64 {
        self.inner.samples_appended.load(Ordering::Relaxed)
    }

    /// Writes the samples in `[mint, maxt)` as a block under `dest` without
    /// dropping them; call [`Head::truncate`] once the block is visible to readers.
    pub fn write_block(
        &self,
        dest: &Path,
        mint: i64,
        maxt: i64,
    ) -> Result<Option<crate::meta::BlockMeta>> {
        // Streamed: first the series with data in range (labels and a handle),
        // sorted; then each series' chunks are copied just before they are
        // written. Compaction runs while ingest goes on, so whatever it holds at
        // once adds to the server's peak memory.
        let in_range = |c: &strata_storage::ChunkMeta| c.min_time >= mint && c.max_time < maxt;
        let mut series: Vec<(Labels, Arc<Mutex<MemSeries>>)> = Vec::new();
        {
            let idx = self.read_index();
            for s in idx.series.values() {
                let g = lock_series(s);
                let open_in_range = g
                    .cutter
                    .open_range()
                    .is_some_and(|(lo, hi)| lo >= mint && hi < maxt);
                if open_in_range || g.cutter.closed().iter().any(in_range) {
                    series.push((g.labels.clone(), Arc::clone(s)));
                }
            }
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        // Unique symbols (a set of distinct strings, not one per label of every
        // series).
        let unique: std::collections::HashSet<&str> = series
            .iter()
            .flat_map(|(l, _)| l.iter().flat_map(|x| [x.name.as_str(), x.value.as_str()]))
            .collect();
        let mut syms: Vec<&str> = unique.into_iter().collect();
        syms.sort_unstable();
        let mut w =
            crate::block::BlockWriter::create(dest, crate::block::BlockWriterOptions::default())?;
        w.add_symbols(syms.iter().copied())?;
        drop(syms);
        for (l, s) in &series {
            let chunks: Vec<_> = lock_series(s)
                .cutter
                .all_chunks()
                .into_iter()
                .filter(in_range)
                .collect();
            if !chunks.is_empty() {
                w.add_series(l, &chunks)?;
            }
        }
        let meta = w.finish(Some((mint, maxt)))?;
        if let Some(m) = &meta {
            info!(block = %m.ulid, mint, maxt, series = m.stats.num_series, samples = m.stats.num_samples, "head block persisted");
        }
        Ok(meta)
    }

    /// Drops data before `t` from memory and the WAL.
    pub fn truncate(&self, t: i64) -> Result<()> {
        self.inner.min_valid_time.fetch_max(t, Ordering::Relaxed);
        let mut idx = self.write_index();
        let mut dead = Vec::new();
        let mut new_min = i64::MAX;
        for (r, s) in &idx.series {
            let mut s = match s.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !s.cutter.truncate_before(t) {
                dead.push(*r);
            } else if let Some(c) = s
                .cutter
                .closed()
                .first()
                .cloned()
                .or_else(|| s.cutter.open_chunk())
            {
                new_min = new_min.min(c.min_time);
            }
        }
        for r in dead {
            idx.remove(r);
        }
        self.inner.min_time.store(new_min, Ordering::Relaxed);
        drop(idx);
        checkpoint::truncate_wal(self, t)
    }
}
