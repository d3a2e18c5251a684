//! Moving whole blocks between a local directory and a bucket (thanos
//! `pkg/block/block.go`): upload in the order chunks → index → `meta.json`,
//! delete in the order `meta.json` → the rest → `deletion-mark.json`, and list
//! the blocks a bucket holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use strata_objstore::Bucket;
use tracing::{debug, warn};
use ulid::Ulid;

use crate::error::{Error, Result};
use crate::markers::DELETION_MARK_FILENAME;
use crate::meta::{format_time, File, Meta, CHUNKS_DIRNAME, INDEX_FILENAME, META_FILENAME};

/// Chunk segment file names in `<block>/chunks`, sorted.
pub fn segment_files(block_dir: &Path) -> Result<Vec<String>> {
    let dir = block_dir.join(CHUNKS_DIRNAME);
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(&dir, e))?;
        let ft = ent.file_type().map_err(|e| Error::io(ent.path(), e))?;
        if ft.is_file() {
            out.push(ent.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Thanos' `GatherFileStats`: every chunk file and the index with their sizes,
/// and `meta.json` without one, sorted by path. Hashes are not computed.
pub fn gather_files(block_dir: &Path) -> Result<Vec<File>> {
    let mut files = Vec::new();
    for name in segment_files(block_dir)? {
        let p = block_dir.join(CHUNKS_DIRNAME).join(&name);
        let md = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
        files.push(File {
            rel_path: format!("{CHUNKS_DIRNAME}/{name}"),
            size_bytes: md.len() as i64,
            hash: None,
        });
    }
    let idx = block_dir.join(INDEX_FILENAME);
    let md = std::fs::metadata(&idx).map_err(|e| Error::io(&idx, e))?;
    files.push(File {
        rel_path: INDEX_FILENAME.into(),
        size_bytes: md.len() as i64,
        hash: None,
    });
    files.push(File {
        rel_path: META_FILENAME.into(),
        size_bytes: 0,
        hash: None,
    });
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(files)
}

fn block_ulid(block_dir: &Path) -> Result<Ulid> {
    let name = block_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.parse().map_err(|_| Error::InvalidBlock {
        path: block_dir.to_path_buf(),
        msg: format!("directory name {name:?} is not a block ULID"),
    })
}

/// Uploads the block in `block_dir` (a directory named by its ULID): every
/// `chunks/*` file, then `index`, then `meta.json` last, with the Thanos section
/// filled in (`labels`, `source`, `segment_files`, `files` with sizes,
/// `upload_time`; `downsample` and other members are kept). `tombstones` and
/// unknown files are not uploaded; the local directory is not modified.
///
/// Empty `external_labels` are refused, as in Thanos. If a chunk or the index
/// fails, the objects already uploaded are deleted; `meta.json` is never
/// uploaded unless everything else was, so a failure leaves no complete-looking
/// block. Returns the uploaded meta.
pub async fn upload_block(
    bucket: &Bucket,
    block_dir: &Path,
    external_labels: &BTreeMap<String, String>,
    source: &str,
) -> Result<Meta> {
    let id = block_ulid(block_dir)?;
    let mut meta = Meta::read_from_dir(block_dir)?;
    if meta.block.ulid != id {
        return Err(Error::InvalidBlock {
            path: block_dir.to_path_buf(),
            msg: format!("meta.json has ULID {}, directory {id}", meta.block.ulid),
        });
    }
    if external_labels.is_empty() {
        return Err(Error::InvalidBlock {
            path: block_dir.to_path_buf(),
            msg: "empty external labels are not allowed for Thanos block".into(),
        });
    }
    meta.thanos.version = 1;
    meta.thanos.labels = external_labels.clone();
    meta.thanos.source = source.to_string();
    meta.thanos.segment_files = segment_files(block_dir)?;
    meta.thanos.files = gather_files(block_dir)?;
    meta.thanos.upload_time = format_time(SystemTime::now());
    let encoded = meta.to_json()?;

    let mut uploaded: Vec<String> = Vec::new();
    let res = async {
        for name in &meta.thanos.segment_files {
            let key = format!("{id}/{CHUNKS_DIRNAME}/{name}");
            let path = block_dir.join(CHUNKS_DIRNAME).join(name);
            bucket
                .upload_file(&key, &path)
                .await
                .map_err(|e| Error::bucket(id, "upload chunks", e))?;
            uploaded.push(key);
        }
        let key = format!("{id}/{INDEX_FILENAME}");
        bucket
            .upload_file(&key, &block_dir.join(INDEX_FILENAME))
            .await
            .map_err(|e| Error::bucket(id, "upload index", e))?;
        uploaded.push(key);
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = res {
        for key in uploaded.iter().rev() {
            if let Err(de) = bucket.delete(key).await {
                warn!(block = %id, key, error = %de, "failed to clean up after a failed upload; partial block left in the bucket");
            }
        }
        return Err(e);
    }
    // Not cleaned up on failure, as in Thanos: the object may still appear.
    bucket
        .upload(&format!("{id}/{META_FILENAME}"), Bytes::from(encoded))
        .await
        .map_err(|e| Error::bucket(id, "upload meta file", e))?;
    debug!(block = %id, bucket = bucket.name(), "uploaded block");
    Ok(meta)
}

/// Downloads block `id` into `dst` (the block directory itself, created when
/// missing): `meta.json` first, then every other object under the block's
/// prefix (markers included). An empty `chunks/` is created when the block has
/// no chunks. Returns the block's meta.
pub async fn download_block(bucket: &Bucket, id: Ulid, dst: &Path) -> Result<Meta> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let meta_key = format!("{id}/{META_FILENAME}");
    bucket
        .download_file(&meta_key, &dst.join(META_FILENAME))
        .await
        .map_err(|e| Error::bucket(id, "download meta.json", e))?;
    let meta = Meta::read_from_dir(dst)?;
    let prefix = format!("{id}/");
    let keys = bucket
        .iter_recursive(&prefix)
        .await
        .map_err(|e| Error::bucket(id, "list objects", e))?;
    for key in keys {
        if key == meta_key {
            continue;
        }
        let Some(rel) = key.strip_prefix(&prefix) else {
            continue;
        };
        let path: PathBuf = rel.split('/').fold(dst.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        bucket
            .download_file(&key, &path)
            .await
            .map_err(|e| Error::bucket(id, format!("download {rel}"), e))?;
    }
    let chunks = dst.join(CHUNKS_DIRNAME);
    if !chunks.exists() {
        std::fs::create_dir_all(&chunks).map_err(|e| Error::io(&chunks, e))?;
    }
    Ok(meta)
}

/// The block prefixes of a bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockList {
    /// Blocks with `meta.json`, sorted.
    pub complete: Vec<Ulid>,
    /// ULID prefixes without `meta.json`: uploads in progress or aborted, sorted.
    pub partial: Vec<Ulid>,
}

/// Top-level ULID prefixes, split into complete blocks and partial uploads.
/// Other top-level entries (e.g. `debug/`) are ignored.
pub async fn list_blocks(bucket: &Bucket) -> Result<BlockList> {
    let mut out = BlockList::default();
    for entry in bucket.iter("").await? {
        let Some(name) = entry.strip_suffix('/') else {
            continue;
        };
        let Ok(id) = name.parse::<Ulid>() else {
            continue;
        };
        let has_meta = bucket
            .exists(&format!("{id}/{META_FILENAME}"))
            .await
            .map_err(|e| Error::bucket(id, "check meta.json", e))?;
        if has_meta {
            out.complete.push(id);
        } else {
            out.partial.push(id);
        }
    }
    out.complete.sort();
    out.partial.sort();
    Ok(out)
}

/// Downloads and parses `<id>/meta.json`.
pub async fn download_meta(bucket: &Bucket, id: Ulid) -> Result<Meta> {
    let b = bucket
        .get(&format!("{id}/{META_FILENAME}"))
        .await
        .map_err(|e| Error::bucket(id, "get meta.json", e))?;
    Meta::from_json(&b)
}

/// Deletes block `id`: `meta.json` first (so that it stops being a block), then
/// the other objects, then `deletion-mark.json` last.
pub async fn delete_block(bucket: &Bucket, id: Ulid) -> Result<()> {
    let meta_key = format!("{id}/{META_FILENAME}");
    let mark_key = format!("{id}/{DELETION_MARK_FILENAME}");
    let step = |what: &'static str| move |e| Error::bucket(id, what, e);
    if bucket
        .exists(&meta_key)
        .await
        .map_err(step("check meta.json"))?
    {
        bucket
            .delete(&meta_key)
            .await
            .map_err(step("delete meta.json"))?;
    }
    for key in bucket
        .iter_recursive(&format!("{id}/"))
        .await
        .map_err(step("list objects"))?
    {
        if key == meta_key || key == mark_key {
            continue;
        }
        bucket.delete(&key).await.map_err(step("delete object"))?;
    }
    if bucket
        .exists(&mark_key)
        .await
        .map_err(step("check deletion mark"))?
    {
        bucket
            .delete(&mark_key)
            .await
            .map_err(step("delete deletion mark"))?;
    }
    Ok(())
}
