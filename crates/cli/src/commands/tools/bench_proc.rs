//! Spawning servers for side-by-side benchmarks.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A server process killed on drop.
pub(crate) struct Proc {
    child: Child,
    /// Its base URL.
    pub(crate) url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `cmd` (listening on `port`) and waits for `/-/ready`; returns the
    /// process and the time it took to become ready.
    pub(crate) fn start(cmd: &mut Command, port: u16) -> anyhow::Result<(Self, Duration)> {
        let t = Instant::now();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning server")?;
        let p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if ureq::get(&format!("{}/-/ready", p.url)).call().is_ok() {
                return Ok((p, t.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not become ready", p.url)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM), KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Sends SIGTERM, like an operator would, and waits for the exit.
    pub(crate) fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
