//! Errors of the store gateway: each names the block (ULID) and the object or
//! file, and the offset where the data was bad.

use std::path::PathBuf;

use ulid::Ulid;

/// A store gateway failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bucket operation failed.
    #[error("block {block}: {what}: {source}")]
    Bucket {
        /// The block.
        block: Ulid,
        /// What was being done.
        what: String,
        /// The bucket's error.
        source: Box<strata_objstore::Error>,
    },
    /// Listing the bucket or reading a block's meta failed.
    #[error(transparent)]
    Block(Box<strata_block::Error>),
    /// Data read from the bucket or the index-header is malformed.
    #[error("block {block}: {object}: corrupt at offset {offset}: {msg}")]
    Corrupt {
        /// The block.
        block: Ulid,
        /// The object (`index`, `chunks/000001`, `index-header`).
        object: String,
        /// Byte offset in that object.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A local file (the index-header) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Invalid configuration (index cache YAML, options).
    #[error("{0}")]
    Config(String),
    /// The memcached client failed.
    #[error("memcached {addr}: {msg}")]
    Memcached {
        /// Server address.
        addr: String,
        /// What failed.
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

    pub(crate) fn corrupt(
        block: Ulid,
        object: impl Into<String>,
        offset: u64,
        msg: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            block,
            object: object.into(),
            offset,
            msg: msg.into(),
        }
    }

    pub(crate) fn bucket(
        block: Ulid,
        what: impl Into<String>,
        source: strata_objstore::Error,
    ) -> Self {
        Error::Bucket {
            block,
            what: what.into(),
            source: Box::new(source),
        }
    }
}

impl From<strata_block::Error> for Error {
    fn from(e: strata_block::Error) -> Self {
        Error::Block(Box::new(e))
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
