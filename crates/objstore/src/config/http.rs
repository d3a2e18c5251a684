//! `http_config` (thanos-io/objstore `exthttp.HTTPConfig`) and its mapping onto
//! `object_store::ClientOptions`.
//!
//! Mapping: `idle_conn_timeout` → pool idle timeout; `response_header_timeout`
//! → read timeout; `tls_handshake_timeout` → connect timeout;
//! `max_idle_conns_per_host` → pool size per host; `insecure_skip_verify` (here
//! or in `tls_config`) → accept invalid certificates; `tls_config.ca_file` → an
//! extra root certificate. Accepted but without effect (reqwest has no
//! equivalent): `expect_continue_timeout`, `max_idle_conns`,
//! `max_conns_per_host`, `disable_compression`, `tls_config.server_name`.
//! Client certificates (`cert_file`, `key_file`) are refused.

use std::time::Duration;

use object_store::{Certificate, ClientOptions};
use serde::Deserialize;

use crate::duration::de_opt_duration;
use crate::error::{Error, Result};

/// `http_config.tls_config`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle (PEM) to trust in addition to the system roots.
    #[serde(default)]
    pub ca_file: String,
    /// Client certificate (not supported).
    #[serde(default)]
    pub cert_file: String,
    /// Client key (not supported).
    #[serde(default)]
    pub key_file: String,
    /// Server name for SNI (no effect).
    #[serde(default)]
    pub server_name: String,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `http_config`: timeouts and connection pool settings. `None` durations take
/// Thanos' defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Idle connection timeout (default 1m30s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub idle_conn_timeout: Option<Duration>,
    /// Time to wait for response headers (default 2m).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub response_header_timeout: Option<Duration>,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// TLS handshake timeout (default 10s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub tls_handshake_timeout: Option<Duration>,
    /// `Expect: 100-continue` timeout (no effect).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub expect_continue_timeout: Option<Duration>,
    /// Idle connections in total (no effect).
    #[serde(default)]
    pub max_idle_conns: Option<u32>,
    /// Idle connections per host (default 100).
    #[serde(default)]
    pub max_idle_conns_per_host: Option<u32>,
    /// Connections per host (no effect).
    #[serde(default)]
    pub max_conns_per_host: Option<u32>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// Disable compression (no effect).
    #[serde(default)]
    pub disable_compression: bool,
}

/// Thanos' default idle connection timeout.
pub const DEFAULT_IDLE_CONN_TIMEOUT: Duration = Duration::from_secs(90);
/// Thanos' default response header timeout.
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(120);
/// Thanos' default TLS handshake timeout.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpConfig {
    /// Refuses what cannot be honoured (client certificates).
    pub fn validate(&self, provider: &str) -> Result<()> {
        if !self.tls_config.cert_file.is_empty() || !self.tls_config.key_file.is_empty() {
            return Err(Error::Config(format!(
                "{provider}: http_config.tls_config.cert_file/key_file (client certificates) are not supported"
            )));
        }
        Ok(())
    }

    /// The `object_store` client options this configuration stands for.
    pub fn client_options(&self, provider: &str) -> Result<ClientOptions> {
        self.validate(provider)?;
        let mut o = ClientOptions::new()
            .with_pool_idle_timeout(self.idle_conn_timeout.unwrap_or(DEFAULT_IDLE_CONN_TIMEOUT))
            .with_read_timeout(
                self.response_header_timeout
                    .unwrap_or(DEFAULT_RESPONSE_HEADER_TIMEOUT),
            )
            .with_connect_timeout(
                self.tls_handshake_timeout
                    .unwrap_or(DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            )
            .with_pool_max_idle_per_host(self.max_idle_conns_per_host.unwrap_or(100) as usize)
            // No overall request timeout: large uploads and downloads may take long;
            // the read timeout catches stalled connections.
            .with_timeout_disabled();
        if self.insecure_skip_verify || self.tls_config.insecure_skip_verify {
            o = o.with_allow_invalid_certificates(true);
        }
        if !self.tls_config.ca_file.is_empty() {
            let pem = std::fs::read(&self.tls_config.ca_file).map_err(|e| {
                Error::Config(format!(
                    "{provider}: http_config.tls_config.ca_file {}: {e}",
                    self.tls_config.ca_file
                ))
            })?;
            let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "{provider}: http_config.tls_config.ca_file {}: {e}",
                    self.tls_config.ca_file
                ))
            })?;
            for c in certs {
                o = o.with_root_certificate(c);
            }
        }
        Ok(o)
    }
}
