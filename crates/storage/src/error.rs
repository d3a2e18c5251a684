//! Errors crossing the storage contract.

/// A failure reading from a [`crate::Queryable`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Corrupt or unsupported chunk data.
    #[error(transparent)]
    Chunk(#[from] strata_chunkenc::Error),
    /// The request itself is invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A configured limit was hit.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// A source could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The query was canceled.
    #[error("canceled")]
    Canceled,
    /// A source failed; the message names what and where.
    #[error("{0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps any source error.
    pub fn source(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Source(Box::new(e))
    }
}

/// Result with the storage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
