//! Errors of object storage: each names the bucket and object key, or the
//! configuration key and line, that failed.

use std::path::PathBuf;

/// An object storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The objstore YAML could not be used.
    #[error("objstore config: {0}")]
    Config(String),
    /// The objstore configuration file could not be read.
    #[error("reading objstore config file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The object does not exist.
    #[error("bucket {bucket}: {operation} {key}: object not found")]
    NotFound {
        /// Bucket name.
        bucket: String,
        /// Operation (`get`, `attributes`…).
        operation: &'static str,
        /// Object key.
        key: String,
    },
    /// Credentials are missing or lack permission (HTTP 401/403).
    #[error("bucket {bucket}: {operation} {key}: access denied: {source}")]
    AccessDenied {
        /// Bucket name.
        bucket: String,
        /// Operation.
        operation: &'static str,
        /// Object key.
        key: String,
        /// The store's error.
        source: Box<object_store::Error>,
    },
    /// Any other store failure, after retries when it was transient.
    #[error("bucket {bucket}: {operation} {key}: {source} (after {attempts} attempt(s))")]
    Store {
        /// Bucket name.
        bucket: String,
        /// Operation.
        operation: &'static str,
        /// Object key (or listed prefix).
        key: String,
        /// Attempts made.
        attempts: u32,
        /// The store's error.
        source: Box<object_store::Error>,
    },
    /// A local file being uploaded or downloaded failed.
    #[error("bucket {bucket}: {operation} {key}: local file {path}: {source}")]
    LocalFile {
        /// Bucket name.
        bucket: String,
        /// Operation.
        operation: &'static str,
        /// Object key.
        key: String,
        /// The local file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An invalid argument, e.g. a range past the end of an object.
    #[error("bucket {bucket}: {operation} {key}: {msg}")]
    Invalid {
        /// Bucket name.
        bucket: String,
        /// Operation.
        operation: &'static str,
        /// Object key.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    /// Whether the object did not exist (Thanos' `IsObjNotFoundErr`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether access was denied (Thanos' `IsAccessDeniedErr`).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Error::AccessDenied { .. })
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
