//! `strata tools`.

pub mod bench;
mod bench_compact;
mod bench_downsampled;
mod bench_ingest;
mod bench_proc;
mod bench_query;
mod bench_store;
pub mod bucket;
pub mod tsdb;

use clap::{Args, Subcommand};

/// `strata tools` flags.
#[derive(Debug, Args)]
pub struct Config {
    #[command(subcommand)]
    cmd: ToolsCommand,
}

#[derive(Debug, Subcommand)]
enum ToolsCommand {
    /// TSDB tools (like `promtool tsdb`).
    Tsdb(tsdb::Config),
    /// Benchmarks of hot paths (XOR codec, block writing, series selection).
    Bench(bench::Config),
    /// Bucket utility commands (like `thanos tools bucket`).
    Bucket(bucket::Config),
}

/// Runs a tools subcommand.
pub async fn run(c: Config) -> anyhow::Result<()> {
    match c.cmd {
        ToolsCommand::Tsdb(t) => tsdb::run(t).await,
        ToolsCommand::Bench(b) => bench::run(b).await,
        ToolsCommand::Bucket(b) => bucket::run(b).await,
    }
}
