//! Decodes arbitrary bytes as a remote write body (snappy block, then
//! `prometheus.WriteRequest`), and also as an already-decompressed message, then
//! converts what decodes into appends on a sink.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_model::Labels;
use strata_remote::prompb::WriteRequest;
use strata_remote::{apply_write_request, decode_write_request, LabelLimits};
use strata_storage::{AppendError, Appendable, Appender, CommitReport};

struct Sink;

impl Appendable for Sink {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(Sink)
    }
}

impl Appender for Sink {
    fn append(&mut self, _: &Labels, _: i64, _: f64) -> Result<(), AppendError> {
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError> {
        Ok(CommitReport::default())
    }
    fn rollback(self: Box<Self>) {}
}

fuzz_target!(|data: &[u8]| {
    let limits = LabelLimits::default();
    if let Ok(req) = decode_write_request(data) {
        let _ = apply_write_request(&Sink, req, &limits);
    }
    if let Ok(req) = WriteRequest::decode(data) {
        let _ = apply_write_request(&Sink, req, &limits);
    }
});
