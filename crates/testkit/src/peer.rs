//! Finding and running the real peer binaries (`promtool`, `prometheus`).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What to do when a peer binary is missing; part of every such panic.
pub const PEER_INSTALL_HINT: &str = "install Debian package prometheus (apt-get install -y \
                                     prometheus); .ci/run does. Compatibility tests never skip";

/// Absolute path of the peer binary `name` (`promtool`, `prometheus`, ...).
///
/// Looks in every `$PATH` entry, then in `/usr/bin` and `/usr/local/bin`.
///
/// # Panics
///
/// If no executable file of that name exists: tests that compare against a
/// peer must fail, not skip, on a machine that lacks it.
pub fn peer_binary(name: &str) -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path_var)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")]);
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!("peer binary `{name}` not found on PATH or in /usr/bin: {PEER_INSTALL_HINT}");
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Binds port 0, reads the port the kernel chose and releases it. Another
/// process may grab it before the caller binds it; callers that start servers
/// retry on "address already in use" (as [`crate::PrometheusProcess`] does).
///
/// # Panics
///
/// If binding a loopback socket fails.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .expect("a bound socket has a local address")
        .port()
}

/// Runs `cmd` to completion with stdin closed and returns its output, whatever
/// its exit status.
///
/// # Panics
///
/// Only if the process cannot be started.
pub fn run_output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)))
}

/// Runs `cmd`, requires exit status 0, and returns its stdout as text.
///
/// # Panics
///
/// If the process cannot be started, fails, or prints non-UTF-8; the message
/// holds the command line and its stderr.
pub fn run_stdout(cmd: &mut Command) -> String {
    let out = run_output(cmd);
    if !out.status.success() {
        panic!(
            "{} failed with {}\n--- stderr ---\n{}\n--- stdout (first 2000 bytes) ---\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(out.stdout.get(..2000).unwrap_or(&out.stdout)),
        );
    }
    String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("{} printed non-UTF-8 output: {e}", describe(cmd)))
}

/// The command line, for error messages.
/// Stops `child`: SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps it.
pub(crate) fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let mut kill = Command::new("kill");
    kill.args(["-TERM", &child.id().to_string()]);
    if kill.status().is_err() {
        eprintln!("{} failed; sending SIGKILL", describe(&kill));
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_promtool_and_prometheus() {
        assert!(peer_binary("promtool").is_absolute());
        assert!(peer_binary("prometheus").is_absolute());
    }

    #[test]
    #[should_panic(expected = "install Debian package prometheus")]
    fn missing_binary_panics_with_hint() {
        peer_binary("definitely-not-a-strata-peer-binary");
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn run_stdout_returns_output_and_reports_failure() {
        assert_eq!(run_stdout(Command::new("echo").arg("hi")), "hi\n");
        let err = std::panic::catch_unwind(|| run_stdout(&mut Command::new("false"))).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("false failed"), "{msg}");
    }
}
