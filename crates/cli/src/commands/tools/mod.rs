//! `strata tools`.

pub mod bench;
mod bench_ingest;
mod bench_proc;
mod bench_query;
mod bench_store;
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
}

/// Runs a tools subcommand.
pub async fn run(c: Config) -> anyhow::Result<()> {
    match c.cmd {
        ToolsCommand::Tsdb(t) => tsdb::run(t).await,
        ToolsCommand::Bench(b) => bench::run(b).await,
    }
}
