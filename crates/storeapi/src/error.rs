//! Errors of the StoreAPI server and client, and their mapping to gRPC codes and to
//! the storage contract.

use tonic::{Code, Status};

/// A failure serving or calling the StoreAPI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint address is not `host:port`.
    #[error("invalid StoreAPI endpoint address {addr:?}: {msg}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The connection to an endpoint could not be established.
    #[error("connecting to StoreAPI endpoint {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// An rpc failed with a gRPC status.
    #[error("StoreAPI call {method} to {addr} failed: {code:?}: {message}")]
    Rpc {
        /// The full method path, e.g. `/thanos.Store/Series`.
        method: &'static str,
        /// The endpoint.
        addr: String,
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// A response did not hold what the protocol requires.
    #[error("invalid {what} from StoreAPI endpoint {addr}: {msg}")]
    Protocol {
        /// Which message or field.
        what: &'static str,
        /// The endpoint.
        addr: String,
        /// What is wrong.
        msg: String,
    },
    /// The gRPC server failed (accepting connections or serving them).
    #[error("serving the StoreAPI: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// Result with the storeapi [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn rpc(method: &'static str, addr: &str, status: &Status) -> Self {
        Error::Rpc {
            method,
            addr: addr.to_string(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// How a storeapi error crosses the storage contract (client side): gRPC codes map
/// back to the storage variants so that a fan-out above can tell bad requests and
/// limits from unreachable sources.
impl From<Error> for strata_storage::Error {
    fn from(e: Error) -> Self {
        use strata_storage::Error as S;
        match &e {
            Error::Rpc { code, .. } => match code {
                Code::InvalidArgument => S::BadRequest(e.to_string()),
                Code::ResourceExhausted => S::Limit(e.to_string()),
                Code::Cancelled => S::Canceled,
                Code::Unavailable | Code::DeadlineExceeded => S::Unavailable(e.to_string()),
                _ => S::source(e),
            },
            Error::Connect { .. } => S::Unavailable(e.to_string()),
            _ => S::source(e),
        }
    }
}

/// The gRPC status for a storage error (server side).
pub(crate) fn status_of(e: &strata_storage::Error) -> Status {
    use strata_storage::Error as S;
    match e {
        S::BadRequest(m) => Status::invalid_argument(m.clone()),
        S::Limit(m) => Status::resource_exhausted(m.clone()),
        S::Unavailable(m) => Status::unavailable(m.clone()),
        S::Canceled => Status::cancelled("query canceled"),
        S::Chunk(c) => Status::internal(format!("reading chunks: {c}")),
        S::Source(s) => Status::internal(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_storage_contract() {
        for (code, want) in [
            (Code::InvalidArgument, "bad request"),
            (Code::ResourceExhausted, "limit exceeded"),
            (Code::Unavailable, "unavailable"),
        ] {
            let e = Error::rpc("/thanos.Store/Series", "h:1", &Status::new(code, "x"));
            let s: strata_storage::Error = e.into();
            assert!(s.to_string().starts_with(want), "{code:?}: {s}");
            assert_eq!(status_of(&s).code(), code);
        }
        let s: strata_storage::Error =
            Error::rpc("m", "h:1", &Status::new(Code::Cancelled, "x")).into();
        assert!(matches!(s, strata_storage::Error::Canceled));
    }
}
