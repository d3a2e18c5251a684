//! The shipper (thanos `pkg/shipper`): uploads every new local block of a TSDB
//! directory once, remembering what it shipped in `thanos.shipper.json`.
//!
//! One [`Shipper::sync`] pass goes through the blocks from oldest to newest
//! (by `minTime`). A block is skipped when it is listed in the state file, has
//! no samples, or is compacted (level > 1, unless `upload_compacted`). Before
//! uploading a block missing from the state file the bucket is asked for its
//! `meta.json`, so a crash between uploading and recording does not upload it
//! twice. The block is hard-linked into `<dir>/thanos/upload/<ULID>` (so that
//! a concurrent compaction or retention cannot pull files away mid-upload) and
//! uploaded in Thanos' order. The state file is rewritten after every upload and
//! at the end of the pass, listing only blocks that still exist locally. The
//! first failed upload ends the pass with an error, so blocks go up in order.
//!
//! A compacted block (with `upload_compacted`) is only uploaded when its time
//! range overlaps no block in the bucket that carries the same external
//! labels, as in Thanos: otherwise the pass stops with [`Error::Overlap`]
//! (say, Prometheus compacted blocks that were already shipped one by one).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use strata_objstore::Bucket;
use tracing::{info, warn};
use ulid::Ulid;

use crate::error::{Error, Result};
use crate::meta::{source, Meta, CHUNKS_DIRNAME, INDEX_FILENAME, META_FILENAME};
use crate::transfer::{download_meta, list_blocks, upload_block};

/// Default state file name (`--shipper.meta-file-name`).
pub const DEFAULT_META_FILE_NAME: &str = "thanos.shipper.json";

/// `thanos.shipper.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipperState {
    /// Always 1.
    pub version: u32,
    /// Blocks known to be in the bucket (`null` when none, as Go writes a nil slice).
    #[serde(default)]
    pub uploaded: Option<Vec<Ulid>>,
}

impl ShipperState {
    /// Reads a state file; version must be 1.
    pub fn read(path: &Path) -> Result<Self> {
        let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let s: ShipperState = serde_json::from_slice(&b).map_err(|e| Error::State {
            path: path.to_path_buf(),
            msg: format!("failed to parse as JSON: {e}"),
        })?;
        if s.version != 1 {
            return Err(Error::State {
                path: path.to_path_buf(),
                msg: format!("unexpected meta file version {}", s.version),
            });
        }
        Ok(s)
    }

    /// Writes it like Thanos (tab indent, trailing newline) via a temporary file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.serialize(&mut ser).map_err(|e| Error::State {
            path: path.to_path_buf(),
            msg: format!("encoding: {e}"),
        })?;
        out.push(b'\n');
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, &out).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        Ok(())
    }

    /// The uploaded blocks.
    pub fn uploaded(&self) -> &[Ulid] {
        self.uploaded.as_deref().unwrap_or(&[])
    }
}

/// Options of a [`Shipper`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipperOptions {
    /// Also upload compacted blocks (`--shipper.upload-compacted`).
    pub upload_compacted: bool,
    /// State file name in the TSDB directory (`--shipper.meta-file-name`).
    pub meta_file_name: String,
    /// `thanos.source` of uploaded blocks.
    pub source: String,
}

impl Default for ShipperOptions {
    fn default() -> Self {
        Self {
            upload_compacted: false,
            meta_file_name: DEFAULT_META_FILE_NAME.into(),
            source: source::SIDECAR.into(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Metrics {
    dir_syncs: Counter,
    dir_sync_failures: Counter,
    uploads: Counter,
    upload_failures: Counter,
}

impl Metrics {
    fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "thanos_shipper_dir_syncs",
            "Total number of dir syncs",
            m.dir_syncs.clone(),
        );
        registry.register(
            "thanos_shipper_dir_sync_failures",
            "Total number of failed dir syncs",
            m.dir_sync_failures.clone(),
        );
        registry.register(
            "thanos_shipper_uploads",
            "Total number of uploaded blocks",
            m.uploads.clone(),
        );
        registry.register(
            "thanos_shipper_upload_failures",
            "Total number of block upload failures",
            m.upload_failures.clone(),
        );
        m
    }
}

/// Ships the blocks of one TSDB directory to a bucket.
#[derive(Debug)]
pub struct Shipper {
    dir: PathBuf,
    bucket: Bucket,
    labels: BTreeMap<String, String>,
    opts: ShipperOptions,
    metrics: Metrics,
}

impl Shipper {
    /// A shipper for the TSDB directory `dir`, attaching `labels` as external
    /// labels. Registers Thanos' shipper metrics in `registry`.
    pub fn new(
        dir: impl Into<PathBuf>,
        bucket: Bucket,
        labels: BTreeMap<String, String>,
        opts: ShipperOptions,
        registry: &mut Registry,
    ) -> Self {
        Self {
            dir: dir.into(),
            bucket,
            labels,
            opts,
            metrics: Metrics::new(registry),
        }
    }

    /// Replaces the external labels (e.g. after Prometheus' config changed).
    pub fn set_labels(&mut self, labels: BTreeMap<String, String>) {
        self.labels = labels;
    }

    /// The state file's path.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(&self.opts.meta_file_name)
    }

    /// One pass; returns how many blocks were uploaded.
    pub async fn sync(&self) -> Result<usize> {
        let res = self.sync_inner().await;
        self.metrics.dir_syncs.inc();
        if res.is_err() {
            self.metrics.dir_sync_failures.inc();
        }
        res
    }

    async fn sync_inner(&self) -> Result<usize> {
        let state_path = self.state_path();
        let known: HashSet<Ulid> = match ShipperState::read(&state_path) {
            Ok(s) => s.uploaded().iter().copied().collect(),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                HashSet::new()
            }
            Err(e) => {
                warn!(error = %e, "reading shipper state failed; it will be rewritten");
                HashSet::new()
            }
        };
        let mut state = ShipperState {
            version: 1,
            uploaded: None,
        };
        let mut uploaded = 0usize;
        let metas = self.block_metas_from_oldest()?;
        // Time ranges of the bucket's blocks with our labels, read once a pass
        // when the first compacted block is about to go up.
        let mut in_bucket: Option<Vec<(Ulid, i64, i64)>> = None;
        for (i, meta) in metas.iter().enumerate() {
            let id = meta.block.ulid;
            if known.contains(&id) {
                push(&mut state, id);
                continue;
            }
            if meta.block.stats.num_samples == 0 {
                continue;
            }
            if meta.block.compaction.level > 1 && !self.opts.upload_compacted {
                continue;
            }
            let exists = self
                .bucket
                .exists(&format!("{id}/{META_FILENAME}"))
                .await
                .map_err(|e| Error::bucket(id, "check exists", e))?;
            if exists {
                push(&mut state, id);
                continue;
            }
            if meta.block.compaction.level > 1 {
                let ranges = match &mut in_bucket {
                    Some(r) => r,
                    None => in_bucket.insert(self.bucket_ranges().await?),
                };
                let (mint, maxt) = (meta.block.min_time, meta.block.max_time);
                let with: Vec<String> = ranges
                    .iter()
                    .filter(|(other, lo, hi)| *other != id && *lo < maxt && mint < *hi)
                    .map(|(other, lo, hi)| format!("{other} [{lo}, {hi})"))
                    .collect();
                if !with.is_empty() {
                    self.metrics.upload_failures.inc();
                    self.write_state(&state);
                    return Err(Error::Overlap {
                        ulid: id.to_string(),
                        range: format!("[{mint}, {maxt})"),
                        with: with.join(", "),
                    });
                }
            }
            match self.upload(meta).await {
                Ok(()) => {
                    push(&mut state, id);
                    uploaded += 1;
                    if let Some(r) = in_bucket.as_mut() {
                        r.push((id, meta.block.min_time, meta.block.max_time));
                    }
                    self.metrics.uploads.inc();
                    // Record progress at once: a crash now must not lose it.
                    let mut partial = state.clone();
                    for m in metas.iter().skip(i + 1) {
                        if known.contains(&m.block.ulid) {
                            push(&mut partial, m.block.ulid);
                        }
                    }
                    self.write_state(&partial);
                }
                Err(e) => {
                    self.metrics.upload_failures.inc();
                    for m in metas.iter().skip(i + 1) {
                        if known.contains(&m.block.ulid) {
                            push(&mut state, m.block.ulid);
                        }
                    }
                    self.write_state(&state);
                    return Err(e);
                }
            }
        }
        self.write_state(&state);
        Ok(uploaded)
    }

    /// `(ULID, minTime, maxTime)` of every complete block in the bucket whose
    /// external labels are this shipper's.
    async fn bucket_ranges(&self) -> Result<Vec<(Ulid, i64, i64)>> {
        let list = list_blocks(&self.bucket).await?;
        let mut out = Vec::new();
        for id in list.complete {
            let m = download_meta(&self.bucket, id).await?;
            if m.thanos.labels == self.labels {
                out.push((id, m.block.min_time, m.block.max_time));
            }
        }
        Ok(out)
    }

    fn write_state(&self, state: &ShipperState) {
        if let Err(e) = state.write(&self.state_path()) {
            warn!(error = %e, "updating shipper state file failed");
        }
    }

    /// The metas of the blocks in the directory, oldest `minTime` first.
    fn block_metas_from_oldest(&self) -> Result<Vec<Meta>> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut metas = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&self.dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.parse::<Ulid>().is_err() {
                continue;
            }
            let path = ent.path();
            let md = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if !md.is_dir() {
                continue;
            }
            metas.push(Meta::read_from_dir(&path)?);
        }
        metas.sort_by_key(|m| (m.block.min_time, m.block.ulid));
        Ok(metas)
    }

    async fn upload(&self, meta: &Meta) -> Result<()> {
        let id = meta.block.ulid;
        info!(block = %id, "upload new block");
        let updir = self.dir.join("thanos").join("upload").join(id.to_string());
        if updir.exists() {
            std::fs::remove_dir_all(&updir).map_err(|e| Error::io(&updir, e))?;
        }
        let res = async {
            hardlink_block(&self.dir.join(id.to_string()), &updir)?;
            upload_block(&self.bucket, &updir, &self.labels, &self.opts.source).await?;
            Ok(())
        }
        .await;
        if let Err(e) = std::fs::remove_dir_all(&updir) {
            warn!(dir = %updir.display(), error = %e, "failed to clean upload directory");
        }
        res
    }
}

fn push(state: &mut ShipperState, id: Ulid) {
    state.uploaded.get_or_insert_with(Vec::new).push(id);
}

/// Hard-links `chunks/*`, `meta.json` and `index` of `src` into `dst`.
fn hardlink_block(src: &Path, dst: &Path) -> Result<()> {
    let chunks = dst.join(CHUNKS_DIRNAME);
    std::fs::create_dir_all(&chunks).map_err(|e| Error::io(&chunks, e))?;
    let mut files: Vec<PathBuf> = crate::transfer::segment_files(src)?
        .into_iter()
        .map(|n| Path::new(CHUNKS_DIRNAME).join(n))
        .collect();
    files.push(PathBuf::from(META_FILENAME));
    files.push(PathBuf::from(INDEX_FILENAME));
    for f in files {
        let from = src.join(&f);
        let to = dst.join(&f);
        std::fs::hard_link(&from, &to).map_err(|e| Error::io(&from, e))?;
    }
    Ok(())
}
