//! `type: S3` (thanos-io/objstore `providers/s3`) → `AmazonS3Builder`.
//!
//! `endpoint` is a host (optionally with port) as in Thanos; the URL scheme is
//! `https`, or `http` with `insecure: true`. `bucket_lookup_type: path` uses
//! path-style requests, `virtual-hosted` puts the bucket in the host name, and
//! `auto` does the latter only for `*.amazonaws.com` endpoints. `signature_version2`
//! is refused (only SigV4 is implemented). `put_user_metadata` is applied by the
//! [`crate::Bucket`] to every upload.

use std::collections::BTreeMap;

use object_store::aws::AmazonS3Builder;
use serde::Deserialize;

use super::http::HttpConfig;
use crate::error::{Error, Result};

/// Thanos' default multipart part size (64 MiB).
pub const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;

fn default_true() -> bool {
    true
}

fn default_part_size() -> u64 {
    DEFAULT_PART_SIZE
}

/// `trace:` of the S3 config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Log requests (no effect in Strata; use tracing instead).
    #[serde(default)]
    pub enable: bool,
}

/// `sse_config:` server-side encryption.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseConfig {
    /// `""`, `SSE-S3`, `SSE-KMS` or `SSE-C`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// KMS key for `SSE-KMS`.
    #[serde(default)]
    pub kms_key_id: String,
    /// KMS encryption context (not supported when non-empty).
    #[serde(default)]
    pub kms_encryption_context: BTreeMap<String, String>,
    /// Path of the 32-byte key file for `SSE-C`.
    #[serde(default)]
    pub encryption_key: String,
}

/// `type: S3` configuration; field names and defaults as in Thanos.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name (required).
    #[serde(default)]
    pub bucket: String,
    /// Host[:port] of the S3 API (required).
    #[serde(default)]
    pub endpoint: String,
    /// Region (default `us-east-1` when empty).
    #[serde(default)]
    pub region: String,
    /// Disable dual-stack endpoints (no effect).
    #[serde(default)]
    pub disable_dualstack: bool,
    /// Use the AWS SDK credential chain (the builder's default chain is used).
    #[serde(default)]
    pub aws_sdk_auth: bool,
    /// Access key id.
    #[serde(default)]
    pub access_key: String,
    /// Secret access key.
    #[serde(default)]
    pub secret_key: String,
    /// Session token.
    #[serde(default)]
    pub session_token: String,
    /// Plain HTTP instead of HTTPS.
    #[serde(default)]
    pub insecure: bool,
    /// AWS signature v2: refused.
    #[serde(default)]
    pub signature_version2: bool,
    /// User metadata attached to every uploaded object.
    #[serde(default)]
    pub put_user_metadata: BTreeMap<String, String>,
    /// HTTP client settings.
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Request tracing.
    #[serde(default)]
    pub trace: TraceConfig,
    /// `""`/`v2` or `v1` (object_store always lists with v2).
    #[serde(default)]
    pub list_objects_version: String,
    /// `auto`, `virtual-hosted` or `path`.
    #[serde(default)]
    pub bucket_lookup_type: String,
    /// Send Content-MD5 (no effect; object_store sends checksums as configured).
    #[serde(default = "default_true")]
    pub send_content_md5: bool,
    /// Upload large files in one request.
    #[serde(default)]
    pub disable_multipart: bool,
    /// Multipart part size in bytes.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// Server-side encryption.
    #[serde(default)]
    pub sse_config: SseConfig,
    /// STS endpoint for web identity credentials.
    #[serde(default)]
    pub sts_endpoint: String,
    /// Retries of the HTTP client itself (0: only the Bucket's retries).
    #[serde(default)]
    pub max_retries: u32,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: String::new(),
            region: String::new(),
            disable_dualstack: false,
            aws_sdk_auth: false,
            access_key: String::new(),
            secret_key: String::new(),
            session_token: String::new(),
            insecure: false,
            signature_version2: false,
            put_user_metadata: BTreeMap::new(),
            http_config: HttpConfig::default(),
            trace: TraceConfig::default(),
            list_objects_version: String::new(),
            bucket_lookup_type: String::new(),
            send_content_md5: true,
            disable_multipart: false,
            part_size: DEFAULT_PART_SIZE,
            sse_config: SseConfig::default(),
            sts_endpoint: String::new(),
            max_retries: 0,
        }
    }
}

fn err(msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("S3: {msg}"))
}

impl S3Config {
    /// Thanos' validation, plus the settings Strata cannot honour.
    pub fn validate(&self) -> Result<()> {
        if self.signature_version2 {
            return Err(err(
                "signature_version2: true is not supported (only AWS signature v4 is implemented); remove it",
            ));
        }
        self.http_config.validate("S3")?;
        if self.endpoint.is_empty() {
            return Err(err("no s3 endpoint in config file"));
        }
        if self.bucket.is_empty() {
            return Err(err("missing bucket name"));
        }
        if self.aws_sdk_auth && !self.access_key.is_empty() {
            return Err(err(
                "aws_sdk_auth and access_key are mutually exclusive configurations",
            ));
        }
        if self.access_key.is_empty() != self.secret_key.is_empty() {
            return Err(err(
                "s3 access_key and secret_key must be set together (both or neither)",
            ));
        }
        match self.list_objects_version.as_str() {
            "" | "v1" | "v2" => {}
            v => {
                return Err(err(format!(
                    "initialize s3 client list objects version: {v}"
                )))
            }
        }
        match self.bucket_lookup_type.as_str() {
            "" | "auto" | "virtual-hosted" | "path" => {}
            v => {
                return Err(err(format!(
                    "bucket_lookup_type {v:?} is invalid (auto, virtual-hosted or path)"
                )))
            }
        }
        if self.part_size < 5 * 1024 * 1024 {
            return Err(err(format!(
                "part_size {} is below the S3 minimum of 5 MiB",
                self.part_size
            )));
        }
        match self.sse_config.kind.as_str() {
            "" | "SSE-S3" => {}
            "SSE-KMS" => {
                if self.sse_config.kms_key_id.is_empty() {
                    return Err(err("key id is required for SSE-KMS"));
                }
                if !self.sse_config.kms_encryption_context.is_empty() {
                    return Err(err("sse_config.kms_encryption_context is not supported"));
                }
            }
            "SSE-C" => {
                if self.sse_config.encryption_key.is_empty() {
                    return Err(err("encryption key is required for SSE-C"));
                }
            }
            t => return Err(err(format!("unsupported sse_config type {t:?}"))),
        }
        Ok(())
    }

    /// Whether requests use virtual-hosted style (bucket in the host name).
    pub fn virtual_hosted(&self) -> bool {
        match self.bucket_lookup_type.as_str() {
            "virtual-hosted" => true,
            "path" => false,
            _ => {
                let host = self.endpoint.split(':').next().unwrap_or("");
                host.ends_with("amazonaws.com")
            }
        }
    }

    /// The endpoint URL given to the builder.
    pub fn endpoint_url(&self) -> String {
        let scheme = if self.insecure { "http" } else { "https" };
        if self.virtual_hosted() {
            format!("{scheme}://{}.{}", self.bucket, self.endpoint)
        } else {
            format!("{scheme}://{}", self.endpoint)
        }
    }

    /// The `object_store` builder for this configuration.
    pub fn builder(&self) -> Result<AmazonS3Builder> {
        self.validate()?;
        let mut b = AmazonS3Builder::new()
            .with_client_options(self.http_config.client_options("S3")?)
            .with_bucket_name(&self.bucket)
            .with_endpoint(self.endpoint_url())
            .with_region(if self.region.is_empty() {
                "us-east-1"
            } else {
                &self.region
            })
            .with_allow_http(self.insecure)
            .with_virtual_hosted_style_request(self.virtual_hosted())
            .with_retry(super::retry_config(self.max_retries));
        if !self.access_key.is_empty() {
            b = b
                .with_access_key_id(&self.access_key)
                .with_secret_access_key(&self.secret_key);
        }
        if !self.session_token.is_empty() {
            b = b.with_token(&self.session_token);
        }
        if !self.sts_endpoint.is_empty() {
            b = b.with_config(
                object_store::aws::AmazonS3ConfigKey::StsEndpoint,
                &self.sts_endpoint,
            );
        }
        match self.sse_config.kind.as_str() {
            "SSE-KMS" => b = b.with_sse_kms_encryption(&self.sse_config.kms_key_id),
            "SSE-C" => {
                let key = std::fs::read(&self.sse_config.encryption_key).map_err(|e| {
                    err(format!(
                        "sse_config.encryption_key {}: {e}",
                        self.sse_config.encryption_key
                    ))
                })?;
                b = b.with_ssec_encryption(base64_encode(&key));
            }
            _ => {}
        }
        Ok(b)
    }
}

/// Standard base64 with padding (for the SSE-C key).
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[test]
fn base64_matches_rfc4648() {
    assert_eq!(base64_encode(b""), "");
    assert_eq!(base64_encode(b"f"), "Zg==");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_encode(b"foo"), "Zm9v");
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
}
