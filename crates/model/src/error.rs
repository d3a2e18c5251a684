//! Errors of the model crate.

/// What went wrong building labels, matchers or parsing exposition text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A matcher's regex did not compile.
    #[error("invalid regex {regex:?}: {msg}")]
    Regex {
        /// The regex as written.
        regex: String,
        /// The compiler's message.
        msg: String,
    },
    /// Exposition text (Prometheus text 0.0.4 or OpenMetrics 1.0) is malformed.
    ///
    /// Displays as `line 12: expected label value, got "x" (column 17)`.
    #[error("line {line}: {msg} (column {col})")]
    Parse {
        /// 1-based line number of the offending line.
        line: usize,
        /// 1-based byte column within that line where the problem was found.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// A series selector did not parse.
    #[error("invalid series selector {selector:?} at position {pos}: {msg}")]
    Selector {
        /// The selector as written.
        selector: String,
        /// Byte offset of the problem.
        pos: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Result with the model [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
