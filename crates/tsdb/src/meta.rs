//! `meta.json`: a block's identity, time range, statistics and compaction history.
//! Written like Prometheus (`json.MarshalIndent` with tabs, no trailing newline,
//! via `meta.json.tmp` and rename); unknown keys such as Thanos' section survive.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::{Error, Result};

/// File name of block metadata.
pub const META_FILENAME: &str = "meta.json";

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Block statistics; zero members are omitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// All samples.
    #[serde(rename = "numSamples", default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    /// Float samples.
    #[serde(rename = "numFloatSamples", default, skip_serializing_if = "is_zero")]
    pub num_float_samples: u64,
    /// Histogram samples.
    #[serde(
        rename = "numHistogramSamples",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub num_histogram_samples: u64,
    /// Series.
    #[serde(rename = "numSeries", default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    /// Chunks.
    #[serde(rename = "numChunks", default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// Tombstone intervals.
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

/// A parent block of a compaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDesc {
    /// Its ULID.
    pub ulid: Ulid,
    /// Its min time.
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Its max time.
    #[serde(rename = "maxTime")]
    pub max_time: i64,
}

/// Compaction history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionMeta {
    /// 1 for a block cut from the head; a merge is max(parents) + 1.
    pub level: i32,
    /// Level-1 blocks this block was made from (itself when level 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Ulid>,
    /// The block became empty and can be deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletable: bool,
    /// Direct inputs of the compaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    /// A compaction using this block failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Hints such as `from-out-of-order`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// The content of `meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// The block's ULID (also its directory name).
    pub ulid: Ulid,
    /// First sample timestamp (inclusive), ms.
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Last sample timestamp + 1 (exclusive), ms.
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    /// Statistics.
    #[serde(default)]
    pub stats: BlockStats,
    /// Compaction history.
    #[serde(default)]
    pub compaction: CompactionMeta,
    /// Meta format version; always 1.
    pub version: u32,
    /// Thanos' section (external labels, resolution, source…), kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<serde_json::Value>,
}

impl BlockMeta {
    /// Reads and validates `<dir>/meta.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILENAME);
        let b = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let m: BlockMeta = serde_json::from_slice(&b).map_err(|e| Error::Meta {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        if m.version != 1 {
            return Err(Error::Meta {
                path,
                msg: format!("unsupported version {}", m.version),
            });
        }
        if m.min_time > m.max_time {
            return Err(Error::Meta {
                path,
                msg: format!("minTime {} after maxTime {}", m.min_time, m.max_time),
            });
        }
        Ok(m)
    }

    /// The JSON Prometheus would write: tab-indented, no trailing newline.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.serialize(&mut ser)
            .map_err(|e| Error::InvalidWrite(format!("encoding meta.json: {e}")))?;
        Ok(out)
    }

    /// Writes `<dir>/meta.json` atomically; returns its size.
    pub fn write(&self, dir: &Path) -> Result<u64> {
        let b = self.to_json()?;
        let tmp = dir.join("meta.json.tmp");
        let path = dir.join(META_FILENAME);
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&b).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(b.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_layout() {
        let u: Ulid = "01M89M4019TEQQXC7RBVCP8DEY".parse().unwrap();
        let m = BlockMeta {
            ulid: u,
            min_time: 1,
            max_time: 2,
            stats: BlockStats {
                num_samples: 3,
                num_series: 1,
                num_chunks: 1,
                ..Default::default()
            },
            compaction: CompactionMeta {
                level: 1,
                sources: vec![u],
                ..Default::default()
            },
            version: 1,
            thanos: None,
        };
        let s = String::from_utf8(m.to_json().unwrap()).unwrap();
        assert_eq!(
            s,
            "{\n\t\"ulid\": \"01M89M4019TEQQXC7RBVCP8DEY\",\n\t\"minTime\": 1,\n\t\"maxTime\": 2,\n\t\"stats\": {\n\t\t\"numSamples\": 3,\n\t\t\"numSeries\": 1,\n\t\t\"numChunks\": 1\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01M89M4019TEQQXC7RBVCP8DEY\"\n\t\t]\n\t},\n\t\"version\": 1\n}"
        );
    }

    #[test]
    fn reads_fixture_and_rejects_garbage() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("meta.json"), b"{\"ulid\": 5").unwrap();
        let e = BlockMeta::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("meta.json"), "{e}");
        std::fs::write(
            d.path().join("meta.json"),
            br#"{"ulid":"01M89M4019TEQQXC7RBVCP8DEY","minTime":1,"maxTime":2,"version":2}"#,
        )
        .unwrap();
        assert!(BlockMeta::read(d.path())
            .unwrap_err()
            .to_string()
            .contains("version"));
    }
}
