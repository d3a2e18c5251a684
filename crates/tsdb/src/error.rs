//! Errors of the TSDB: every variant names the file (and offset) involved.

use std::path::PathBuf;

/// What went wrong reading or writing blocks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file's content is invalid.
    #[error("{path}: corrupt at offset {offset}: {msg}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// meta.json is invalid.
    #[error("{path}: invalid meta.json: {msg}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A chunk did not decode.
    #[error("{path}: chunk at ref {chunk_ref:#x}: {source}")]
    Chunk {
        /// The segment file.
        path: PathBuf,
        /// The chunk reference.
        chunk_ref: u64,
        /// The decoding error.
        source: strata_chunkenc::Error,
    },
    /// Writers were called out of order or with invalid data.
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// Backfill input problem.
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Corruption in `path` at `offset`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            msg: msg.into(),
        }
    }
}

impl From<Error> for strata_storage::Error {
    fn from(e: Error) -> Self {
        strata_storage::Error::source(e)
    }
}

/// Result with the TSDB [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
