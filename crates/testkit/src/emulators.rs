//! Emulators of the cloud object stores: [`AzuriteProcess`] (Microsoft's
//! Azurite, blob service only, from npm) for the `AZURE` provider. It runs in
//! memory on a free loopback port and is stopped (SIGTERM, then SIGKILL) on
//! drop.
//!
//! No GCS emulator from the package registries fits: `object_store` writes and
//! reads GCS objects through the XML API (PUT, ranged GET, HEAD on
//! `/{bucket}/{object}`), which fake-gcs-server answers with `400 invalid
//! uploadType` and gcp-storage-emulator only half implements (no HEAD, no
//! ranges). The `GCS` mapping is unit-tested instead.
//!
//! `.ci/run` installs Azurite; when it is missing the test fails with the
//! install command (object storage tests never skip).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::peer::free_port;

/// How CI installs the emulators.
pub const EMULATORS_INSTALL_HINT: &str =
    "install Azurite with `npm install -g azurite@3.35.0`; .ci/run does";

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The key of [`AZURITE_ACCOUNT`] (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn find_on_path(name: &str) -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path_var) {
        let c = d.join(name);
        if c.is_file() {
            return c;
        }
    }
    panic!("emulator `{name}` not found on PATH: {EMULATORS_INSTALL_HINT}");
}

/// A child process with a temp dir and a log file, stopped on drop.
#[derive(Debug)]
struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Emulator {
    fn spawn(name: &str, build: impl Fn(&Path, u16) -> Command) -> Self {
        let mut last = String::new();
        // A port picked free may be taken before the emulator binds it: retry.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("strata-{name}-"))
                .tempdir()
                .unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
            let port = free_port();
            let log = File::create(dir.path().join("emulator.log"))
                .unwrap_or_else(|e| panic!("creating the {name} log: {e}"));
            let err = log
                .try_clone()
                .unwrap_or_else(|e| panic!("cloning the {name} log handle: {e}"));
            let child = build(dir.path(), port)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {name}: {e}: {EMULATORS_INSTALL_HINT}"));
            let mut em = Self { child, dir, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(st)) = em.child.try_wait() {
                    last = format!("{name} exited with {st}; log:\n{}", em.log());
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return em;
                }
                if Instant::now() > deadline {
                    last = format!("{name} not listening after 30s; log:\n{}", em.log());
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("{name} did not start:\n{last}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        crate::peer::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Azurite's blob service in memory on loopback, with one container.
#[derive(Debug)]
pub struct AzuriteProcess {
    em: Emulator,
    container: String,
}

impl AzuriteProcess {
    /// Starts `azurite-blob` (telemetry off) and creates `container`.
    ///
    /// # Panics
    ///
    /// If Azurite is missing, does not start, or refuses the container.
    pub fn start(container: &str) -> Self {
        let bin = find_on_path("azurite-blob");
        // In memory; its working directory is the emulator's temp dir.
        let em = Emulator::spawn("azurite", |_dir, port| {
            let mut c = Command::new(&bin);
            c.args([
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
            ]);
            c
        });
        let az = Self {
            em,
            container: container.to_string(),
        };
        az.create_container(container);
        az
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`: the account's blob
    /// endpoint (path style, as the emulator serves it).
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.em.port)
    }

    /// The container created at start.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The emulator's log so far.
    pub fn log(&self) -> String {
        self.em.log()
    }

    /// Thanos objstore YAML for the container: credentials and endpoint
    /// through `storage_connection_string`, as Thanos users point at Azurite.
    pub fn objstore_yaml(&self) -> String {
        format!(
            "type: AZURE\nconfig:\n  container: {}\n  storage_connection_string: \
             \"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
             BlobEndpoint={};\"\n  max_retries: 1\n",
            self.container,
            self.blob_endpoint()
        )
    }

    /// `PUT ?restype=container`, signed with the account's shared key.
    fn create_container(&self, container: &str) {
        let version = "2021-08-06";
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let string_to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container",
            "\n".repeat(11)
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .unwrap_or_else(|e| panic!("the Azurite key is base64: {e}"));
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            string_to_sign.as_bytes(),
        );
        let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        let url = format!("{}/{container}?restype=container", self.blob_endpoint());
        let resp = ureq::put(&url)
            .set("x-ms-date", &date)
            .set("x-ms-version", version)
            .set(
                "Authorization",
                &format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
            )
            .send_bytes(&[]);
        if let Err(e) = resp {
            let body = match e {
                ureq::Error::Status(code, r) => {
                    format!("{code}: {}", r.into_string().unwrap_or_default())
                }
                other => other.to_string(),
            };
            panic!(
                "creating Azurite container {container}: {body}\nlog:\n{}",
                self.log()
            );
        }
    }
}
