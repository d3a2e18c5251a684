//! Marker files next to a block in the bucket (thanos
//! `pkg/block/metadata/markers.go`): `deletion-mark.json`,
//! `no-compact-mark.json` and `no-downsample-mark.json`, encoded like Go's
//! `json.Marshal` (compact, fields in struct order, times in Unix seconds).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_objstore::Bucket;
use ulid::Ulid;

use crate::error::{Error, Result};

/// Deletion marker file name.
pub const DELETION_MARK_FILENAME: &str = "deletion-mark.json";
/// No-compact marker file name.
pub const NO_COMPACT_MARK_FILENAME: &str = "no-compact-mark.json";
/// No-downsample marker file name.
pub const NO_DOWNSAMPLE_MARK_FILENAME: &str = "no-downsample-mark.json";

/// Reasons for a no-compact mark.
pub mod reason {
    /// Marked by hand.
    pub const MANUAL: &str = "manual";
    /// The index would exceed its size limit.
    pub const INDEX_SIZE_EXCEEDING: &str = "index-size-exceeding";
    /// The index has out-of-order chunks.
    pub const OUT_OF_ORDER_CHUNKS: &str = "block-index-out-of-order-chunk";
    /// Vertical compaction of downsampled blocks.
    pub const DOWNSAMPLE_VERTICAL_COMPACTION: &str = "downsample-vertical-compaction";
}

/// `deletion-mark.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    /// The block.
    pub id: Ulid,
    /// Always 1.
    pub version: u32,
    /// Why, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, Unix seconds.
    pub deletion_time: i64,
}

/// `no-compact-mark.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCompactMark {
    /// The block.
    pub id: Ulid,
    /// Always 1.
    pub version: u32,
    /// Why, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, Unix seconds.
    pub no_compact_time: i64,
    /// One of [`reason`].
    pub reason: String,
}

/// `no-downsample-mark.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoDownsampleMark {
    /// The block.
    pub id: Ulid,
    /// Always 1.
    pub version: u32,
    /// Why, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, Unix seconds.
    pub no_downsample_time: i64,
    /// `manual`.
    pub reason: String,
}

/// A marker type.
pub trait Marker: Serialize + for<'de> Deserialize<'de> {
    /// Its file name in the block's prefix.
    const FILENAME: &'static str;
    /// Its `version` field.
    fn version(&self) -> u32;
}

impl Marker for DeletionMark {
    const FILENAME: &'static str = DELETION_MARK_FILENAME;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Marker for NoCompactMark {
    const FILENAME: &'static str = NO_COMPACT_MARK_FILENAME;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Marker for NoDownsampleMark {
    const FILENAME: &'static str = NO_DOWNSAMPLE_MARK_FILENAME;
    fn version(&self) -> u32 {
        self.version
    }
}

/// Now, Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl DeletionMark {
    /// A mark made now.
    pub fn new(id: Ulid, details: impl Into<String>) -> Self {
        Self {
            id,
            version: 1,
            details: details.into(),
            deletion_time: unix_now(),
        }
    }
}

impl NoCompactMark {
    /// A mark made now.
    pub fn new(id: Ulid, reason: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            id,
            version: 1,
            details: details.into(),
            no_compact_time: unix_now(),
            reason: reason.into(),
        }
    }
}

impl NoDownsampleMark {
    /// A mark made now.
    pub fn new(id: Ulid, reason: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            id,
            version: 1,
            details: details.into(),
            no_downsample_time: unix_now(),
            reason: reason.into(),
        }
    }
}

/// Encodes a marker like Go's `json.Marshal`.
pub fn encode<M: Marker>(m: &M) -> Result<Vec<u8>> {
    serde_json::to_vec(m).map_err(|e| Error::Meta {
        ulid: "?".into(),
        file: M::FILENAME,
        msg: format!("encoding: {e}"),
    })
}

/// Uploads `<id>/<marker file>` unless it exists; returns whether it was written.
pub async fn write_marker<M: Marker>(bucket: &Bucket, id: Ulid, m: &M) -> Result<bool> {
    let key = format!("{id}/{}", M::FILENAME);
    if bucket
        .exists(&key)
        .await
        .map_err(|e| Error::bucket(id, format!("check {}", M::FILENAME), e))?
    {
        return Ok(false);
    }
    bucket
        .upload(&key, Bytes::from(encode(m)?))
        .await
        .map_err(|e| Error::bucket(id, format!("upload {}", M::FILENAME), e))?;
    Ok(true)
}

/// Reads `<id>/<marker file>`; `None` when there is none.
pub async fn read_marker<M: Marker>(bucket: &Bucket, id: Ulid) -> Result<Option<M>> {
    let key = format!("{id}/{}", M::FILENAME);
    let b = match bucket.get(&key).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(Error::bucket(id, format!("get {}", M::FILENAME), e)),
    };
    let m: M = serde_json::from_slice(&b).map_err(|e| Error::Meta {
        ulid: id.to_string(),
        file: M::FILENAME,
        msg: format!("unmarshal marker JSON: {e}"),
    })?;
    if m.version() != 1 {
        return Err(Error::Meta {
            ulid: id.to_string(),
            file: M::FILENAME,
            msg: format!("unexpected version {}, expected 1", m.version()),
        });
    }
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_matches_thanos() {
        let id: Ulid = "01M89M4019TEQQXC7RBVCP8DEY".parse().unwrap();
        let d = DeletionMark {
            id,
            version: 1,
            details: String::new(),
            deletion_time: 1700000000,
        };
        assert_eq!(
            String::from_utf8(encode(&d).unwrap()).unwrap(),
            r#"{"id":"01M89M4019TEQQXC7RBVCP8DEY","version":1,"deletion_time":1700000000}"#
        );
        let n = NoCompactMark {
            id,
            version: 1,
            details: "big".into(),
            no_compact_time: 5,
            reason: reason::INDEX_SIZE_EXCEEDING.into(),
        };
        assert_eq!(
            String::from_utf8(encode(&n).unwrap()).unwrap(),
            r#"{"id":"01M89M4019TEQQXC7RBVCP8DEY","version":1,"details":"big","no_compact_time":5,"reason":"index-size-exceeding"}"#
        );
        let nd = NoDownsampleMark {
            id,
            version: 1,
            details: String::new(),
            no_downsample_time: 7,
            reason: reason::MANUAL.into(),
        };
        assert_eq!(
            String::from_utf8(encode(&nd).unwrap()).unwrap(),
            r#"{"id":"01M89M4019TEQQXC7RBVCP8DEY","version":1,"no_downsample_time":7,"reason":"manual"}"#
        );
    }
}
