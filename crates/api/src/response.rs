//! The response envelope (`{"status":…,"data":…,"warnings":…,"infos":…}`) and
//! error bodies, written as Prometheus writes them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::json::{write_str, write_str_array};

/// How many warnings and infos are returned before the rest are summarized
/// (Prometheus' `AsStrings(query, 10, 10)`).
pub const MAX_ANNOTATIONS: usize = 10;

/// Caps annotations at [`MAX_ANNOTATIONS`], adding one last entry
/// `"<n> more <kind> annotations omitted"` when some were dropped.
pub fn cap_annotations(mut items: Vec<String>, kind: &str) -> Vec<String> {
    if items.len() > MAX_ANNOTATIONS {
        let skipped = items.len() - MAX_ANNOTATIONS;
        items.truncate(MAX_ANNOTATIONS);
        items.push(format!("{skipped} more {kind} annotations omitted"));
    }
    items
}

/// A successful API answer: `data` is already JSON.
#[derive(Debug, Default)]
pub struct Success {
    /// The `data` member, as JSON text.
    pub data: String,
    /// Warnings (capped when written).
    pub warnings: Vec<String>,
    /// Infos (capped when written).
    pub infos: Vec<String>,
}

impl Success {
    /// Data without annotations.
    pub fn new(data: String) -> Self {
        Self {
            data,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    /// Adds warnings.
    pub fn with_warnings(mut self, w: Vec<String>) -> Self {
        self.warnings = w;
        self
    }

    /// The envelope's text.
    pub fn body(self) -> String {
        let warnings = cap_annotations(self.warnings, "warning");
        let infos = cap_annotations(self.infos, "info");
        let mut out = String::with_capacity(self.data.len() + 64);
        out.push_str("{\"status\":\"success\",\"data\":");
        out.push_str(&self.data);
        if !warnings.is_empty() {
            out.push_str(",\"warnings\":");
            write_str_array(&mut out, &warnings);
        }
        if !infos.is_empty() {
            out.push_str(",\"infos\":");
            write_str_array(&mut out, &infos);
        }
        out.push('}');
        out
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for Success {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, self.body())
    }
}

/// The body of an error answer: status, errorType and error, no annotations.
pub fn error_body(e: &Error) -> String {
    let mut out = String::with_capacity(e.message.len() + 64);
    out.push_str("{\"status\":\"error\",\"errorType\":");
    write_str(&mut out, e.kind.as_str(), true);
    out.push_str(",\"error\":");
    write_str(&mut out, &e.message, true);
    out.push('}');
    out
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        json_response(self.kind.status(), error_body(&self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorType;

    #[test]
    fn caps_at_ten_with_summary() {
        let w: Vec<String> = (0..13).map(|i| format!("w{i}")).collect();
        let c = cap_annotations(w, "warning");
        assert_eq!(c.len(), 11);
        assert_eq!(c[9], "w9");
        assert_eq!(c[10], "3 more warning annotations omitted");
        let c = cap_annotations((0..10).map(|i| i.to_string()).collect(), "info");
        assert_eq!(c.len(), 10);
        let c = cap_annotations((0..11).map(|i| i.to_string()).collect(), "info");
        assert_eq!(c[10], "1 more info annotations omitted");
    }

    #[test]
    fn envelope_omits_empty_annotations() {
        assert_eq!(
            Success::new("[]".into()).body(),
            r#"{"status":"success","data":[]}"#
        );
        let s = Success {
            data: "{}".into(),
            warnings: vec!["w<".into()],
            infos: vec!["i".into()],
        };
        assert_eq!(
            s.body(),
            r#"{"status":"success","data":{},"warnings":["w\u003c"],"infos":["i"]}"#
        );
    }

    #[test]
    fn error_envelope() {
        let e = Error::new(ErrorType::BadData, "invalid parameter \"query\": x");
        assert_eq!(
            error_body(&e),
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": x"}"#
        );
        let r = e.into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
