//! Test support: [`FaultStore`], an `ObjectStore` wrapper that records every
//! call and injects failures (transient 503s or timeouts, or 403s), so that
//! retries, upload ordering and crash safety can be tested without a network.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A kind of injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 Service Unavailable (transient).
    Unavailable,
    /// A timed-out request (transient).
    Timeout,
    /// HTTP 403 Forbidden (permanent).
    Forbidden,
}

impl Fault {
    fn error(self, key: &str) -> object_store::Error {
        match self {
            Fault::Unavailable => object_store::Error::Generic {
                store: "FaultStore",
                source: "Server returned non-2xx status code: 503 Service Unavailable: injected"
                    .into(),
            },
            Fault::Timeout => object_store::Error::Generic {
                store: "FaultStore",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "injected timeout",
                )),
            },
            Fault::Forbidden => object_store::Error::PermissionDenied {
                path: key.to_string(),
                source: "403 Forbidden: injected".into(),
            },
        }
    }
}

/// One call seen by a [`FaultStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `put`, `put_multipart`, `get`, `head`, `delete`, `list`,
    /// `list_with_delimiter` or `copy`.
    pub op: &'static str,
    /// The object key or listed prefix.
    pub key: String,
    /// Whether a failure was injected.
    pub failed: bool,
}

struct State {
    fail_next: u32,
    fault: Fault,
    put_share: f64,
    rng: StdRng,
    calls: Vec<Call>,
}

/// Wraps a store; records calls and injects failures.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl FaultStore {
    /// Wraps `inner` without faults.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            state: Arc::new(Mutex::new(State {
                fail_next: 0,
                fault: Fault::Unavailable,
                put_share: 0.0,
                rng: StdRng::seed_from_u64(0),
                calls: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Fails the next `n` calls (of any kind) with `fault`.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        let mut s = self.lock();
        s.fail_next = n;
        s.fault = fault;
    }

    /// Fails each upload (put or multipart start) with probability `share`,
    /// with `fault`, drawn from a generator seeded by `seed`.
    pub fn fail_puts(&self, share: f64, fault: Fault, seed: u64) {
        let mut s = self.lock();
        s.put_share = share;
        s.fault = fault;
        s.rng = StdRng::seed_from_u64(seed);
    }

    /// Stops injecting failures.
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.fail_next = 0;
        s.put_share = 0.0;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Keys of the uploads that succeeded, in order.
    pub fn uploaded_keys(&self) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .filter(|c| (c.op == "put" || c.op == "put_multipart") && !c.failed)
            .map(|c| c.key.clone())
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    fn check(&self, op: &'static str, key: &str) -> Result<()> {
        check(&self.state, op, key)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn check(state: &Mutex<State>, op: &'static str, key: &str) -> Result<()> {
    {
        let mut s = lock(state);
        let mut fail = false;
        if s.fail_next > 0 {
            s.fail_next -= 1;
            fail = true;
        } else if (op == "put" || op == "put_multipart") && s.put_share > 0.0 {
            let share = s.put_share;
            fail = s.rng.gen_bool(share.clamp(0.0, 1.0));
        }
        s.calls.push(Call {
            op,
            key: key.to_string(),
            failed: fail,
        });
        if fail {
            Err(s.fault.error(key))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check("put", location.as_ref())?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check("put_multipart", location.as_ref())?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        self.check(op, location.as_ref())?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let state = Arc::clone(&self.state);
        let checked = locations
            .map(move |l| {
                let p = l?;
                check(&state, "delete", p.as_ref())?;
                Ok(p)
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.check("list", &key) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.check("list_with_delimiter", &key)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check("copy", to.as_ref())?;
        self.inner.copy_opts(from, to, options).await
    }
}
