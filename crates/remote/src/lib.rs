//! Prometheus remote write and remote read over HTTP, for any Strata storage
//! (mirrors Prometheus `storage/remote`: `write_handler.go`, `read_handler.go`,
//! `codec.go`, `chunked.go`).
//!
//! Why it exists: so that anything that speaks to Prometheus' remote APIs (a
//! Prometheus or agent with `remote_write`, a Thanos or Strata sidecar using remote
//! read, Grafana Alloy, ...) works against `strata server` unchanged.
//!
//! - [`write_router`]: `POST /api/v1/write`, the remote write 1.0 receiver writing
//!   into any [`strata_storage::Appendable`], with Prometheus' status codes (204,
//!   400 never retried, 5xx retried). Remote write 2.0 is answered with 415.
//! - [`read_router`]: `POST /api/v1/read` over any [`strata_storage::Queryable`],
//!   answering SAMPLES or STREAMED_XOR_CHUNKS.
//! - [`prompb`]: the protobuf messages, hand-written prost structs with the spec's
//!   field numbers; [`chunked`]: the streamed-response framing and a frame reader.
//! - [`ReadClient`]: the other side, a [`strata_storage::Queryable`] over a
//!   Prometheus' `/api/v1/read` (streamed chunks) and label APIs, for the sidecar.
//! - [`decode_write_request`]: the body decoder on its own, for fuzzing.
//!
//! Every decoder is bounded (32 MiB compressed and decoded by default) and never
//! panics on any body.

mod codec;
mod error;
mod read;
mod read_client;
mod write;

pub mod chunked;
pub mod prompb;

pub use codec::{
    labels_to_proto, matchers_to_proto, snappy_decode, snappy_encode, LabelLimits,
    DEFAULT_MAX_BODY_BYTES,
};
pub use error::{Error, Result};
pub use read::{decode_read_request, negotiate_response_type, read_router, ReadOptions};
pub use read_client::{ReadClient, ReadClientError, ReadClientOptions};
pub use write::{
    apply_write_request, check_write_headers, decode_write_request,
    decode_write_request_with_limit, write_router, WriteOptions, WriteStats, PROTO_MSG_V1,
    PROTO_MSG_V2,
};
