//! [`GarageProcess`]: a real S3 server (Garage 2.x, single node) on loopback,
//! for object storage tests that must not stop at an in-memory fake.
//!
//! Garage is a test peer only: it is found on `$PATH` or in
//! `$CARGO_HOME/bin` (`~/.cargo/bin`); when missing the test fails with the
//! install command. Each process gets its own temporary directory, free
//! loopback ports, a random `rpc_secret`, and fresh credentials (key id `GK` +
//! 24 hex, secret 64 hex, as Garage requires); `server --single-node
//! --default-bucket` assigns the layout and creates the bucket and a
//! read/write/owner key in one step.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::peer::free_port;

/// How CI installs the Garage version the tests are written against.
pub const GARAGE_INSTALL_HINT: &str =
    "install it with `cargo install garage --version 2.5.0 --locked -j 2` \
     (about 12 minutes on 2 cores; .ci/run does). Object storage tests never skip";

/// S3 region Garage is configured with.
pub const GARAGE_REGION: &str = "garage";

/// Path of the `garage` binary: `$PATH`, then `$CARGO_HOME/bin`, then
/// `~/.cargo/bin`.
///
/// # Panics
///
/// If none exists, with [`GARAGE_INSTALL_HINT`].
pub fn garage_binary() -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(h).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo").join("bin"));
    }
    for d in dirs {
        let c = d.join("garage");
        if c.is_file() {
            return c;
        }
    }
    panic!("peer binary `garage` not found on PATH or in ~/.cargo/bin: {GARAGE_INSTALL_HINT}");
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// A running single-node Garage, stopped (SIGTERM, then waited for) on drop.
#[derive(Debug)]
pub struct GarageProcess {
    child: Child,
    dir: tempfile::TempDir,
    config: PathBuf,
    s3_port: u16,
    bucket: String,
    access_key: String,
    secret_key: String,
}

impl GarageProcess {
    /// Starts Garage with a bucket named `strata-test` and waits (at most
    /// 20 s) until the bucket answers.
    ///
    /// # Panics
    ///
    /// If the binary is missing, or Garage exits or is not ready in time;
    /// the message holds its log.
    pub fn start() -> Self {
        Self::start_with_bucket("strata-test")
    }

    /// Like [`GarageProcess::start`] with the bucket `bucket`.
    ///
    /// # Panics
    ///
    /// As [`GarageProcess::start`].
    pub fn start_with_bucket(bucket: &str) -> Self {
        let bin = garage_binary();
        let mut last = String::new();
        // A port picked free may be taken before Garage binds it: retry.
        for _ in 0..3 {
            match Self::try_start(&bin, bucket) {
                Ok(g) => return g,
                Err(log) => last = log,
            }
        }
        panic!("garage did not start:\n{last}");
    }

    fn try_start(bin: &Path, bucket: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("strata-garage-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir: {e}"))?;
        let (s3_port, rpc_port) = (free_port(), free_port());
        let meta = dir.path().join("meta");
        let data = dir.path().join("data");
        let config = dir.path().join("garage.toml");
        let text = format!(
            "metadata_dir = \"{}\"\ndata_dir = \"{}\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{}\"\n\n[s3_api]\ns3_region = \"{GARAGE_REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{s3_port}\"\n",
            meta.display(),
            data.display(),
            random_hex(32),
        );
        std::fs::write(&config, text).map_err(|e| format!("writing {}: {e}", config.display()))?;
        let access_key = format!("GK{}", random_hex(12));
        let secret_key = random_hex(32);
        let log = dir.path().join("server.log");
        let log_file =
            File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret_key)
            .env("GARAGE_DEFAULT_BUCKET", bucket)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut g = Self {
            child,
            dir,
            config,
            s3_port,
            bucket: bucket.to_string(),
            access_key,
            secret_key,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = g.child.try_wait() {
                return Err(format!("garage exited with {st}; log:\n{}", g.log()));
            }
            let listening = std::net::TcpStream::connect(("127.0.0.1", s3_port)).is_ok();
            if listening && g.bucket_ready(bin) {
                return Ok(g);
            }
            if Instant::now() > deadline {
                return Err(format!("garage not ready after 20s; log:\n{}", g.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn bucket_ready(&self, bin: &Path) -> bool {
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&self.config)
            .args(["bucket", "info", &self.bucket])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>` of the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// `127.0.0.1:<port>` of the S3 API (the objstore YAML's `endpoint`).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.s3_port)
    }

    /// The S3 API port.
    pub fn s3_port(&self) -> u16 {
        self.s3_port
    }

    /// The bucket created at start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The access key id (read/write/owner on the bucket).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The PID of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Thanos objstore YAML for the bucket on this server.
    pub fn objstore_yaml(&self) -> String {
        self.objstore_yaml_for(&self.address(), &self.bucket)
    }

    /// Thanos objstore YAML for `bucket` at `address` (`host:port`, e.g. a
    /// proxy in front of this server) with this server's credentials. The
    /// store's own HTTP retries are off (`max_retries: 0`) so that
    /// Strata's bucket retries are what is measured.
    pub fn objstore_yaml_for(&self, address: &str, bucket: &str) -> String {
        format!(
            "type: S3\nconfig:\n  bucket: {bucket}\n  endpoint: {address}\n  insecure: true\n  \
             access_key: {}\n  secret_key: {}\n  region: {GARAGE_REGION}\n  \
             bucket_lookup_type: path\n  max_retries: 0\n",
            self.access_key, self.secret_key
        )
    }

    /// Runs `garage -c <config> <args>` against this server and returns its
    /// stdout (e.g. `["bucket", "create", "other"]`).
    ///
    /// # Panics
    ///
    /// If the command fails; the message holds its stderr.
    pub fn admin(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(garage_binary());
        cmd.arg("-c").arg(&self.config).args(args);
        crate::peer::run_stdout(&mut cmd)
    }

    fn stop(&mut self) {
        crate::peer::terminate(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for GarageProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_s3_and_stops_on_drop() {
        let g = GarageProcess::start();
        assert!(g.access_key().starts_with("GK") && g.access_key().len() == 26);
        assert_eq!(g.secret_key().len(), 64);
        assert!(g.objstore_yaml().contains("bucket_lookup_type: path"));
        // An anonymous request is refused with 403: the S3 API is up and checks signatures.
        let r = ureq::get(&format!("{}/{}/x", g.endpoint(), g.bucket())).call();
        match r {
            Err(ureq::Error::Status(code, _)) => assert_eq!(code, 403),
            other => panic!("anonymous GET answered {other:?}"),
        }
        let pid = g.pid();
        let dir = g.dir.path().to_path_buf();
        drop(g);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                // A zombie is reaped by wait(); the process table no longer lists it.
                std::fs::read_to_string(format!("/proc/{pid}/status")).is_err()
            }
        );
        assert!(!dir.exists(), "temp dir removed after the server exited");
    }
}
