//! Errors of the sidecar; each names the Prometheus URL, file or block involved.

/// A sidecar failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to Prometheus failed (connection, status or body).
    #[error("{url}: {msg}")]
    Prometheus {
        /// The URL asked.
        url: String,
        /// What went wrong.
        msg: String,
    },
    /// Prometheus has no external labels: blocks could not be told apart.
    #[error("no external labels configured on Prometheus server, uniquely identifying external labels must be configured; see https://thanos.io/tip/thanos/storage.md#external-labels for details")]
    NoExternalLabels,
    /// Prometheus compacts blocks, so the sidecar would upload overlapping data.
    #[error("found that TSDB Max time is {max} and Min time is {min}. Compaction needs to be disabled (storage.tsdb.min-block-duration = storage.tsdb.max-block-duration)")]
    CompactionEnabled {
        /// `storage.tsdb.min-block-duration`.
        min: String,
        /// `storage.tsdb.max-block-duration`.
        max: String,
    },
    /// Prometheus did not answer in time.
    #[error("{what}: no success within {timeout_secs}s; last error: {last}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The limit, seconds.
        timeout_secs: u64,
        /// The last failure.
        last: String,
    },
    /// The remote read client could not be built.
    #[error(transparent)]
    ReadClient(#[from] strata_remote::ReadClientError),
    /// The object store could not be set up.
    #[error(transparent)]
    Objstore(#[from] strata_objstore::Error),
    /// Shipping blocks failed.
    #[error(transparent)]
    Block(#[from] strata_block::Error),
    /// The sidecar was stopped while starting.
    #[error("stopped while starting")]
    Canceled,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
