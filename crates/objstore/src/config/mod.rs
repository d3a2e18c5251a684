//! Thanos' objstore YAML (`--objstore.config` / `--objstore.config-file`):
//! top-level `type`, `config` and `prefix`, parsed strictly (an unknown key is
//! an error naming the key and its line), and mapped onto `object_store` builders.
//!
//! Supported types: `FILESYSTEM`, `S3`, `GCS`, `AZURE` (the type is
//! case-insensitive). The other Thanos types (`SWIFT`, `COS`, `ALIYUNOSS`, `BOS`,
//! `OCI`, `OBS`) are refused with an error that says so.

mod azure;
mod gcs;
mod http;
mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

pub use azure::{AzureConfig, PipelineConfig, ReaderConfig};
pub use gcs::{GcsConfig, STORAGE_EMULATOR_HOST};
pub use http::{HttpConfig, TlsConfig};
pub use s3::{S3Config, SseConfig, TraceConfig};

use crate::error::{Error, Result};

/// Object store types Thanos knows but Strata does not implement.
const UNSUPPORTED_TYPES: [&str; 6] = ["SWIFT", "COS", "ALIYUNOSS", "BOS", "OCI", "OBS"];

/// `type: FILESYSTEM` configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    /// Root directory of the bucket (required); created when missing.
    #[serde(default)]
    pub directory: String,
}

/// The provider part of the configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderConfig {
    /// A local directory.
    Filesystem(FilesystemConfig),
    /// Amazon S3 or an S3-compatible store.
    S3(S3Config),
    /// Google Cloud Storage.
    Gcs(GcsConfig),
    /// Azure Blob Storage.
    Azure(AzureConfig),
}

impl ProviderConfig {
    /// The Thanos type name (`FILESYSTEM`, `S3`, `GCS`, `AZURE`).
    pub fn type_name(&self) -> &'static str {
        match self {
            ProviderConfig::Filesystem(_) => "FILESYSTEM",
            ProviderConfig::S3(_) => "S3",
            ProviderConfig::Gcs(_) => "GCS",
            ProviderConfig::Azure(_) => "AZURE",
        }
    }
}

/// A parsed objstore YAML document.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketConfig {
    /// The provider and its settings.
    pub provider: ProviderConfig,
    /// Put in front of every object key (`prefix:`); empty for none.
    pub prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    config: IgnoredAny,
    #[serde(default)]
    prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Typed<T> {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: IgnoredAny,
    #[serde(default = "Option::default")]
    config: Option<T>,
    #[serde(default)]
    #[allow(dead_code)]
    prefix: IgnoredAny,
}

fn typed<T: DeserializeOwned + Default>(yaml: &str) -> Result<T> {
    let t: Typed<T> = serde_yaml::from_str(yaml).map_err(|e| Error::Config(e.to_string()))?;
    Ok(t.config.unwrap_or_default())
}

impl BucketConfig {
    /// A `FILESYSTEM` bucket rooted at `dir` (Strata's embedded default).
    pub fn filesystem(dir: impl Into<String>) -> Self {
        Self {
            provider: ProviderConfig::Filesystem(FilesystemConfig {
                directory: dir.into(),
            }),
            prefix: String::new(),
        }
    }

    /// Parses and validates an objstore YAML document.
    pub fn parse(yaml: &str) -> Result<Self> {
        let top: Top = serde_yaml::from_str(yaml).map_err(|e| Error::Config(e.to_string()))?;
        let kind = top.kind.to_ascii_uppercase();
        let provider = match kind.as_str() {
            "FILESYSTEM" => ProviderConfig::Filesystem(typed(yaml)?),
            "S3" => ProviderConfig::S3(typed(yaml)?),
            "GCS" => ProviderConfig::Gcs(typed(yaml)?),
            "AZURE" => ProviderConfig::Azure(typed(yaml)?),
            k if UNSUPPORTED_TYPES.contains(&k) => {
                return Err(Error::Config(format!(
                    "type {} is not supported by Strata (supported: FILESYSTEM, S3, GCS, AZURE)",
                    top.kind
                )))
            }
            _ => {
                return Err(Error::Config(format!(
                    "unknown type {:?} (supported: FILESYSTEM, S3, GCS, AZURE)",
                    top.kind
                )))
            }
        };
        let cfg = Self {
            provider,
            prefix: top.prefix,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses an objstore YAML file (`--objstore.config-file`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Checks the rules Thanos checks (required fields, exclusive fields).
    pub fn validate(&self) -> Result<()> {
        match &self.provider {
            ProviderConfig::Filesystem(c) => {
                if c.directory.is_empty() {
                    return Err(Error::Config(
                        "FILESYSTEM: missing directory for local filesystem bucket".into(),
                    ));
                }
                Ok(())
            }
            ProviderConfig::S3(c) => c.validate(),
            ProviderConfig::Gcs(c) => c.validate(),
            ProviderConfig::Azure(c) => c.validate(),
        }
    }

    /// The bucket's name as Thanos reports it in the `bucket` metric label:
    /// the bucket or container name, or `fs: <directory>`.
    pub fn name(&self) -> String {
        match &self.provider {
            ProviderConfig::Filesystem(c) => format!("fs: {}", c.directory),
            ProviderConfig::S3(c) => c.bucket.clone(),
            ProviderConfig::Gcs(c) => c.bucket.clone(),
            ProviderConfig::Azure(c) => c.container.clone(),
        }
    }

    /// Builds the store (with `prefix` applied). Creates a FILESYSTEM directory
    /// when missing. Network stores connect lazily, on first use.
    pub fn build_store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.validate()?;
        let store: Arc<dyn ObjectStore> = match &self.provider {
            ProviderConfig::Filesystem(c) => Arc::new(filesystem_store(&c.directory)?),
            ProviderConfig::S3(c) => Arc::new(
                c.builder()?
                    .build()
                    .map_err(|e| Error::Config(format!("S3: {e}")))?,
            ),
            ProviderConfig::Gcs(c) => Arc::new(
                c.builder()?
                    .build()
                    .map_err(|e| Error::Config(format!("GCS: {e}")))?,
            ),
            ProviderConfig::Azure(c) => Arc::new(
                c.builder()?
                    .build()
                    .map_err(|e| Error::Config(format!("AZURE: {e}")))?,
            ),
        };
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            Ok(store)
        } else {
            Ok(Arc::new(PrefixStore::new(store, prefix)))
        }
    }

    /// The multipart part size to use for large uploads (S3 `part_size`, else 64 MiB).
    pub fn part_size(&self) -> u64 {
        match &self.provider {
            ProviderConfig::S3(c) if c.part_size > 0 => c.part_size,
            ProviderConfig::Gcs(c) if c.chunk_size_bytes > 0 => c.chunk_size_bytes,
            _ => s3::DEFAULT_PART_SIZE,
        }
    }

    /// Whether multipart uploads are disabled (S3 `disable_multipart`).
    pub fn multipart_disabled(&self) -> bool {
        matches!(&self.provider, ProviderConfig::S3(c) if c.disable_multipart)
    }
}

fn filesystem_store(dir: &str) -> Result<LocalFileSystem> {
    let path = PathBuf::from(dir);
    std::fs::create_dir_all(&path)
        .map_err(|e| Error::Config(format!("FILESYSTEM: creating directory {dir}: {e}")))?;
    // Deleting an object removes the directories it leaves empty, as Thanos'
    // filesystem bucket does: an emptied block prefix is no longer listed.
    LocalFileSystem::new_with_prefix(&path)
        .map(|s| s.with_automatic_cleanup(true))
        .map_err(|e| Error::Config(format!("FILESYSTEM: directory {dir}: {e}")))
}

/// Retry settings for the store's own HTTP client: `max_retries` of the YAML
/// (0 = none: the [`crate::Bucket`] retries whole operations itself).
pub(crate) fn retry_config(max_retries: u32) -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: max_retries as usize,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
