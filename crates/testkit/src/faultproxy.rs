//! [`FaultProxy`]: an HTTP/1.1 proxy on loopback that fails a share of the
//! requests passing through it, to test retries against a real server.
//!
//! Each request is read (head, then a `Content-Length` body), counted, and
//! either forwarded over a fresh upstream connection with `Connection: close`
//! (the response is copied back byte for byte, then the client connection is
//! closed), or failed as the current [`Faults`] say: answered with `503 Slow
//! Down` or cut off without an answer. Signatures stay valid: only the
//! unsigned `Connection` header changes. Chunked request bodies are not
//! supported (object_store sends lengths).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How a failed request fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `503 Slow Down` with an S3 error body.
    ServiceUnavailable,
    /// The connection is closed after the request head, without an answer.
    Reset,
    /// Alternately one and the other.
    Mixed,
}

/// Which requests fail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Faults {
    /// None: every request is forwarded.
    None,
    /// Every `n`th request (n ≥ 1).
    EveryNth(u64, FaultKind),
    /// Each request with probability `p` (seeded, so runs repeat).
    Random(f64, FaultKind),
}

struct Shared {
    upstream: String,
    faults: Mutex<(Faults, StdRng)>,
    requests: AtomicU64,
    injected: AtomicU64,
    stop: AtomicBool,
    /// `METHOD path status` of every request forwarded upstream.
    forwarded: Mutex<Vec<String>>,
}

/// A running proxy; stops accepting on drop.
pub struct FaultProxy {
    addr: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream` (`host:port`),
    /// with no faults yet.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fault proxy: bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("fault proxy: local address: {e}"));
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            faults: Mutex::new((Faults::None, StdRng::seed_from_u64(7))),
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            forwarded: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(conn, &s));
            }
        });
        Self {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:<port>` to point clients at.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// Changes which requests fail, from the next request on.
    pub fn set_faults(&self, faults: Faults) {
        let mut g = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = faults;
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Requests failed on purpose so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::Relaxed)
    }

    /// Every request forwarded upstream so far, as `METHOD path status`
    /// (path without its query; status `-` when no answer came back), e.g.
    /// `PUT /bucket/key 200`.
    pub fn forwarded(&self) -> Vec<String> {
        self.shared
            .forwarded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Whether request number `n` (from 1) fails, and how.
fn decide(s: &Shared, n: u64) -> Option<FaultKind> {
    let mut g = s.faults.lock().unwrap_or_else(|e| e.into_inner());
    let (faults, rng) = &mut *g;
    let kind = match *faults {
        Faults::None => return None,
        Faults::EveryNth(k, kind) => (k > 0 && n.is_multiple_of(k)).then_some(kind)?,
        Faults::Random(p, kind) => (rng.gen::<f64>() < p).then_some(kind)?,
    };
    Some(match kind {
        FaultKind::Mixed if n.is_multiple_of(2) => FaultKind::ServiceUnavailable,
        FaultKind::Mixed => FaultKind::Reset,
        k => k,
    })
}

/// Serves requests of one client connection until it closes or a request
/// has been answered (each answer closes the connection).
fn handle(client: TcpStream, s: &Shared) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = line == b"\r\n" || line == b"\n";
        head.push(line);
        if end {
            break;
        }
    }
    let n = s.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let mut content_length = 0u64;
    let mut out = Vec::new();
    for (i, line) in head.iter().enumerate() {
        let text = String::from_utf8_lossy(line);
        let lower = text.to_ascii_lowercase();
        if i > 0 && lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if i + 1 == head.len() {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(line);
    }
    let mut client = client;
    if let Some(kind) = decide(s, n) {
        s.injected.fetch_add(1, Ordering::Relaxed);
        if kind == FaultKind::ServiceUnavailable {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                        <Message>injected by the fault proxy</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut up) = TcpStream::connect(&s.upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    if up.write_all(&out).is_err() {
        return;
    }
    let copied = std::io::copy(&mut (&mut reader).take(content_length), &mut up);
    if copied.ok() != Some(content_length) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    // The status line comes first: note it, then pass everything on.
    let mut first = [0u8; 4096];
    let n = up.read(&mut first).unwrap_or(0);
    let status = std::str::from_utf8(&first[..n])
        .ok()
        .and_then(|t| t.split(' ').nth(1))
        .filter(|code| code.len() == 3)
        .unwrap_or("-")
        .to_string();
    let request_line = head
        .first()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    s.forwarded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{method} {path} {status}"));
    if client.write_all(&first[..n]).is_ok() {
        let _ = std::io::copy(&mut up, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
}
