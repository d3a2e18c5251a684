//! Errors of endpoint discovery and of the querier's configuration.

/// A failure discovering or configuring StoreAPI endpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint address (flag, SD config or SD file entry) is malformed.
    #[error("invalid endpoint address {addr:?}: {msg}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A DNS lookup failed.
    #[error("DNS lookup of {name:?} ({kind}) failed: {msg}")]
    Dns {
        /// The name looked up.
        name: String,
        /// `A/AAAA` or `SRV`.
        kind: &'static str,
        /// The resolver's message.
        msg: String,
    },
    /// An `--endpoint.sd-config` document could not be parsed.
    #[error("parsing endpoint SD config {origin}: {msg}")]
    SdConfig {
        /// The file path, or `--endpoint.sd-config`.
        origin: String,
        /// The parser's message.
        msg: String,
    },
    /// A `--store.sd-files` file could not be read or parsed.
    #[error("reading file SD {path}: {msg}")]
    SdFile {
        /// The file path.
        path: String,
        /// What failed.
        msg: String,
    },
}

/// Result with the query [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
