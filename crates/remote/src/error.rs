//! Errors of the remote write and read endpoints, each with the HTTP status that
//! tells a sender whether to retry (4xx: never, 5xx: with backoff).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed remote write or remote read request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The compressed body is over the limit (413).
    #[error("request body of more than {limit} bytes is too large")]
    BodyTooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// Reading the body failed (400).
    #[error("reading the request body: {0}")]
    Body(String),
    /// Content-Type or Content-Encoding not accepted (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is not valid snappy block format (400).
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    /// The decoded body would be over the limit (400).
    #[error("decoded request of {len} bytes exceeds the limit of {limit} bytes")]
    DecodedTooLarge {
        /// Decoded length announced by the snappy header.
        len: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// The decoded body is not the expected protobuf message (400).
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A series' labels are invalid (400). Valid series of the request are written.
    #[error("invalid labels for series {series}: {reason} ({count} series with invalid labels in this request)")]
    InvalidLabels {
        /// The first offending series, as sent.
        series: String,
        /// What is wrong.
        reason: String,
        /// How many series of the request were invalid.
        count: usize,
    },
    /// The request carries native histograms (400). Float samples are written.
    #[error("native histograms are not supported yet: {count} histogram samples rejected, first in series {series}")]
    NativeHistograms {
        /// The first series carrying histograms.
        series: String,
        /// Histogram samples rejected.
        count: usize,
    },
    /// Samples were rejected by the storage as out of order, out of bounds or
    /// duplicates (400, as Prometheus). The first word is Prometheus' error text.
    #[error("{kind}: {rejected} of {total} samples rejected ({out_of_order} out of order, {out_of_bounds} out of bounds, {duplicates} duplicates)")]
    Rejected {
        /// The storage error naming the most common kind, as Prometheus names it.
        kind: strata_storage::AppendError,
        /// Samples rejected.
        rejected: u64,
        /// Samples in the request.
        total: u64,
        /// Out of order samples.
        out_of_order: u64,
        /// Out of bounds samples.
        out_of_bounds: u64,
        /// Duplicates with another value.
        duplicates: u64,
    },
    /// Writing failed in storage; the sender should retry (500).
    #[error("{0}")]
    Storage(String),
    /// No accepted remote read response type is supported (400).
    #[error("server does not support any of the requested response types: {requested:?}; supported: [SAMPLES STREAMED_XOR_CHUNKS]")]
    UnsupportedResponseTypes {
        /// What the client asked for.
        requested: Vec<i32>,
    },
    /// A remote read matcher is invalid (400).
    #[error("invalid matcher: {0}")]
    InvalidMatcher(String),
    /// A SAMPLES response would hold too many samples (400).
    #[error("exceeded sample limit ({0})")]
    SampleLimit(usize),
    /// Querying the storage failed (500, or 400 for a bad request).
    #[error("query {index}: {source}")]
    Query {
        /// The query index in the request.
        index: usize,
        /// The storage error.
        source: strata_storage::Error,
    },
    /// A chunk cannot be represented in remote read (500).
    #[error("chunk encoding {0} cannot be sent over remote read")]
    ChunkEncoding(&'static str),
    /// A streamed frame is larger than the reader accepts.
    #[error("chunkedReader: message size exceeded the limit {limit} bytes; got: {size} bytes")]
    FrameTooLarge {
        /// Announced frame size.
        size: u64,
        /// The reader's limit.
        limit: u64,
    },
    /// A streamed frame's checksum does not match its bytes.
    #[error("chunkedReader: corrupted frame; checksum mismatch")]
    FrameChecksum,
    /// A streamed response ended inside a frame.
    #[error("chunkedReader: unexpected end of stream inside a frame")]
    FrameTruncated,
    /// An internal failure (a worker task died) (500).
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Body(_)
            | Error::Snappy(_)
            | Error::DecodedTooLarge { .. }
            | Error::Protobuf(_)
            | Error::InvalidLabels { .. }
            | Error::NativeHistograms { .. }
            | Error::Rejected { .. }
            | Error::UnsupportedResponseTypes { .. }
            | Error::InvalidMatcher(_)
            | Error::SampleLimit(_) => StatusCode::BAD_REQUEST,
            Error::Query { source, .. } => match source {
                strata_storage::Error::BadRequest(_) | strata_storage::Error::Limit(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Storage(_)
            | Error::ChunkEncoding(_)
            | Error::FrameTooLarge { .. }
            | Error::FrameChecksum
            | Error::FrameTruncated
            | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    /// The status and the message as plain text with a trailing newline, as Go's
    /// `http.Error` writes it.
    fn into_response(self) -> Response {
        let status = self.status();
        let body = format!("{self}\n");
        (
            status,
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("x-content-type-options", "nosniff"),
            ],
            body,
        )
            .into_response()
    }
}

/// Result with the remote [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
