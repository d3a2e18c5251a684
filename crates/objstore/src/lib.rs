//! Object storage for Strata (mirrors thanos-io/objstore).
//!
//! It owns two things: the objstore YAML that every Thanos component takes
//! (`--objstore.config-file` / `--objstore.config`), parsed strictly into a
//! [`BucketConfig`], and the [`Bucket`], Thanos' `objstore.Bucket` operations
//! (`iter`, `get`, `get_range`, `exists`, `upload`, `delete`, `attributes`) over
//! any [`object_store::ObjectStore`].
//!
//! Why a wrapper and not `object_store` directly: every operation is counted
//! and timed under Thanos' metric names (dashboards expect
//! `thanos_objstore_bucket_operations_total{bucket,operation}` and friends),
//! transient failures (5xx, throttling, timeouts, resets) are retried with
//! exponential backoff while 404/403 are not, errors name the bucket and key,
//! and large files are uploaded in parts, streaming from disk with bounded memory.
//!
//! Providers: `FILESYSTEM` (the default, a local directory), `S3`, `GCS` and
//! `AZURE`. The S3, GCS and Azure mappings onto the `object_store` builders are
//! unit-tested; they have not been run against the real services.

mod bucket;
pub mod config;
mod duration;
pub mod error;
mod metrics;
mod retry;
pub mod testing;

pub use bucket::{Bucket, BucketOptions, ObjectAttributes, DEFAULT_MULTIPART_THRESHOLD};
pub use config::{BucketConfig, ProviderConfig, STORAGE_EMULATOR_HOST};
pub use duration::parse_duration;
pub use error::{Error, Result};
pub use metrics::OPERATIONS;
pub use retry::{is_retryable, RetryPolicy};
