//! The write side of the contract (Prometheus `storage.Appendable`/`Appender`):
//! samples are staged in an appender and become visible and durable together on
//! `commit`, or are dropped by `rollback`.

use strata_model::Labels;

/// Why a sample was rejected; the names match Prometheus' errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Older than the series' last sample.
    #[error("out of order sample")]
    OutOfOrder,
    /// Older than the head accepts (before the current block range).
    #[error("out of bounds")]
    OutOfBounds,
    /// Same timestamp as the last sample, different value.
    #[error("duplicate sample for timestamp")]
    DuplicateTimestamp,
    /// Invalid labels (empty, unsorted, duplicate names).
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// The storage failed (e.g. the WAL could not be written).
    #[error("storage: {0}")]
    Storage(String),
}

/// Stages samples until commit.
pub trait Appender: Send {
    /// Stages a float sample for the series `labels`.
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError>;
    /// Makes all staged samples durable and visible. Samples that turn out invalid
    /// at commit are dropped and counted in the returned report.
    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError>;
    /// Drops all staged samples.
    fn rollback(self: Box<Self>);
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Samples stored.
    pub appended: u64,
    /// Series created.
    pub new_series: u64,
    /// Samples rejected as out of order.
    pub out_of_order: u64,
    /// Samples rejected as out of bounds.
    pub out_of_bounds: u64,
    /// Samples rejected as duplicates with another value.
    pub duplicates: u64,
}

/// Anything that accepts writes.
pub trait Appendable: Send + Sync {
    /// A new appender.
    fn appender(&self) -> Box<dyn Appender>;
}
