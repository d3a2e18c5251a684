//! The Thanos StoreAPI for Strata: a gRPC server over any
//! [`Queryable`](strata_storage::Queryable), and a client that is one (mirrors Thanos
//! `pkg/store` servers and `pkg/query`'s per-endpoint client; wire format in
//! `spec/wire-formats.md` §1).
//!
//! Every Strata source (TSDB, bucket store, fan-out) implements one trait, so the
//! StoreAPI is a plain mapping in both directions:
//!
//! - **Server**: [`serve`] runs `thanos.Store` (`Series`, `LabelNames`,
//!   `LabelValues`, and the legacy `Info` for queriers before Thanos v0.37) and
//!   `thanos.info.Info` on a listener; [`services`] returns the same services as
//!   [`tonic::service::Routes`] for a component that mounts its own services next to
//!   them. [`ServerOptions`] names the [`ComponentType`] announced by Info and the
//!   per-request limits.
//! - **Client**: [`Client::connect`] reads the endpoint's Info;
//!   [`Client`] implements `Queryable`, so a querier fans out over clients like over
//!   any other source.
//!
//! Guarantees:
//!
//! - **Chunks pass through as stored.** XOR (and histogram) chunk bytes are sent and
//!   received unchanged (`Bytes` slices, never re-encoded); Thanos aggregate chunks
//!   of downsampled data are split into the `count/sum/min/max/counter` fields and
//!   framed back on the client. Sources that yield decoded samples are encoded into
//!   XOR chunks of at most 120 samples.
//! - **Bounded memory.** The server encodes at most
//!   [`ServerOptions::series_buffer`] frames ahead of HTTP/2 flow control; the client
//!   yields series as they arrive (joining a series split over consecutive frames).
//! - **Batches only when asked.** A client that sets `response_batch_size > 1` (as
//!   [`Client`] does by default) gets `SeriesBatch` frames of the series the source
//!   has ready (at most 256); other clients get one series per frame.
//!   A client that goes away stops the server's work.
//! - **Errors map to gRPC codes** and back: an invalid matcher or regex is
//!   `InvalidArgument`, a limit `ResourceExhausted`, an unreachable source
//!   `Unavailable`, anything else `Internal`. On the client these become
//!   `strata_storage::Error::{BadRequest, Limit, Unavailable, Source}`.
//! - **Absurd requests are cheap.** `min_time > max_time` selects nothing without
//!   touching the source; extreme bounds pass through to the source.
//!
//! Not supported (and not advertised in Info): sharding, `without_replica_labels`,
//! projections, snappy compression, TLS. The opaque `hints` (`Any`) of requests are
//! ignored: they are store-specific and Strata sources define none.

mod client;
mod convert;
mod error;
mod server;

pub use client::{Client, ClientOptions, EndpointInfo};
pub use error::{Error, Result};
pub use server::{serve, services, ComponentType, ServerOptions};
