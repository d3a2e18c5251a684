//! One block in the bucket, as the store gateway serves it (thanos
//! `bucketBlock`): its meta, its lazily loaded index-header, and the ranged,
//! coalesced, cached reads of postings, series entries and chunks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use strata_block::Meta;
use strata_chunkenc::RawChunk;
use strata_model::{Labels, MatchType, Matcher};
use strata_objstore::Bucket;
use strata_tsdb::index::postings::{self, BoxPostings, PostingsList};
use strata_tsdb::index::ChunkRef;
use tracing::{debug, warn};
use ulid::Ulid;

use crate::cache::{CacheKey, IndexCache};
use crate::decode::{
    chunk_record_len, decode_chunk, decode_series, postings_refs, series_entry_len,
};
use crate::error::{Error, Result};
use crate::indexheader::{self, IndexHeader};
use crate::metrics::{self, Metrics};
use crate::ranges::partition;

/// Series entry size guess when meta.json has no `index_stats` (bytes).
const DEFAULT_SERIES_SIZE_HINT: u64 = 4096;
/// Chunk size guess when meta.json has no `index_stats` (Thanos' 16000 bytes).
const DEFAULT_CHUNK_SIZE_HINT: u64 = 16_000;
/// Ranged GETs in flight per fetch.
const FETCH_CONCURRENCY: usize = 8;

/// What all blocks of a store share.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub bucket: Bucket,
    pub cache: Arc<dyn IndexCache>,
    pub metrics: Metrics,
    pub max_gap: u64,
}

/// A series selected in a block: labels (external labels added) and the chunks
/// overlapping the request.
#[derive(Clone, Debug)]
pub(crate) struct Selected {
    pub labels: Labels,
    pub chunks: Vec<ChunkRef>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A block served from the bucket.
#[derive(Debug)]
pub(crate) struct BucketBlock {
    pub id: Ulid,
    pub meta: Meta,
    /// External labels.
    pub ext: Labels,
    header_path: PathBuf,
    header: tokio::sync::Mutex<Option<Arc<IndexHeader>>>,
    last_used_ms: AtomicI64,
    ctx: Arc<Ctx>,
}

impl BucketBlock {
    /// A block whose index-header is (to be) at `<dir>/index-header`.
    pub(crate) fn new(meta: Meta, dir: PathBuf, ctx: Arc<Ctx>) -> Self {
        let ext = Labels::from_pairs(
            meta.thanos
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Self {
            id: meta.block.ulid,
            meta,
            ext,
            header_path: dir.join(indexheader::INDEX_HEADER_FILENAME),
            header: tokio::sync::Mutex::new(None),
            last_used_ms: AtomicI64::new(now_ms()),
            ctx,
        }
    }

    pub(crate) fn resolution(&self) -> i64 {
        self.meta.thanos.downsample.resolution
    }

    pub(crate) fn min_time(&self) -> i64 {
        self.meta.block.min_time
    }

    /// Exclusive, as in meta.json.
    pub(crate) fn max_time(&self) -> i64 {
        self.meta.block.max_time
    }

    /// Whether the block holds data in `[mint, maxt]` (inclusive bounds).
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_time() <= maxt && mint < self.max_time()
    }

    /// Builds the index-header file unless a valid one exists. Returns bytes read
    /// from the bucket.
    pub(crate) async fn ensure_header_file(&self) -> Result<u64> {
        let path = self.header_path.clone();
        let id = self.id;
        let ok = tokio::task::spawn_blocking(move || IndexHeader::load(id, &path).is_ok())
            .await
            .unwrap_or(false);
        if ok {
            return Ok(0);
        }
        let n = indexheader::build(&self.ctx.bucket, self.id, &self.header_path).await?;
        self.ctx.metrics.fetched(metrics::INDEX_HEADER, n, 1);
        Ok(n)
    }

    /// The index-header, loaded on first use.
    pub(crate) async fn header(&self) -> Result<Arc<IndexHeader>> {
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
        let mut g = self.header.lock().await;
        if let Some(h) = &*g {
            return Ok(h.clone());
        }
        let path = self.header_path.clone();
        let id = self.id;
        let load = move || {
            let path = path.clone();
            async move {
                tokio::task::spawn_blocking(move || IndexHeader::load(id, &path))
                    .await
                    .map_err(|e| Error::Config(format!("block {id}: loading index-header: {e}")))?
            }
        };
        let h = match load().await {
            Ok(h) => h,
            Err(e) => {
                warn!(block = %self.id, error = %e, "index-header unreadable; rebuilding it from the bucket");
                let n = indexheader::build(&self.ctx.bucket, self.id, &self.header_path).await?;
                self.ctx.metrics.fetched(metrics::INDEX_HEADER, n, 1);
                load().await?
            }
        };
        let h = Arc::new(h);
        self.ctx.metrics.lazy_loads.inc();
        debug!(block = %self.id, bytes = h.memory_bytes(), "index-header loaded");
        *g = Some(h.clone());
        Ok(h)
    }

    /// Drops the loaded index-header if unused for `idle`; returns whether it did.
    pub(crate) fn unload_if_idle(&self, idle: Duration) -> bool {
        let last = self.last_used_ms.load(Ordering::Relaxed);
        if now_ms().saturating_sub(last) < idle.as_millis() as i64 {
            return false;
        }
        match self.header.try_lock() {
            Ok(mut g) if g.is_some() => {
                *g = None;
                self.ctx.metrics.lazy_unloads.inc();
                true
            }
            _ => false,
        }
    }

    /// Heap bytes of the loaded index-header (0 when not loaded).
    pub(crate) fn header_memory(&self) -> usize {
        self.header
            .try_lock()
            .ok()
            .and_then(|g| g.as_ref().map(|h| h.memory_bytes()))
            .unwrap_or(0)
    }

    /// Reads the `[start, end)` ranges of object `key`, coalescing nearby ones;
    /// each result may be shorter than asked when the object ends first.
    async fn read_ranges(
        &self,
        key: &str,
        data_type: &str,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<Bytes>> {
        let parts = partition(ranges, self.ctx.max_gap);
        let bucket = &self.ctx.bucket;
        let id = self.id;
        let spans: Vec<(usize, u64, u64)> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.start, p.end))
            .collect();
        let fetched: Vec<(usize, Bytes)> = futures::stream::iter(spans)
            .map(|(i, start, end)| async move {
                let b = bucket
                    .get_range(key, start, end - start)
                    .await
                    .map_err(|e| Error::bucket(id, format!("read {key}"), e))?;
                Ok::<_, Error>((i, b))
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out = vec![Bytes::new(); ranges.len()];
        let mut total = 0u64;
        for (i, b) in fetched {
            total += b.len() as u64;
            let p = &parts[i];
            for &m in &p.members {
                let (s, e) = ranges[m];
                let lo = ((s - p.start) as usize).min(b.len());
                let hi = ((e - p.start) as usize).min(b.len()).max(lo);
                out[m] = b.slice(lo..hi);
            }
        }
        self.ctx
            .metrics
            .fetched(data_type, total, ranges.len() as u64);
        Ok(out)
    }

    /// Postings (raw refs) of the given (entry, label name) pairs, from the cache
    /// or the bucket.
    async fn fetch_postings(
        &self,
        h: &IndexHeader,
        want: &[(usize, String)],
    ) -> Result<HashMap<usize, Bytes>> {
        let keys: Vec<CacheKey> = want
            .iter()
            .map(|(i, name)| CacheKey::Postings {
                block: self.id,
                name: name.clone(),
                value: h.entry_value(*i).to_string(),
            })
            .collect();
        let cached = self.ctx.cache.fetch_multi(&keys).await;
        let mut out = HashMap::with_capacity(want.len());
        let mut miss = Vec::new();
        for ((w, k), c) in want.iter().zip(keys).zip(cached) {
            match c {
                Some(b) if b.len() % 4 == 0 => {
                    out.insert(w.0, b);
                }
                _ => miss.push((w.0, k)),
            }
        }
        if miss.is_empty() {
            return Ok(out);
        }
        let ranges: Vec<(u64, u64)> = miss.iter().map(|(i, _)| h.postings_range(*i)).collect();
        let got = self
            .read_ranges(&format!("{}/index", self.id), metrics::POSTINGS, &ranges)
            .await?;
        for (((i, k), b), (start, _)) in miss.into_iter().zip(got).zip(ranges) {
            let refs = postings_refs(&b).map_err(|m| Error::corrupt(self.id, "index", start, m))?;
            let refs = Bytes::copy_from_slice(&refs);
            self.ctx.cache.store(k, refs.clone());
            out.insert(i, refs);
        }
        Ok(out)
    }

    /// Series refs matching all `matchers` (Prometheus `PostingsForMatchers`
    /// semantics: a matcher accepting the empty value also selects series
    /// without the label).
    pub(crate) async fn postings_for(
        &self,
        h: &IndexHeader,
        matchers: &[Matcher],
    ) -> Result<Vec<u32>> {
        let mut groups: Vec<(bool, Vec<usize>)> = Vec::new();
        let mut want: Vec<(usize, String)> = Vec::new();
        for m in matchers {
            let subtract = m.matches_empty();
            if subtract && m.kind == MatchType::Regex && m.value == ".*" {
                continue;
            }
            let entries: Vec<usize> = if !subtract && m.kind == MatchType::Equal {
                h.find(&m.name, &m.value).into_iter().collect()
            } else if let (false, Some(vals)) = (subtract, m.set_matches()) {
                vals.iter().filter_map(|v| h.find(&m.name, v)).collect()
            } else {
                h.entries_of(&m.name)
                    .filter(|&i| m.matches(h.entry_value(i)) != subtract)
                    .collect()
            };
            if !subtract && entries.is_empty() {
                return Ok(Vec::new());
            }
            want.extend(entries.iter().map(|&i| (i, m.name.clone())));
            groups.push((subtract, entries));
        }
        if !groups.iter().any(|g| !g.0) {
            let Some(all) = h.all_postings() else {
                return Ok(Vec::new());
            };
            want.push((all, String::new()));
            groups.push((false, vec![all]));
        }
        want.sort();
        want.dedup();
        let lists = self.fetch_postings(h, &want).await?;
        let union = |entries: &[usize]| -> BoxPostings<'_> {
            postings::merge(
                entries
                    .iter()
                    .filter_map(|i| lists.get(i))
                    .map(|b| Box::new(PostingsList::new(b)) as BoxPostings<'_>)
                    .collect(),
            )
        };
        let its: Vec<BoxPostings<'_>> = groups
            .iter()
            .filter(|g| !g.0)
            .map(|g| union(&g.1))
            .collect();
        let mut it = postings::intersect(its);
        for g in groups.iter().filter(|g| g.0) {
            it = postings::without(it, union(&g.1));
        }
        Ok(postings::collect(it))
    }

    fn series_hint(&self) -> u64 {
        match self.meta.thanos.index_stats.series_max_size {
            n if n > 0 => n as u64,
            _ => DEFAULT_SERIES_SIZE_HINT,
        }
    }

    fn chunk_hint(&self) -> u64 {
        match self.meta.thanos.index_stats.chunk_max_size {
            n if n > 0 => n as u64,
            _ => DEFAULT_CHUNK_SIZE_HINT,
        }
    }

    /// Series entries (exact bytes) of `refs` (sorted), from the cache or the bucket.
    pub(crate) async fn fetch_series(&self, h: &IndexHeader, refs: &[u32]) -> Result<Vec<Bytes>> {
        let keys: Vec<CacheKey> = refs
            .iter()
            .map(|&r| CacheKey::Series {
                block: self.id,
                series_ref: r,
            })
            .collect();
        let mut out: Vec<Bytes> = self
            .ctx
            .cache
            .fetch_multi(&keys)
            .await
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let miss: Vec<usize> = (0..refs.len()).filter(|&i| out[i].is_empty()).collect();
        if miss.is_empty() {
            return Ok(out);
        }
        let end = h.series_end();
        let hint = self.series_hint();
        let ranges: Vec<(u64, u64)> = miss
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let s = u64::from(refs[i]) * 16;
                let mut e = (s + hint).min(end);
                if let Some(&next) = miss.get(j + 1) {
                    let n = u64::from(refs[next]) * 16;
                    if n > s {
                        e = e.min(n);
                    }
                }
                (s, e.max(s))
            })
            .collect();
        let key = format!("{}/index", self.id);
        let got = self.read_ranges(&key, metrics::SERIES, &ranges).await?;
        for ((&i, b), (s, _)) in miss.iter().zip(got).zip(ranges) {
            let corrupt =
                |m: String| Error::corrupt(self.id, "index", s, format!("series {}: {m}", refs[i]));
            let need = series_entry_len(&b).map_err(|e| corrupt(e.to_string()))?;
            let entry = if need <= b.len() {
                Bytes::copy_from_slice(&b[..need])
            } else {
                self.ctx.metrics.series_refetches.inc();
                let b = self
                    .ctx
                    .bucket
                    .get_range(&key, s, need as u64)
                    .await
                    .map_err(|e| Error::bucket(self.id, "refetch series", e))?;
                self.ctx.metrics.fetched(metrics::SERIES, b.len() as u64, 0);
                if b.len() < need {
                    return Err(corrupt(format!(
                        "entry of {need} bytes runs past the end of the series section"
                    )));
                }
                b
            };
            self.ctx.cache.store(keys[i].clone(), entry.clone());
            out[i] = entry;
        }
        Ok(out)
    }

    /// Decodes the series entry `b` of ref `r`: its labels as stored (without
    /// external labels) and its chunks overlapping `[mint, maxt]`. Chunks outside
    /// the block's meta.json range are dropped and counted in `outside`.
    pub(crate) fn decode_entry(
        &self,
        h: &IndexHeader,
        r: u32,
        b: &[u8],
        (mint, maxt): (i64, i64),
        outside: &mut usize,
    ) -> Result<(Labels, Vec<ChunkRef>)> {
        let s = decode_series(b, |i| h.symbol(i)).map_err(|m| {
            Error::corrupt(
                self.id,
                "index",
                u64::from(r) * 16,
                format!("series {r}: {m}"),
            )
        })?;
        let (bmin, bmax) = (self.min_time(), self.max_time());
        let mut chunks = s.chunks;
        chunks.retain(|c| {
            if c.min_time < bmin || c.max_time >= bmax {
                *outside += 1;
                return false;
            }
            c.min_time <= maxt && c.max_time >= mint
        });
        Ok((s.labels, chunks))
    }

    /// `labels` with the block's external labels set (they win over stored ones).
    pub(crate) fn with_ext(&self, labels: Labels) -> Labels {
        if self.ext.is_empty() {
            return labels;
        }
        let mut b = labels.builder();
        for l in self.ext.iter() {
            b.set(l.name.clone(), l.value.clone());
        }
        b.build()
    }

    /// The warning (also logged) for `outside` chunks beyond meta.json's range.
    pub(crate) fn outside_warning(&self, outside: usize) -> String {
        let (bmin, bmax) = (self.min_time(), self.max_time());
        warn!(block = %self.id, chunks = outside, min_time = bmin, max_time = bmax, "meta.json time range does not cover the block's chunks");
        format!(
            "block {}: {outside} chunk(s) lie outside the time range [{bmin}, {bmax}) of its meta.json; they were skipped",
            self.id
        )
    }

    /// All series matching `matchers` (external-label matchers already removed)
    /// with chunks overlapping `[mint, maxt]`, sorted by labels (external labels
    /// added), and warnings. Label queries use it; `select` reads series in
    /// batches instead (see `crate::lazy`).
    pub(crate) async fn select_series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<(Vec<Selected>, Vec<String>)> {
        let h = self.header().await?;
        let refs = self.postings_for(&h, matchers).await?;
        let entries = self.fetch_series(&h, &refs).await?;
        let mut out = Vec::with_capacity(refs.len());
        let mut outside = 0usize;
        for (&r, b) in refs.iter().zip(entries) {
            let (labels, chunks) = self.decode_entry(&h, r, &b, (mint, maxt), &mut outside)?;
            if !chunks.is_empty() {
                out.push(Selected {
                    labels: self.with_ext(labels),
                    chunks,
                });
            }
        }
        if !out.windows(2).all(|w| w[0].labels <= w[1].labels) {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        let mut warnings = Vec::new();
        if outside > 0 {
            warnings.push(self.outside_warning(outside));
        }
        Ok((out, warnings))
    }

    fn segment_key(&self, seg: usize) -> String {
        let name = self
            .meta
            .thanos
            .segment_files
            .get(seg)
            .cloned()
            .unwrap_or_else(|| format!("{:06}", seg + 1));
        format!("{}/chunks/{name}", self.id)
    }

    /// The chunks of `refs`, in order.
    pub(crate) async fn fetch_chunks(&self, refs: &[u64]) -> Result<Vec<RawChunk>> {
        let keys: Vec<CacheKey> = refs
            .iter()
            .map(|&r| CacheKey::Chunk {
                block: self.id,
                chunk_ref: r,
            })
            .collect();
        let cached = self.ctx.cache.fetch_multi(&keys).await;
        let mut out: Vec<Option<RawChunk>> = vec![None; refs.len()];
        let mut by_seg: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, (r, hit)) in refs.iter().zip(cached).enumerate() {
            // A cached record that does not decode is refetched from the bucket.
            match hit.map(|b| decode_chunk(&b)) {
                Some(Ok(c)) => out[i] = Some(c),
                _ => by_seg.entry((r >> 32) as usize).or_default().push(i),
            }
        }
        let hint = self.chunk_hint();
        for (seg, mut idx) in by_seg {
            idx.sort_by_key(|&i| refs[i] & 0xffff_ffff);
            let offs: Vec<u64> = idx.iter().map(|&i| refs[i] & 0xffff_ffff).collect();
            let ranges: Vec<(u64, u64)> = offs
                .iter()
                .enumerate()
                .map(|(j, &s)| {
                    let mut e = s + hint;
                    if let Some(&n) = offs[j + 1..].iter().find(|&&n| n > s) {
                        e = e.min(n);
                    }
                    (s, e)
                })
                .collect();
            let key = self.segment_key(seg);
            let got = self.read_ranges(&key, metrics::CHUNKS, &ranges).await?;
            for ((&i, b), (s, _)) in idx.iter().zip(got).zip(ranges) {
                let corrupt = |m: String| {
                    Error::corrupt(
                        self.id,
                        key.trim_start_matches(&format!("{}/", self.id)),
                        s,
                        m,
                    )
                };
                let need = chunk_record_len(&b).map_err(|e| corrupt(format!("chunk: {e}")))?;
                let rec = if need <= b.len() {
                    b
                } else {
                    self.ctx.metrics.chunk_refetches.inc();
                    let b = self
                        .ctx
                        .bucket
                        .get_range(&key, s, need as u64)
                        .await
                        .map_err(|e| Error::bucket(self.id, "refetch chunk", e))?;
                    self.ctx.metrics.fetched(metrics::CHUNKS, b.len() as u64, 0);
                    b
                };
                let chunk = decode_chunk(&rec).map_err(corrupt)?;
                self.ctx.cache.store(
                    CacheKey::Chunk {
                        block: self.id,
                        chunk_ref: refs[i],
                    },
                    // A copy: a slice would pin the whole coalesced read.
                    Bytes::copy_from_slice(rec.get(..need).unwrap_or(&rec)),
                );
                out[i] = Some(chunk);
            }
        }
        out.into_iter()
            .zip(refs)
            .map(|(c, r)| {
                c.ok_or_else(|| {
                    Error::corrupt(
                        self.id,
                        "chunks",
                        r & 0xffff_ffff,
                        format!("chunk {r} was not read"),
                    )
                })
            })
            .collect()
    }
}
