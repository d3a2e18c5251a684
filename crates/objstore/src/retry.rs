//! Which store errors are worth retrying, and the backoff between attempts.
//!
//! Retried: server errors (5xx), throttling (429), request timeouts (408),
//! timeouts, connection failures and resets, truncated bodies. Not retried:
//! not found, 401/403, precondition and conflict errors, invalid paths, other
//! 4xx, and local I/O errors that are not transient.

use std::error::Error as StdError;
use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter between attempts of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, at least 1 (1 = no retries).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1): the
    /// exponential value, jittered to between half and all of it.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = exp.min(self.max_backoff);
        let factor: f64 = rand::thread_rng().gen_range(0.5..=1.0);
        full.mul_f64(factor)
    }
}

fn transient_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        TimedOut
            | ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | UnexpectedEof
            | Interrupted
            | WouldBlock
            | NotConnected
    )
}

/// Finds an HTTP status code in an error message such as
/// `Server returned non-2xx status code: 503 Service Unavailable`.
fn status_in(msg: &str) -> Option<u16> {
    let idx = msg.find("status code: ")?;
    let rest = msg.get(idx + "status code: ".len()..)?;
    rest.get(..3)?.parse().ok()
}

/// Whether an error from the store is transient.
pub fn is_retryable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::Generic { source, .. } => {
            let mut cur: Option<&(dyn StdError + 'static)> = Some(source.as_ref());
            while let Some(err) = cur {
                if let Some(io) = err.downcast_ref::<std::io::Error>() {
                    return transient_io(io.kind());
                }
                if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
                    use object_store::client::HttpErrorKind as K;
                    return !matches!(h.kind(), K::Decode);
                }
                if let Some(code) = status_in(&err.to_string()) {
                    return code >= 500 || code == 429 || code == 408;
                }
                cur = err.source();
            }
            // An error without a status or I/O cause: connection-level trouble.
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(src: Box<dyn StdError + Send + Sync>) -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: src,
        }
    }

    #[test]
    fn classifies_errors() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert!(is_retryable(&generic(Box::new(timeout))));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_retryable(&generic(Box::new(reset))));
        let perm = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!is_retryable(&generic(Box::new(perm))));
        let s503 = "Server returned non-2xx status code: 503 Service Unavailable: SlowDown";
        assert!(is_retryable(&generic(s503.into())));
        let s400 = "Server returned non-2xx status code: 400 Bad Request: nope";
        assert!(!is_retryable(&generic(s400.into())));
        let nf = object_store::Error::NotFound {
            path: "a".into(),
            source: "gone".into(),
        };
        assert!(!is_retryable(&nf));
        let denied = object_store::Error::PermissionDenied {
            path: "a".into(),
            source: "403".into(),
        };
        assert!(!is_retryable(&denied));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        };
        assert!(p.backoff(1) <= Duration::from_millis(100));
        assert!(p.backoff(1) >= Duration::from_millis(50));
        assert!(p.backoff(3) >= Duration::from_millis(200));
        assert!(p.backoff(30) <= Duration::from_millis(400));
    }
}
