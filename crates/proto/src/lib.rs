//! Generated protobuf and gRPC code for the Thanos StoreAPI (mirrors thanos-io/thanos
//! `pkg/store/storepb`, `pkg/store/labelpb`, `pkg/info/infopb` and
//! `pkg/store/storepb/prompb`).
//!
//! The `.proto` files under `proto/` are our own, written from the field numbers in
//! `spec/wire-formats.md` §1 and checked against the upstream files; gogoproto options
//! are left out because they never change the bytes on the wire. `build.rs` compiles
//! them with protox (no `protoc`) and generates prost messages and tonic clients and
//! servers. This crate holds generated code only; the mapping to Strata's types lives
//! in `strata-storeapi`.
//!
//! Modules follow the proto packages:
//! - [`thanos`]: the `Store` service (`Series`, `LabelNames`, `LabelValues`, and the
//!   legacy `Info` for queriers before Thanos v0.37), `WriteableStore`, series,
//!   chunks, matchers and labels;
//! - [`thanos::info`]: the `thanos.info.Info` service used for endpoint discovery;
//! - [`prometheus_copy`]: Thanos' copy of Prometheus `prompb`.
//!
//! Bytes fields (`Chunk.data`, ...) are [`bytes::Bytes`](prost::bytes::Bytes), so a
//! decoded chunk shares the received frame's buffer.

/// Package `thanos`: StoreAPI messages and services (`storepb`, `labelpb`).
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod thanos {
    include!(concat!(env!("OUT_DIR"), "/thanos.rs"));

    /// Package `thanos.info`: the Info service (`infopb`).
    #[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod info {
        include!(concat!(env!("OUT_DIR"), "/thanos.info.rs"));
    }
}

/// Package `prometheus_copy`: Thanos' copy of Prometheus `prompb`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod prometheus_copy {
    include!(concat!(env!("OUT_DIR"), "/prometheus_copy.rs"));
}

pub use prometheus_copy as prompb;
pub use thanos as storepb;
pub use thanos::info as infopb;

/// Full gRPC method paths, for generic clients and routing.
pub mod methods {
    /// `thanos.Store/Series` (server stream).
    pub const SERIES: &str = "/thanos.Store/Series";
    /// `thanos.Store/LabelNames`.
    pub const LABEL_NAMES: &str = "/thanos.Store/LabelNames";
    /// `thanos.Store/LabelValues`.
    pub const LABEL_VALUES: &str = "/thanos.Store/LabelValues";
    /// `thanos.Store/Info` (legacy, removed upstream in v0.37).
    pub const STORE_INFO: &str = "/thanos.Store/Info";
    /// `thanos.info.Info/Info`.
    pub const INFO: &str = "/thanos.info.Info/Info";
}

#[cfg(test)]
mod tests {
    use super::thanos::{self, series_response, Chunk, SeriesResponse};
    use prost::Message;

    #[test]
    fn field_numbers_match_the_wire_spec() {
        // SeriesResponse.series (1) -> Series.chunks (2) -> AggrChunk.raw (3) ->
        // Chunk.data (2): hand-built bytes must decode to the same message.
        let chunk = Chunk {
            r#type: thanos::chunk::Encoding::Xor as i32,
            data: vec![1u8, 2, 3].into(),
            hash: 7,
        };
        let resp = SeriesResponse {
            result: Some(series_response::Result::Series(thanos::Series {
                labels: vec![thanos::Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                chunks: vec![thanos::AggrChunk {
                    min_time: 1,
                    max_time: 2,
                    raw: Some(chunk),
                    ..Default::default()
                }],
            })),
        };
        let got = resp.encode_to_vec();
        let want: Vec<u8> = vec![
            0x0a, 23, // series (1), len
            0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', // labels (1)
            0x12, 13, // chunks (2)
            0x08, 1, 0x10, 2, // min_time (1), max_time (2)
            0x1a, 7, // raw (3)
            0x12, 3, 1, 2, 3, // data (2); type XOR=0 omitted
            0x18, 7, // hash (3)
        ];
        assert_eq!(got, want);
        assert_eq!(SeriesResponse::decode(&want[..]).ok(), Some(resp));
    }

    #[test]
    fn enum_values_match_upstream() {
        use thanos::label_matcher::Type;
        assert_eq!(Type::Eq as i32, 0);
        assert_eq!(Type::Nre as i32, 3);
        assert_eq!(thanos::chunk::Encoding::FloatHistogram as i32, 2);
        assert_eq!(thanos::PartialResponseStrategy::Abort as i32, 1);
        assert_eq!(thanos::Aggr::Counter as i32, 5);
        assert_eq!(thanos::StoreType::Debug as i32, 6);
        assert_eq!(super::prometheus_copy::chunk::Encoding::Xor as i32, 1);
    }
}
