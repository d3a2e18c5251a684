//! Configuration errors.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys; the message names the key and
    /// the line.
    #[error("parsing YAML{}: {message}", file_suffix(path))]
    Yaml {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// What serde_yaml reported (key, line and column included).
        message: String,
    },
    /// A value is well-formed YAML but not acceptable.
    #[error("invalid configuration{}: {message}", file_suffix(path))]
    Invalid {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// What is wrong.
        message: String,
    },
    /// A duration is not in Prometheus duration syntax.
    #[error("{0}")]
    Duration(String),
}

fn file_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" file {}", p.display()),
        None => String::new(),
    }
}

/// Result with the configuration [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
