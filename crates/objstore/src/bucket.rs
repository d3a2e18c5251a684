//! [`Bucket`]: Thanos' `objstore.Bucket` operations over any `ObjectStore`, with
//! retries and metrics. Keys are `/`-separated object names relative to the
//! bucket (and its configured prefix).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload,
};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use crate::config::BucketConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::retry::{is_retryable, RetryPolicy};

/// Default size above which files are uploaded in parts, and the part size (64 MiB).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;

/// Tuning of a [`Bucket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketOptions {
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Files larger than this are uploaded with a multipart upload.
    pub multipart_threshold: u64,
    /// Size of each part of a multipart upload; also the most memory one
    /// upload holds.
    pub part_size: u64,
    /// User metadata put on every uploaded object (S3 `put_user_metadata`).
    pub user_metadata: BTreeMap<String, String>,
}

impl Default for BucketOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_MULTIPART_THRESHOLD,
            user_metadata: BTreeMap::new(),
        }
    }
}

/// An object's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectAttributes {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: SystemTime,
}

/// A failed attempt, before it is turned into an [`Error`].
enum Failure {
    Store(object_store::Error),
    Local(PathBuf, std::io::Error),
    Invalid(String),
}

impl From<object_store::Error> for Failure {
    fn from(e: object_store::Error) -> Self {
        Failure::Store(e)
    }
}

type Attempt<T> = std::result::Result<T, Failure>;

struct Inner {
    store: Arc<dyn ObjectStore>,
    name: String,
    opts: BucketOptions,
    metrics: Metrics,
}

/// A bucket: cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Bucket {
    inner: Arc<Inner>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.inner.name)
            .field("store", &self.inner.store.to_string())
            .finish()
    }
}

fn parse_key(key: &str) -> Attempt<Path> {
    Path::parse(key.trim_matches('/')).map_err(|e| Failure::Invalid(format!("invalid key: {e}")))
}

/// Whether a store error that `object_store` left generic (its S3 list and
/// multipart paths do) carries an HTTP 401 or 403 from the server.
fn denied_status(e: &object_store::Error) -> bool {
    if !matches!(e, object_store::Error::Generic { .. }) {
        return false;
    }
    let mut msg = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    msg.contains("403 Forbidden") || msg.contains("401 Unauthorized")
}

impl Bucket {
    /// Wraps `store`; `name` is the `bucket` metric label. Registers Thanos'
    /// bucket metrics in `registry`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        name: impl Into<String>,
        opts: BucketOptions,
        registry: &mut Registry,
    ) -> Self {
        let name = name.into();
        let metrics = Metrics::new(&name, registry);
        Self {
            inner: Arc::new(Inner {
                store,
                name,
                opts,
                metrics,
            }),
        }
    }

    /// Builds the store an objstore YAML describes, with default retries.
    pub fn from_config(cfg: &BucketConfig, registry: &mut Registry) -> Result<Self> {
        let store = cfg.build_store()?;
        let mut opts = BucketOptions {
            part_size: cfg.part_size(),
            multipart_threshold: cfg.part_size(),
            ..BucketOptions::default()
        };
        if cfg.multipart_disabled() {
            opts.multipart_threshold = u64::MAX;
        }
        if let crate::config::ProviderConfig::S3(s3) = &cfg.provider {
            opts.user_metadata = s3.put_user_metadata.clone();
        }
        Ok(Self::new(store, cfg.name(), opts, registry))
    }

    /// The bucket's name (the `bucket` metric label).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    fn error(&self, operation: &'static str, key: &str, attempts: u32, f: Failure) -> Error {
        let bucket = self.inner.name.clone();
        let key = key.to_string();
        match f {
            Failure::Store(object_store::Error::NotFound { .. }) => Error::NotFound {
                bucket,
                operation,
                key,
            },
            Failure::Store(
                source @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => Error::AccessDenied {
                bucket,
                operation,
                key,
                source: Box::new(source),
            },
            Failure::Store(source) if denied_status(&source) => Error::AccessDenied {
                bucket,
                operation,
                key,
                source: Box::new(source),
            },
            Failure::Store(source) => Error::Store {
                bucket,
                operation,
                key,
                attempts,
                source: Box::new(source),
            },
            Failure::Local(path, source) => Error::LocalFile {
                bucket,
                operation,
                key,
                path,
                source,
            },
            Failure::Invalid(msg) => Error::Invalid {
                bucket,
                operation,
                key,
                msg,
            },
        }
    }

    /// Runs one operation: counts it, retries transient failures with backoff,
    /// and records its duration or its failure. A missing object is an expected
    /// outcome, not a failure.
    async fn run<T, F, Fut>(&self, op: &'static str, key: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let m = &self.inner.metrics;
        let policy = &self.inner.opts.retry;
        m.started(op);
        let start = Instant::now();
        let mut n = 0u32;
        loop {
            n += 1;
            match attempt().await {
                Ok(v) => {
                    m.succeeded(op, start.elapsed());
                    return Ok(v);
                }
                Err(Failure::Store(e)) if is_retryable(&e) && n < policy.max_attempts.max(1) => {
                    let wait = policy.backoff(n);
                    warn!(bucket = %self.inner.name, operation = op, key, attempt = n, error = %e,
                        retry_in = ?wait, "transient object storage error; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(f) => {
                    let e = self.error(op, key, n, f);
                    if !e.is_not_found() {
                        m.failed(op);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The direct children of `dir` (`""` for the top level), sorted: object
    /// keys and sub-directories, the latter with a trailing `/`, all relative to
    /// the bucket root (Thanos' `Iter`).
    pub async fn iter(&self, dir: &str) -> Result<Vec<String>> {
        let store = &self.inner.store;
        self.run("iter", dir, || async move {
            let trimmed = dir.trim_matches('/');
            let prefix = if trimmed.is_empty() {
                None
            } else {
                Some(parse_key(trimmed)?)
            };
            let res = store.list_with_delimiter(prefix.as_ref()).await?;
            let mut out: Vec<String> = res
                .common_prefixes
                .iter()
                .map(|p| format!("{p}/"))
                .chain(res.objects.iter().map(|o| o.location.to_string()))
                .collect();
            out.sort();
            Ok(out)
        })
        .await
    }

    /// Every object key under `dir`, at any depth, sorted (Thanos' recursive `Iter`).
    pub async fn iter_recursive(&self, dir: &str) -> Result<Vec<String>> {
        let store = &self.inner.store;
        self.run("iter", dir, || async move {
            let trimmed = dir.trim_matches('/');
            let prefix = if trimmed.is_empty() {
                None
            } else {
                Some(parse_key(trimmed)?)
            };
            let metas: Vec<_> = store.list(prefix.as_ref()).try_collect().await?;
            let mut out: Vec<String> = metas.iter().map(|o| o.location.to_string()).collect();
            out.sort();
            Ok(out)
        })
        .await
    }

    /// The whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let store = &self.inner.store;
        let b = self
            .run("get", key, || async move {
                let p = parse_key(key)?;
                Ok(store.get(&p).await?.bytes().await?)
            })
            .await?;
        self.inner.metrics.fetched("get", b.len() as u64);
        Ok(b)
    }

    /// `len` bytes from `offset`; fewer when the object ends first. An offset
    /// past the end is an error.
    pub async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.checked_add(len).ok_or_else(|| Error::Invalid {
            bucket: self.inner.name.clone(),
            operation: "get_range",
            key: key.to_string(),
            msg: format!("range {offset}+{len} overflows"),
        })?;
        let store = &self.inner.store;
        let b = self
            .run("get_range", key, || async move {
                let p = parse_key(key)?;
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(offset..end)),
                    ..Default::default()
                };
                Ok(store.get_opts(&p, opts).await?.bytes().await?)
            })
            .await?;
        self.inner.metrics.fetched("get_range", b.len() as u64);
        Ok(b)
    }

    /// Whether the object exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let store = &self.inner.store;
        self.run("exists", key, || async move {
            let p = parse_key(key)?;
            match store.head(&p).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The object's size and modification time.
    pub async fn attributes(&self, key: &str) -> Result<ObjectAttributes> {
        let store = &self.inner.store;
        self.run("attributes", key, || async move {
            let p = parse_key(key)?;
            let m = store.head(&p).await?;
            let ms = m.last_modified.timestamp_millis();
            let last_modified = if ms >= 0 {
                UNIX_EPOCH + Duration::from_millis(ms as u64)
            } else {
                UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
            };
            Ok(ObjectAttributes {
                size: m.size,
                last_modified,
            })
        })
        .await
    }

    /// Deletes the object.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let store = &self.inner.store;
        self.run("delete", key, || async move {
            let p = parse_key(key)?;
            store.delete(&p).await?;
            Ok(())
        })
        .await
    }

    fn attributes_for_put(&self) -> Attributes {
        let mut a = Attributes::new();
        for (k, v) in &self.inner.opts.user_metadata {
            a.insert(
                Attribute::Metadata(k.clone().into()),
                AttributeValue::from(v.clone()),
            );
        }
        a
    }

    /// Uploads `data` as the object `key` (one request), replacing any existing one.
    pub async fn upload(&self, key: &str, data: Bytes) -> Result<()> {
        let store = &self.inner.store;
        let data = &data;
        self.run("upload", key, || async move {
            let p = parse_key(key)?;
            let opts = PutOptions {
                attributes: self.attributes_for_put(),
                ..Default::default()
            };
            store
                .put_opts(&p, PutPayload::from_bytes(data.clone()), opts)
                .await?;
            Ok(())
        })
        .await
    }

    /// Uploads the local file `path` as `key`, streaming it from disk: files
    /// above the multipart threshold go up in parts of `part_size`, one part in
    /// memory at a time. Returns the file's size.
    pub async fn upload_file(&self, key: &str, path: &FsPath) -> Result<u64> {
        let store = &self.inner.store;
        let opts = &self.inner.opts;
        self.run("upload", key, || async move {
            let p = parse_key(key)?;
            let local = |e| Failure::Local(path.to_path_buf(), e);
            let mut f = tokio::fs::File::open(path).await.map_err(local)?;
            let size = f.metadata().await.map_err(local)?.len();
            if size <= opts.multipart_threshold {
                let mut buf = Vec::with_capacity(size as usize);
                f.read_to_end(&mut buf).await.map_err(local)?;
                let put = PutOptions {
                    attributes: self.attributes_for_put(),
                    ..Default::default()
                };
                store.put_opts(&p, PutPayload::from(buf), put).await?;
                return Ok(size);
            }
            let put = PutMultipartOptions {
                attributes: self.attributes_for_put(),
                ..Default::default()
            };
            let mut up = store.put_multipart_opts(&p, put).await?;
            let part = opts.part_size.max(1) as usize;
            let res: Attempt<()> = async {
                loop {
                    let mut buf = BytesMut::with_capacity(part);
                    while buf.len() < part {
                        let n = (&mut f)
                            .take((part - buf.len()) as u64)
                            .read_buf(&mut buf)
                            .await
                            .map_err(local)?;
                        if n == 0 {
                            break;
                        }
                    }
                    if buf.is_empty() {
                        break;
                    }
                    let last = buf.len() < part;
                    up.put_part(PutPayload::from_bytes(buf.freeze())).await?;
                    if last {
                        break;
                    }
                }
                up.complete().await?;
                Ok(())
            }
            .await;
            if let Err(e) = res {
                if let Err(abort) = up.abort().await {
                    warn!(bucket = %self.inner.name, key, error = %abort, "aborting multipart upload failed");
                }
                return Err(e);
            }
            Ok(size)
        })
        .await
    }

    /// Downloads `key` into the local file `path` (replaced), streaming.
    /// Returns the number of bytes written.
    pub async fn download_file(&self, key: &str, path: &FsPath) -> Result<u64> {
        let store = &self.inner.store;
        let n = self
            .run("get", key, || async move {
                let p = parse_key(key)?;
                let local = |e| Failure::Local(path.to_path_buf(), e);
                let res = store.get(&p).await?;
                let mut f = tokio::fs::File::create(path).await.map_err(local)?;
                let mut stream = res.into_stream();
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    f.write_all(&chunk).await.map_err(local)?;
                    n += chunk.len() as u64;
                }
                f.flush().await.map_err(local)?;
                f.sync_all().await.map_err(local)?;
                Ok(n)
            })
            .await;
        match n {
            Ok(n) => {
                self.inner.metrics.fetched("get", n);
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }
}
