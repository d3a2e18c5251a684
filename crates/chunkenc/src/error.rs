//! Errors of chunk encoding and decoding.

/// What went wrong encoding or decoding a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The data ended before the announced samples were read.
    #[error("chunk data truncated")]
    Truncated,
    /// The data is not a valid encoding.
    #[error("corrupt chunk data: {0}")]
    Corrupt(&'static str),
    /// An encoding byte no Prometheus version writes.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    /// A known encoding this build cannot decode yet.
    #[error("chunk encoding {0} is not supported yet (native histograms are not implemented)")]
    Unsupported(crate::Encoding),
    /// A sample older than the previous one.
    #[error("out-of-order sample: timestamp {t} after {last}")]
    OutOfOrder {
        /// The rejected timestamp.
        t: i64,
        /// The chunk's last timestamp.
        last: i64,
    },
    /// The chunk already holds the maximum of 65535 samples.
    #[error("chunk is full")]
    ChunkFull,
}

/// Result with the chunk [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
