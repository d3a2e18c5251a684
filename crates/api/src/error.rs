//! API errors, each with its Prometheus `errorType` and HTTP status.

use axum::http::StatusCode;

/// Prometheus' `errorType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// Bad or missing parameters, parse errors: 400.
    BadData,
    /// A PromQL runtime error (the default for query errors): 422.
    Execution,
    /// The query was canceled: 499.
    Canceled,
    /// The query timed out: 503.
    Timeout,
    /// A storage or server failure: 500.
    Internal,
    /// Not ready or disabled: 500 (Prometheus has no explicit case for it).
    Unavailable,
    /// Not found: 404.
    NotFound,
}

impl ErrorType {
    /// The `errorType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Canceled => "canceled",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
        }
    }

    /// The HTTP status Prometheus answers with (`web/api/v1/api.go` `respondError`).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            // statusClientClosedConnection; 499 is always a valid status code.
            ErrorType::Canceled => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// Maps the engine's `error_type()` string; unknown strings are `execution`.
    pub fn from_engine(s: &str) -> Self {
        match s {
            "bad_data" => ErrorType::BadData,
            "canceled" => ErrorType::Canceled,
            "timeout" => ErrorType::Timeout,
            "internal" => ErrorType::Internal,
            "unavailable" => ErrorType::Unavailable,
            "not_found" => ErrorType::NotFound,
            _ => ErrorType::Execution,
        }
    }
}

/// A failed API call: what to put in `errorType` and `error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct Error {
    /// The error type (and so the HTTP status).
    pub kind: ErrorType,
    /// The `error` message.
    pub message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    /// Prometheus' `invalidParamError`: `invalid parameter "<name>": <err>`.
    pub fn invalid_param(name: &str, err: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {err}"))
    }

    /// A storage failure while reading series or labels (`execution`, as
    /// Prometheus' label and series handlers report them).
    pub fn storage(err: impl std::fmt::Display) -> Self {
        Self::new(ErrorType::Execution, err.to_string())
    }
}

/// Result with the API [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_prometheus() {
        let cases = [
            (ErrorType::BadData, 400, "bad_data"),
            (ErrorType::Execution, 422, "execution"),
            (ErrorType::Canceled, 499, "canceled"),
            (ErrorType::Timeout, 503, "timeout"),
            (ErrorType::Internal, 500, "internal"),
            (ErrorType::Unavailable, 500, "unavailable"),
            (ErrorType::NotFound, 404, "not_found"),
        ];
        for (t, code, name) in cases {
            assert_eq!(t.status().as_u16(), code, "{name}");
            assert_eq!(t.as_str(), name);
            assert_eq!(ErrorType::from_engine(name), t);
        }
        assert_eq!(ErrorType::from_engine("whatever"), ErrorType::Execution);
    }

    #[test]
    fn invalid_param_quotes_name() {
        let e = Error::invalid_param("time", "boom");
        assert_eq!(e.message, r#"invalid parameter "time": boom"#);
        assert_eq!(e.kind, ErrorType::BadData);
    }
}
