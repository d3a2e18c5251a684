//! Subcommands.

mod common;
pub mod compact;
pub mod demo;
pub mod query;
pub mod server;
pub mod sidecar;
pub mod store;
pub mod tools;

use clap::Subcommand;

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The compactor: compacts, deduplicates, downsamples and applies retention
    /// to the blocks of a bucket (like `thanos compact`).
    Compact(compact::Config),
    /// The whole stack on this machine in one command: two replicas with
    /// sidecars, a local-filesystem bucket, a store gateway and a deduplicating
    /// querier.
    Demo(demo::Config),
    /// The querier: PromQL and the Prometheus HTTP API over StoreAPI endpoints,
    /// with replica dedup and partial response (like `thanos query`).
    Query(query::Config),
    /// A Prometheus-compatible server over a directory of TSDB blocks.
    Server(server::Config),
    /// Runs beside a Prometheus: ships its blocks to object storage and serves its
    /// data over the StoreAPI (like `thanos sidecar`).
    Sidecar(sidecar::Config),
    /// The store gateway: serves the blocks of a bucket over the StoreAPI
    /// (like `thanos store`).
    Store(store::Config),
    /// Tools for TSDB blocks (like `promtool tsdb`) and benchmarks.
    Tools(tools::Config),
}

impl Command {
    /// Size of the runtime's blocking pool: the collector compacts, persists
    /// blocks and serves the API beside ingest; the other components only do
    /// filesystem I/O there, and each idle thread costs resident memory.
    pub fn max_blocking_threads(&self) -> usize {
        match self {
            Command::Server(_) | Command::Tools(_) => 32,
            _ => 4,
        }
    }
}

/// Runs a subcommand.
pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Compact(c) => compact::run(c).await,
        Command::Demo(c) => demo::run(c).await,
        Command::Query(c) => query::run(c).await,
        Command::Server(c) => server::run(c).await,
        Command::Sidecar(c) => sidecar::run(c).await,
        Command::Store(c) => store::run(c).await,
        Command::Tools(c) => tools::run(c).await,
    }
}
