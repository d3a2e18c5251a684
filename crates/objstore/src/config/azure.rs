//! `type: AZURE` (thanos-io/objstore `providers/azure`) → `MicrosoftAzureBuilder`.
//!
//! Credentials, in Thanos' order: `storage_connection_string` (its
//! `AccountName`, `AccountKey` and `BlobEndpoint`), `storage_account_key`,
//! `client_id` + `client_secret` + `az_tenant_id`, `user_assigned_id` (managed
//! identity), else the builder's default (managed identity / environment). The
//! endpoint is `https://<storage_account>.<endpoint>`.
//! `storage_create_container` has no effect: the container must exist.

use std::time::Duration;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use serde::Deserialize;

use super::http::HttpConfig;
use crate::duration::de_opt_duration;
use crate::error::{Error, Result};

fn default_true() -> bool {
    true
}

fn default_endpoint() -> String {
    "blob.core.windows.net".into()
}

/// `pipeline_config:` retry settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Attempts per request (filled from `max_retries` when 0).
    #[serde(default)]
    pub max_tries: i32,
    /// Timeout per try.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub try_timeout: Option<Duration>,
    /// First retry delay.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub retry_delay: Option<Duration>,
    /// Largest retry delay.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub max_retry_delay: Option<Duration>,
}

/// `reader_config:` settings for downloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Retries of a broken download stream (filled from `max_retries` when 0).
    #[serde(default)]
    pub max_retry_requests: i32,
}

/// `type: AZURE` configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Tenant of the service principal.
    #[serde(default)]
    pub az_tenant_id: String,
    /// Service principal or managed identity client id.
    #[serde(default)]
    pub client_id: String,
    /// Service principal secret.
    #[serde(default)]
    pub client_secret: String,
    /// Storage account name.
    #[serde(default)]
    pub storage_account: String,
    /// Storage account key.
    #[serde(default)]
    pub storage_account_key: String,
    /// Connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…`).
    #[serde(default)]
    pub storage_connection_string: String,
    /// Create the container when missing (no effect).
    #[serde(default = "default_true")]
    pub storage_create_container: bool,
    /// Container name (required).
    #[serde(default)]
    pub container: String,
    /// Endpoint suffix (default `blob.core.windows.net`).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// User-assigned managed identity client id.
    #[serde(default)]
    pub user_assigned_id: String,
    /// Retries; fills `pipeline_config.max_tries` and
    /// `reader_config.max_retry_requests` when those are 0.
    #[serde(default)]
    pub max_retries: i32,
    /// Retry settings.
    #[serde(default)]
    pub pipeline_config: PipelineConfig,
    /// Download retry settings.
    #[serde(default)]
    pub reader_config: ReaderConfig,
    /// HTTP client settings.
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Managed identity resource (no effect).
    #[serde(default)]
    pub msi_resource: String,
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            az_tenant_id: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            storage_account: String::new(),
            storage_account_key: String::new(),
            storage_connection_string: String::new(),
            storage_create_container: true,
            container: String::new(),
            endpoint: default_endpoint(),
            user_assigned_id: String::new(),
            max_retries: 0,
            pipeline_config: PipelineConfig::default(),
            reader_config: ReaderConfig::default(),
            http_config: HttpConfig::default(),
            msi_resource: String::new(),
        }
    }
}

fn err(msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("AZURE: {msg}"))
}

/// The parts of an Azure connection string that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionString {
    pub account: Option<String>,
    pub key: Option<String>,
    pub blob_endpoint: Option<String>,
}

pub(crate) fn parse_connection_string(s: &str) -> Result<ConnectionString> {
    let mut out = ConnectionString::default();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            err(format!(
                "storage_connection_string: malformed part {part:?}"
            ))
        })?;
        match k {
            "AccountName" => out.account = Some(v.to_string()),
            "AccountKey" => out.key = Some(v.to_string()),
            "BlobEndpoint" => out.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
            _ => {}
        }
    }
    Ok(out)
}

impl AzureConfig {
    /// The effective `pipeline_config.max_tries`.
    pub fn max_tries(&self) -> i32 {
        if self.pipeline_config.max_tries == 0 {
            self.max_retries
        } else {
            self.pipeline_config.max_tries
        }
    }

    /// Thanos' validation.
    pub fn validate(&self) -> Result<()> {
        if !self.user_assigned_id.is_empty()
            && (!self.storage_account_key.is_empty()
                || !self.storage_connection_string.is_empty()
                || !self.client_id.is_empty())
        {
            return Err(err(
                "user_assigned_id cannot be set when using storage_account_key, storage_connection_string or client_id authentication",
            ));
        }
        if !self.storage_account_key.is_empty() && !self.storage_connection_string.is_empty() {
            return Err(err(
                "storage_account_key and storage_connection_string cannot both be set",
            ));
        }
        if self.storage_connection_string.is_empty() && self.storage_account.is_empty() {
            return Err(err("storage_account is required"));
        }
        self.http_config.validate("AZURE")?;
        if self.container.is_empty() {
            return Err(err("no container specified"));
        }
        if self.pipeline_config.max_tries < 0 || self.max_retries < 0 {
            return Err(err("max_tries and max_retries must not be negative"));
        }
        Ok(())
    }

    /// The `object_store` builder for this configuration.
    pub fn builder(&self) -> Result<MicrosoftAzureBuilder> {
        self.validate()?;
        let mut account = self.storage_account.clone();
        let mut key = self.storage_account_key.clone();
        let mut endpoint = None;
        if !self.storage_connection_string.is_empty() {
            let cs = parse_connection_string(&self.storage_connection_string)?;
            if let Some(a) = cs.account {
                account = a;
            }
            if let Some(k) = cs.key {
                key = k;
            }
            endpoint = cs.blob_endpoint;
        }
        if account.is_empty() {
            return Err(err("storage_connection_string has no AccountName"));
        }
        let endpoint = endpoint.unwrap_or_else(|| format!("https://{account}.{}", self.endpoint));
        let mut b = MicrosoftAzureBuilder::new()
            .with_client_options(self.http_config.client_options("AZURE")?)
            .with_account(&account)
            .with_container_name(&self.container)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint)
            .with_retry(super::retry_config(self.max_tries().max(0) as u32));
        if !key.is_empty() {
            b = b.with_access_key(key);
        } else if !self.client_id.is_empty() && !self.client_secret.is_empty() {
            b = b.with_client_secret_authorization(
                &self.client_id,
                &self.client_secret,
                &self.az_tenant_id,
            );
        } else if !self.user_assigned_id.is_empty() {
            b = b.with_client_id(&self.user_assigned_id);
        } else if !self.client_id.is_empty() {
            b = b.with_config(AzureConfigKey::ClientId, &self.client_id);
        }
        Ok(b)
    }
}
