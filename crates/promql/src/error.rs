//! Query errors, each mapped to the HTTP API's `errorType`.

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query did not parse; the message carries the parser's position.
    #[error("{0}")]
    Parse(String),
    /// A runtime error (e.g. many-to-many matching, duplicate series).
    #[error("{0}")]
    Execution(String),
    /// `--query.max-samples` was exceeded.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// `--query.timeout` was exceeded.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The query was canceled.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// A feature not implemented yet (e.g. native histograms).
    #[error("{0}")]
    Unsupported(String),
    /// The storage failed.
    #[error("{0}")]
    Storage(#[from] strata_storage::Error),
}

impl Error {
    /// The HTTP API `errorType`: `bad_data`, `execution`, `timeout`, `canceled`,
    /// `internal`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Parse(_) => "bad_data",
            Error::Execution(_) | Error::TooManySamples(_) | Error::Unsupported(_) => "execution",
            Error::Timeout(_) => "timeout",
            Error::Canceled(_) => "canceled",
            Error::Storage(_) => "internal",
        }
    }
}

/// Result with the query [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
