//! Errors of the compactor; each names the block or group involved.

/// What went wrong while compacting, downsampling or cleaning a bucket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A block's data is unusable (corrupt index or chunks, lying meta.json).
    #[error("block {ulid}: {msg}")]
    Block {
        /// The block.
        ulid: String,
        /// What is wrong.
        msg: String,
    },
    /// A series' chunks overlap where they must not.
    #[error("block {ulid}: found overlapping chunks within series {series}: chunks expected to be ordered by min time and non-overlapping, got: {chunks}")]
    OverlappingChunks {
        /// The block.
        ulid: String,
        /// The series (labels).
        series: String,
        /// The chunks' time ranges.
        chunks: String,
    },
    /// A downsampling step produced an invalid chunk (Thanos' error text).
    #[error("invalid range for downsampled aggregate chunk: mint={mint} maxt={maxt}")]
    InvalidAggrRange {
        /// The chunk's min time.
        mint: i64,
        /// The chunk's max time.
        maxt: i64,
    },
    /// A chunk did not decode.
    #[error(transparent)]
    Chunk(#[from] strata_chunkenc::Error),
    /// Reading or writing a local block failed.
    #[error(transparent)]
    Tsdb(#[from] strata_tsdb::Error),
    /// A bucket or meta.json operation failed.
    #[error(transparent)]
    BlockIo(#[from] strata_block::Error),
    /// Reading through the storage contract failed.
    #[error(transparent)]
    Storage(#[from] strata_storage::Error),
    /// A bucket operation failed.
    #[error(transparent)]
    Objstore(#[from] strata_objstore::Error),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is contradictory (e.g. retention shorter than the
    /// downsampling ranges).
    #[error("{0}")]
    Config(String),
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A problem with block `ulid`.
    pub fn block(ulid: impl ToString, msg: impl Into<String>) -> Self {
        Self::Block {
            ulid: ulid.to_string(),
            msg: msg.into(),
        }
    }
}

/// Result with the compactor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
