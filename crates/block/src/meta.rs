//! `meta.json` with Thanos' section (thanos `pkg/block/metadata/meta.go`).
//!
//! The Prometheus fields come first, in Prometheus' order, then `thanos`, whose
//! keys follow Thanos' struct order. The file is written as Go's `json.Encoder`
//! with a tab indent writes it: tab-indented with a trailing newline.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use strata_tsdb::meta::BlockMeta;

use crate::error::{Error, Result};

/// File name of block metadata.
pub const META_FILENAME: &str = "meta.json";
/// File name of the index.
pub const INDEX_FILENAME: &str = "index";
/// Directory of chunk segment files.
pub const CHUNKS_DIRNAME: &str = "chunks";

/// Where a block came from (`thanos.source`).
pub mod source {
    /// Uploaded by the sidecar's shipper.
    pub const SIDECAR: &str = "sidecar";
    /// Written by receive.
    pub const RECEIVE: &str = "receive";
    /// Written by the compactor.
    pub const COMPACTOR: &str = "compactor";
    /// Repaired by the compactor.
    pub const COMPACTOR_REPAIR: &str = "compactor.repair";
    /// Written by the ruler.
    pub const RULER: &str = "ruler";
    /// Repaired by `tools bucket verify --repair`.
    pub const BUCKET_REPAIR: &str = "bucket.repair";
    /// Rewritten by `tools bucket rewrite`.
    pub const BUCKET_REWRITE: &str = "bucket.rewrite";
    /// Uploaded by `tools bucket upload-blocks`.
    pub const BUCKET_UPLOAD: &str = "bucket.upload";
    /// Tests.
    pub const TEST: &str = "test";
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// The zero Go `time.Time`, as JSON.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn zero_time() -> String {
    ZERO_TIME.to_string()
}

/// `thanos.downsample`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    /// Resolution in ms: 0 (raw), 300000 or 3600000.
    #[serde(default)]
    pub resolution: i64,
}

/// A file hash (`--hash-func=SHA256`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    /// `SHA256`.
    #[serde(rename = "hashFunc", default)]
    pub hash_func: String,
    /// Lower-case hex digest.
    #[serde(default)]
    pub value: String,
}

/// One entry of `thanos.files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Path relative to the block directory (`chunks/000001`, `index`, `meta.json`).
    pub rel_path: String,
    /// Size in bytes; absent (0) for `meta.json`.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    /// Hash, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<FileHash>,
}

/// One entry of `thanos.rewrites`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    /// Source blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ulid::Ulid>,
    /// Deletions applied (kept verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions_applied: Option<serde_json::Value>,
    /// Relabels applied (kept verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabels_applied: Option<serde_json::Value>,
}

/// `thanos.index_stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Largest series entry, bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub series_max_size: i64,
    /// Largest chunk, bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub chunk_max_size: i64,
}

/// The `thanos` section of `meta.json`, in Thanos' key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    /// Section version (1; 0 is read as 1).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub version: u32,
    /// External labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Resolution.
    #[serde(default)]
    pub downsample: Downsample,
    /// Origin (see [`source`]).
    #[serde(default)]
    pub source: String,
    /// Chunk file names relative to `chunks/` (deprecated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    /// Files of the block, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    /// Rewrites applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<Rewrite>,
    /// Index statistics.
    #[serde(default)]
    pub index_stats: IndexStats,
    /// Extensions (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
    /// Upload time, RFC 3339 (UTC); [`ZERO_TIME`] when unset.
    #[serde(default = "zero_time")]
    pub upload_time: String,
}

impl Default for ThanosMeta {
    fn default() -> Self {
        Self {
            version: 1,
            labels: BTreeMap::new(),
            downsample: Downsample::default(),
            source: String::new(),
            segment_files: Vec::new(),
            files: Vec::new(),
            rewrites: Vec::new(),
            index_stats: IndexStats::default(),
            extensions: None,
            upload_time: zero_time(),
        }
    }
}

/// A block's `meta.json`: Prometheus' fields plus Thanos' section.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// Prometheus' fields (its `thanos` member is always `None` here).
    pub block: BlockMeta,
    /// Thanos' section (defaults when the file had none).
    pub thanos: ThanosMeta,
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(flatten)]
    block: &'a BlockMeta,
    thanos: &'a ThanosMeta,
}

impl Meta {
    /// Splits a Prometheus meta into the two parts.
    pub fn from_block_meta(mut block: BlockMeta) -> Result<Self> {
        let ulid = block.ulid.to_string();
        let thanos = match block.thanos.take() {
            None | Some(serde_json::Value::Null) => ThanosMeta::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| Error::Meta {
                ulid: ulid.clone(),
                file: META_FILENAME,
                msg: format!("thanos section: {e}"),
            })?,
        };
        if thanos.version > 1 {
            return Err(Error::Meta {
                ulid,
                file: META_FILENAME,
                msg: format!("unexpected thanos meta version {}", thanos.version),
            });
        }
        Ok(Self { block, thanos })
    }

    /// Reads `<dir>/meta.json`.
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        Self::from_block_meta(BlockMeta::read(dir)?)
    }

    /// Parses `meta.json` bytes (e.g. downloaded from a bucket).
    pub fn from_json(b: &[u8]) -> Result<Self> {
        let block: BlockMeta = serde_json::from_slice(b).map_err(|e| Error::Meta {
            ulid: "?".into(),
            file: META_FILENAME,
            msg: e.to_string(),
        })?;
        if block.version != 1 {
            return Err(Error::Meta {
                ulid: block.ulid.to_string(),
                file: META_FILENAME,
                msg: format!("unexpected meta file version {}", block.version),
            });
        }
        Self::from_block_meta(block)
    }

    /// The JSON Thanos writes: tab-indented, trailing newline.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut block = self.block.clone();
        block.thanos = None;
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        Out {
            block: &block,
            thanos: &self.thanos,
        }
        .serialize(&mut ser)
        .map_err(|e| Error::Meta {
            ulid: block.ulid.to_string(),
            file: META_FILENAME,
            msg: format!("encoding: {e}"),
        })?;
        out.push(b'\n');
        Ok(out)
    }

    /// Writes `<dir>/meta.json` via a temporary file and rename (a hard link
    /// to the old file is replaced, not modified).
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        let b = self.to_json()?;
        let tmp = dir.join("meta.json.tmp");
        let path = dir.join(META_FILENAME);
        std::fs::write(&tmp, &b).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

/// Formats a time as Go's `time.Time` JSON (RFC 3339 with nanoseconds,
/// trailing zeros dropped), in UTC.
pub fn format_time(t: SystemTime) -> String {
    let d = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d,
        Err(_) => return ZERO_TIME.to_string(),
    };
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, dd) = strata_model::civil::civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests;
