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
}

/// Result with the model [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
