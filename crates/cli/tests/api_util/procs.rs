//! A running `strata` component for end-to-end tests: spawned with its stderr
//! in a log file, ready once `/-/ready` answers 200, killed on drop.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::strata;

/// A `strata` subcommand, killed on drop.
pub struct Proc {
    child: Option<Child>,
    args: Vec<String>,
    /// `http://host:port` of its HTTP endpoints.
    pub http: String,
    stderr_path: PathBuf,
    _work: tempfile::TempDir,
}

impl Proc {
    pub fn spawn(args: Vec<String>, http: String) -> Self {
        let work = tempfile::tempdir().unwrap();
        let stderr_path = work.path().join("stderr.log");
        let mut p = Self {
            child: None,
            args,
            http,
            stderr_path,
            _work: work,
        };
        p.start();
        p
    }

    /// Starts (or restarts) the process and waits for `/-/ready`.
    pub fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .unwrap();
        let child = Command::new(strata())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        let url = format!("{}/-/ready", self.http);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{:?} exited with {st}:\n{}", self.args, self.stderr());
            }
            if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not ready:\n{}",
                self.args,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
