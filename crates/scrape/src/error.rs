//! Scrape errors.

/// Why applying a configuration or a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scrape pool's HTTP client could not be built (TLS files, proxy URL, ...).
    #[error("scrape pool {job:?}: {message}")]
    Client {
        /// The job.
        job: String,
        /// What failed.
        message: String,
    },
}

/// Result with the scrape [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one scrape failed; the message is what `/api/v1/targets` shows as
/// `lastError` (Prometheus' wording where it has one).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    /// The request failed below HTTP (connection refused, reset, TLS, ...).
    #[error("Get {url:?}: {message}")]
    Http {
        /// The scrape URL.
        url: String,
        /// The client's message.
        message: String,
    },
    /// The scrape took longer than `scrape_timeout`.
    #[error("Get {url:?}: context deadline exceeded (scrape timeout {timeout_ms}ms)")]
    Timeout {
        /// The scrape URL.
        url: String,
        /// The timeout.
        timeout_ms: i64,
    },
    /// The target answered with a status other than 200.
    #[error("server returned HTTP status {0}")]
    Status(String),
    /// The (uncompressed) body exceeded `body_size_limit`.
    #[error("body size limit exceeded (limit: {0} bytes)")]
    BodySizeLimit(u64),
    /// The Content-Type is missing or not a text format, and no fallback is set.
    #[error("received unsupported Content-Type {0:?} and no fallback_scrape_protocol specified for target")]
    ContentType(String),
    /// The exposition did not parse.
    #[error("parsing exposition: {0}")]
    Parse(String),
    /// More samples than `sample_limit` after metric relabeling.
    #[error("sample limit exceeded (samples: {samples}, limit: {limit})")]
    SampleLimit {
        /// Samples after relabeling.
        samples: u64,
        /// The limit.
        limit: u64,
    },
    /// A sample broke `label_limit`, `label_name_length_limit` or
    /// `label_value_length_limit`.
    #[error("{0}")]
    LabelLimit(String),
    /// A sample has no metric name after relabeling.
    #[error("missing metric name (__name__ label) for series {0}")]
    NoMetricName(String),
    /// More targets than `target_limit`.
    #[error("target_limit exceeded (number of targets: {targets}, limit: {limit})")]
    TargetLimit {
        /// Active targets in the pool.
        targets: usize,
        /// The limit.
        limit: u64,
    },
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(String),
}
