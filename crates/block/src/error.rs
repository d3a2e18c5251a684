//! Errors of block handling; each names the block (ULID or directory) and the
//! file or object that failed.

use std::path::PathBuf;

/// A block operation failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bucket operation failed (the error names bucket and key).
    #[error("block {ulid}: {what}: {source}")]
    Bucket {
        /// The block.
        ulid: String,
        /// What was being done (`upload chunks`, `download meta.json`…).
        what: String,
        /// The bucket's error.
        source: Box<strata_objstore::Error>,
    },
    /// A bucket operation not tied to one block failed.
    #[error(transparent)]
    Objstore(Box<strata_objstore::Error>),
    /// Reading the block's local `meta.json` failed.
    #[error(transparent)]
    Tsdb(#[from] strata_tsdb::Error),
    /// A compacted block overlaps blocks already in the bucket (with the same
    /// external labels): uploading it would duplicate their data.
    #[error(
        "shipping compacted block {ulid} {range} is blocked: it overlaps {with} in the bucket"
    )]
    Overlap {
        /// The local block.
        ulid: String,
        /// Its time range, ms.
        range: String,
        /// The overlapping bucket blocks and their ranges.
        with: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `meta.json` (or a marker) is malformed or unsupported.
    #[error("block {ulid}: {file}: {msg}")]
    Meta {
        /// The block.
        ulid: String,
        /// The file (`meta.json`, `deletion-mark.json`…).
        file: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The directory is not a usable block.
    #[error("block directory {path}: {msg}")]
    InvalidBlock {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The shipper's state file is malformed.
    #[error("shipper state file {path}: {msg}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bucket(
        ulid: impl ToString,
        what: impl Into<String>,
        source: strata_objstore::Error,
    ) -> Self {
        Error::Bucket {
            ulid: ulid.to_string(),
            what: what.into(),
            source: Box::new(source),
        }
    }
}

impl From<strata_objstore::Error> for Error {
    fn from(e: strata_objstore::Error) -> Self {
        Error::Objstore(Box::new(e))
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
