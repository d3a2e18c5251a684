//! `type: GCS` (thanos-io/objstore `providers/gcs`) → `GoogleCloudStorageBuilder`.
//!
//! `service_account` is the JSON key itself (empty: application default
//! credentials). `use_grpc` is refused; `grpc_conn_pool_size` has no effect.

use object_store::gcp::GoogleCloudStorageBuilder;
use serde::Deserialize;

use super::http::HttpConfig;
use crate::error::{Error, Result};

/// `type: GCS` configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    /// Bucket name (required).
    #[serde(default)]
    pub bucket: String,
    /// Service account key JSON; empty for default credentials.
    #[serde(default)]
    pub service_account: String,
    /// gRPC transport: refused.
    #[serde(default)]
    pub use_grpc: bool,
    /// gRPC pool size (no effect).
    #[serde(default)]
    pub grpc_conn_pool_size: u32,
    /// HTTP client settings.
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Upload chunk size in bytes (0: default part size).
    #[serde(default)]
    pub chunk_size_bytes: u64,
    /// Retries of the HTTP client itself.
    #[serde(default)]
    pub max_retries: u32,
}

impl GcsConfig {
    /// Thanos' validation, plus what Strata cannot honour.
    pub fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() {
            return Err(Error::Config(
                "GCS: missing Google Cloud Storage bucket name for stored blocks".into(),
            ));
        }
        self.http_config.validate("GCS")?;
        if self.use_grpc {
            return Err(Error::Config(
                "GCS: use_grpc: true is not supported; remove it to use the JSON API".into(),
            ));
        }
        Ok(())
    }

    /// The `object_store` builder for this configuration.
    pub fn builder(&self) -> Result<GoogleCloudStorageBuilder> {
        self.validate()?;
        let mut b = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&self.bucket)
            .with_client_options(self.http_config.client_options("GCS")?)
            .with_retry(super::retry_config(self.max_retries));
        if !self.service_account.is_empty() {
            b = b.with_service_account_key(&self.service_account);
        }
        Ok(b)
    }
}
