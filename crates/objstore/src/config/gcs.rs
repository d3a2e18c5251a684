//! `type: GCS` (thanos-io/objstore `providers/gcs`) → `GoogleCloudStorageBuilder`.
//!
//! `service_account` is the JSON key itself (empty: application default
//! credentials). `use_grpc` is refused; `grpc_conn_pool_size` has no effect.
//!
//! Like the Go client library Thanos uses, `STORAGE_EMULATOR_HOST`
//! (`host:port`, or a URL) points the bucket at an emulator: plain HTTP
//! unless a scheme says otherwise, and no credentials.

use object_store::gcp::GoogleCloudStorageBuilder;
use serde::Deserialize;

use super::http::HttpConfig;
use crate::error::{Error, Result};

/// The environment variable that points GCS clients at an emulator.
pub const STORAGE_EMULATOR_HOST: &str = "STORAGE_EMULATOR_HOST";

/// A service account key that tells `object_store` to send no credentials.
const NO_AUTH_KEY: &str =
    r#"{"private_key":"","private_key_id":"","client_email":"","disable_oauth":true}"#;

/// The emulator's base URL for a `STORAGE_EMULATOR_HOST` value.
fn emulator_base_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

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

    /// The `object_store` builder for this configuration, pointed at the
    /// emulator named by `STORAGE_EMULATOR_HOST` when that is set.
    pub fn builder(&self) -> Result<GoogleCloudStorageBuilder> {
        let emulator = std::env::var(STORAGE_EMULATOR_HOST)
            .ok()
            .filter(|h| !h.trim().is_empty());
        self.builder_for(emulator.as_deref())
    }

    /// The builder, against `emulator` (a `STORAGE_EMULATOR_HOST` value)
    /// when given, else against Google Cloud Storage.
    pub fn builder_for(&self, emulator: Option<&str>) -> Result<GoogleCloudStorageBuilder> {
        self.validate()?;
        let mut options = self.http_config.client_options("GCS")?;
        let mut b = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&self.bucket)
            .with_retry(super::retry_config(self.max_retries));
        if let Some(host) = emulator {
            let url = emulator_base_url(host);
            options = options.with_allow_http(url.starts_with("http://"));
            b = b.with_base_url(&url).with_service_account_key(NO_AUTH_KEY);
        } else if !self.service_account.is_empty() {
            b = b.with_service_account_key(&self.service_account);
        }
        Ok(b.with_client_options(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::gcp::GoogleConfigKey;

    #[test]
    fn emulator_host_becomes_a_plain_http_base_url() {
        assert_eq!(emulator_base_url("127.0.0.1:4443"), "http://127.0.0.1:4443");
        assert_eq!(emulator_base_url("https://gcs.local/"), "https://gcs.local");
        let cfg = GcsConfig {
            bucket: "b".into(),
            service_account: "{}".into(),
            ..GcsConfig::default()
        };
        let b = cfg.builder_for(Some("127.0.0.1:4443")).unwrap();
        assert_eq!(
            b.get_config_value(&GoogleConfigKey::BaseUrl).as_deref(),
            Some("http://127.0.0.1:4443")
        );
        // The emulator gets no credentials, whatever the config holds.
        assert_eq!(
            b.get_config_value(&GoogleConfigKey::ServiceAccountKey)
                .as_deref(),
            Some(NO_AUTH_KEY)
        );
    }
}
